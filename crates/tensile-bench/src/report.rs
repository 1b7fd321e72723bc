//! Result lines and tables.
//!
//! Each measurement becomes one `RESULT {json}` line in the peers' schema
//! (`../shared/peers/common.py` and `gemm_bench.py`), rounded as they round, with the process's
//! peak resident memory (`VmHWM` from `/proc/self/status`, MiB) and the 1-minute load average
//! added as the peers' `run_all.sh` adds them. The peers' `make_table.py` reads these lines as it
//! reads its own, and `bench/compare.py` puts them next to the peers'. The readable tables here
//! are for a person at the terminal.

use serde_json::{Value, json};

use crate::data::Work;
use crate::gemm::GemmStats;
use crate::peak::PeakStats;
use crate::train::{EpochStats, ScalingCheck, ThreadCheck};

/// The `peer` field of tensile's rows.
pub fn peer() -> String {
    format!("tensile {}", env!("CARGO_PKG_VERSION"))
}

/// The median (the mean of the two middle values for an even count), as Python's
/// `statistics.median`; 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Rates in GFLOP/s, as W4 and the peak measure them: `run(count)` does `count` units of
/// `flop_per_unit` FLOP and returns its seconds. One call of `probe` units sizes the repetitions
/// to about `rep_seconds` each (at least `probe` units, at most `max_count`), then `reps` of them
/// run; returns the median, min and max.
pub fn rates(
    reps: usize,
    rep_seconds: f64,
    (probe, max_count): (u64, u64),
    flop_per_unit: f64,
    mut run: impl FnMut(u64) -> crate::Result<f64>,
) -> crate::Result<(f64, f64, f64)> {
    let one = run(probe)?;
    let count = ((rep_seconds / one.max(1e-9)) * probe as f64).clamp(probe as f64, max_count as f64) as u64;
    let mut g = Vec::with_capacity(reps);
    for _ in 0..reps {
        g.push(flop_per_unit * count as f64 / run(count)? / 1e9);
    }
    let (min, max) = min_max(&g);
    Ok((median(&g), min, max))
}

/// `x` rounded to `digits` decimals, as Python's `round` gives for these magnitudes.
pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// This process's peak resident set in MiB (`VmHWM`), when the system reports it.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib + 512) / 1024)
}

/// The 1-minute load average, when the system reports it.
pub fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn with_process_fields(mut v: Value, threads: usize) -> Value {
    v["rss_mib"] = json!(peak_rss_mib());
    v["load1"] = json!(load1());
    v["threads"] = json!(threads);
    v
}

/// The result object of a training workload: the peers' keys, plus `rss_mib`, `load1` and
/// `threads`.
pub fn epoch_json(work: &str, steps: usize, batch: usize, stats: &EpochStats, threads: usize) -> Value {
    let med = median(&stats.times);
    let (min, max) = min_max(&stats.times);
    let losses = &stats.warmup_losses;
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64;
    let last20 = (losses.len() > 1).then(|| round(mean(&losses[losses.len().saturating_sub(20)..]), 4));
    let v = json!({
        "peer": peer(),
        "work": work,
        "epoch_s": round(med, 6),
        "min_s": round(min, 6),
        "max_s": round(max, 6),
        "steps": steps,
        "batch": batch,
        "samples_per_s": round((steps * batch) as f64 / med, 1),
        "us_per_step": round(med / steps as f64 * 1e6, 2),
        "loss_ep1_mean": round(mean(losses), 4),
        "loss_ep1_last20": last20,
    });
    let mut v = with_process_fields(v, threads);
    // The model's matrix products per second (`Work::flop_per_sample`), where counted.
    if let Some(flop) = Work::parse(work).and_then(Work::flop_per_sample) {
        let gflop = flop * (steps * batch) as f64 / 1e9;
        v["gflop_per_epoch"] = json!(round(gflop, 3));
        v["model_gflops"] = json!(round(gflop / med, 2));
    }
    v
}

/// The measured f32 limit with one thread count: `work` = `peak`, GFLOP/s and the instructions.
pub fn peak_json(s: &PeakStats) -> Value {
    let v = json!({
        "peer": peer(),
        "work": "peak",
        "isa": s.isa,
        "peak_gflops": round(s.median, 2),
        "peak_gflops_min": round(s.min, 2),
        "peak_gflops_max": round(s.max, 2),
    });
    with_process_fields(v, s.threads)
}

/// The result object of one W4 case, in `gemm_bench.py`'s keys plus `rss_mib` and `load1`.
pub fn gemm_json(s: &GemmStats) -> Value {
    let v = json!({
        "peer": format!("{} matmul", peer()),
        "work": "w4",
        "n": s.n,
        "threads": s.threads,
        "gflops": round(s.median, 2),
        "gflops_min": round(s.min, 2),
        "gflops_max": round(s.max, 2),
    });
    with_process_fields(v, s.threads)
}

/// The 1-vs-2-thread check: `work` = `threads_<workload>`, medians, and `speedup` = t1 / t2.
pub fn thread_json(work: &str, c: &ThreadCheck) -> Value {
    let (t1, t2) = (median(&c.one), median(&c.two));
    let v = json!({
        "peer": peer(),
        "work": format!("threads_{work}"),
        "t1_s": round(t1, 6),
        "t2_s": round(t2, 6),
        "t1_all_s": c.one.iter().map(|&t| round(t, 6)).collect::<Vec<_>>(),
        "t2_all_s": c.two.iter().map(|&t| round(t, 6)).collect::<Vec<_>>(),
        "speedup": round(t1 / t2, 3),
    });
    with_process_fields(v, 2)
}

