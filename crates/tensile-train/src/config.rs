//! The trainer's configuration: plain data with defaults, serializable, so every run can save the
//! exact, fully resolved settings it used next to its results.

use serde::{Deserialize, Serialize};
use tensile_nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, GradClip, Lion, LionConfig, Optimizer, ParamGroup,
    RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use tensile_nn::schedule::ScheduleConfig;

use crate::early_stopping::EarlyStoppingConfig;
use crate::error::{Error, Result};

/// Which optimizer to train with, and its hyperparameters (`{ type = "adam", lr = 1e-3 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    Adam(AdamConfig),
    AdamW(AdamWConfig),
    RmsProp(RmsPropConfig),
    Adagrad(AdagradConfig),
    Lion(LionConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// The configured learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::RmsProp(c) => c.lr,
            OptimizerConfig::Adagrad(c) => c.lr,
            OptimizerConfig::Lion(c) => c.lr,
        }
    }

    /// The configured weight decay.
    pub fn weight_decay(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.weight_decay,
            OptimizerConfig::Adam(c) => c.weight_decay,
            OptimizerConfig::AdamW(c) => c.weight_decay,
            OptimizerConfig::RmsProp(c) => c.weight_decay,
            OptimizerConfig::Adagrad(c) => c.weight_decay,
            OptimizerConfig::Lion(c) => c.weight_decay,
        }
    }

    /// Builds the optimizer over the given parameter groups.
    pub fn build(&self, groups: Vec<ParamGroup>) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            OptimizerConfig::Sgd(c) => Box::new(Sgd::with_groups(groups, c.clone())?),
            OptimizerConfig::Adam(c) => Box::new(Adam::with_groups(groups, c.clone())?),
            OptimizerConfig::AdamW(c) => Box::new(AdamW::with_groups(groups, c.clone())?),
            OptimizerConfig::RmsProp(c) => Box::new(RmsProp::with_groups(groups, c.clone())?),
            OptimizerConfig::Adagrad(c) => Box::new(Adagrad::with_groups(groups, c.clone())?),
            OptimizerConfig::Lion(c) => Box::new(Lion::with_groups(groups, c.clone())?),
        })
    }
}

/// When checkpoints are written and how many are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Write one after every N epochs (and always at the end). `0` turns epoch checkpoints off.
    pub every_epochs: usize,
    /// Also write one every N optimizer steps (mid-epoch), when set.
    pub every_steps: Option<u64>,
    /// How many of the newest checkpoints to keep.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig { every_epochs: 1, every_steps: None, keep: 3 }
    }
}

/// What to do when a loss or a gradient is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DivergencePolicy {
    /// Skip the step; after `max_bad_steps` bad steps within `window` steps, roll back to the
    /// last good state and lower the learning rate; stop after `max_rollbacks` rollbacks.
    #[default]
    Rollback,
    /// Stop at the first bad step.
    Stop,
    /// Record the event and apply the step anyway.
    Ignore,
}

/// Divergence handling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DivergenceConfig {
    pub policy: DivergencePolicy,
    pub max_bad_steps: usize,
    pub window: u64,
    pub max_rollbacks: usize,
    /// The learning rate is multiplied by this at each rollback.
    pub lr_factor: f64,
}

impl Default for DivergenceConfig {
    fn default() -> Self {
        DivergenceConfig {
            policy: DivergencePolicy::Rollback,
            max_bad_steps: 3,
            window: 50,
            max_rollbacks: 3,
            lr_factor: 0.5,
        }
    }
}

/// Feature scaling, fitted on the training rows only (`scaling = "standard"` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// `(x - mean) / std` per feature ([`tensile_data::Standardizer`]).
    #[default]
    Standard,
    /// The training range of each feature onto `[0, 1]` ([`tensile_data::MinMaxScaler`]).
    #[serde(alias = "min_max", alias = "min-max")]
    MinMax,
    /// Features as read.
    None,
}

