//! Loss functions: PyTorch's functional losses with the same formulas, options, defaults and
//! reductions, so a loss (and the gradient that flows from it) agrees with PyTorch's.
//!
//! Each loss comes in two forms. A free function applies PyTorch's defaults
//! (`cross_entropy(logits, targets)`), which is what most training loops want. A struct whose
//! public fields are the options (`CrossEntropyLoss { label_smoothing: 0.1, ..Default::default() }`)
//! has a `forward(input, target)` method and implements [`Loss`], so a trainer can hold any loss
//! as `Box<dyn Loss>`. The structs are named after PyTorch's loss modules so code ports.
//!
//! - `class.rs`: cross-entropy (class-index or class-probability targets), negative
//!   log-likelihood, binary cross-entropy with logits.
//! - `regression.rs`: mean squared error, L1, Huber, smooth L1.
//! - `divergence.rs`: Kullback-Leibler divergence.
//!
//! Losses are compositions of differentiable tensor ops, so they need no gradient rules of their
//! own. Bad shapes, dtypes, target indices or options return [`crate::Error::Invalid`] naming
//! the loss (PyTorch's functional name, e.g. `cross_entropy`) and the shapes involved.

mod class;
mod divergence;
mod regression;

pub use class::{
    BceWithLogitsLoss, CrossEntropyLoss, NllLoss, binary_cross_entropy_with_logits, cross_entropy, nll_loss,
};
pub use divergence::{KlDivLoss, KlReduction, kl_div};
pub use regression::{HuberLoss, L1Loss, MseLoss, SmoothL1Loss, huber_loss, l1_loss, mse_loss, smooth_l1_loss};

use serde::{Deserialize, Serialize};
use tensile_core::Tensor;

use crate::error::{Result, invalid};

/// How per-element losses are combined, as PyTorch's `reduction` argument (serialized as
/// PyTorch's strings: `"mean"`, `"sum"`, `"none"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// The mean over elements (for class-index losses with weights, the weighted mean).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
    /// No reduction: one loss per element (per sample for class losses).
    None,
}

/// A loss function of an input (logits, log-probabilities or predictions) and a target.
pub trait Loss: Send + Sync {
    /// The loss; a rank-0 tensor unless the reduction is `None`.
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor>;

    /// PyTorch's functional name of the loss (`cross_entropy`, `mse_loss`), used in errors and
    /// summaries.
    fn name(&self) -> &'static str;
}

/// Implements [`Loss`] by delegating to the struct's inherent `forward`, so callers get the
/// method without importing the trait and trait objects get it too.
macro_rules! impl_loss {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl crate::loss::Loss for $ty {
            fn forward(
                &self,
                input: &tensile_core::Tensor,
                target: &tensile_core::Tensor,
            ) -> crate::error::Result<tensile_core::Tensor> {
                <$ty>::forward(self, input, target)
            }
            fn name(&self) -> &'static str {
                $name
            }
        })*
    };
}
pub(crate) use impl_loss;

/// Mean, sum, or the elementwise losses unchanged.
pub(crate) fn reduce(loss: Tensor, reduction: Reduction) -> Result<Tensor> {
    Ok(match reduction {
        Reduction::Mean => loss.mean_all()?,
        Reduction::Sum => loss.sum_all()?,
        Reduction::None => loss,
    })
}

/// Errs unless `t` holds floats.
pub(crate) fn require_float(what: &'static str, role: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        invalid(what, format!("{role} must be f32 or f64, found {:?} of shape {}", t.dtype(), t.shape()))
    }
}

/// Errs unless `input` and `target` are floats of one dtype and one shape (PyTorch broadcasts
/// some losses with a warning; here a mismatch is almost always a bug, so it is refused).
pub(crate) fn require_same(what: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    require_float(what, "input", input)?;
    require_float(what, "target", target)?;
    if input.shape() != target.shape() {
        return invalid(
            what,
            format!("input of shape {} and target of shape {} must have the same shape", input.shape(), target.shape()),
        );
    }
    if input.dtype() != target.dtype() {
        return invalid(
            what,
            format!("input ({:?}) and target ({:?}) must have the same dtype", input.dtype(), target.dtype()),
        );
    }
    Ok(())
}
