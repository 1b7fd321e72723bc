//! The thread pool. Kernels run on rayon's global pool, sized once from `TENSILE_NUM_THREADS`
//! (else the number of cores). Code that wants another count runs inside its own pool with
//! `rayon::ThreadPool::install`; kernels read the current pool's size, so results stay the same
//! bits whatever the count (see `cpu`).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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
///
/// The other threads of the pool are kept awake while `f` runs ([`keep_awake`]).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        let _busy = Busy::enter(true);
        keep_awake();
        return f();
    }
    init();
    let grad = crate::autograd::is_grad_enabled();
    rayon::scope(|_| {
        let _busy = Busy::enter(true);
        keep_awake();
        crate::autograd::with_grad_enabled(grad, f)
    })
}

/// How long a thread kept awake by [`keep_awake`] goes on looking for work after its last job.
pub const AWAKE_FOR: Duration = Duration::from_millis(1);
/// How long it looks for work at most before it returns to rayon (the next [`keep_awake`],
/// at the loop's next parallel op, starts it again). A thread waiting inside a parallel op of
/// its own may pick the job up when other work shares the pool (several trainings on one pool
/// at once); this bounds how long its own work then waits underneath.
pub const AWAKE_AT_MOST: Duration = Duration::from_millis(100);

thread_local! {
    /// The threads kept awake for work started on this thread, still looking for work.
    static AWAKE: RefCell<Option<Arc<AtomicUsize>>> = const { RefCell::new(None) };
    /// Whether this thread is inside [`run`] or [`look_for_work`]: such a thread never starts
    /// looking for work, which would hold up what it is in the middle of.
    static BUSY: Cell<u32> = const { Cell::new(0) };
    /// Whether this thread is inside [`run`]: its parallel ops renew [`keep_awake`] ([`current`]).
    static LOOP: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread busy ([`BUSY`]), and running a loop ([`LOOP`]) if asked, while alive.
struct Busy(bool);

impl Busy {
    fn enter(looping: bool) -> Busy {
        BUSY.set(BUSY.get() + 1);
        if looping {
            LOOP.set(LOOP.get() + 1);
        }
        Busy(looping)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.set(BUSY.get() - 1);
        if self.0 {
            LOOP.set(LOOP.get() - 1);
        }
    }
}

/// Keeps the other threads of the current pool looking for work until none has come for
/// [`AWAKE_FOR`]; does nothing outside a pool, in a pool of one thread, or while the threads
/// it kept awake before are still awake.
///
/// A rayon thread with nothing to do yields a few dozen times and then sleeps; the next
/// parallel op must wake it, which in a virtual machine costs tens of microseconds, and a
/// training step has dozens of parallel ops with short serial stretches between them. A kept
/// awake thread instead runs a job that takes queued work as soon as it appears (yielding the
/// core to other processes now and then) and returns to rayon's sleep after a millisecond
/// without work (or after [`AWAKE_AT_MOST`] in all), so an idle pool costs nothing. [`run`],
/// [`Tensor::backward`] and, inside [`run`], every kernel that may go parallel call this, so
/// a training loop keeps renewing it. Which thread runs a piece of work never changes its
/// result (see `cpu`), so the bits do not move either.
///
/// [`Tensor::backward`]: crate::Tensor::backward
pub fn keep_awake() {
    let Some(me) = rayon::current_thread_index() else { return };
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return;
    }
    AWAKE.with_borrow_mut(|awake| {
        if awake.as_ref().is_some_and(|count| count.load(Ordering::Acquire) > 0) {
            return;
        }
        let count = Arc::new(AtomicUsize::new(threads - 1));
        *awake = Some(Arc::clone(&count));
        rayon::spawn_broadcast(move |ctx| {
            if ctx.index() != me {
                if BUSY.get() == 0 {
                    let _busy = Busy::enter(false);
                    look_for_work();
                }
                count.fetch_sub(1, Ordering::Release);
            }
        });
    });
}