impl Scaling {
    /// Fits the chosen scaler on `rows` of `ds`; `None` for [`Scaling::None`].
    pub fn fit(self, ds: &tensile_data::Dataset, rows: &[usize]) -> Result<Option<tensile_data::FeatureScaler>> {
        use tensile_data::{FeatureScaler, MinMaxScaler, Standardizer};
        Ok(match self {
            Scaling::Standard => Some(FeatureScaler::Standard(Standardizer::fit(ds, rows)?)),
            Scaling::MinMax => Some(FeatureScaler::MinMax(MinMaxScaler::fit(ds, rows)?)),
            Scaling::None => None,
        })
    }
}

/// Everything about how a model is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    pub epochs: usize,
    /// Stop after this many optimizer steps, even mid-epoch.
    pub max_steps: Option<u64>,
    pub batch_size: usize,
    /// Sum gradients over this many batches before each optimizer step.
    pub accumulate_batches: usize,
    pub optimizer: OptimizerConfig,
    /// No weight decay on biases and other 1-D parameters (norm weights), as is usual.
    pub no_decay_on_bias_and_norm: bool,
    pub schedule: Option<ScheduleConfig>,
    pub clip: Option<GradClip>,
    /// Fraction of the training rows held out when no validation set is given.
    pub validation_split: f64,
    /// Keep class proportions in the held-out split (classification only).
    pub stratify: bool,
    /// Evaluate every N optimizer steps instead of after every epoch.
    pub eval_every_steps: Option<u64>,
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// The value that decides which weights are best (`val_loss`, `val_accuracy`, …).
    pub monitor: String,
    /// Put the best weights back at the end (on by default).
    pub restore_best: bool,
    pub checkpoint: CheckpointConfig,
    pub divergence: DivergenceConfig,
    /// How features are scaled, with statistics of the training rows only.
    pub scaling: Scaling,
    /// Regression only: train on the target standardized with the training rows' mean and
    /// std (see [`tensile_data::TargetScaler`]); losses and metrics are still reported in the
    /// target's own units. No effect on classification.
    pub standardize_target: bool,
    pub seed: u64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            epochs: 20,
            max_steps: None,
            batch_size: 32,
            accumulate_batches: 1,
            optimizer: OptimizerConfig::default(),
            no_decay_on_bias_and_norm: true,
            schedule: None,
            clip: None,
            validation_split: 0.2,
            stratify: true,
            eval_every_steps: None,
            early_stopping: None,
            monitor: "val_loss".into(),
            restore_best: true,
            checkpoint: CheckpointConfig::default(),
            divergence: DivergenceConfig::default(),
            scaling: Scaling::Standard,
            standardize_target: true,
            seed: 42,
        }
    }
}

fn bad(key: &'static str, msg: impl Into<String>) -> Error {
    Error::Config { key, msg: msg.into() }
}

impl TrainerConfig {
    /// The stream model initialization should draw from, derived from the seed.
    pub fn init_rng(&self) -> tensile_core::Rng {
        tensile_core::Rng::seed(self.seed).fork(1)
    }

    /// Refuses settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 && self.max_steps.is_none() {
            return Err(bad("epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        if self.accumulate_batches == 0 {
            return Err(bad("accumulate_batches", "must be at least 1"));
        }
        if !(self.validation_split > 0.0 && self.validation_split < 1.0) {
            return Err(bad("validation_split", format!("must be between 0 and 1, found {}", self.validation_split)));
        }
        if self.eval_every_steps == Some(0) {
            return Err(bad("eval_every_steps", "must be at least 1"));
        }
        if self.checkpoint.every_steps == Some(0) {
            return Err(bad("checkpoint.every_steps", "must be at least 1"));
        }
        if !(self.divergence.lr_factor > 0.0 && self.divergence.lr_factor < 1.0) {
            return Err(bad(
                "divergence.lr_factor",
                format!("must be between 0 and 1, found {}", self.divergence.lr_factor),
            ));
        }
        if self.divergence.max_bad_steps == 0 {
            return Err(bad("divergence.max_bad_steps", "must be at least 1"));
        }
        if let Some(s) = &self.schedule {
            s.validate().map_err(|e| bad("schedule", e.to_string()))?;
        }
        if let Some(es) = &self.early_stopping
            && es.conditions.is_empty()
        {
            return Err(bad("early_stopping.conditions", "needs at least one condition"));
        }
        Ok(())
    }
}