/// The linear-scaling check: `work` = `scaling_<workload>`, medians, and `ratio` = t(k·N) / t(N),
/// which linear scaling puts at `factor`.
pub fn scaling_json(work: &str, c: &ScalingCheck, threads: usize) -> Value {
    let (small, large) = (median(&c.small), median(&c.large));
    let v = json!({
        "peer": peer(),
        "work": format!("scaling_{work}"),
        "factor": c.factor,
        "rows": c.rows,
        "rows_scaled": c.rows * c.factor,
        "t_s": round(small, 6),
        "t_scaled_s": round(large, 6),
        "ratio": round(large / small, 3),
        "ratio_over_factor": round(large / small / c.factor as f64, 3),
    });
    with_process_fields(v, threads)
}

/// One `RESULT {json}` line.
pub fn result_line(v: &Value) -> String {
    format!("RESULT {v}")
}

/// A readable table of the result objects (any mix of kinds), one section per kind.
pub fn table(rows: &[Value]) -> String {
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let s = |v: &Value, k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
    let work = |v: &Value| v.get("work").and_then(Value::as_str).unwrap_or("").to_string();
    // A rate as a share of the limit measured in this run with as many threads, when there is one.
    let peak = |v: &Value, gflops: f64| -> String {
        let threads = v.get("threads");
        rows.iter()
            .find(|p| p.get("peak_gflops").is_some() && p.get("threads") == threads)
            .map_or("-".into(), |p| format!("{:.0}%", 100.0 * gflops / f(p, "peak_gflops")))
    };
    let mut out = String::new();
    for v in rows.iter().filter(|v| v.get("peak_gflops").is_some()) {
        out += &format!(
            "peak: {} thread(s), {} multiply-adds: {:.1} GFLOP/s ({:.1}-{:.1})\n",
            s(v, "threads"),
            v.get("isa").and_then(Value::as_str).unwrap_or("?"),
            f(v, "peak_gflops"),
            f(v, "peak_gflops_min"),
            f(v, "peak_gflops_max")
        );
    }
    let epochs: Vec<&Value> = rows.iter().filter(|v| v.get("epoch_s").is_some()).collect();
    if !epochs.is_empty() {
        out += &format!(
            "{}{:<7} {:>9} {:>19} {:>11} {:>11} {:>20} {:>9} {:>8} {:>7}\n",
            if out.is_empty() { "" } else { "\n" },
            "work",
            "s/epoch",
            "min-max s",
            "samples/s",
            "us/step",
            "ep1 loss mean/last20",
            "peak MiB",
            "GFLOP/s",
            "% peak"
        );
        for v in epochs {
            let last20 = v.get("loss_ep1_last20").and_then(Value::as_f64).map_or("-".into(), |x| format!("{x:.4}"));
            let (gflops, share) = match v.get("model_gflops").and_then(Value::as_f64) {
                Some(g) => (format!("{g:.1}"), peak(v, g)),
                None => ("-".into(), "-".into()),
            };
            out += &format!(
                "{:<7} {:>9.3} {:>19} {:>11.0} {:>11.1} {:>20} {:>9} {:>8} {:>7}\n",
                work(v),
                f(v, "epoch_s"),
                format!("{:.3}-{:.3}", f(v, "min_s"), f(v, "max_s")),
                f(v, "samples_per_s"),
                f(v, "us_per_step"),
                format!("{:.4} / {last20}", f(v, "loss_ep1_mean")),
                s(v, "rss_mib"),
                gflops,
                share,
            );
        }
    }
    let gemms: Vec<&Value> = rows.iter().filter(|v| v.get("gflops").is_some()).collect();
    if !gemms.is_empty() {
        out += &format!("\n{:<6} {:>7} {:>9} {:>17} {:>7}\n", "n", "threads", "GFLOP/s", "min-max", "% peak");
        for v in gemms {
            out += &format!(
                "{:<6} {:>7} {:>9.1} {:>17} {:>7}\n",
                s(v, "n"),
                s(v, "threads"),
                f(v, "gflops"),
                format!("{:.1}-{:.1}", f(v, "gflops_min"), f(v, "gflops_max")),
                peak(v, f(v, "gflops"))
            );
        }
    }
    for v in rows.iter().filter(|v| v.get("speedup").is_some()) {
        out += &format!(
            "\n{}: 1 thread {:.3} s/epoch, 2 threads {:.3} s/epoch, speedup {:.2}x (medians)\n",
            work(v),
            f(v, "t1_s"),
            f(v, "t2_s"),
            f(v, "speedup")
        );
    }
    for v in rows.iter().filter(|v| v.get("ratio_over_factor").is_some()) {
        out += &format!(
            "\n{}: {} rows {:.3} s/epoch, {} rows {:.3} s/epoch: {:.2}x the time for {}x the rows \
             ({:.2} of linear)\n",
            work(v),
            s(v, "rows"),
            f(v, "t_s"),
            s(v, "rows_scaled"),
            f(v, "t_scaled_s"),
            f(v, "ratio"),
            s(v, "factor"),
            f(v, "ratio_over_factor")
        );
    }
    out
}