/// Runs queued work of the current pool until none has come for [`AWAKE_FOR`], or for at most
/// [`AWAKE_AT_MOST`] in all.
fn look_for_work() {
    let start = Instant::now();
    let mut last = start;
    let mut idle = 0u32;
    loop {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            last = Instant::now();
            idle = 0;
            if last - start >= AWAKE_AT_MOST {
                return;
            }
            continue;
        }
        idle += 1;
        if idle.is_multiple_of(64) {
            if last.elapsed() >= AWAKE_FOR || start.elapsed() >= AWAKE_AT_MOST {
                return;
            }
            // Lets another runnable thread on this core (a data reader, another process) in.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// How many threads [`keep_awake`] keeps awake for work started on this thread right now.
#[cfg(test)]
fn awake() -> usize {
    AWAKE.with_borrow(|awake| awake.as_ref().map_or(0, |count| count.load(Ordering::Acquire)))
}

/// Threads available to kernels called from here (the enclosing pool's size). Kernels ask
/// this before they go parallel, so from inside [`run`] it also renews [`keep_awake`].
pub fn current() -> usize {
    if rayon::current_thread_index().is_none() && INIT.get().is_none() {
        init();
    }
    if LOOP.get() > 0 {
        keep_awake();
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
    fn kept_awake_threads_go_back_to_sleep_when_work_stops() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            for _ in 0..3 {
                keep_awake();
                assert_eq!(awake(), 2);
                // While they are awake, a second call starts nothing more.
                keep_awake();
                assert!(awake() <= 2);
                let start = Instant::now();
                while awake() > 0 {
                    assert!(start.elapsed() < Duration::from_secs(10), "the threads never stopped looking for work");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        // Outside a pool, and in a pool of one thread, nothing is kept awake.
        keep_awake();
        assert_eq!(awake(), 0);
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
            keep_awake();
            assert_eq!(awake(), 0);
        });
    }

    #[test]
    fn kept_awake_threads_return_to_rayon_while_work_goes_on() {
        // A chain of jobs, each queueing the next before it ends, so that a thread looking for
        // work always finds some: it still returns after `AWAKE_AT_MOST`, which lets go of a
        // thread that picked the job up inside a wait of its own.
        fn chain(stop: Arc<std::sync::atomic::AtomicBool>) {
            if !stop.load(Ordering::Relaxed) {
                rayon::spawn(move || chain(stop));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        pool.install(|| {
            keep_awake();
            let start = Instant::now();
            chain(Arc::clone(&stop));
            while awake() > 0 {
                assert!(start.elapsed() < Duration::from_secs(10), "a kept-awake thread never returned");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(start.elapsed() >= AWAKE_AT_MOST / 2, "it returned while work was still coming");
        });
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn loops_run_at_once_on_one_pool_all_finish_with_the_same_bits() {
        let x: Vec<f32> = (0..200_000).map(|i| (i as f32 * 0.11).cos()).collect();
        let update = |o: [&mut [f32]; 1], i: &[f32]| {
            for (o, &v) in o[0].iter_mut().zip(i) {
                *o = o.mul_add(0.5, v);
            }
        };
        let train = |x: &[f32]| {
            let mut w = vec![1.0f32; x.len()];
            for _ in 0..50 {
                keep_awake();
                zip_chunks_mut([&mut w], x, update);
            }
            w
        };
        let alone = train(&x);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for _ in 0..3 {
                let done = done.clone();
                let (pool, x, alone) = (&pool, &x, &alone);
                s.spawn(move || {
                    let w = pool.install(|| run(|| train(x)));
                    done.send(w == *alone).unwrap();
                });
            }
            for _ in 0..3 {
                let same = finished.recv_timeout(Duration::from_secs(60)).expect("a training loop never finished");
                assert!(same, "a loop sharing the pool gave other bits");
            }
        });
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
