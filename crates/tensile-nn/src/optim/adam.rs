//! Adam (Kingma & Ba, 2015), computed as PyTorch's `torch.optim.Adam` (single-tensor path) does,
//! except that `sqrt(v)` is multiplied by `1 / sqrt(1 - b2^t)` instead of divided by
//! `sqrt(1 - b2^t)`, so the two agree to rounding; the update is shared with [`super::AdamW`]:
//!
//! ```text
//! p = p * (1 - lr * wd)                               (AdamW: decoupled weight decay)
//! g = grad + wd * p                                   (Adam: L2 weight decay)
//! m = lerp(m, g, 1 - b1)                              (= b1 * m + (1 - b1) * g)
//! v = b2 * v + (1 - b2) * g²
//! v̂ = max(v̂, v)                                       (amsgrad)
//! p = p - (lr / (1 - b1^t)) * m / (sqrt(v or v̂) / sqrt(1 - b2^t) + eps)
//! ```
//!
//! State per parameter: `exp_avg` (m), `exp_avg_sq` (v), `max_exp_avg_sq` (v̂, amsgrad only).

use std::collections::BTreeMap;

use tensile_core::threads::zip_chunks_mut;
use tensile_core::{GradStore, Tensor};

use super::group::{Groups, ParamGroup, ParamStep, ensure};
use super::{Optimizer, check_beta, check_range, lerp, maximum, shared_optimizer_methods};
use crate::error::Result;

/// Adam hyperparameters, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// L2 penalty added to the gradient (for decoupled decay use [`super::AdamW`]).
    pub weight_decay: f64,
    /// Use the maximum of all second moments so far (Reddi et al., 2018).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }
}

impl AdamConfig {
    /// PyTorch's checks: `lr, eps, weight_decay >= 0`, betas in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        validate_adam("Adam", self.lr, self.beta1, self.beta2, self.eps, self.weight_decay)
    }
}

pub(crate) fn validate_adam(what: &str, lr: f64, beta1: f64, beta2: f64, eps: f64, wd: f64) -> Result<()> {
    check_range(what, "lr", lr, 0.0, Some(f64::MAX))?;
    check_beta(what, "beta1", beta1)?;
    check_beta(what, "beta2", beta2)?;
    check_range(what, "eps", eps, 0.0, Some(f64::MAX))?;
    check_range(what, "weight_decay", wd, 0.0, Some(f64::MAX))
}

pub(crate) const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// The Adam and AdamW hyperparameters one update needs.
pub(crate) struct AdamRule {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) amsgrad: bool,
    /// AdamW: weight decay shrinks the parameter instead of joining the gradient.
    pub(crate) decoupled: bool,
    /// The last step count's bias corrections (see [`AdamRule::corrections`]).
    pub(crate) corrections: Option<(u64, f64, f64)>,
}

