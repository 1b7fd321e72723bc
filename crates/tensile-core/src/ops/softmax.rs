//! Softmax and log-softmax along one dimension, computed in one fused, numerically stable pass
//! (the row maximum is subtracted before exponentiating, so logits of 1e4 are fine).

use crate::error::Result;
use crate::ops::Op;
use crate::shape::Dim;
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// With `y` the output along `dim`:
/// softmax: `dx = y * (g - sum(g * y))`; log-softmax: `dx = g - exp(y) * sum(g)`.
/// Over the last dimension one fused kernel computes it.
pub(crate) fn backward(y: &Tensor, g: &Tensor, dim: usize, log: bool) -> Result<Vec<Option<Tensor>>> {
    if dim + 1 == y.rank() && y.dtype() == g.dtype() {
        let (y, g) = (y.dense()?, g.dense()?);
        let len = y.dims()[dim];
        let storage = y.storage().softmax_last_backward(&g.storage(), len, log)?;
        return Ok(vec![Some(Tensor::from_storage(storage, y.shape().clone(), y.device()))]);
    }
    let dx = if log { g.sub(&y.exp()?.mul(&g.sum(dim, true)?)?)? } else { y.mul(&g.sub(&g.mul(y)?.sum(dim, true)?)?)? };
    Ok(vec![Some(dx)])
}

impl Tensor {
    fn softmax_op(&self, dim: impl Dim, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        self.require_float(name)?;
        let d = dim.to_index(name, self.rank())?;
        let last = self.rank() - 1;
        // The kernel works on contiguous rows; another dimension is moved last and back.
        let x = if d == last { self.contiguous()? } else { self.transpose(d, last)?.contiguous()? };
        let x = x.detach();
        let storage = x.storage().softmax_last(x.layout(), log)?;
        let y = Tensor::from_storage(storage, x.shape().clone(), self.device());
        // `y` and its transposed view are fresh and untracked, so the op can be attached here.
        let y = if d == last { y } else { y.transpose(d, last)? };
        Ok(y.with_op(|| Op::Softmax(self.clone(), d, log), &[self]))
    }

    /// `exp(x) / sum(exp(x))` along `dim`.
    pub fn softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_op(dim, false)
    }

    /// `x - log(sum(exp(x)))` along `dim`, without forming `exp(x)` for large logits.
    pub fn log_softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_op(dim, true)
    }
}
