//! Standard output for every command, with a closed pipe treated as a quiet end.
//!
//! Rust ignores SIGPIPE, so once the reader of a pipe has gone (`tensile predict … | head -1`)
//! every write to standard output fails with `BrokenPipe`, and `println!` panics on it ("failed
//! printing to stdout"). Commands therefore print through [`Stdout`] (or the [`outln!`] macro):
//! a write that finds the pipe closed records it and returns the error, the command unwinds
//! with `?`, and `main` exits with status 0 and no message when [`closed_pipe`] says that was
//! the cause. Nothing more can be told to a reader that has gone, and a reader that stopped
//! early (`head`) got what it asked for.
//!
//! Restoring the default SIGPIPE action at start-up (one `libc::signal` call) was the
//! alternative: shorter, but the process is then killed in the middle of whatever it was
//! doing, with status 141 instead of 0, files half-written in place of the clean exit here, and
//! it needs `unsafe` and a Unix-only dependency. Training output ([`tensile_train::Progress`],
//! `train --json`) is best effort for the same reason the trainer's is: a closed pipe must not
//! kill a run whose checkpoints and model are still being written; the run finishes and the
//! command then ends quietly at its next print.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output, noting when the reader has closed the pipe.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        guard(io::stdout().lock().write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        guard(io::stdout().lock().write_all(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        guard(io::stdout().lock().flush())
    }
}

fn guard<T>(r: io::Result<T>) -> io::Result<T> {
    if CLOSED.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    if let Err(e) = &r
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        CLOSED.store(true, Ordering::Relaxed);
    }
    r
}

/// Writes one line (the text and a newline) to standard output and flushes it, so a line is
/// either whole or not written.
pub fn line(args: std::fmt::Arguments) -> io::Result<()> {
    let mut out = Stdout;
    out.write_all(format!("{args}\n").as_bytes())?;
    out.flush()
}

/// Whether `error` arose because standard output was closed by its reader: the pipe was found
/// closed, and the error (or one of its causes) is a broken pipe.
pub fn closed_pipe(error: &anyhow::Error) -> bool {
    CLOSED.load(Ordering::Relaxed)
        && error.chain().any(|cause| {
            let io = cause.downcast_ref::<io::Error>().or_else(|| match cause.downcast_ref::<csv::Error>()?.kind() {
                csv::ErrorKind::Io(e) => Some(e),
                _ => None,
            });
            io.is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
        })
}

/// `println!` for commands: a line on standard output, `?`-propagating a closed pipe.
macro_rules! outln {
    () => {
        $crate::stdout::line(format_args!(""))?
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;
