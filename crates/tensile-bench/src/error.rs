//! The error type of the benchmark library: data files that are missing, of the wrong size or
//! holding out-of-range labels, and engine errors passed through.

use std::path::PathBuf;

/// What can go wrong while loading data or running a workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file could not be opened or read.
    #[error(
        "cannot read the {work} data file {path}: {error}. The W1-W5 data is the peers' shared data: \
         create it with `PEERS_DATA={dir} python3 ../shared/peers/gen_data.py` from the repository root \
         (needs numpy; writes about 280 MiB), or run `bash bench/side_by_side.sh`, which writes it when \
         missing; or point `--data DIR` (or PEERS_DATA) at the folder that holds it"
    )]
    Read { work: &'static str, path: PathBuf, dir: PathBuf, error: std::io::Error },
    /// A data file does not hold exactly the number of values the workload defines.
    #[error(
        "{path}: found {found} bytes, expected {expected} ({what}); the file is truncated or from another \
         generator: write it again with ../shared/peers/gen_data.py"
    )]
    Size { path: PathBuf, found: u64, expected: u64, what: String },
    /// A label or token id lies outside its range.
    #[error("{path}: element {index} is {value}, expected an integer in 0..{limit} ({what})")]
    OutOfRange { path: PathBuf, index: usize, value: i64, limit: usize, what: &'static str },
    /// An argument the library was given makes no sense (zero rows, an unknown workload).
    #[error("{0}")]
    Invalid(String),
    /// A thread pool for a fixed thread count could not be built.
    #[error("cannot build a pool of {threads} threads: {message}")]
    ThreadPool { threads: usize, message: String },
    #[error(transparent)]
    Core(#[from] tensile_core::Error),
    #[error(transparent)]
    Nn(#[from] tensile_nn::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
