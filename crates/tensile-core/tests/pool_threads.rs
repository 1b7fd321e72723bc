//! `threads::run` hands work to the global pool; this file is its own process, so the test may
//! change the pool threads' per-thread state without touching other tests.

use tensile_core::{is_grad_enabled, no_grad, threads};

/// A pool thread may pick up `run`'s work while it is itself in a section with graph recording
/// off (another caller's evaluation, waiting in a parallel op). The work must record the graph
/// exactly when its caller does, whatever the pool thread's own setting.
#[test]
fn run_records_the_graph_as_its_caller_does_whatever_the_pool_thread_does() {
    threads::init();
    // Every pool thread left with recording off, as in the middle of an evaluation.
    rayon::broadcast(|_| std::mem::forget(no_grad()));
    assert!(rayon::broadcast(|_| !is_grad_enabled()).into_iter().all(|off| off));
    assert!(threads::run(is_grad_enabled), "the caller records, so the work must");
    {
        let _guard = no_grad();
        assert!(!threads::run(is_grad_enabled), "the caller does not record, so the work must not");
    }
    // The pool threads' own setting is theirs again afterwards.
    assert!(rayon::broadcast(|_| !is_grad_enabled()).into_iter().all(|off| off));
}
