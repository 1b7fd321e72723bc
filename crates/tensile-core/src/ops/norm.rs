//! Layer normalization as one op. Composed of primitives it takes about nine passes over the
//! data forward and more backward, each allocating; as one op it is one pass each way, and the
//! backward pass reuses the row statistics saved by the forward pass.

use crate::error::{Result, invalid};
use crate::ops::Op;
use crate::shape::Shape;
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// What the forward pass keeps for the backward pass.
#[derive(Clone)]
pub(crate) struct LayerNormSaved {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    /// Per row, contiguous: the mean and `1 / sqrt(var + eps)`.
    pub mean: Tensor,
    pub rstd: Tensor,
    /// Elements per row.
    pub n: usize,
}

/// `[x, weight?, bias?] -> [dx, dweight?, dbias?]`.
pub(crate) fn backward(x: &Tensor, s: &LayerNormSaved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let need = [
        x.tracks_grad(),
        s.weight.as_ref().is_some_and(Tensor::tracks_grad),
        s.bias.as_ref().is_some_and(Tensor::tracks_grad),
    ];
    let (dx, dw, db) = {
        let (xs, gs, ms, rs) = (x.storage(), g.storage(), s.mean.storage(), s.rstd.storage());
        let ws = s.weight.as_ref().map(|w| w.storage());
        let w = s.weight.as_ref().zip(ws.as_ref()).map(|(w, st)| (&**st, w.layout()));
        xs.layer_norm_backward(x.layout(), w, (&ms, &rs), (&gs, g.layout()), s.n, need)?
    };
    let wrap = |st, like: &Tensor| Tensor::from_storage(st, like.shape().clone(), like.device());
    let mut grads = vec![need[0].then(|| wrap(dx, x))];
    if let Some(w) = &s.weight {
        grads.push(dw.map(|d| wrap(d, w)));
    }
    if let Some(b) = &s.bias {
        grads.push(db.map(|d| wrap(d, b)));
    }
    Ok(grads)
}

impl Tensor {
    /// Layer normalization over the last `dims` dimensions (PyTorch's `F.layer_norm` with
    /// `normalized_shape` the last `dims` sizes): each row of their `n` elements becomes
    /// `(x - mean) / sqrt(var + eps)` with the biased variance, times `weight` and plus `bias`
    /// (both shaped like those dimensions) when given.
    pub fn layer_norm(&self, dims: usize, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let op = "layer_norm";
        self.require_float(op)?;
        if dims == 0 || dims > self.rank() {
            return invalid(op, format!("cannot normalize the last {dims} dimensions of shape {}", self.shape()));
        }
        let normalized = &self.dims()[self.rank() - dims..];
        let n: usize = normalized.iter().product();
        if n == 0 {
            return invalid(op, format!("the normalized dimensions {normalized:?} hold no elements"));
        }
        for (what, t) in [("weight", weight), ("bias", bias)] {
            if let Some(t) = t {
                if t.dims() != normalized {
                    return invalid(op, format!("{what} must have shape {normalized:?}, found {}", t.shape()));
                }
                super::require_param_dtypes(op, self, &[(what, Some(t))])?;
            }
        }
        if !(eps >= 0.0 && eps.is_finite()) {
            return invalid(op, format!("eps = {eps} must be finite and at least 0"));
        }
        let (y, mean, rstd) = {
            let xs = self.storage();
            let (ws, bs) = (weight.map(|w| w.storage()), bias.map(|b| b.storage()));
            let w = weight.zip(ws.as_ref()).map(|(w, s)| (&**s, w.layout()));
            let b = bias.zip(bs.as_ref()).map(|(b, s)| (&**s, b.layout()));
            xs.layer_norm(self.layout(), w, b, n, eps)?
        };
        let rows = Shape::from(self.elem_count() / n);
        let out = Tensor::from_storage(y, self.shape().clone(), self.device());
        let saved = || {
            let stat = |s| Tensor::from_storage(s, rows.clone(), self.device());
            let (weight, bias) = (weight.cloned(), bias.cloned());
            Op::LayerNorm(
                self.clone(),
                Box::new(LayerNormSaved { weight, bias, mean: stat(mean), rstd: stat(rstd), n }),
            )
        };
        let inputs: Vec<&Tensor> = [Some(self), weight, bias].into_iter().flatten().collect();
        Ok(out.with_op(saved, &inputs))
    }
}
