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
        // Work started with [`run`] runs on a pool thread: give those threads the main thread's
        // usual stack, for deep recursion in user code and in dropping long graphs.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(wanted).stack_size(8 << 20).build_global();
        rayon::current_num_threads()
    })
}

/// Runs `f` on a thread of the pool: the enclosing one, or the global one when called from
/// outside any pool (the caller waits). A kernel called from outside the pool must wake a pool
/// thread, hand it the work and sleep until it is done, two context switches for every parallel
/// op; from a pool thread it shares the work with the other threads directly. Loops that call
/// many kernels (a training run) go through here: a GRU epoch of W5 ran 1.4x faster
/// (BENCHMARKS.md). The results are the same bits either way.
///
/// `f` records the graph exactly when the calling thread does ([`crate::no_grad`] is
/// per thread): the pool thread that picks `f` up may be in the middle of another caller's
/// evaluation with recording off (a thread waiting in a parallel op runs queued work), and
/// two trainings started from two threads at once would otherwise see each other's setting.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    init();
    let grad = crate::autograd::is_grad_enabled();
    rayon::scope(|_| crate::autograd::with_grad_enabled(grad, f))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_moves_work_onto_a_pool_thread_and_nests() {
        assert!(rayon::current_thread_index().is_none(), "the test harness thread is outside the pool");
        let (on_pool, inner) = run(|| (rayon::current_thread_index().is_some(), run(|| 7)));
        assert!(on_pool);
        assert_eq!(inner, 7);
        // Inside a one-thread pool, nothing waits for a second thread.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one.install(|| run(current)), 1);
    }

    #[test]
    fn run_gives_the_same_bits_as_the_calling_thread() {
        let x: Vec<f32> = (0..100_000).map(|i| (i as f32 * 0.37).sin()).collect();
        let update = |o: [&mut [f32]; 1], i: &[f32]| {
            for (o, &v) in o[0].iter_mut().zip(i) {
                *o = (*o + v).mul_add(1.5, -v * v);
            }
        };
        let (mut here, mut pooled) = (vec![0.25f32; x.len()], vec![0.25f32; x.len()]);
        zip_chunks_mut([&mut here], &x, update);
        run(|| zip_chunks_mut([&mut pooled], &x, update));
        assert_eq!(here, pooled);
    }
}
