//! Adagrad (Duchi et al., 2011), as PyTorch's `torch.optim.Adagrad` computes it:
//!
//! ```text
//! g = grad + wd * p
//! clr = lr / (1 + (t - 1) * lr_decay)
//! s = s + g²                         (s starts at initial_accumulator_value)
//! p = p - clr * g / (sqrt(s) + eps)
//! ```
//!
//! State per parameter: `sum` (s).

use std::collections::BTreeMap;

use tensile_core::{GradStore, Tensor};

use super::group::{Groups, ParamGroup, ensure};
use super::{Optimizer, check_range, shared_optimizer_methods};
use crate::error::Result;

/// Adagrad hyperparameters, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdagradConfig {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig { lr: 1e-2, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

impl AdagradConfig {
    /// PyTorch's checks: every hyperparameter `>= 0`.
    pub fn validate(&self) -> Result<()> {
        check_range("Adagrad", "lr", self.lr, 0.0, Some(f64::MAX))?;
        check_range("Adagrad", "lr_decay", self.lr_decay, 0.0, Some(f64::MAX))?;
        check_range("Adagrad", "weight_decay", self.weight_decay, 0.0, Some(f64::MAX))?;
        check_range("Adagrad", "initial_accumulator_value", self.initial_accumulator_value, 0.0, Some(f64::MAX))?;
        check_range("Adagrad", "eps", self.eps, 0.0, Some(f64::MAX))
    }
}

const BUFFERS: &[&str] = &["sum"];

/// Adagrad over named parameters, in one or more groups.
pub struct Adagrad {
    groups: Groups,
    config: AdagradConfig,
}

impl Adagrad {
    const KIND: &'static str = "adagrad";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: AdagradConfig) -> Adagrad {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        Adagrad { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdagradConfig) -> Result<Adagrad> {
        config.validate()?;
        let groups = Groups::new("Adagrad", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(Adagrad { groups, config })
    }

    pub fn config(&self) -> &AdagradConfig {
        &self.config
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        let c = &self.config;
        [("lr_decay", c.lr_decay), ("initial_accumulator_value", c.initial_accumulator_value), ("eps", c.eps)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        let (lr_decay, init, eps) = (c.lr_decay, c.initial_accumulator_value as f32, c.eps as f32);
        self.groups.step("Adagrad", grads, |p| {
            let n = p.w.len();
            let wd = p.weight_decay as f32;
            let clr = (p.lr / (1.0 + (p.step as f64 - 1.0) * lr_decay)) as f32;
            let [sum] = p.buffers else { unreachable!("internal: Adagrad has one buffer") };
            // PyTorch fills the sum when the optimizer is built; creating it on first use gives
            // the same values, since nothing reads it before.
            ensure(sum, n, init);
            for (i, (w, &g)) in p.w.iter_mut().zip(p.g).enumerate() {
                let g = if wd != 0.0 { g + wd * *w } else { g };
                sum[i] += g * g;
                let std = sum[i].sqrt() + eps;
                *w += -clr * g / std;
            }
        })
    }
    shared_optimizer_methods!();
}
