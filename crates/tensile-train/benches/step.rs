//! Time of one training step (forward, loss, backward, Adam update) for the three step-shaped
//! workloads of BENCHMARKS.md, each on rayon pools of 1 and 2 threads:
//!
//! - `w1`: a 784-512-256-10 ReLU MLP, softmax cross-entropy, batch 128 (469 steps per
//!   60,000-row epoch);
//! - `w2`: a CNN on `[1, 28, 28]` (conv 32 3×3, ReLU, max-pool 2; conv 64 3×3, ReLU, max-pool 2;
//!   linear 128, ReLU; linear 10), cross-entropy, batch 64 (157 steps per 10,000-row epoch);
//! - `w3`: a 16-64-64-1 ReLU MLP with MSE at batch 32, where the time is the
//!   framework's overhead per op and per step rather than arithmetic.
//!
//! Run: `cargo bench -p tensile-train --bench step` (all cases) or with a filter on the case name
//! (`cargo bench -p tensile-train --bench step -- w1`). Each case is warmed up, then timed as
//! `SAMPLES` samples of enough steps to last about `SAMPLE_S`, taken round-robin over the cases so
//! that load from other processes spreads over all of them; the median per step is reported, with
//! the min and max, and the implied seconds per epoch. `TENSILE_BENCH_STEPS=n` runs one sample of
//! exactly `n` steps per case instead, for instruction counts under callgrind, which do not
//! depend on the machine's load. A plain binary keeps bench-only dependencies out of the crate.

use std::time::Instant;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{
    Adam, AdamConfig, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, Optimizer, Pool2dConfig, Relu,
    Sequential, cross_entropy, mse_loss, named_parameters,
};

// The allocator of the `tensile` command, so a step here costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SAMPLES: usize = 11;
const SAMPLE_S: f64 = 0.25;

/// A model, its optimizer and one fixed batch.
struct Workload {
    model: Sequential,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    classify: bool,
}

impl Workload {
    fn step(&mut self) {
        let out = self.model.forward(&self.x).expect("forward");
        let loss = if self.classify { cross_entropy(&out, &self.y) } else { mse_loss(&out, &self.y) };
        let grads = loss.expect("loss").backward().expect("backward");
        self.opt.step(&grads).expect("step");
    }
}

fn adam(model: &Sequential) -> Adam {
    Adam::new(named_parameters(model), AdamConfig::default())
}

fn labels(batch: usize, rng: &mut Rng) -> Tensor {
    let v: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    Tensor::from_vec(v, batch).expect("batch labels")
}

fn w1(rng: &mut Rng) -> Workload {
    let model = Sequential::new()
        .with(Linear::new(784, 512, true, rng))
        .with(Relu)
        .with(Linear::new(512, 256, true, rng))
        .with(Relu)
        .with(Linear::new(256, 10, true, rng));
    let opt = adam(&model);
    let x = Tensor::randn((128, 784), 0.0, 1.0, DType::F32, rng);
    Workload { model, opt, x, y: labels(128, rng), classify: true }
}

fn w2(rng: &mut Rng) -> Workload {
    let conv = |i, o, rng: &mut Rng| Conv2d::new(Conv2dConfig::new(i, o, (3, 3)), rng).expect("conv config");
    let pool = || MaxPool2d::new(Pool2dConfig::new((2, 2))).expect("pool config");
    let model = Sequential::new()
        .with(conv(1, 32, rng))
        .with(Relu)
        .with(pool())
        .with(conv(32, 64, rng))
        .with(Relu)
        .with(pool())
        .with(Flatten)
        .with(Linear::new(64 * 5 * 5, 128, true, rng))
        .with(Relu)
        .with(Linear::new(128, 10, true, rng));
    let opt = adam(&model);
    let x = Tensor::randn((64, 1, 28, 28), 0.0, 1.0, DType::F32, rng);
    Workload { model, opt, x, y: labels(64, rng), classify: true }
}

fn w3(rng: &mut Rng) -> Workload {
    let model = Sequential::new()
        .with(Linear::new(16, 64, true, rng))
        .with(Relu)
        .with(Linear::new(64, 64, true, rng))
        .with(Relu)
        .with(Linear::new(64, 1, true, rng));
    let opt = adam(&model);
    let x = Tensor::randn((32, 16), 0.0, 1.0, DType::F32, rng);
    let y = Tensor::randn((32, 1), 0.0, 1.0, DType::F32, rng);
    Workload { model, opt, x, y, classify: false }
}

struct Case {
    name: String,
    describe: &'static str,
    /// Steps in one epoch, for the per-epoch column (`None`: the workload is per step).
    epoch_steps: Option<usize>,
    pool: rayon::ThreadPool,
    work: Workload,
    /// Steps per sample, sized in the warm-up.
    steps: usize,
    times: Vec<f64>,
}

impl Case {
    fn run(&mut self, steps: usize) -> f64 {
        let work = &mut self.work;
        self.pool.install(|| {
            let t = Instant::now();
            for _ in 0..steps {
                work.step();
            }
            t.elapsed().as_secs_f64() / steps as f64
        })
    }
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut rng = Rng::seed(0);
    type Make = fn(&mut Rng) -> Workload;
    let workloads: [(&str, &str, Option<usize>, Make); 3] = [
        ("w1", "MLP 784-512-256-10, batch 128", Some(469), w1),
        ("w2", "CNN 28x28 conv32-conv64-128-10, batch 64", Some(157), w2),
        ("w3", "MLP 16-64-64-1, MSE, batch 32", None, w3),
    ];
    let mut cases = Vec::new();
    for (name, describe, epoch_steps, make) in workloads {
        for threads in [1, 2] {
            let name = format!("{name}/{threads}t");
            if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let work = make(&mut rng);
            cases.push(Case { name, describe, epoch_steps, pool, work, steps: 1, times: Vec::new() });
        }
    }
    // `TENSILE_BENCH_STEPS=n`: one sample of exactly `n` steps per case and no warm-up, so that
    // instruction counts (`valgrind --tool=callgrind`) compare between builds.
    let fixed: Option<usize> = std::env::var("TENSILE_BENCH_STEPS").ok().and_then(|v| v.parse().ok());
    let samples = if fixed.is_some() { 1 } else { SAMPLES };
    for case in &mut cases {
        case.steps = match fixed {
            Some(n) => n.max(1),
            None => {
                let per = case.run(3).min(case.run(3));
                ((SAMPLE_S / per) as usize).max(1)
            }
        };
    }
    for _ in 0..samples {
        for case in &mut cases {
            let t = case.run(case.steps);
            case.times.push(t);
        }
    }
    println!("{:<7} {:<42} {:>12} {:>10} {:>10} {:>12}", "case", "workload", "median/step", "min", "max", "s/epoch");
    for case in &mut cases {
        case.times.sort_by(f64::total_cmp);
        let (lo, med, hi) = (case.times[0], case.times[samples / 2], case.times[samples - 1]);
        let fmt = |t: f64| if t < 1e-3 { format!("{:.1} us", t * 1e6) } else { format!("{:.3} ms", t * 1e3) };
        let epoch = case.epoch_steps.map_or("-".to_string(), |n| format!("{:.3}", med * n as f64));
        println!(
            "{:<7} {:<42} {:>12} {:>10} {:>10} {:>12}",
            case.name,
            case.describe,
            fmt(med),
            fmt(lo),
            fmt(hi),
            epoch
        );
    }
}
