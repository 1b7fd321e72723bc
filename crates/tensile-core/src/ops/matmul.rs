//! Matrix products: `[..., M, K] @ [..., K, N] -> [..., M, N]`, batch dimensions broadcast as in
//! NumPy, 1-D operands promoted as in `torch.matmul`. Transposed operands are views: the GEMM
//! kernel reads any row and column strides, so `a.t()` never copies.

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::shape::Shape;
use crate::storage::{BackendStorage, MatmulDims};
use crate::tensor::Tensor;

/// `d(A@B)`: `dA = G @ Bᵀ`, `dB = Aᵀ @ G`, each summed back over broadcast batch dimensions.
///
/// An operand that is the transposed view of a matrix (a linear layer's `Wᵀ`) gets its gradient
/// in the same memory order, computed as `dBᵀ = Gᵀ @ A` and returned transposed: the gradient
/// of the matrix itself is then contiguous, so neither autodiff nor the optimizer copies it.
pub(crate) fn backward(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let ga = if !a.tracks_grad() {
        None
    } else if transposed_matrix(a) && g.rank() == 2 {
        Some(b.matmul(&g.t()?)?.t()?)
    } else {
        Some(g.matmul(&b.t()?)?.sum_to(a.shape())?)
    };
    let gb = if !b.tracks_grad() {
        None
    } else if transposed_matrix(b) && g.rank() == 2 {
        Some(g.t()?.matmul(a)?.t()?)
    } else {
        Some(a.t()?.matmul(g)?.sum_to(b.shape())?)
    };
    Ok(vec![ga, gb])
}

/// Whether `t` is a 2-D column-major view (strides `[1, rows]`), such as `w.t()` of a contiguous
/// `w`.
fn transposed_matrix(t: &Tensor) -> bool {
    let (d, s) = (t.dims(), t.layout().strides());
    t.rank() == 2 && d[0] > 1 && d[1] > 1 && s == [1, d[0]]
}

impl Tensor {
    /// Matrix product with NumPy batch broadcasting. `[M, K] @ [K, N] -> [M, N]`;
    /// `[B, M, K] @ [K, N] -> [B, M, N]`; a 1-D left operand is a row, a 1-D right one a column,
    /// and the added dimension is removed from the result.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        match (self.rank(), rhs.rank()) {
            (0, _) | (_, 0) => crate::error::invalid("matmul", "operands must have at least one dimension"),
            // `[1, K] @ [K]` is already `[1]`: only the added row is left to remove.
            (1, 1) => self.unsqueeze(0)?.matmul(rhs)?.squeeze(0),
            (1, _) => self.unsqueeze(0)?.matmul(rhs)?.squeeze(-2),
            (_, 1) => self.matmul(&rhs.unsqueeze(1)?)?.squeeze(-1),
            _ => self.matmul_nd(rhs),
        }
    }

    fn matmul_nd(&self, rhs: &Tensor) -> Result<Tensor> {
        self.require_float("matmul")?;
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch { op: "matmul", lhs: self.dtype(), rhs: rhs.dtype() });
        }
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, k) = (self.dims()[ra - 2], self.dims()[ra - 1]);
        let (k2, n) = (rhs.dims()[rb - 2], rhs.dims()[rb - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: Box::new(self.shape().clone()),
                rhs: Box::new(rhs.shape().clone()),
            });
        }
        if rb == 2 && ra > 2 && self.layout().is_contiguous() {
            // `[..., M, K] @ [K, N]` over contiguous rows is one `[(...)·M, K] @ [K, N]` product
            // (a linear layer on a sequence): one GEMM over all rows instead of one per batch
            // entry, each packing the matrix again, and in backward the matrix's gradient is one
            // product summed over all rows instead of a batch of products summed afterwards.
            let mut dims = self.dims()[..ra - 1].to_vec();
            let rows = dims.iter().product::<usize>();
            dims.push(n);
            return self.reshape(vec![rows, k])?.matmul(rhs)?.reshape(dims);
        }
        let (storage, shape) = if ra == 2 && rb == 2 {
            // Two matrices: nothing to broadcast.
            let dims = MatmulDims { batch: Shape::scalar(), m, k, n };
            (self.storage().matmul(self.layout(), &rhs.storage(), rhs.layout(), &dims)?, Shape::from([m, n]))
        } else {
            let batch =
                Shape::broadcast("matmul", &Shape::from(&self.dims()[..ra - 2]), &Shape::from(&rhs.dims()[..rb - 2]))?;
            let with = |x: usize, y: usize| {
                let mut d = batch.dims().to_vec();
                d.extend([x, y]);
                Shape::new(d)
            };
            let l = self.layout().broadcast_to("matmul", &with(m, k))?;
            let r = rhs.layout().broadcast_to("matmul", &with(k, n))?;
            let shape = with(m, n);
            let dims = MatmulDims { batch, m, k, n };
            (self.storage().matmul(&l, &rhs.storage(), &r, &dims)?, shape)
        };
        let out = Tensor::from_storage(storage, shape, self.device());
        Ok(out.with_op(|| Op::Matmul(self.clone(), rhs.clone()), &[self, rhs]))
    }
}
