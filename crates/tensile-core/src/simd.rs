//! Wide vectors for the crate's own loops, chosen at run time.
//!
//! The workspace is compiled for the baseline x86-64 target (SSE2), so plain loops vectorize
//! four `f32` lanes wide. [`wide`] runs a closure compiled a second time with AVX-512 (and
//! AVX2/FMA) enabled when the CPU has them: the closure is inlined into a function carrying
//! those target features, so its loops vectorize sixteen lanes wide. The check is cached by
//! `std`, so a call costs one load and a branch. Results are the same bits either way: Rust
//! never fuses a multiply and an add on its own, and add, multiply, divide and square root are
//! exactly rounded at any vector width. `-C target-cpu=native` was rejected because a binary
//! built that way fails with an illegal instruction on an older CPU.

/// Runs `f`, compiled for AVX-512 when this CPU supports it.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports every feature the callee is compiled for (checked above).
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
