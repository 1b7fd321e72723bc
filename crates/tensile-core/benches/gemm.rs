//! Matrix-product throughput of `Tensor::matmul` (f32), printed as a small table.
//!
//! Run: `cargo bench -p tensile-core --bench gemm`, with `TENSILE_NUM_THREADS=1` or `=2` to pick
//! the size of rayon's global pool (default: every core). An extra argument keeps only the cases
//! whose name contains it (`cargo bench -p tensile-core --bench gemm -- batched`).
//!
//! Each case is warmed up, then timed as `SAMPLES` samples of enough calls to last about
//! `SAMPLE_S` each, taken round-robin over the cases; the median is reported because another
//! process may share the machine, and the min and max show how much it did. What is timed is
//! the whole `matmul` call as users see it (output allocation included), not the raw kernel:
//! the comparison with the `gemm` crate itself is in BENCHMARKS.md. A plain binary rather than
//! criterion or divan keeps the crate free of bench-only dependencies and prints GFLOP/s, the
//! unit the GEMM crates are compared in.

use std::hint::black_box;
use std::time::Instant;

use tensile_core::{DType, Rng, Tensor};

const SAMPLES: usize = 11;
const SAMPLE_S: f64 = 0.1;

/// One product to time: `lhs @ rhs`, either possibly a transposed view.
struct Case {
    name: &'static str,
    /// How the operands are written, for the table.
    shape: String,
    lhs: Tensor,
    rhs: Tensor,
    /// Multiply-adds times two, for the whole (possibly batched) product.
    flop: f64,
}

fn randn(dims: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F32, rng)
}

fn cases() -> Vec<Case> {
    let mut rng = Rng::seed(0);
    let mut out = Vec::new();
    for n in [256, 1024, 2048] {
        out.push(Case {
            name: "square",
            shape: format!("[{n},{n}] @ [{n},{n}]"),
            lhs: randn(&[n, n], &mut rng),
            rhs: randn(&[n, n], &mut rng),
            flop: 2.0 * (n as f64).powi(3),
        });
    }
    let (b, n) = (64, 128);
    out.push(Case {
        name: "batched",
        shape: format!("{b} x [{n},{n}] @ [{n},{n}]"),
        lhs: randn(&[b, n, n], &mut rng),
        rhs: randn(&[b, n, n], &mut rng),
        flop: 2.0 * b as f64 * (n as f64).powi(3),
    });
    // Transposed operands are strided views read in place by the kernel, as in the backward
    // pass (`Aᵀ @ G`) and a linear layer (`X @ Wᵀ`).
    let n = 1024;
    out.push(Case {
        name: "lhs.t()",
        shape: format!("[{n},{n}].t() @ [{n},{n}]"),
        lhs: randn(&[n, n], &mut rng).t().expect("2-D"),
        rhs: randn(&[n, n], &mut rng),
        flop: 2.0 * (n as f64).powi(3),
    });
    out.push(Case {
        name: "rhs.t()",
        shape: format!("[{n},{n}] @ [{n},{n}].t()"),
        lhs: randn(&[n, n], &mut rng),
        rhs: randn(&[n, n], &mut rng).t().expect("2-D"),
        flop: 2.0 * (n as f64).powi(3),
    });
    out
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a name filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let threads = tensile_core::threads::init();
    let cases: Vec<Case> =
        cases().into_iter().filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f))).collect();
    let call = |c: &Case| black_box(c.lhs.matmul(&c.rhs).expect("shapes match"));
    // Warm-up (page faults, rayon workers waking, caches), then size each case's sample.
    let iters: Vec<usize> = cases
        .iter()
        .map(|c| {
            call(c);
            let start = Instant::now();
            call(c);
            ((SAMPLE_S / start.elapsed().as_secs_f64()).ceil() as usize).max(1)
        })
        .collect();
    // Samples go round-robin over the cases rather than case after case: the speed of a shared
    // (virtual) machine drifts over seconds, and this way the drift hits every case alike.
    let mut secs = vec![Vec::with_capacity(SAMPLES); cases.len()];
    for _ in 0..SAMPLES {
        for (i, c) in cases.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[i] {
                call(c);
            }
            secs[i].push(start.elapsed().as_secs_f64() / iters[i] as f64);
        }
    }
    println!("tensile Tensor::matmul, f32, {threads} thread(s), median of {SAMPLES} samples of ~{SAMPLE_S} s");
    println!(
        "{:<8} {:<30} {:>7} {:>9} {:>9} {:>9} {:>10}",
        "case", "shape", "threads", "GFLOP/s", "min", "max", "ms/call"
    );
    for (c, s) in cases.iter().zip(&mut secs) {
        s.sort_by(f64::total_cmp);
        let gflops = |t: f64| c.flop / t / 1e9;
        let median = s[SAMPLES / 2];
        println!(
            "{:<8} {:<30} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10.3}",
            c.name,
            c.shape,
            threads,
            gflops(median),
            gflops(s[SAMPLES - 1]),
            gflops(s[0]),
            median * 1e3
        );
    }
}
