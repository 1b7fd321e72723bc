//! RMSprop (Hinton's lecture 6e), as PyTorch's `torch.optim.RMSprop` computes it:
//!
//! ```text
//! g = grad + wd * p
//! s = alpha * s + (1 - alpha) * g²
//! a = lerp(a, g, 1 - alpha);  d = sqrt(s - a²) + eps      (centered)
//! d = sqrt(s) + eps                                       (otherwise)
//! b = momentum * b + g / d;  p = p - lr * b               (momentum > 0)
//! p = p - lr * g / d                                      (otherwise)
//! ```
//!
//! State per parameter: `square_avg` (s), `momentum_buffer` (b, with momentum), `grad_avg`
//! (a, centered only).

use std::collections::BTreeMap;

use tensile_core::{GradStore, Tensor};

use super::group::{Groups, ParamGroup, ensure};
use super::{Optimizer, check_range, lerp, shared_optimizer_methods};
use crate::error::Result;

/// RMSprop hyperparameters, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropConfig {
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average.
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    /// Normalize by an estimate of the gradient's variance instead of its second moment.
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig { lr: 1e-2, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
}

impl RmsPropConfig {
    /// PyTorch's checks: every hyperparameter `>= 0`.
    pub fn validate(&self) -> Result<()> {
        check_range("RMSprop", "lr", self.lr, 0.0, Some(f64::MAX))?;
        check_range("RMSprop", "alpha", self.alpha, 0.0, Some(f64::MAX))?;
        check_range("RMSprop", "eps", self.eps, 0.0, Some(f64::MAX))?;
        check_range("RMSprop", "weight_decay", self.weight_decay, 0.0, Some(f64::MAX))?;
        check_range("RMSprop", "momentum", self.momentum, 0.0, Some(f64::MAX))
    }
}

const BUFFERS: &[&str] = &["square_avg", "momentum_buffer", "grad_avg"];

/// RMSprop over named parameters, in one or more groups.
pub struct RmsProp {
    groups: Groups,
    config: RmsPropConfig,
}

impl RmsProp {
    const KIND: &'static str = "rmsprop";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: RmsPropConfig) -> RmsProp {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        RmsProp { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given.
    pub fn with_groups(groups: Vec<ParamGroup>, config: RmsPropConfig) -> Result<RmsProp> {
        config.validate()?;
        let groups = Groups::new("RMSprop", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(RmsProp { groups, config })
    }

    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        let c = &self.config;
        [("alpha", c.alpha), ("eps", c.eps), ("momentum", c.momentum), ("centered", f64::from(u8::from(c.centered)))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let c = &self.config;
        let (alpha, w_new, eps, mu) = (c.alpha as f32, (1.0 - c.alpha) as f32, c.eps as f32, c.momentum as f32);
        let (centered, use_momentum) = (c.centered, c.momentum > 0.0);
        self.groups.step("RMSprop", grads, |p| {
            let n = p.w.len();
            let (lr, wd) = (p.lr as f32, p.weight_decay as f32);
            let [sq, buf, ga] = p.buffers else { unreachable!("internal: RMSprop has three buffers") };
            ensure(sq, n, 0.0);
            if use_momentum {
                ensure(buf, n, 0.0);
            }
            if centered {
                ensure(ga, n, 0.0);
            }
            for (i, (w, &g)) in p.w.iter_mut().zip(p.g).enumerate() {
                let g = if wd != 0.0 { g + wd * *w } else { g };
                sq[i] = sq[i] * alpha + w_new * g * g;
                let avg = if centered {
                    ga[i] = lerp(ga[i], g, w_new);
                    (sq[i] - ga[i] * ga[i]).sqrt()
                } else {
                    sq[i].sqrt()
                } + eps;
                if use_momentum {
                    buf[i] = buf[i] * mu + g / avg;
                    *w += -lr * buf[i];
                } else {
                    *w += -lr * g / avg;
                }
            }
        })
    }
    shared_optimizer_methods!();
}
