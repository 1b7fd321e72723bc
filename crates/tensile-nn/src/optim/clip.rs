//! Gradient clipping between `backward` and `Optimizer::step`: by global norm (PyTorch's
//! `torch.nn.utils.clip_grad_norm_`) and by value (`clip_grad_value_`). Both replace gradients in
//! the [`GradStore`] with clipped copies; parameters without a gradient are skipped.
//!
//! One deliberate difference from PyTorch: when the total norm is not finite (an overflow or a
//! NaN somewhere), `clip_grad_norm` leaves every gradient untouched and returns that norm, so the
//! trainer can skip the step or stop; PyTorch would scale everything by NaN or 0.

use serde::{Deserialize, Serialize};
use tensile_core::{DType, GradStore, Tensor, no_grad};

use crate::error::{Error, Result, invalid};

/// How to limit gradients before a step, as a run config states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradClip {
    /// Scale all gradients together so that their global `norm_type`-norm is at most
    /// `max_norm`. `norm_type` is 2 for the Euclidean norm, `f64::INFINITY` for the largest
    /// magnitude (which JSON cannot hold; such a config needs another format).
    Norm {
        max_norm: f64,
        #[serde(default = "two")]
        norm_type: f64,
    },
    /// Limit every gradient element to `[-clip_value, clip_value]`.
    Value { clip_value: f64 },
}

fn two() -> f64 {
    2.0
}

impl GradClip {
    /// Clips `grads` of `params`; returns the total norm before clipping for [`GradClip::Norm`]
    /// (possibly not finite: then nothing was changed), `None` for [`GradClip::Value`].
    pub fn apply(&self, params: &[(String, Tensor)], grads: &mut GradStore) -> Result<Option<f64>> {
        match *self {
            GradClip::Norm { max_norm, norm_type } => clip_grad_norm(params, grads, max_norm, norm_type).map(Some),
            GradClip::Value { clip_value } => clip_grad_value(params, grads, clip_value).map(|()| None),
        }
    }
}

/// The `norm_type`-norm of all gradients of `params` taken together, as one vector (0 when no
/// parameter has a gradient). Accumulated in f64. `norm_type` must be positive (or infinite).
pub fn grad_norm(params: &[(String, Tensor)], grads: &GradStore, norm_type: f64) -> Result<f64> {
    if norm_type.is_nan() || norm_type <= 0.0 {
        return invalid("clip_grad_norm", format!("norm_type must be > 0 (or infinite), got {norm_type}"));
    }
    let mut acc = 0.0f64;
    for (name, p) in params {
        let Some(g) = grad_checked(name, p, grads)? else { continue };
        for x in g.to_f64_vec()? {
            let a = x.abs();
            acc = if norm_type == f64::INFINITY {
                // NaN must win, which f64::max would not let it.
                if a.is_nan() || acc.is_nan() { f64::NAN } else { acc.max(a) }
            } else if norm_type == 2.0 {
                acc + a * a
            } else if norm_type == 1.0 {
                acc + a
            } else {
                acc + a.powf(norm_type)
            };
        }
    }
    Ok(if norm_type == f64::INFINITY || norm_type == 1.0 {
        acc
    } else if norm_type == 2.0 {
        acc.sqrt()
    } else {
        acc.powf(1.0 / norm_type)
    })
}

/// Scales the gradients of `params` by `max_norm / (total_norm + 1e-6)` when that is below 1, as
/// PyTorch's `clip_grad_norm_` does, and returns the total norm before clipping. A non-finite
/// total norm is returned with every gradient left as it was (see the module doc).
pub fn clip_grad_norm(
    params: &[(String, Tensor)],
    grads: &mut GradStore,
    max_norm: f64,
    norm_type: f64,
) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return invalid("clip_grad_norm", format!("max_norm must be >= 0, got {max_norm}"));
    }
    let total = grad_norm(params, grads, norm_type)?;
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        let _guard = no_grad();
        for (_, p) in params {
            if let Some(g) = grads.get(p) {
                let clipped = g.mul_scalar(coef)?;
                grads.insert(p, clipped);
            }
        }
    }
    Ok(total)
}

/// Limits every gradient element of `params` to `[-clip_value, clip_value]` (NaN stays NaN).
pub fn clip_grad_value(params: &[(String, Tensor)], grads: &mut GradStore, clip_value: f64) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return invalid("clip_grad_value", format!("clip_value must be >= 0, got {clip_value}"));
    }
    let _guard = no_grad();
    for (name, p) in params {
        let Some(g) = grad_checked(name, p, grads)? else { continue };
        let clipped = g.clamp(-clip_value, clip_value)?;
        grads.insert(p, clipped);
    }
    Ok(())
}

/// `p`'s gradient, checked to be a float tensor of `p`'s shape.
fn grad_checked(name: &str, p: &Tensor, grads: &GradStore) -> Result<Option<Tensor>> {
    let Some(g) = grads.get(p) else { return Ok(None) };
    if g.shape() != p.shape() || !matches!(g.dtype(), DType::F32 | DType::F64) {
        return Err(Error::GradShape {
            name: name.to_string(),
            expected: format!("{} float", p.shape()),
            found: format!("{} {:?}", g.shape(), g.dtype()),
        });
    }
    Ok(Some(g.clone()))
}
