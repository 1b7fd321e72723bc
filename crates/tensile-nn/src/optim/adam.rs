//! Adam (Kingma & Ba, 2015), computed as PyTorch's `torch.optim.Adam` (non-fused) does, so the
//! two agree to rounding:
//!
//! ```text
//! g = grad + wd * p                                   (L2 weight decay)
//! m = b1 * m + (1 - b1) * g
//! v = b2 * v + (1 - b2) * g²
//! p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```

use tensile_core::{GradStore, Tensor};

use super::{Optimizer, grad_of};
use crate::error::Result;

/// Adam hyperparameters, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

struct State {
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
}

/// Adam over a fixed list of named parameters.
pub struct Adam {
    params: Vec<(String, Tensor)>,
    config: AdamConfig,
    state: Vec<Option<State>>,
}

impl Adam {
    pub fn new(params: Vec<(String, Tensor)>, config: AdamConfig) -> Adam {
        let state = params.iter().map(|_| None).collect();
        Adam { params, config, state }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = &self.config;
        for ((name, p), st) in self.params.iter().zip(&mut self.state) {
            let Some(g) = grad_of(name, p, grads)? else { continue };
            let s = st.get_or_insert_with(|| State { m: vec![0.0; g.len()], v: vec![0.0; g.len()], step: 0 });
            s.step += 1;
            // Bias corrections in f64, then the per-element update in f32 as PyTorch does.
            let bc1 = 1.0 - c.beta1.powi(s.step as i32);
            let bc2 = 1.0 - c.beta2.powi(s.step as i32);
            let step_size = (c.lr / bc1) as f32;
            let bc2_sqrt = bc2.sqrt() as f32;
            let (b1, b2, eps, wd) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32, c.weight_decay as f32);
            p.update_::<f32, _>(|w| {
                for (((w, &g), m), v) in w.iter_mut().zip(&g).zip(&mut s.m).zip(&mut s.v) {
                    let g = if wd != 0.0 { g + wd * *w } else { g };
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *w -= step_size * *m / denom;
                }
            })?;
        }
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        self.config.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}
