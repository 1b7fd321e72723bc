//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
//! following PyTorch's `torch.optim.SGD` algorithm exactly:
//!
//! ```text
//! g = grad + wd * p
//! b = g                         (first step)      b = mu * b + (1 - dampening) * g   (later)
//! g = g + mu * b  (nesterov)    g = b              (otherwise, when mu != 0)
//! p = p - lr * g
//! ```

use tensile_core::{GradStore, Tensor};

use super::{Optimizer, grad_of};
use crate::error::Result;

/// SGD hyperparameters (PyTorch's defaults apart from `lr`, which has none there).
#[derive(Debug, Clone, PartialEq)]
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

/// SGD over a fixed list of named parameters.
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    config: SgdConfig,
    momentum: Vec<Option<Vec<f32>>>,
}

impl Sgd {
    pub fn new(params: Vec<(String, Tensor)>, config: SgdConfig) -> Sgd {
        let momentum = vec![None; params.len()];
        Sgd { params, config, momentum }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = &self.config;
        let (lr, mu, damp, wd) = (c.lr as f32, c.momentum as f32, c.dampening as f32, c.weight_decay as f32);
        for ((name, p), buf) in self.params.iter().zip(&mut self.momentum) {
            let Some(mut g) = grad_of(name, p, grads)? else { continue };
            p.update_::<f32, _>(|w| {
                if wd != 0.0 {
                    g.iter_mut().zip(w.iter()).for_each(|(g, &w)| *g += wd * w);
                }
                if mu != 0.0 {
                    match buf {
                        None => *buf = Some(g.clone()),
                        Some(b) => b.iter_mut().zip(&g).for_each(|(b, &g)| *b = mu * *b + (1.0 - damp) * g),
                    }
                    let b = buf.as_ref().expect("internal: momentum buffer set above");
                    if c.nesterov {
                        g.iter_mut().zip(b).for_each(|(g, &b)| *g += mu * b);
                    } else {
                        g.copy_from_slice(b);
                    }
                }
                w.iter_mut().zip(&g).for_each(|(w, &g)| *w -= lr * g);
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
