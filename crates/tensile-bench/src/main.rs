//! `tensile-bench`: runs the W1-W5 workloads (and the thread and scaling checks) and prints one
//! `RESULT {json}` line per measurement, then a readable table. Progress goes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::Value;
use tensile_bench::{Bench, Data, Work, default_dir, gemm, peak, report, run_protocol, train};

// As in the `tensile` command: a training step frees and makes many short-lived tensors of the same few sizes; mimalloc
// serves them from per-thread free lists where glibc's malloc spent a quarter of a small step
// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Task {
    /// MLP 784-512-256-10, batch 128 (s/epoch).
    W1,
    /// CNN conv32-pool-conv64-pool-fc128-fc10, batch 64 (s/epoch).
    W2,
    /// MLP 16-64-64-1, MSE, batch 32 (us/step).
    W3,
    /// Square f32 matrix products, n = 256, 1024, 2048 (GFLOP/s).
    W4,
    /// The machine's f32 multiply-add limit with each of --gemm-threads; when it runs first, the
    /// table gives W1-W4 as a share of it.
    Peak,
    /// GRU 32->128 over 64 steps + linear 10, batch 32 (sequences/s).
    W5gru,
    /// Two-layer pre-norm transformer encoder over 64 tokens, batch 32 (sequences/s).
    W5tf,
    /// w5gru and w5tf.
    W5,
    /// w1 w2 w3 w4 w5gru w5tf.
    All,
    /// Epoch time with 1 and with 2 threads on W1 and W2, interleaved in one process.
    Threads,
    /// Epoch time of the scaling workload on its rows and on them repeated --scale times.
    Scaling,
    /// threads and scaling.
    Check,
}

