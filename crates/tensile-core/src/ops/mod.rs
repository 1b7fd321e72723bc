//! Tensor operations, each family in its own file with its forward and its gradient rule side by
//! side. `Op` records how a tensor was made; `Op::backward` is the gradient table: one line
//! per op, dispatching to the rule written next to that op's forward.
//!
//! Derived operations (`sub` of a scalar, `mean`, `var`, `stack`, `square`…) are built from
//! primitives and need no rule of their own. Ops without a gradient (comparisons, argmax) never
//! record an `Op`.

pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod index;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod unary;

pub use binary::{BinaryOp, CmpOp};
pub(crate) use conv::Conv2dSpec;
pub use conv::{PoolWindow, Window2d};
pub use reduce::ReduceOp;
pub use unary::UnaryOp;

use smallvec::{SmallVec, smallvec};

use crate::Tensor;
use crate::error::{Result, invalid};

/// Errs unless each given parameter of an op (its `weight`, `bias`…) has the input's dtype,
/// naming the parameter.
pub(crate) fn require_param_dtypes(op: &'static str, x: &Tensor, params: &[(&str, Option<&Tensor>)]) -> Result<()> {
    for &(what, t) in params {
        if let Some(t) = t
            && t.dtype() != x.dtype()
        {
            return invalid(op, format!("{what} has dtype {:?} but the input has {:?}", t.dtype(), x.dtype()));
        }
    }
    Ok(())
}

/// How a tensor was computed from its inputs (only recorded while gradients are tracked).
#[derive(Clone)]
pub(crate) enum Op {
    Unary(Tensor, UnaryOp),
    Binary(Tensor, Tensor, BinaryOp),
    Reduce(Tensor, ReduceOp, Vec<usize>),
    Matmul(Tensor, Tensor),
    /// Input, weight, bias (`x @ wᵀ + b`), and whether a ReLU follows.
    Linear(Tensor, Tensor, Option<Tensor>, bool),
    Softmax(Tensor, usize, bool),
    /// Any view or copy whose gradient is the output gradient reshaped to the input's shape
    /// (reshape, squeeze, unsqueeze, contiguous).
    Reshape(Tensor),
    Permute(Tensor, Vec<usize>),
    Broadcast(Tensor),
    Narrow(Tensor, usize, usize),
    Pad(Tensor, Vec<(usize, usize)>),
    Cat(Vec<Tensor>, usize),
    IndexSelect(Tensor, Tensor, usize),
    Gather(Tensor, Tensor, usize),
    Where(Tensor, Tensor, Tensor),
    ToDType(Tensor),
    Unfold(Tensor, Window2d),
    /// Input, weight, bias, and with a folded max pool the pool's u32 indices (as `MaxPool2d`'s).
    Conv2d(Tensor, Tensor, Option<Tensor>, Conv2dSpec, Option<Tensor>),
    /// Input and the u32 index, within its `H·W` plane, of each window's first maximum.
    MaxPool2d(Tensor, Tensor),
    /// Input, and the weight, bias and row statistics.
    LayerNorm(Tensor, Box<norm::LayerNormSaved>),
    /// Input, target, their difference, and whether the loss is the mean (else the sum).
    MseLoss(Tensor, Tensor, Tensor, bool),
}

