//! Classification losses: softmax cross-entropy on logits (class-index or class-probability
//! targets), negative log-likelihood on log-probabilities, and binary cross-entropy on logits.
//!
//! Shapes, as PyTorch: the input is `[B, C]`, `[B, C, d1, ...]` (classes in dimension 1, e.g.
//! `[B, C, T]` for sequences or `[B, C, H, W]` for segmentation) or unbatched `[C]`; class-index
//! targets are u32 of the input's shape without the class dimension (`[B]`, `[B, d1, ...]`, `[]`).
//!
//! Class-index targets are read on the host once per call: that is where they are range-checked
//! (an error, not a kernel panic), and where `ignore_index` and class weights become one
//! per-position weight, so the weighted mean is a sum times a known constant.

use tensile_core::{DType, Shape, Tensor};

use super::{Reduction, impl_loss, reduce, require_float, require_same};
use crate::error::{Result, invalid};

/// Softmax cross-entropy, PyTorch's `nn.CrossEntropyLoss` / `F.cross_entropy`.
///
/// `forward(logits, targets)`: logits `[B, C]`, `[B, C, d1, ...]` or `[C]`; targets either u32
/// class indices (`[B]`, `[B, d1, ...]`, `[]`) or float class probabilities of the logits' shape
/// and dtype. Output: a scalar, or one loss per position (`[B]`, `[B, d1, ...]`, `[]`) with
/// `Reduction::None`.
///
/// With class indices `y`, `logp = log_softmax(logits)`, class weights `w` (all 1 if absent) and
/// `ε = label_smoothing`, a position's loss is
/// `(1 - ε)·w[y]·(-logp[y]) + (ε / C)·Σ_c w[c]·(-logp[c])`.
/// Positions whose target equals `ignore_index` contribute 0, and `Mean` divides the sum by
/// `Σ w[y]` over the positions not ignored (so a mean over nothing is NaN, as in PyTorch).
///
/// With probabilities `p`, the loss is `-Σ_c w[c]·p'[c]·logp[c]` with `p' = (1 - ε)·p + ε / C`;
/// here `Mean` divides by the number of positions, not by the weights (PyTorch does the same),
/// and `ignore_index` is refused.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropyLoss {
    /// One rescaling weight per class, `[C]`. A constant: no gradient flows to it.
    pub weight: Option<Tensor>,
    /// Class-index targets equal to this contribute nothing and leave the mean's denominator.
    /// (PyTorch's default, -100, can never equal a u32 index, hence `None` here.)
    pub ignore_index: Option<u32>,
    /// In `[0, 1]`: mixes the target with the uniform distribution over classes.
    pub label_smoothing: f64,
    pub reduction: Reduction,
}

impl CrossEntropyLoss {
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        const WHAT: &str = "cross_entropy";
        require_float(WHAT, "logits", logits)?;
        require_class_input(WHAT, "logits", logits)?;
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return invalid(WHAT, format!("label_smoothing must be in [0, 1], found {eps}"));
        }
        let classes = logits.dims()[class_dim(logits)];
        let weights = class_weights(WHAT, self.weight.as_ref(), classes)?;
        let unbatched = logits.rank() == 1;
        let x = if unbatched { logits.unsqueeze(0)? } else { logits.clone() };
        let logp = x.log_softmax(1)?;
        let weight_view = weights.as_deref().map(|w| class_weight_view(w, x.rank(), x.dtype())).transpose()?;

        let loss = if targets.dtype().is_float() {
            if self.ignore_index.is_some() {
                return invalid(WHAT, "ignore_index is not supported with class-probability targets");
            }
            if targets.shape() != logits.shape() || targets.dtype() != logits.dtype() {
                return invalid(
                    WHAT,
                    format!(
                        "class-probability targets must match the logits: logits {:?} of shape {}, targets {:?} \
                         of shape {}",
                        logits.dtype(),
                        logits.shape(),
                        targets.dtype(),
                        targets.shape()
                    ),
                );
            }
            let p = if unbatched { targets.unsqueeze(0)? } else { targets.clone() };
            let p = if eps > 0.0 { p.affine(1.0 - eps, eps / classes as f64)? } else { p };
            let mut terms = logp.mul(&p)?;
            if let Some(w) = &weight_view {
                terms = terms.mul(w)?;
            }
            reduce(terms.sum(1, false)?.neg()?, self.reduction)?
        } else {
            let t = ClassTargets::new(WHAT, logits, targets, weights.as_deref(), self.ignore_index)?;
            let mut loss = t.nll(&logp)?;
            if eps > 0.0 {
                let all = match &weight_view {
                    Some(w) => logp.mul(w)?,
                    None => logp,
                };
                let mut smooth = all.sum(1, false)?.neg()?;
                if let Some(keep) = &t.keep {
                    smooth = smooth.mul(keep)?;
                }
                // PyTorch reduces the two terms separately, with the same denominator; reducing
                // their sum is the same number and one reduction fewer.
                loss = loss.mul_scalar(1.0 - eps)?.add(&smooth.mul_scalar(eps / classes as f64)?)?;
            }
            t.reduce(loss, self.reduction)?
        };
        unbatch(loss, unbatched, self.reduction)
    }
}