#[derive(Debug, Parser)]
#[command(
    name = "tensile-bench",
    version,
    about = "Times tensile on the W1-W5 workloads the peer frameworks run, on the same data files",
    after_help = "Each workload prints `RESULT {json}` lines in the peers' schema (../shared/peers/common.py) \
                  and a readable table. Threads: TENSILE_NUM_THREADS (else every core); W4 and the checks \
                  use their own fixed-size pools. Peak memory (rss_mib) is the whole process's, so run one \
                  workload per process to compare it, as bench/side_by_side.sh does.\n\n\
                  Examples:\n  TENSILE_NUM_THREADS=2 tensile-bench w1\n  tensile-bench w5 --reps 1\n  \
                  tensile-bench check --scale 10\n  TENSILE_NUM_THREADS=2 tensile-bench peak w1 w2 w4 --gemm-threads 2"
)]
struct Args {
    /// Workloads and checks to run, in this order.
    #[arg(value_enum, default_value = "all")]
    tasks: Vec<Task>,
    /// Folder with the data files that ../shared/peers/gen_data.py writes [default: $PEERS_DATA, else
    /// $PEERS_ROOT/data, else ~/.cache/tensile-peers/data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Timed epochs after the warm-up epoch (and samples per thread count in the checks)
    /// [default: $PEERS_REPS, else 3]
    #[arg(long, value_name = "N")]
    reps: Option<usize>,
    /// How many times the scaling check repeats the rows.
    #[arg(long, default_value_t = 10, value_name = "K")]
    scale: usize,
    /// The workload the scaling check runs.
    #[arg(long, default_value = "w3", value_name = "WORK", value_parser = ["w1", "w2", "w3", "w5gru", "w5tf"])]
    scaling_work: String,
    /// W4 matrix sizes.
    #[arg(long, value_delimiter = ',', default_value = "256,1024,2048", value_name = "N,..")]
    gemm_sizes: Vec<usize>,
    /// W4 (and peak) thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_name = "T,..")]
    gemm_threads: Vec<usize>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One unit of work, after the command line's groups are expanded.
#[derive(Debug, Clone, Copy)]
enum Job {
    Train(Work),
    Gemm,
    Peak,
    Threads(Work),
    Scaling,
}

fn jobs(task: Task) -> Vec<Job> {
    match task {
        Task::W1 => vec![Job::Train(Work::W1)],
        Task::W2 => vec![Job::Train(Work::W2)],
        Task::W3 => vec![Job::Train(Work::W3)],
        Task::W4 => vec![Job::Gemm],
        Task::Peak => vec![Job::Peak],
        Task::W5gru => vec![Job::Train(Work::W5Gru)],
        Task::W5tf => vec![Job::Train(Work::W5Tf)],
        Task::W5 => vec![Job::Train(Work::W5Gru), Job::Train(Work::W5Tf)],
        Task::All => [Task::W1, Task::W2, Task::W3, Task::W4, Task::W5].into_iter().flat_map(jobs).collect(),
        Task::Threads => vec![Job::Threads(Work::W1), Job::Threads(Work::W2)],
        Task::Scaling => vec![Job::Scaling],
        Task::Check => vec![Job::Threads(Work::W1), Job::Threads(Work::W2), Job::Scaling],
    }
}

fn reps(args: &Args) -> Result<usize> {
    let reps = match args.reps {
        Some(r) => r,
        None => match std::env::var("PEERS_REPS") {
            Ok(s) => s.trim().parse().with_context(|| format!("PEERS_REPS = {s:?} is not a whole number"))?,
            Err(_) => 3,
        },
    };
    if reps == 0 {
        bail!("the number of timed epochs (--reps or PEERS_REPS) must be at least 1, found 0");
    }
    Ok(reps)
}

fn emit(rows: &mut Vec<Value>, v: Value) {
    println!("{}", report::result_line(&v));
    rows.push(v);
}

fn load(work: Work, dir: &std::path::Path) -> Result<Data> {
    eprintln!("# {}: reading data from {}", work.name(), dir.display());
    Ok(Data::load(work, dir)?)
}

fn run(args: Args) -> Result<()> {
    let threads = tensile_core::threads::init();
    let reps = reps(&args)?;
    if args.gemm_sizes.contains(&0) || args.gemm_threads.contains(&0) {
        bail!("--gemm-sizes and --gemm-threads must be at least 1 each");
    }
    let dir = args.data.clone().unwrap_or_else(default_dir);
    let scaling_work = Work::parse(&args.scaling_work).context("internal: --scaling-work is validated by clap")?;
    let jobs: Vec<Job> = args.tasks.iter().flat_map(|&t| jobs(t)).collect();
    eprintln!("# {} with {threads} threads, {reps} timed epochs per workload", report::peer());
    let mut rows = Vec::new();
    for job in jobs {
        match job {
            Job::Train(work) => {
                let data = load(work, &dir)?;
                let (steps, batch) = (data.steps(), data.batch_size());
                eprintln!("# {}: warm-up epoch, then {reps} timed epochs of {steps} steps", work.name());
                let mut bench = Bench::new(data, 0)?;
                let stats = run_protocol(&mut bench, reps)?;
                emit(&mut rows, report::epoch_json(work.name(), steps, batch, &stats, threads));
            }
            Job::Gemm => {
                for &n in &args.gemm_sizes {
                    eprintln!("# w4: n = {n}, threads {:?}", args.gemm_threads);
                    for s in gemm::measure(n, &args.gemm_threads, 5, 0.25)? {
                        emit(&mut rows, report::gemm_json(&s));
                    }
                }
            }
            Job::Peak => {
                eprintln!("# peak: f32 multiply-adds, threads {:?}", args.gemm_threads);
                for s in peak::measure(&args.gemm_threads, 5, 0.25)? {
                    emit(&mut rows, report::peak_json(&s));
                }
            }
            Job::Threads(work) => {
                let data = load(work, &dir)?;
                eprintln!("# threads_{}: 1 and 2 threads, {reps} epochs each, interleaved", work.name());
                let check = train::thread_check(data, reps)?;
                emit(&mut rows, report::thread_json(work.name(), &check));
            }
            Job::Scaling => {
                let data = load(scaling_work, &dir)?;
                let (name, rows_n) = (scaling_work.name(), data.rows());
                eprintln!("# scaling_{name}: {rows_n} rows and {}x, {reps} epochs each", args.scale);
                let check = train::scaling_check(data, args.scale, reps)?;
                emit(&mut rows, report::scaling_json(name, &check, threads));
            }
        }
    }
    println!("\n{}, {threads} threads (W4 and the checks: their own pools)", report::peer());
    print!("{}", report::table(&rows));
    Ok(())
}
