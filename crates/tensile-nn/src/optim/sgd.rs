//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
//! following PyTorch's `torch.optim.SGD` algorithm exactly:
//!
//! ```text
//! g = grad + wd * p
//! b = g                         (first step)      b = mu * b + (1 - dampening) * g   (later)
//! g = g + mu * b  (nesterov)    g = b              (otherwise, when mu != 0)
//! p = p - lr * g
//! ```
//!
//! State per parameter: `momentum_buffer` (only with momentum).

use std::collections::BTreeMap;

use tensile_core::{GradStore, Tensor};

use super::group::{Groups, ParamGroup};
use super::{Optimizer, check_range, shared_optimizer_methods};
use crate::error::{Result, invalid};

/// SGD hyperparameters (PyTorch's defaults apart from `lr`, which has none there).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.01, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

impl SgdConfig {
    /// PyTorch's checks: non-negative rates, and Nesterov only with momentum and no dampening.
    pub fn validate(&self) -> Result<()> {
        check_range("SGD", "lr", self.lr, 0.0, Some(f64::MAX))?;
        check_range("SGD", "momentum", self.momentum, 0.0, Some(f64::MAX))?;
        check_range("SGD", "dampening", self.dampening, f64::MIN, Some(f64::MAX))?;
        check_range("SGD", "weight_decay", self.weight_decay, 0.0, Some(f64::MAX))?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return invalid("SGD", "nesterov requires momentum > 0 and dampening = 0");
        }
        Ok(())
    }
}

const BUFFERS: &[&str] = &["momentum_buffer"];

/// SGD over named parameters, in one or more groups.
pub struct Sgd {
    groups: Groups,
    config: SgdConfig,
}

impl Sgd {
    const KIND: &'static str = "sgd";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: SgdConfig) -> Sgd {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        Sgd { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given.
    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Result<Sgd> {
        config.validate()?;
        let groups = Groups::new("SGD", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(Sgd { groups, config })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        let c = &self.config;
        [("momentum", c.momentum), ("dampening", c.dampening), ("nesterov", f64::from(u8::from(c.nesterov)))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        // Coefficients in f64 and then f32, as PyTorch passes Python floats to f32 kernels.
        let (mu, damp1, nesterov) = (c.momentum as f32, (1.0 - c.dampening) as f32, c.nesterov);
        self.groups.step("SGD", grads, |p| {
            let (lr, wd) = (p.lr as f32, p.weight_decay as f32);
            let [buf] = p.buffers else { unreachable!("internal: SGD has one buffer") };
            // One pass per parameter, each element's arithmetic in PyTorch's order.
            let first = buf.is_empty();
            let momentum = mu != 0.0;
            if momentum && first {
                buf.resize(p.w.len(), 0.0);
            }
            let one = |w: &mut f32, g: f32, b: &mut f32| {
                let g = if wd != 0.0 { g + wd * *w } else { g };
                let g = if momentum {
                    *b = if first { g } else { *b * mu + damp1 * g };
                    if nesterov { g + mu * *b } else { *b }
                } else {
                    g
                };
                *w += -lr * g;
            };
            if momentum {
                p.w.iter_mut().zip(p.g).zip(buf.iter_mut()).for_each(|((w, &g), b)| one(w, g, b));
            } else {
                p.w.iter_mut().zip(p.g).for_each(|(w, &g)| one(w, g, &mut 0.0));
            }
        })
    }
    shared_optimizer_methods!();
}
