//! Elementwise functions of two tensors, with NumPy broadcasting, and comparisons (which return
//! `u8` masks and have no gradient). Gradients are reduced back to each input's shape with
//! [`Tensor::sum_to`], so broadcasting needs no special case in any rule.

use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::shape::{Layout, Shape};
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// An elementwise binary function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl BinaryOp {
    #[inline(always)]
    pub(crate) fn fwd<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
        }
    }
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }
}

/// A comparison; the result is a `u8` mask of 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    #[inline(always)]
    pub(crate) fn fwd<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// Gradients of `out = op(a, b)`.
pub(crate) fn backward(a: &Tensor, b: &Tensor, out: &Tensor, g: &Tensor, op: BinaryOp) -> Result<Vec<Option<Tensor>>> {
    let (ta, tb) = (a.tracks_grad(), b.tracks_grad());
    let (ga, gb) = match op {
        BinaryOp::Add => (ta.then(|| g.clone()), tb.then(|| g.clone())),
        BinaryOp::Sub => (ta.then(|| g.clone()), if tb { Some(g.neg()?) } else { None }),
        BinaryOp::Mul => (if ta { Some(g.mul(b)?) } else { None }, if tb { Some(g.mul(a)?) } else { None }),
        // d(a/b)/db = -a/b² = -out/b
        BinaryOp::Div => {
            (if ta { Some(g.div(b)?) } else { None }, if tb { Some(g.mul(out)?.div(b)?.neg()?) } else { None })
        }
        // d(a^b)/da = b·a^(b-1); d(a^b)/db = a^b·ln(a), taken as 0 where a <= 0 (as PyTorch does
        // at a = 0) rather than NaN.
        BinaryOp::Pow => (
            if ta { Some(g.mul(b)?.mul(&a.pow(&b.add_scalar(-1.0)?)?)?) } else { None },
            if tb {
                let positive = a.gt(&Tensor::zeros((), a.dtype()))?;
                let ln_a = positive.where_cond(&a.log()?, &a.zeros_like())?;
                Some(g.mul(out)?.mul(&ln_a)?)
            } else {
                None
            },
        ),
        // Ties split the gradient evenly, as in PyTorch.
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let (win, lose) = if op == BinaryOp::Maximum { (CmpOp::Gt, CmpOp::Lt) } else { (CmpOp::Lt, CmpOp::Gt) };
            let half_tie = a.cmp_op(b, CmpOp::Eq)?.to_dtype(g.dtype())?.mul_scalar(0.5)?;
            let wa = a.cmp_op(b, win)?.to_dtype(g.dtype())?.add(&half_tie)?;
            let wb = a.cmp_op(b, lose)?.to_dtype(g.dtype())?.add(&half_tie)?;
            (if ta { Some(g.mul(&wa)?) } else { None }, if tb { Some(g.mul(&wb)?) } else { None })
        }
    };
    let ga = ga.map(|g| g.sum_to(a.shape())).transpose()?;
    let gb = gb.map(|g| g.sum_to(b.shape())).transpose()?;
    Ok(vec![ga, gb])
}

impl Tensor {
    /// Applies a broadcasting binary op, recording it for autodiff.
    pub fn binary_op(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = op.name();
        self.require_float(name)?;
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch { op: name, lhs: self.dtype(), rhs: rhs.dtype() });
        }
        let shape = Shape::broadcast(name, self.shape(), rhs.shape())?;
        let l = self.layout().broadcast_to(name, &shape)?;
        let r = rhs.layout().broadcast_to(name, &shape)?;
        let out = if l.strides() == r.strides() && !l.is_contiguous() && l.is_dense() {
            // Both operands laid out alike, filling a block of memory each in the same order (a
            // transposed weight's gradients being summed over the steps of a recurrent layer):
            // combine them in memory order, and give the result that same layout.
            let flat = Shape::new(vec![shape.elem_count()]);
            let (fl, fr) = (Layout::contiguous_at(flat.clone(), l.offset()), Layout::contiguous_at(flat, r.offset()));
            let storage = self.storage().binary(&fl, &rhs.storage(), &fr, op)?;
            Tensor::from_storage_in(storage, Layout::new(shape, l.strides(), 0), self.device())
        } else {
            let storage = self.storage().binary(&l, &rhs.storage(), &r, op)?;
            Tensor::from_storage(storage, shape, self.device())
        };
        Ok(out.with_op(|| Op::Binary(self.clone(), rhs.clone(), op), &[self, rhs]))
    }

    /// Elementwise comparison with broadcasting; a `u8` mask with no gradient.
    pub fn cmp_op(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch { op: "compare", lhs: self.dtype(), rhs: rhs.dtype() });
        }
        let shape = Shape::broadcast("compare", self.shape(), rhs.shape())?;
        let l = self.layout().broadcast_to("compare", &shape)?;
        let r = rhs.layout().broadcast_to("compare", &shape)?;
        let storage = self.storage().cmp(&l, &rhs.storage(), &r, op)?;
        Ok(Tensor::from_storage(storage, shape, self.device()))
    }
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> {
                self.binary_op(rhs, $op)
            })*
        }
    };
}

binary_methods! {
    /// `a + b` (broadcasting).
    add => BinaryOp::Add;
    /// `a - b` (broadcasting).
    sub => BinaryOp::Sub;
    /// `a * b`, elementwise (broadcasting).
    mul => BinaryOp::Mul;
    /// `a / b` (broadcasting).
    div => BinaryOp::Div;
    /// `a ^ b`, elementwise (broadcasting).
    pow => BinaryOp::Pow;
    /// Elementwise maximum; NaN wins (broadcasting).
    maximum => BinaryOp::Maximum;
    /// Elementwise minimum; NaN wins (broadcasting).
    minimum => BinaryOp::Minimum;
}

macro_rules! cmp_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self, rhs: &Tensor) -> Result<Tensor> {
                self.cmp_op(rhs, $op)
            })*
        }
    };
}

cmp_methods! {
    /// `a == b` as a `u8` mask.
    eq => CmpOp::Eq;
    /// `a != b` as a `u8` mask.
    ne => CmpOp::Ne;
    /// `a < b` as a `u8` mask.
    lt => CmpOp::Lt;
    /// `a <= b` as a `u8` mask.
    le => CmpOp::Le;
    /// `a > b` as a `u8` mask.
    gt => CmpOp::Gt;
    /// `a >= b` as a `u8` mask.
    ge => CmpOp::Ge;
}