/// Mean softmax cross-entropy of `logits [B, C]` (or `[B, C, d1, ...]`, `[C]`) against u32 class
/// indices `targets [B]` (or `[B, d1, ...]`, `[]`) or class probabilities of the logits' shape:
/// PyTorch's `F.cross_entropy` with its defaults. See [`CrossEntropyLoss`] for the options.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    CrossEntropyLoss::default().forward(logits, targets)
}

/// Negative log-likelihood, PyTorch's `nn.NLLLoss` / `F.nll_loss`: `-w[y]·log_probs[y]` per
/// position, with the same `weight`, `ignore_index` and weighted mean as [`CrossEntropyLoss`]
/// (which is this loss applied to `log_softmax(logits)`).
///
/// `forward(log_probs, targets)`: log-probabilities `[B, C]`, `[B, C, d1, ...]` or `[C]`; u32
/// targets `[B]`, `[B, d1, ...]` or `[]`.
#[derive(Debug, Clone, Default)]
pub struct NllLoss {
    /// One rescaling weight per class, `[C]`. A constant: no gradient flows to it.
    pub weight: Option<Tensor>,
    /// Targets equal to this contribute nothing and leave the mean's denominator.
    pub ignore_index: Option<u32>,
    pub reduction: Reduction,
}

impl NllLoss {
    pub fn forward(&self, log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        const WHAT: &str = "nll_loss";
        require_float(WHAT, "log_probs", log_probs)?;
        require_class_input(WHAT, "log_probs", log_probs)?;
        let classes = log_probs.dims()[class_dim(log_probs)];
        let weights = class_weights(WHAT, self.weight.as_ref(), classes)?;
        let t = ClassTargets::new(WHAT, log_probs, targets, weights.as_deref(), self.ignore_index)?;
        let unbatched = log_probs.rank() == 1;
        let x = if unbatched { log_probs.unsqueeze(0)? } else { log_probs.clone() };
        let loss = t.reduce(t.nll(&x)?, self.reduction)?;
        unbatch(loss, unbatched, self.reduction)
    }
}

/// Mean negative log-likelihood of `log_probs [B, C]` against u32 `targets [B]`: PyTorch's
/// `F.nll_loss` with its defaults. See [`NllLoss`] for the options.
pub fn nll_loss(log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    NllLoss::default().forward(log_probs, targets)
}

/// Binary cross-entropy on logits, PyTorch's `nn.BCEWithLogitsLoss` /
/// `F.binary_cross_entropy_with_logits`: per element, with `x` the logit, `y` the target in
/// `[0, 1]` and `pw` the positive weight (1 if absent),
/// `w·[(1 - y)·x + (1 + (pw - 1)·y)·log(1 + e^-x)]`, where `log(1 + e^-x)` is computed as
/// `max(-x, 0) + log(1 + e^-|x|)`, finite for any logit. With `pw = 1` this is
/// `max(x, 0) - x·y + log(1 + e^-|x|)`.
///
/// `forward(logits, targets)`: any shape `[...]`, targets of the same shape and dtype; output
/// a scalar or `[...]`.
#[derive(Debug, Clone, Default)]
pub struct BceWithLogitsLoss {
    /// Rescales each element's loss; broadcast to the logits' shape.
    pub weight: Option<Tensor>,
    /// Weight of the positive term, usually `[C]` (one per class, broadcast over the batch);
    /// `> 1` raises recall. Broadcast to the logits' shape.
    pub pos_weight: Option<Tensor>,
    pub reduction: Reduction,
}

