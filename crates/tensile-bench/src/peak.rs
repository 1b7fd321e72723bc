//! The machine's f32 limit, measured: every thread of a pool runs [`CHAINS`] independent chains
//! of fused multiply-adds on the widest vectors the CPU has (AVX-512, else AVX2 with FMA; plain
//! multiplies and adds elsewhere), with nothing else in the loop. The GFLOP/s that reaches is
//! what a perfect kernel could get on these cores at the clock they run at, the figure a
//! workload's own GFLOP/s is compared with ("% of peak" in the table). As in W4: one warm-up,
//! then `reps` repetitions of about `rep_seconds` each, the median reported.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::train::pool;

/// Independent accumulators per thread: enough to cover a multiply-add's latency on both of a
/// core's vector units (4 cycles x 2 units on current x86 cores).
pub const CHAINS: usize = 12;

/// The measured limit with one thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct PeakStats {
    pub threads: usize,
    /// The instructions used: `avx512`, `avx2` or `scalar`.
    pub isa: &'static str,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The widest multiply-add this CPU runs, and the f32 lanes of one.
fn isa() -> (&'static str, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return ("avx512", 16);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return ("avx2", 8);
        }
    }
    ("scalar", 1)
}

/// `iters` rounds of one multiply-add on each of [`CHAINS`] vectors of `lanes` f32; returns a sum
/// of the results so that the work cannot be left out.
fn chains(isa: &str, iters: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the CPU has the features (`isa` is what `isa()` detected).
        "avx512" => return unsafe { x86::chains_avx512(iters) },
        // SAFETY: as above.
        "avx2" => return unsafe { x86::chains_avx2(iters) },
        _ => {}
    }
    let _ = isa;
    let (m, a) = (std::hint::black_box(0.999_999f32), std::hint::black_box(1e-6f32));
    let mut acc = [1.0f32; CHAINS];
    for _ in 0..iters {
        for x in &mut acc {
            *x = *x * m + a;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// # Safety
    ///
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains_avx512(iters: u64) -> f32 {
        let (m, a) = (_mm512_set1_ps(std::hint::black_box(0.999_999)), _mm512_set1_ps(1e-6));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        _mm512_reduce_add_ps(acc.into_iter().fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, x)))
    }

    /// # Safety
    ///
    /// AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains_avx2(iters: u64) -> f32 {
        let (m, a) = (_mm256_set1_ps(std::hint::black_box(0.999_999)), _mm256_set1_ps(1e-6));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let mut lanes = [0f32; 8];
        let sum = acc.into_iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, x));
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }
}

/// Measures the limit on pools of each size in `threads`.
pub fn measure(threads: &[usize], reps: usize, rep_seconds: f64) -> Result<Vec<PeakStats>> {
    if reps == 0 || threads.is_empty() || threads.contains(&0) || rep_seconds.is_nan() || rep_seconds <= 0.0 {
        return Err(Error::Invalid(format!(
            "the peak measurement needs thread counts >= 1, at least one repetition and a positive duration; \
             found threads {threads:?}, {reps} repetitions, {rep_seconds} s"
        )));
    }
    let (isa, lanes) = isa();
    let flop_per_iter = (CHAINS * lanes * 2) as f64;
    let mut out = Vec::with_capacity(threads.len());
    for &t in threads {
        let pool = pool(t)?;
        // Every thread of the pool runs the chains at once; the time is the slowest thread's.
        let run = |iters: u64| -> Result<f64> {
            let start = Instant::now();
            let sums = pool.broadcast(|_| chains(isa, iters));
            std::hint::black_box(sums);
            Ok(start.elapsed().as_secs_f64())
        };
        let (median, min, max) =
            crate::report::rates(reps, rep_seconds, (1 << 16, 1 << 40), flop_per_iter * t as f64, run)?;
        out.push(PeakStats { threads: t, isa, median, min, max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chains compute what they say: `x ← x·m + a`, `iters` times from 1, summed.
    #[test]
    fn chains_give_the_recurrence() {
        let (isa, lanes) = isa();
        let iters = 1000;
        let mut x = 1.0f64;
        for _ in 0..iters {
            x = x * 0.999_999f32 as f64 + 1e-6f32 as f64;
        }
        let got = chains(isa, iters) as f64;
        let want = x * (CHAINS * lanes) as f64;
        assert!((got - want).abs() <= 1e-4 * want, "{isa}: {got} vs {want}");
        assert_eq!(chains("scalar", 0), CHAINS as f32);
    }

    #[test]
    fn measures_each_thread_count_and_rejects_empty_requests() {
        let stats = measure(&[1, 2], 2, 0.005).unwrap();
        assert_eq!(stats.iter().map(|s| s.threads).collect::<Vec<_>>(), [1, 2]);
        for s in &stats {
            assert!(s.min > 0.0 && s.min <= s.median && s.median <= s.max && s.max.is_finite(), "{s:?}");
        }
        for (threads, reps, secs) in [(&[][..], 1, 0.1), (&[0][..], 1, 0.1), (&[1][..], 0, 0.1), (&[1][..], 1, 0.0)] {
            let err = measure(threads, reps, secs).unwrap_err().to_string();
            assert!(err.contains("peak measurement"), "{err}");
        }
    }
}
