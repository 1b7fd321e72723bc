//! The thread pool. Kernels run on rayon's global pool, sized once from `TENSILE_NUM_THREADS`
//! (else the number of cores). Code that wants another count runs inside its own pool with
//! `rayon::ThreadPool::install`; kernels read the current pool's size, so results stay the same
//! bits whatever the count (see `cpu`).

use std::sync::OnceLock;

use rayon::prelude::*;

static INIT: OnceLock<usize> = OnceLock::new();

/// Sizes rayon's global pool from `TENSILE_NUM_THREADS` (or the core count) and returns the
/// size. Idempotent; when the global pool was already built elsewhere, that pool is used as is.
pub fn init() -> usize {
    *INIT.get_or_init(|| {
        let wanted = std::env::var("TENSILE_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let _ = rayon::ThreadPoolBuilder::new().num_threads(wanted).build_global();
        rayon::current_num_threads()
    })
}

/// Threads available to kernels called from here (the enclosing pool's size).
pub fn current() -> usize {
    if rayon::current_thread_index().is_none() && INIT.get().is_none() {
        init();
    }
    rayon::current_num_threads()
}

/// Slices shorter than this are processed on the calling thread by [`zip_chunks_mut`].
const PAR_MIN: usize = 1 << 15;
/// Elements per task of [`zip_chunks_mut`].
const CHUNK: usize = 1 << 13;

/// Calls `f` on matching pieces of the equally long slices `outs` and `input`, compiled with
/// wide vectors ([`crate::simd::wide`]). Long slices are cut into fixed pieces of 8,192 elements
/// that run in parallel on the current pool; short ones are one piece on the calling thread.
/// For an `f` that treats each element on its own (an optimizer update), the result is the same
/// bits whatever the number of threads.
///
/// # Panics
///
/// When the slices differ in length (a caller's bug, never a user's input).
pub fn zip_chunks_mut<T: Send + Sync, const N: usize>(
    outs: [&mut [T]; N],
    input: &[T],
    f: impl Fn([&mut [T]; N], &[T]) + Sync,
) {
    let n = input.len();
    assert!(outs.iter().all(|o| o.len() == n), "zip_chunks_mut: slices of different lengths");
    if n < PAR_MIN || current() <= 1 {
        crate::simd::wide(
            #[inline(always)]
            || f(outs, input),
        );
        return;
    }
    let mut pieces = outs.map(|o| o.chunks_mut(CHUNK));
    let tasks: Vec<([&mut [T]; N], &[T])> = input
        .chunks(CHUNK)
        .map(|i| (std::array::from_fn(|k| pieces[k].next().expect("internal: equal lengths checked")), i))
        .collect();
    tasks.into_par_iter().for_each(|(o, i)| {
        crate::simd::wide(
            #[inline(always)]
            || f(o, i),
        )
    });
}