impl AdamRule {
    pub(crate) fn hyperparameters(&self) -> BTreeMap<String, f64> {
        [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("amsgrad", f64::from(u8::from(self.amsgrad))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `1 - b1^t` and `1 - b2^t` for step `t`, worked out once for all the parameters at the
    /// same step: two `powf` calls cost more than the whole update of a small parameter.
    fn corrections(&mut self, step: u64) -> (f64, f64) {
        match self.corrections {
            Some((t, c1, c2)) if t == step => (c1, c2),
            _ => {
                let t = step as f64;
                let (c1, c2) = (1.0 - self.beta1.powf(t), 1.0 - self.beta2.powf(t));
                self.corrections = Some((step, c1, c2));
                (c1, c2)
            }
        }
    }

    pub(crate) fn update(&mut self, p: ParamStep<'_>) {
        let n = p.w.len();
        let [m, v, vmax] = p.buffers else { unreachable!("internal: Adam has three buffers") };
        ensure(m, n, 0.0);
        ensure(v, n, 0.0);
        if self.amsgrad {
            ensure(vmax, n, 0.0);
        }
        // Scalars as PyTorch computes them in Python (f64), each then used by an f32 kernel.
        let (bc1, bc2) = self.corrections(p.step);
        let step_size = (p.lr / bc1) as f32;
        // PyTorch divides each `sqrt(v)` by `sqrt(1 - b2^t)`; multiplying by the reciprocal
        // instead differs by at most an ulp or so and leaves one division per element, the
        // operation that bounds this loop (W3's step: BENCHMARKS.md).
        let inv_bc2_sqrt = (1.0 / bc2.sqrt()) as f32;
        let (w1, b2, w2, eps) =
            ((1.0 - self.beta1) as f32, self.beta2 as f32, (1.0 - self.beta2) as f32, self.eps as f32);
        let wd = p.weight_decay as f32;
        let shrink = (1.0 - p.lr * p.weight_decay) as f32;
        let decay_param = self.decoupled && p.weight_decay != 0.0;
        let l2 = !self.decoupled && p.weight_decay != 0.0;
        let c = Coefs { step_size, inv_bc2_sqrt, w1, b2, w2, eps, wd, shrink };
        // One fused pass per parameter (m, v and the weight in one loop, no temporaries), with
        // the options fixed at compile time so the loop has no branches and vectorizes.
        macro_rules! run {
            ($decay:literal, $l2:literal) => {
                if self.amsgrad {
                    zip_chunks_mut(
                        [p.w, m.as_mut_slice(), v.as_mut_slice(), vmax.as_mut_slice()],
                        p.g,
                        #[inline(always)]
                        |[w, m, v, vmax], g| adam_pass::<true, $decay, $l2>(w, g, m, v, vmax, &c),
                    )
                } else {
                    zip_chunks_mut(
                        [p.w, m.as_mut_slice(), v.as_mut_slice()],
                        p.g,
                        #[inline(always)]
                        |[w, m, v], g| adam_pass::<false, $decay, $l2>(w, g, m, v, &mut [], &c),
                    )
                }
            };
        }
        match (decay_param, l2) {
            (true, _) => run!(true, false),
            (false, true) => run!(false, true),
            (false, false) => run!(false, false),
        }
    }
}

/// The f32 coefficients of one Adam step.
struct Coefs {
    step_size: f32,
    inv_bc2_sqrt: f32,
    w1: f32,
    b2: f32,
    w2: f32,
    eps: f32,
    wd: f32,
    shrink: f32,
}

/// One element of an Adam step, PyTorch's arithmetic in its order.
#[inline(always)]
fn adam_one<const DECAY: bool, const L2: bool>(
    w: &mut f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    vmax: Option<&mut f32>,
    c: &Coefs,
) {
    if DECAY {
        *w *= c.shrink;
    }
    let g = if L2 { g + c.wd * *w } else { g };
    *m = lerp(*m, g, c.w1);
    *v = *v * c.b2 + c.w2 * g * g;
    let second = match vmax {
        Some(vmax) => {
            *vmax = maximum(*vmax, *v);
            *vmax
        }
        None => *v,
    };
    let denom = second.sqrt() * c.inv_bc2_sqrt + c.eps;
    *w += -c.step_size * *m / denom;
}

/// One Adam step over matching pieces of the weight, gradient and buffers (`vmax` is empty
/// unless `AMS`).
#[inline(always)]
fn adam_pass<const AMS: bool, const DECAY: bool, const L2: bool>(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    c: &Coefs,
) {
    let n = w.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    if AMS {
        let vmax = &mut vmax[..n];
        for i in 0..n {
            adam_one::<DECAY, L2>(&mut w[i], g[i], &mut m[i], &mut v[i], Some(&mut vmax[i]), c);
        }
    } else {
        for i in 0..n {
            adam_one::<DECAY, L2>(&mut w[i], g[i], &mut m[i], &mut v[i], None, c);
        }
    }
}

/// Adam over named parameters, in one or more groups.
pub struct Adam {
    groups: Groups,
    config: AdamConfig,
}

impl Adam {
    const KIND: &'static str = "adam";

    /// One group of `params`. The config is checked at each step.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamConfig) -> Adam {
        let groups = Groups::single(params, config.lr, config.weight_decay, BUFFERS);
        Adam { groups, config }
    }

    /// Several groups, each with its own rate and weight decay where given.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Result<Adam> {
        config.validate()?;
        let groups = Groups::new("Adam", groups, config.lr, config.weight_decay, BUFFERS)?;
        Ok(Adam { groups, config })
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    fn rule(&self) -> AdamRule {
        let c = &self.config;
        AdamRule { beta1: c.beta1, beta2: c.beta2, eps: c.eps, amsgrad: c.amsgrad, decoupled: false, corrections: None }
    }

    fn hyperparameters(&self) -> BTreeMap<String, f64> {
        self.rule().hyperparameters()
    }
}

impl Optimizer for Adam {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.config.validate()?;
        let mut rule = self.rule();
        self.groups.step("Adam", grads, |p| rule.update(p))
    }
    shared_optimizer_methods!();
}
