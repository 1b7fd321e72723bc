//! tensile-train: the training loop run the way careful people run it — validation data every
//! epoch, early stopping, the best weights restored, exact resume from checkpoints, recovery from
//! divergence, and a history with curves and a plain-words diagnosis.
//!
//! Module map, in the order a run uses them: `config` (what to do), `task` (classification or
//! regression), `trainer` (the loop), `source` (batches from a table in memory or a streamed
//! file), `callback` (hooks; early stopping, schedules and checkpoint
//! timing are callbacks), `early_stopping`, `divergence`, `checkpoint` (atomic, checksummed
//! files), `metrics`, `history`, `plot` (curves), `diagnosis`, `progress`, `provenance` (what
//! reproducing a run needs), `tensorboard` (event files), `report` (`report.html`), and
//! `lr_finder` (the learning-rate range test).
//!
//! This crate knows nothing of the command line or its config file.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tensile_nn::ModelSpec;
//! use tensile_train::{EarlyStoppingConfig, Trainer, TrainerConfig, TrainingData};
//!
//! let data = tensile_data::digits();
//! let spec: ModelSpec = serde_json::from_str(r#"{"layers": [
//!     {"type": "reshape", "shape": [1, 8, 8]},
//!     {"type": "conv2d", "channels": 8, "kernel": 3, "padding": 1},
//!     {"type": "relu"},
//!     {"type": "maxpool2d", "kernel": 2},
//!     {"type": "flatten"},
//!     {"type": "linear", "units": 10}
//! ]}"#)?;
//! let config = TrainerConfig { epochs: 3, early_stopping: Some(EarlyStoppingConfig::default()), ..Default::default() };
//! let (mut model, _) = spec.build(&[64], &mut config.init_rng())?;
//! let dir = std::env::temp_dir().join(format!("tensile-doc-{}", std::process::id()));
//! let result = Trainer::new(config)?
//!     .run_dir(&dir) // checkpoints, history.csv, curves.png/.svg, provenance.json
//!     .fit(&mut model, &TrainingData { train: &data, validation: None, test: None })?;
//! assert!(result.history.epochs[2].values["val_accuracy"] > 0.8);
//! assert!(dir.join("curves.svg").exists());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

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
pub mod report;
mod source;
mod state;
pub mod task;
pub mod tensorboard;
pub mod trainer;

pub use callback::{Callback, Context};
pub use config::{CheckpointConfig, DivergenceConfig, DivergencePolicy, OptimizerConfig, Scaling, TrainerConfig};
pub use diagnosis::{Finding, FindingKind, diagnose};
pub use early_stopping::{Combine, EarlyStoppingConfig, StopCondition};
pub use error::{Error, Result};
pub use history::{EpochRecord, Event, EventKind, History, Mode, StepRecord};
pub use lr_finder::{LrFinderConfig, LrFinderResult, lr_find};
pub use metrics::{ConfusionMatrix, Metric, Outputs, default_metrics};
pub use plot::{write_curves, write_lr_finder_plot};
pub use progress::{Progress, ProgressMode};
pub use provenance::{Machine, Provenance};
pub use source::streamed_validation;
pub use tensorboard::TensorBoardLogger;
pub use trainer::{Evaluation, StopReason, StreamingData, TrainResult, Trainer, TrainingData, evaluate};
