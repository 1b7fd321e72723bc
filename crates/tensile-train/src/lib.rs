//! tensile-train: the training loop, evaluation and per-epoch history.
//!
//! This crate knows nothing of the command line or its config file: the CLI builds a model and a
//! [`TrainConfig`] and calls [`fit_classifier`].

pub mod error;
pub mod trainer;

pub use error::{Error, Result};
pub use trainer::{EpochRecord, Evaluation, OptimizerConfig, TrainConfig, evaluate, fit_classifier};
