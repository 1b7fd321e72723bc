//! Losses recorded as one op. The value is computed with the same arithmetic, in the same order,
//! as the loss written op by op, and the gradient rule applies that chain's steps in reverse
//! with the same arithmetic, so both are the same bits as the op-by-op version; the graph holds
//! one node instead of five, and the steps in between work on storages without making tensors,
//! which matters for small models, where per-op bookkeeping outweighs the arithmetic.

use crate::autograd::no_grad;
use crate::error::{Error, Result, invalid};
use crate::ops::Op;
use crate::ops::unary::UnaryOp;
use crate::shape::{Layout, Shape};
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// `d mse`: the mean's scale (as `mul_scalar`'s gradient computes it), the sum's broadcast,
/// the square's `2·d`, and the difference's signs.
pub(crate) fn mse_backward(
    input: &Tensor,
    target: &Tensor,
    diff: &Tensor,
    mean: bool,
    out: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    // The loss's gradient is one value: scaled for the mean and applied to every element
    // directly, without the one-element tensor and the broadcast copy in between.
    let (out, g, diff) = (out.dense()?, g.dense()?, diff.dense()?);
    let storage = {
        let (gs, ds) = (g.storage(), diff.storage());
        let scaled = if mean {
            let os = out.storage();
            Some(os.unary_backward(&os, &gs, mean_scale(&diff))?)
        } else {
            None
        };
        ds.unary_backward_scalar(&ds, scaled.as_ref().unwrap_or(&gs), UnaryOp::Square)?
    };
    let gd = Tensor::from_storage(storage, diff.shape().clone(), diff.device());
    let gt = if target.tracks_grad() { Some(gd.neg()?) } else { None };
    Ok(vec![input.tracks_grad().then_some(gd), gt])
}

/// `mean_all`'s last step: `x * (1 / n)`.
fn mean_scale(t: &Tensor) -> UnaryOp {
    UnaryOp::Affine(1.0 / t.elem_count() as f64, 0.0)
}

impl Tensor {
    /// The sum of `(self - target)²` over every element, or its mean: PyTorch's `F.mse_loss`
    /// with `reduction="sum"` or `"mean"`, as a rank-0 tensor. Both operands are floats of one
    /// dtype and one shape. The same bits as `self.sub(target)?.square()?.mean_all()` (or
    /// `sum_all`), recorded as one op.
    pub fn mse_loss(&self, target: &Tensor, mean: bool) -> Result<Tensor> {
        self.require_float("mse_loss")?;
        if target.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch { op: "mse_loss", lhs: self.dtype(), rhs: target.dtype() });
        }
        if target.shape() != self.shape() {
            return invalid(
                "mse_loss",
                format!(
                    "input of shape {} and target of shape {} must have the same shape",
                    self.shape(),
                    target.shape()
                ),
            );
        }
        let (diff, loss) = {
            let _untracked = no_grad();
            let diff = self.sub(target)?;
            // `square`, `sum_all` and the mean's scale on the storages: one tensor, not three.
            let mut sum = diff.storage().square_sum(diff.layout())?;
            if mean {
                sum = sum.unary(&Layout::contiguous(Shape::scalar()), mean_scale(&diff))?;
            }
            (diff, Tensor::from_storage(sum, Shape::scalar(), self.device()))
        };
        Ok(loss.with_op(|| Op::MseLoss(self.clone(), target.clone(), diff, mean), &[self, target]))
    }
}
