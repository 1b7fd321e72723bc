//! Regression losses on the elementwise difference `d = input - target`: mean squared error,
//! L1 (mean absolute error), Huber and smooth L1.
//!
//! Shapes: input and target of one shape `[...]` and one float dtype; the output is a scalar, or
//! `[...]` with `Reduction::None`.
//!
//! Huber and smooth L1 are the same curve up to a factor, as in PyTorch:
//! `huber(d; δ) = β·smooth_l1(d; β)` at `δ = β`. Both switch branches with a mask (`where_cond`)
//! rather than a clamp, so each branch is PyTorch's exact expression and the gradient of each
//! element comes from the branch that produced its value.

use tensile_core::Tensor;

use super::{Reduction, impl_loss, reduce, require_same};
use crate::error::{Result, invalid};

/// Mean squared error, PyTorch's `nn.MSELoss` / `F.mse_loss`: `(input - target)²`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MseLoss {
    pub reduction: Reduction,
}

impl MseLoss {
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        require_same("mse_loss", input, target)?;
        Ok(match self.reduction {
            // One op in the graph (the same bits as the three-op formula below).
            Reduction::Mean => input.mse_loss(target, true)?,
            Reduction::Sum => input.mse_loss(target, false)?,
            Reduction::None => input.sub(target)?.square()?,
        })
    }
}

/// Mean of `(input - target)²` over every element (same shapes): PyTorch's `F.mse_loss`.
pub fn mse_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    MseLoss::default().forward(input, target)
}

/// Mean absolute error, PyTorch's `nn.L1Loss` / `F.l1_loss`: `|input - target|` (gradient 0
/// where they are equal, as PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct L1Loss {
    pub reduction: Reduction,
}

impl L1Loss {
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        require_same("l1_loss", input, target)?;
        reduce(input.sub(target)?.abs()?, self.reduction)
    }
}

/// Mean of `|input - target|` over every element (same shapes): PyTorch's `F.l1_loss`.
pub fn l1_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    L1Loss::default().forward(input, target)
}

/// Huber loss, PyTorch's `nn.HuberLoss` / `F.huber_loss`: with `d = input - target`,
/// `0.5·d²` where `|d| < delta`, else `delta·(|d| - 0.5·delta)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HuberLoss {
    /// Where the loss turns from quadratic to linear; must be positive. PyTorch's default is 1.
    pub delta: f64,
    pub reduction: Reduction,
}

impl Default for HuberLoss {
    fn default() -> Self {
        HuberLoss { delta: 1.0, reduction: Reduction::Mean }
    }
}

impl HuberLoss {
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const WHAT: &str = "huber_loss";
        require_same(WHAT, input, target)?;
        let delta = self.delta;
        if !(delta > 0.0 && delta.is_finite()) {
            return invalid(WHAT, format!("delta must be positive and finite, found {delta}"));
        }
        reduce(quadratic_then_linear(input, target, delta, 1.0)?, self.reduction)
    }
}

/// Mean Huber loss with `delta = 1` (same shapes): PyTorch's `F.huber_loss`.
pub fn huber_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    HuberLoss::default().forward(input, target)
}

/// Smooth L1 loss, PyTorch's `nn.SmoothL1Loss` / `F.smooth_l1_loss`: with `d = input - target`,
/// `0.5·d² / beta` where `|d| < beta`, else `|d| - 0.5·beta`. Its linear part has slope 1
/// whatever `beta` (Huber's has slope `delta`); `beta = 0` is exactly the L1 loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothL1Loss {
    /// Where the loss turns from quadratic to linear; must be non-negative. PyTorch's default
    /// is 1.
    pub beta: f64,
    pub reduction: Reduction,
}

impl Default for SmoothL1Loss {
    fn default() -> Self {
        SmoothL1Loss { beta: 1.0, reduction: Reduction::Mean }
    }
}

impl SmoothL1Loss {
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const WHAT: &str = "smooth_l1_loss";
        require_same(WHAT, input, target)?;
        let beta = self.beta;
        if !(beta >= 0.0 && beta.is_finite()) {
            return invalid(WHAT, format!("beta must be non-negative and finite, found {beta}"));
        }
        // As PyTorch: beta = 0 would divide by zero in the quadratic branch (which is then
        // never taken); it is the L1 loss.
        if beta == 0.0 {
            return reduce(input.sub(target)?.abs()?, self.reduction);
        }
        reduce(quadratic_then_linear(input, target, beta, 1.0 / beta)?, self.reduction)
    }
}

/// Mean smooth L1 loss with `beta = 1` (same shapes): PyTorch's `F.smooth_l1_loss`.
pub fn smooth_l1_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    SmoothL1Loss::default().forward(input, target)
}

impl_loss! {
    MseLoss => "mse_loss",
    L1Loss => "l1_loss",
    HuberLoss => "huber_loss",
    SmoothL1Loss => "smooth_l1_loss",
}

/// `k·0.5·d²` where `|d| < cut`, else `k·cut·(|d| - 0.5·cut)`, elementwise, with
/// `d = input - target`. Huber is `k = 1`; smooth L1 is `k = 1 / cut`.
fn quadratic_then_linear(input: &Tensor, target: &Tensor, cut: f64, k: f64) -> Result<Tensor> {
    let d = input.sub(target)?;
    let a = d.abs()?;
    let inside = a.lt(&Tensor::full(cut, (), a.dtype()))?;
    let quadratic = d.square()?.mul_scalar(0.5 * k)?;
    let linear = a.affine(k * cut, -0.5 * k * cut * cut)?;
    Ok(inside.where_cond(&quadratic, &linear)?)
}
