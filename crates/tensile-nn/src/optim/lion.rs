//! Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), in the formulation
//! of lucidrains' `lion-pytorch` (torch has no Lion):
//!
//! ```text
//! p = p * (1 - lr * wd)                       (decoupled weight decay)
//! p = p - lr * sign(b1 * m + (1 - b1) * g)
//! m = b2 * m + (1 - b2) * g
//! ```
//!
//! Every coordinate moves by exactly `lr` (or not at all where the interpolation is 0), so Lion
//! wants a learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger. State per
//! parameter: `exp_avg` (m).

use std::collections::BTreeMap;

use tensile_core::{GradStore, Tensor};

use super::group::{Groups, ParamGroup, ensure};
use super::{Optimizer, check_range, shared_optimizer_methods};
use crate::error::Result;

/// Lion hyperparameters, the paper's (and lion-pytorch's) defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LionConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig { lr: 1e-4, beta1: 0.9, beta2: 0.99, weight_decay: 0.0 }
    }
}

impl LionConfig {
    /// lion-pytorch's checks: `lr >= 0`, betas in `[0, 1]`, `weight_decay >= 0`.
    pub fn validate(&self) -> Result<()> {
        check_range("Lion", "lr", self.lr, 0.0, Some(f64::MAX))?;
        check_range("Lion", "beta1", self.beta1, 0.0, Some(1.0))?;
        check_range("Lion", "beta2", self.beta2, 0.0, Some(1.0))?;
        check_range("Lion", "weight_decay", self.weight_decay, 0.0, Some(f64::MAX))
    }
}

const BUFFERS: &[&str] = &["exp_avg"];

/// Lion over named parameters, in one or more groups.
pub struct Lion {
    groups: Groups,
    config: LionConfig,
}

impl Lion {
    const KIND: &'static str = "lion";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: LionConfig) -> Lion {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        Lion { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given.
    pub fn with_groups(groups: Vec<ParamGroup>, config: LionConfig) -> Result<Lion> {
        config.validate()?;
        let groups = Groups::new("Lion", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(Lion { groups, config })
    }

    pub fn config(&self) -> &LionConfig {
        &self.config
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        let c = &self.config;
        [("beta1", c.beta1), ("beta2", c.beta2)].into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// `torch.sign`: 0 at 0 (Rust's `signum` gives ±1 there) and NaN for NaN.
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

impl Optimizer for Lion {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        let (b1, w1, b2, w2) = (c.beta1 as f32, (1.0 - c.beta1) as f32, c.beta2 as f32, (1.0 - c.beta2) as f32);
        self.groups.step("Lion", grads, |p| {
            let n = p.w.len();
            let lr = p.lr as f32;
            let shrink = (1.0 - p.lr * p.weight_decay) as f32;
            let [m] = p.buffers else { unreachable!("internal: Lion has one buffer") };
            ensure(m, n, 0.0);
            for (i, (w, &g)) in p.w.iter_mut().zip(p.g).enumerate() {
                *w *= shrink;
                let update = sign(m[i] * b1 + w1 * g);
                *w += -lr * update;
                m[i] = m[i] * b2 + w2 * g;
            }
        })
    }
    shared_optimizer_methods!();
}
