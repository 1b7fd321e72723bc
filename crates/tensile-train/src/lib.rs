//! tensile-train: the training loop run the way careful people run it — validation data every
//! epoch, early stopping, the best weights restored, exact resume from checkpoints, recovery from
//! divergence, and a history with curves and a plain-words diagnosis.
//!
//! Module map, in the order a run uses them: `config` (what to do), `task` (classification or
//! regression), `trainer` (the loop), `callback` (hooks; early stopping, schedules and checkpoint
//! timing are callbacks), `early_stopping`, `divergence`, `checkpoint` (atomic, checksummed
//! files), `metrics`, `history`, `plot` (curves), `diagnosis`, `progress`, `provenance` (what
//! reproducing a run needs), and `lr_finder` (the learning-rate range test).
//!
//! This crate knows nothing of the command line or its config file.

pub mod callback;
pub mod checkpoint;
pub mod config;
pub mod diagnosis;
pub mod divergence;
pub mod early_stopping;
pub mod error;
pub mod history;
pub mod lr_finder;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod provenance;
pub mod task;
pub mod trainer;

pub use callback::{Callback, Context};
pub use config::{CheckpointConfig, DivergenceConfig, DivergencePolicy, OptimizerConfig, TrainerConfig};
pub use diagnosis::{Finding, FindingKind, diagnose};
pub use early_stopping::{Combine, EarlyStoppingConfig, StopCondition};
pub use error::{Error, Result};
pub use history::{EpochRecord, Event, EventKind, History, Mode, StepRecord};
pub use lr_finder::{LrFinderConfig, LrFinderResult, lr_find};
pub use metrics::{ConfusionMatrix, Metric, Outputs, default_metrics};
pub use plot::{write_curves, write_lr_finder_plot};
pub use progress::{Progress, ProgressMode};
pub use provenance::{Machine, Provenance};
pub use trainer::{Evaluation, StopReason, TrainResult, Trainer, TrainingData, evaluate};