impl BceWithLogitsLoss {
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        const WHAT: &str = "binary_cross_entropy_with_logits";
        require_same(WHAT, logits, targets)?;
        // softplus(-x) = -log σ(x), by the kernel's max(-x, 0) + ln_1p(e^-|x|): no e^|x| is ever
        // formed. The alternative -log(sigmoid(x)) underflows to log(0) for x below about -88.
        let neg_log_sigmoid = logits.neg()?.softplus()?;
        let positive = match &self.pos_weight {
            Some(pw) => {
                let pw = broadcastable(WHAT, "pos_weight", pw, logits)?;
                targets.mul(&pw.add_scalar(-1.0)?)?.add_scalar(1.0)?.mul(&neg_log_sigmoid)?
            }
            None => neg_log_sigmoid,
        };
        let mut loss = logits.sub(&targets.mul(logits)?)?.add(&positive)?;
        if let Some(w) = &self.weight {
            loss = loss.mul(&broadcastable(WHAT, "weight", w, logits)?)?;
        }
        reduce(loss, self.reduction)
    }
}

/// Mean binary cross-entropy of `logits [...]` against float `targets [...]` (same shape):
/// PyTorch's `F.binary_cross_entropy_with_logits` with its defaults. See [`BceWithLogitsLoss`].
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    BceWithLogitsLoss::default().forward(logits, targets)
}

impl_loss! {
    CrossEntropyLoss => "cross_entropy",
    NllLoss => "nll_loss",
    BceWithLogitsLoss => "binary_cross_entropy_with_logits",
}

// ---- shared by the class-index losses --------------------------------------------------------

/// Where the classes are: dimension 1, or 0 for an unbatched `[C]` input.
fn class_dim(input: &Tensor) -> usize {
    if input.rank() == 1 { 0 } else { 1 }
}

fn require_class_input(what: &'static str, role: &str, input: &Tensor) -> Result<()> {
    if input.rank() == 0 || input.dims()[class_dim(input)] == 0 {
        return invalid(
            what,
            format!("{role} must be [C], [B, C] or [B, C, d1, ...] with C > 0, found shape {}", input.shape()),
        );
    }
    Ok(())
}

/// `weight` as host values, after checking it is a float vector with one entry per class.
fn class_weights(what: &'static str, weight: Option<&Tensor>, classes: usize) -> Result<Option<Vec<f64>>> {
    let Some(w) = weight else { return Ok(None) };
    require_float(what, "weight", w)?;
    if w.dims() != [classes] {
        return invalid(
            what,
            format!("weight must have one entry per class, shape [{classes}], found shape {}", w.shape()),
        );
    }
    Ok(Some(w.to_f64_vec()?))
}

/// Class weights shaped `[1, C, 1, ...]`, to broadcast over a batched input of rank `rank`.
fn class_weight_view(w: &[f64], rank: usize, dtype: DType) -> Result<Tensor> {
    let mut dims = vec![1; rank];
    dims[1] = w.len();
    Ok(Tensor::from_slice(w, dims)?.to_dtype(dtype)?)
}

/// A `None`-reduced loss of an unbatched input back to rank 0.
fn unbatch(loss: Tensor, unbatched: bool, reduction: Reduction) -> Result<Tensor> {
    if unbatched && reduction == Reduction::None { Ok(loss.reshape(())?) } else { Ok(loss) }
}

/// `t` converted to `input`'s dtype, after checking that it broadcasts to `input`'s shape.
fn broadcastable(what: &'static str, role: &str, t: &Tensor, input: &Tensor) -> Result<Tensor> {
    require_float(what, role, t)?;
    let fits = Shape::broadcast(what, t.shape(), input.shape()).is_ok_and(|s| &s == input.shape());
    if !fits {
        return invalid(
            what,
            format!("{role} of shape {} does not broadcast to the input's shape {}", t.shape(), input.shape()),
        );
    }
    Ok(t.to_dtype(input.dtype())?)
}