impl Op {
    /// A short name for the op, as its `Tensor` method is called (fused forms named as such).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Unary(..) => "unary",
            Op::Binary(..) => "binary",
            Op::Reduce(..) => "reduce",
            Op::Matmul(..) => "matmul",
            Op::Linear(.., false) => "linear",
            Op::Linear(.., true) => "linear_relu",
            Op::Softmax(.., false) => "softmax",
            Op::Softmax(.., true) => "log_softmax",
            Op::Reshape(_) => "reshape",
            Op::Permute(..) => "permute",
            Op::Broadcast(_) => "broadcast",
            Op::Narrow(..) => "narrow",
            Op::Pad(..) => "pad",
            Op::Cat(..) => "cat",
            Op::IndexSelect(..) => "index_select",
            Op::Gather(..) => "gather",
            Op::Where(..) => "where",
            Op::ToDType(_) => "to_dtype",
            Op::Unfold(..) => "unfold2d",
            Op::Conv2d(_, _, _, spec, _) => match (spec.relu, spec.pool.is_some()) {
                (false, false) => "conv2d",
                (true, false) => "conv2d_relu",
                (_, true) => "conv2d_relu_max_pool2d",
            },
            Op::MaxPool2d(..) => "max_pool2d",
            Op::LayerNorm(..) => "layer_norm",
            Op::MseLoss(..) => "mse_loss",
        }
    }

    /// The inputs that gradients flow to (index tensors and masks included; they never track).
    pub(crate) fn inputs(&self) -> SmallVec<[&Tensor; 3]> {
        match self {
            Op::Unary(a, _)
            | Op::Reduce(a, _, _)
            | Op::Softmax(a, _, _)
            | Op::Reshape(a)
            | Op::Permute(a, _)
            | Op::Broadcast(a)
            | Op::Narrow(a, _, _)
            | Op::Pad(a, _)
            | Op::ToDType(a)
            | Op::Unfold(a, _)
            | Op::MaxPool2d(a, _) => smallvec![a],
            Op::Conv2d(x, w, b, _, _) | Op::Linear(x, w, b, _) => {
                [Some(x), Some(w), b.as_ref()].into_iter().flatten().collect()
            }
            Op::LayerNorm(x, s) => [Some(x), s.weight.as_ref(), s.bias.as_ref()].into_iter().flatten().collect(),
            Op::Binary(a, b, _) | Op::Matmul(a, b) | Op::MseLoss(a, b, _, _) => smallvec![a, b],
            Op::IndexSelect(a, i, _) | Op::Gather(a, i, _) => smallvec![a, i],
            Op::Where(m, a, b) => smallvec![m, a, b],
            Op::Cat(ts, _) => ts.iter().collect(),
        }
    }

    /// The gradient of each input (in [`Op::inputs`] order) given the gradient of the output.
    pub(crate) fn backward(&self, out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        match self {
            Op::Unary(x, op) => unary::backward(x, out, g, *op),
            Op::Binary(a, b, op) => binary::backward(a, b, out, g, *op),
            Op::Reduce(x, op, dims) => reduce::backward(x, out, g, *op, dims),
            Op::Matmul(a, b) => matmul::backward(a, b, g),
            Op::Linear(x, w, b, relu) => matmul::linear_backward(x, w, b.as_ref(), *relu, out, g),
            Op::Softmax(_, dim, log) => softmax::backward(out, g, *dim, *log),
            Op::Reshape(x) => Ok(vec![Some(g.reshape(x.shape())?)]),
            Op::Permute(_, perm) => shape::permute_backward(g, perm),
            Op::Broadcast(x) => Ok(vec![Some(g.sum_to(x.shape())?)]),
            Op::Narrow(x, dim, start) => shape::narrow_backward(x, g, *dim, *start),
            Op::Pad(_, pads) => shape::pad_backward(g, pads),
            Op::Cat(ts, dim) => shape::cat_backward(ts, g, *dim),
            Op::IndexSelect(x, idx, dim) => index::index_select_backward(x, idx, g, *dim),
            Op::Gather(x, idx, dim) => index::gather_backward(x, idx, g, *dim),
            Op::Where(m, a, b) => index::where_backward(m, a, b, g),
            Op::ToDType(x) => Ok(vec![Some(g.to_dtype(x.dtype())?)]),
            Op::Unfold(x, win) => conv::unfold_backward(x, g, win),
            Op::Conv2d(x, w, b, spec, argmax) => conv::conv2d_backward(x, w, b.as_ref(), spec, argmax.as_ref(), out, g),
            Op::MaxPool2d(x, argmax) => conv::max_pool2d_backward(x, argmax, g),
            Op::LayerNorm(x, saved) => norm::backward(x, saved, g),
            Op::MseLoss(x, t, diff, mean) => loss::mse_backward(x, t, diff, *mean, out, g),
        }
    }
}
