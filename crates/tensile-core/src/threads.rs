//! The thread pool. Kernels run on rayon's global pool, sized once from `TENSILE_NUM_THREADS`
//! (else the number of cores). Code that wants another count runs inside its own pool with
//! `rayon::ThreadPool::install`; kernels read the current pool's size, so results stay the same
//! bits whatever the count (see `cpu`).

use std::sync::OnceLock;

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