/// Class-index targets resolved on the host: range-checked, with ignored positions given index
/// 0 (so the gather stays in range) and weight 0. Shapes are those of the batched input.
struct ClassTargets {
    /// `[B, 1, d1, ...]` u32, to gather along the class dimension.
    index: Tensor,
    /// `w[y]` per position, 0 where ignored, in the input's dtype; `None` when all are 1.
    weight: Option<Tensor>,
    /// 1 per position, 0 where ignored; `None` when nothing is ignored.
    keep: Option<Tensor>,
    /// `Σ w[y]` over positions not ignored: the weighted mean's denominator.
    total_weight: f64,
}

impl ClassTargets {
    /// `input`: `[B, C, d1, ...]` or `[C]`; `targets`: the input's shape without the class
    /// dimension.
    fn new(
        what: &'static str,
        input: &Tensor,
        targets: &Tensor,
        weights: Option<&[f64]>,
        ignore: Option<u32>,
    ) -> Result<ClassTargets> {
        let cd = class_dim(input);
        let classes = input.dims()[cd];
        let mut expected = input.dims().to_vec();
        expected.remove(cd);
        if targets.dtype() != DType::U32 || targets.dims() != expected {
            return invalid(
                what,
                format!(
                    "for input of shape {}, targets must be u32 class indices of shape {} (or, for \
                     cross_entropy, float class probabilities of the input's shape), found {:?} of shape {}",
                    input.shape(),
                    Shape::new(expected),
                    targets.dtype(),
                    targets.shape()
                ),
            );
        }
        let ys = targets.to_vec::<u32>()?;
        let mut index = Vec::with_capacity(ys.len());
        let mut weight = Vec::with_capacity(ys.len());
        for (pos, &y) in ys.iter().enumerate() {
            if Some(y) == ignore {
                index.push(0);
                weight.push(0.0);
            } else if y as usize >= classes {
                return invalid(
                    what,
                    format!(
                        "target {y} at position {pos} is out of range for {classes} classes (input shape {})",
                        input.shape()
                    ),
                );
            } else {
                index.push(y);
                weight.push(weights.map_or(1.0, |w| w[y as usize]));
            }
        }
        // Batched shapes: an unbatched target `[]` is a batch of one.
        let batch_dims = if input.rank() == 1 { vec![1] } else { expected };
        let mut index_dims = batch_dims.clone();
        index_dims.insert(1, 1);
        let ignored = ys.iter().any(|&y| Some(y) == ignore);
        let keep = if ignored {
            let k: Vec<f64> = ys.iter().map(|&y| if Some(y) == ignore { 0.0 } else { 1.0 }).collect();
            Some(Tensor::from_vec(k, batch_dims.clone())?.to_dtype(input.dtype())?)
        } else {
            None
        };
        let total_weight = weight.iter().sum();
        // Skipping a multiply by ones keeps the common unweighted loss as cheap as before.
        let weight = if weight.iter().all(|&w| w == 1.0) {
            None
        } else {
            Some(Tensor::from_vec(weight, batch_dims)?.to_dtype(input.dtype())?)
        };
        Ok(ClassTargets { index: Tensor::from_vec(index, index_dims)?, weight, keep, total_weight })
    }

    /// `-w[y]·x[y]` per position of `x [B, C, d1, ...]`, shaped `[B, d1, ...]`.
    fn nll(&self, x: &Tensor) -> Result<Tensor> {
        let picked = x.gather(&self.index, 1)?.squeeze(1)?.neg()?;
        Ok(match &self.weight {
            Some(w) => picked.mul(w)?,
            None => picked,
        })
    }

    /// `Mean` is the weighted mean: the sum over `Σ w[y]`.
    fn reduce(&self, loss: Tensor, reduction: Reduction) -> Result<Tensor> {
        match reduction {
            Reduction::Mean => Ok(loss.sum_all()?.mul_scalar(1.0 / self.total_weight)?),
            _ => reduce(loss, reduction),
        }
    }
}
