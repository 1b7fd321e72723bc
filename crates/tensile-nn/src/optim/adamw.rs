//! AdamW (Loshchilov & Hutter, 2019), as PyTorch's `torch.optim.AdamW`: Adam whose weight
//! decay shrinks the parameter, `p = p * (1 - lr * wd)`, before the Adam step instead of being
//! added to the gradient, so it is not rescaled by the second moment. The update itself lives in
//! [`super::adam`]; this file owns the config and its PyTorch defaults (`weight_decay = 0.01`).

use std::collections::BTreeMap;

use tensile_core::{GradStore, Tensor};

use super::adam::{AdamRule, BUFFERS, validate_adam};
use super::group::{Groups, ParamGroup};
use super::{Optimizer, shared_optimizer_methods};
use crate::error::Result;

/// AdamW hyperparameters, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay: each step multiplies the parameter by `1 - lr * weight_decay`.
    pub weight_decay: f64,
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }
}

impl AdamWConfig {
    /// PyTorch's checks: `lr, eps, weight_decay >= 0`, betas in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        validate_adam("AdamW", self.lr, self.beta1, self.beta2, self.eps, self.weight_decay)
    }
}

/// AdamW over named parameters, in one or more groups.
pub struct AdamW {
    groups: Groups,
    config: AdamWConfig,
}

impl AdamW {
    const KIND: &'static str = "adamw";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamWConfig) -> AdamW {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        AdamW { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given (see
    /// [`super::decay_split`] for the usual no-decay group).
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<AdamW> {
        config.validate()?;
        let groups = Groups::new("AdamW", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(AdamW { groups, config })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    fn rule(&self) -> AdamRule {
        let c = &self.config;
        AdamRule { beta1: c.beta1, beta2: c.beta2, eps: c.eps, amsgrad: c.amsgrad, decoupled: true, corrections: None }
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        self.rule().hyperparameters()
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let mut rule = self.rule();
        self.groups.step("AdamW", grads, |p| rule.update(p))
    }
    shared_optimizer_methods!();
}
