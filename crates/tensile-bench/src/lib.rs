//! tensile-bench: the W1-W5 training benchmarks, run by tensile on the very data files the peer
//! frameworks read (`../shared/peers`), in the same loop shape, reported in the same result
//! schema, so one table can hold both.
//!
//! - [`data`]: the workloads, their files and shapes, and the batches;
//! - [`models`]: the models, from tensile-nn layers;
//! - [`train`]: the timed loop and protocol (warm-up epoch, then timed epochs), and the
//!   1-vs-2-thread and linear-scaling checks;
//! - [`gemm`]: W4, square matrix products;
//! - [`peak`]: the machine's f32 multiply-add limit, which the workloads' GFLOP/s are set against;
//! - [`report`]: `RESULT {json}` lines and readable tables.
//!
//! The binary `tensile-bench` is the command-line front end; `bench/side_by_side.sh` at the
//! repository root runs it next to the peers. Nothing here is timed in tests: the tests run each
//! workload for a few steps on generated data so the runner keeps working.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tensile_bench::{Bench, Data, Work};
//! // Two batches of W3-shaped random rows; one step, then a whole (two-step) epoch.
//! let data = Data::synthetic(Work::W3, 64, 7)?;
//! let mut bench = Bench::new(data, 0)?;
//! assert!(bench.step(0)?.item()?.is_finite());
//! assert_eq!(bench.epoch(true)?.len(), 2);
//! # Ok(()) }
//! ```

pub mod data;
pub mod error;
pub mod gemm;
pub mod models;
pub mod peak;
pub mod report;
pub mod train;

pub use data::{Data, Work, default_dir};
pub use error::{Error, Result};
pub use train::{Bench, EpochStats, run_protocol};
