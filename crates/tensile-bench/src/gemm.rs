//! W4: square f32 matrix products through `Tensor::matmul`, measured as the peers' `gemm_bench.py`
//! measures NumPy and `torch.mm`: one warm-up call, then 5 repetitions of `k` back-to-back calls
//! with `k` chosen so that one repetition takes about 0.25 s; GFLOP/s = 2n³k/t. Unlike the peers,
//! each call allocates its output, as `matmul` does for users. Each thread count runs inside its
//! own pool of that size.

use std::time::Instant;

use tensile_core::{DType, Rng, Tensor};

use crate::error::{Error, Result};
use crate::train::pool;

/// GFLOP/s of one (n, threads) case over the 5 repetitions.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmStats {
    pub n: usize,
    pub threads: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Times `[n, n] @ [n, n]` (standard normal inputs from seed 0) with each thread count in
/// `threads`, and `reps` repetitions of about `rep_seconds` each.
pub fn measure(n: usize, threads: &[usize], reps: usize, rep_seconds: f64) -> Result<Vec<GemmStats>> {
    if n == 0 || reps == 0 || threads.contains(&0) {
        return Err(Error::Invalid(format!(
            "W4 needs n >= 1, at least one repetition and thread counts >= 1; found n = {n}, {reps} repetitions, \
             threads {threads:?}"
        )));
    }
    let mut rng = Rng::seed(0);
    let a = Tensor::randn((n, n), 0.0, 1.0, DType::F32, &mut rng);
    let b = Tensor::randn((n, n), 0.0, 1.0, DType::F32, &mut rng);
    let flop = 2.0 * (n as f64).powi(3);
    let mut out = Vec::with_capacity(threads.len());
    for &t in threads {
        let (median, min, max) = pool(t)?.install(|| {
            crate::report::rates(reps, rep_seconds, (1, 10_000), flop, |k| {
                let start = Instant::now();
                for _ in 0..k {
                    a.matmul(&b)?;
                }
                Ok(start.elapsed().as_secs_f64())
            })
        })?;
        let stats = GemmStats { n, threads: t, median, min, max };
        out.push(stats);
    }
    Ok(out)
}
