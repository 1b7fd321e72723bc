//! Running the `tensile` binary from the end-to-end tests that share these helpers.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `args` in `cwd`, on 2 threads.
pub fn tensile(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(args)
        .current_dir(cwd)
        .env("TENSILE_NUM_THREADS", "2")
        .output()
        .expect("the binary runs")
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "exit {:?}\nstdout:\n{out}\nstderr:\n{err}", o.status.code());
    out.into_owned()
}
