//! Kullback-Leibler divergence, PyTorch's `kl_div`: the input is log-probabilities (as from
//! `log_softmax`), the target probabilities or, with `log_target`, log-probabilities.
//!
//! Shapes: input and target of one shape `[B, ...]` and one float dtype; the output is a scalar,
//! or `[B, ...]` with `KlReduction::None`.

use serde::{Deserialize, Serialize};
use tensile_core::Tensor;

use super::{impl_loss, require_same};
use crate::error::Result;

/// How [`KlDivLoss`] combines its per-element terms: PyTorch's `reduction` for `kl_div`, which
/// adds `batchmean` to the usual three (serialized as PyTorch's strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlReduction {
    /// The mean over every element. PyTorch's default, kept so ported code gives the same
    /// numbers, but it is not the KL divergence: divide by the batch, not by `B·C`.
    #[default]
    Mean,
    /// The sum over every element divided by the batch size (the first dimension): the
    /// divergence per sample, which is what the math means.
    #[serde(rename = "batchmean")]
    BatchMean,
    Sum,
    None,
}

/// Kullback-Leibler divergence `KL(target ‖ exp(input))` per element, PyTorch's `nn.KLDivLoss`
/// / `F.kl_div`: `target·(log(target) - input)`, taken as 0 where `target = 0` (PyTorch's
/// `xlogy`), or `exp(target)·(target - input)` with `log_target`.
///
/// `forward(input, target)`: `input` log-probabilities `[B, ...]`, `target` of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KlDivLoss {
    pub reduction: KlReduction,
    /// Whether the target is given as log-probabilities (more precise for tiny probabilities).
    pub log_target: bool,
}

impl KlDivLoss {
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        require_same("kl_div", input, target)?;
        let terms = if self.log_target {
            target.exp()?.mul(&target.sub(input)?)?
        } else {
            xlogx(target)?.sub(&target.mul(input)?)?
        };
        Ok(match self.reduction {
            KlReduction::Mean => terms.mean_all()?,
            KlReduction::Sum => terms.sum_all()?,
            KlReduction::None => terms,
            KlReduction::BatchMean => match input.dims().first() {
                Some(&b) => terms.sum_all()?.mul_scalar(1.0 / b as f64)?,
                None => terms.sum_all()?,
            },
        })
    }
}

/// `KL(target ‖ exp(input))` averaged over every element, PyTorch's `F.kl_div` with its
/// defaults (see [`KlReduction::Mean`] for why `BatchMean` is usually wanted instead).
pub fn kl_div(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    KlDivLoss::default().forward(input, target)
}

impl_loss! { KlDivLoss => "kl_div" }

/// `t·ln(t)`, with 0 where `t = 0`. Masking the logarithm's argument too (1 where `t = 0`) keeps
/// `0·ln(0)` = NaN out of both the value and the gradient. A negative `t` still gives NaN, as
/// PyTorch's `xlogy` does.
fn xlogx(t: &Tensor) -> Result<Tensor> {
    let zero = Tensor::zeros((), t.dtype());
    let nonzero = t.ne(&zero)?;
    let safe = nonzero.where_cond(t, &Tensor::ones((), t.dtype()))?;
    Ok(nonzero.where_cond(&t.mul(&safe.log()?)?, &zero)?)
}
