//! Matrix products: `[..., M, K] @ [..., K, N] -> [..., M, N]`, batch dimensions broadcast as in
//! NumPy, 1-D operands promoted as in `torch.matmul`. Transposed operands are views: the GEMM
//! kernel reads any row and column strides, so `a.t()` never copies.

use smallvec::SmallVec;

use crate::error::{Error, Result, invalid};
use crate::ops::Op;
use crate::ops::unary::{self, UnaryOp};
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

/// Multiply-adds in each of a linear layer's two gradient products above which they run side by
/// side (`linear_backward`). Smaller products run on the calling thread anyway (`cpu/matmul.rs`,
/// `SMALL_FLOPS`), where handing one to another thread costs more than it saves (W3's step
/// 1.04x with a threshold of 2^16).
const JOIN_MACS: usize = 1 << 19;

/// `d(x @ wᵀ + b)` for a matrix `x`: `dx = G @ w`, `dw = Gᵀ @ x` (in `w`'s own order, so it is
/// contiguous), `db` = `G` summed over its rows. With `relu`, `G` first goes through the ReLU's
/// gradient, read from the output (`out > 0` exactly where the pre-activation is). The same
/// kernels as the gradient of `x.matmul(&w.t()?)?.add(b)?.relu()`, so the same bits.
pub(crate) fn linear_backward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    relu: bool,
    out: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let relu_grad;
    let mut gb = None;
    let g = match b {
        // A small gradient (one that no kernel would split over threads) goes through the ReLU
        // and into the bias's gradient in one pass: the same bits as `input_grad` and `sum_to`,
        // without the ops and tensors in between (W3's step, BENCHMARKS.md).
        Some(b) if b.tracks_grad() && g.rank() == 2 && g.elem_count() < crate::cpu::PAR_MIN => {
            let n = g.dims()[1];
            let (dense_g, dense_out) = (g.dense()?, if relu { Some(out.dense()?) } else { None });
            let (masked, sums) = {
                let y = dense_out.as_ref().map(|o| o.storage());
                dense_g.storage().relu_grad_col_sums(y.as_deref(), n)?
            };
            gb = Some(Tensor::from_storage(sums, b.shape().clone(), g.device()));
            relu_grad = match masked {
                Some(m) => Tensor::from_storage(m, g.shape().clone(), g.device()),
                None => dense_g,
            };
            &relu_grad
        }
        _ if relu => {
            relu_grad = unary::input_grad(out, out, g, UnaryOp::Relu)?;
            &relu_grad
        }
        _ => g,
    };
    let gx = || g.matmul(w);
    let gw = || g.t()?.matmul(x);
    // The two products have the same size (rows × out × in multiply-adds). When both are wanted
    // and large enough to run in parallel, each goes to a thread of its own: one section of
    // parallel work instead of two, each product split only if the other finishes first.
    let macs = g.elem_count() * w.dims().last().copied().unwrap_or(0);
    let (gx, gw) = match (x.tracks_grad(), w.tracks_grad()) {
        (true, true) if macs > JOIN_MACS && crate::threads::current() > 1 => {
            let grad = crate::autograd::is_grad_enabled();
            let (gx, gw) = rayon::join(
                || crate::autograd::with_grad_enabled(grad, gx),
                || crate::autograd::with_grad_enabled(grad, gw),
            );
            (Some(gx?), Some(gw?))
        }
        (need_x, need_w) => (need_x.then(gx).transpose()?, need_w.then(gw).transpose()?),
    };
    let mut grads = vec![gx, gw];
    if let Some(b) = b {
        grads.push(match gb {
            Some(gb) => Some(gb),
            None if b.tracks_grad() => Some(g.sum_to(b.shape())?),
            None => None,
        });
    }
    Ok(grads)
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

    /// `self @ weightᵀ + bias`, PyTorch's `F.linear`: `x [..., in]`, `weight [out, in]`, `bias
    /// [out]` -> `[..., out]`. One op in the graph where the three-op version (`t`, `matmul`,
    /// `add`) records three, with the same result to the bit and the same gradients (a 1-D input
    /// records the bias and the ReLU as ops of their own, as the three-op version does).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_op(weight, bias, false)
    }

    /// `relu(self @ weightᵀ + bias)` as one op, the same bits as [`Tensor::linear`] followed by
    /// [`Tensor::relu`]; the pre-activation is not kept (the ReLU's gradient is read from the
    /// output). `nn::Sequential` uses it for a linear layer followed by a ReLU.
    pub fn linear_relu(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_op(weight, bias, true)
    }

    fn linear_op(&self, weight: &Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        self.require_float("linear")?;
        if weight.rank() != 2 {
            return invalid("linear", format!("weight must be [out_features, in_features], found {}", weight.shape()));
        }
        let (out_f, in_f) = (weight.dims()[0], weight.dims()[1]);
        if self.rank() == 0 || self.dims()[self.rank() - 1] != in_f {
            return Err(Error::ShapeMismatch {
                op: "linear",
                lhs: Box::new(self.shape().clone()),
                rhs: Box::new(weight.shape().clone()),
            });
        }
        if let Some(b) = bias
            && b.dims() != [out_f]
        {
            return invalid("linear", format!("bias must have shape [{out_f}], found {}", b.shape()));
        }
        super::require_param_dtypes("linear", self, &[("weight", Some(weight)), ("bias", bias)])?;
        match self.rank() {
            1 => {
                // One sample: the product as one row, then the bias and the ReLU as their own
                // ops, so that the bias's gradient is the output's gradient as it is (as with
                // `matmul` and `add`), not a sum over one row (which turns -0.0 into 0.0).
                let y = self.unsqueeze(0)?.linear_op(weight, None, false)?.squeeze(0)?;
                let y = match bias {
                    Some(b) => y.add(b)?,
                    None => y,
                };
                return if relu { y.relu() } else { Ok(y) };
            }
            2 => {}
            r => {
                // Every leading dimension is one more row of one product.
                let mut dims = self.dims()[..r - 1].to_vec();
                let rows = dims.iter().product::<usize>();
                dims.push(out_f);
                return self.reshape(vec![rows, in_f])?.linear_op(weight, bias, relu)?.reshape(dims);
            }
        }
        let m = self.dims()[0];
        let dims = MatmulDims { batch: Shape::scalar(), m, k: in_f, n: out_f };
        let shape = Shape::from([m, out_f]);
        // With more than one row the product copies a column-major `wᵀ` (that of a row-major `w`)
        // row-major first (`cpu/matmul.rs`); a weight used again before it changes (a recurrent
        // layer's steps) keeps that copy instead.
        let copied = m > 1 && in_f > 1 && out_f > 1 && weight.layout().strides()[1] == 1;
        let cached = if copied { weight.cached_transpose()? } else { None };
        let mut storage = match &cached {
            Some(wt) => self.storage().matmul(self.layout(), &wt.storage(), wt.layout(), &dims)?,
            None => {
                self.storage().matmul(self.layout(), &weight.storage(), &weight.layout().permute(&[1, 0]), &dims)?
            }
        };
        // The bias and the ReLU in place on the fresh product, one pass and no new buffer (the
        // values of `add` and then `relu`).
        if bias.is_some() || relu {
            let bs = bias.map(|b| b.storage());
            storage.bias_relu_(bs.as_deref().zip(bias.map(|b| b.layout())), relu)?;
        }
        let out = Tensor::from_storage(storage, shape, self.device());
        let inputs: SmallVec<[&Tensor; 3]> = [Some(self), Some(weight), bias].into_iter().flatten().collect();
        Ok(out.with_op(|| Op::Linear(self.clone(), weight.clone(), bias.cloned(), relu), &inputs))
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
