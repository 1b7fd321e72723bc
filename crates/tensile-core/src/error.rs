//! The error type of tensile-core: one enum with structured fields, so callers can both print a
//! clear message and match on what went wrong.

use crate::{DType, Shape};

/// Everything a tensor operation can refuse. Shapes are boxed: every op returns a `Result`, and
/// inline shapes would make each one several times larger.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{op}: shapes {lhs} and {rhs} do not match")]
    ShapeMismatch { op: &'static str, lhs: Box<Shape>, rhs: Box<Shape> },

    #[error("{op}: shapes {lhs} and {rhs} cannot be broadcast together")]
    Broadcast { op: &'static str, lhs: Box<Shape>, rhs: Box<Shape> },

    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank}")]
    DimOutOfRange { op: &'static str, dim: i64, rank: usize },

    #[error("{op}: dimension {dim} is given more than once")]
    DuplicateDim { op: &'static str, dim: usize },

    #[error("{op}: dtypes {lhs:?} and {rhs:?} differ")]
    DTypeMismatch { op: &'static str, lhs: DType, rhs: DType },

    #[error("{op}: dtype {dtype:?} is not supported (expected {expected})")]
    UnsupportedDType { op: &'static str, dtype: DType, expected: &'static str },

    #[error("{op}: {got} elements cannot form shape {shape} ({expected} elements)")]
    ElementCount { op: &'static str, shape: Box<Shape>, expected: usize, got: usize },

    #[error("{op}: index {index} is out of range for a dimension of size {size}")]
    IndexOutOfRange { op: &'static str, index: usize, size: usize },

    #[error("{op}: expected a tensor with one element, found shape {shape}")]
    NotScalar { op: &'static str, shape: Box<Shape> },

    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },

    #[error("backward: the tensor does not require gradients (no input was created with requires_grad)")]
    NoGraph,

    #[error("backward: this graph was already used by an earlier backward() and has been freed")]
    GraphFreed,
}

/// `Result` with tensile-core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid { op, msg: msg.into() })
}
