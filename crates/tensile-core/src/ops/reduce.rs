//! Reductions over chosen dimensions: sum, max, min (primitive, with gradient rules), mean and
//! variance (derived), argmax/argmin (no gradient).
//!
//! Sums are deterministic whatever the thread count: the kernel adds in a fixed blocked order
//! that depends only on the shape (see `cpu::reduce`).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::shape::{All, Dim, Dims, Shape};
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// A primitive reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// `[x, out (keepdim shape), g (keepdim shape)] -> [dx]`.
pub(crate) fn backward(
    x: &Tensor,
    out: &Tensor,
    g: &Tensor,
    op: ReduceOp,
    dims: &[usize],
) -> Result<Vec<Option<Tensor>>> {
    let gx = match op {
        ReduceOp::Sum => g.broadcast_to(x.shape())?,
        // The gradient goes to the extreme elements, split evenly among ties (as PyTorch's amax).
        ReduceOp::Max | ReduceOp::Min => {
            let hit = x.eq(&out.broadcast_to(x.shape())?)?.to_dtype(g.dtype())?;
            let count = hit.sum(dims, true)?;
            hit.mul(&g.div(&count)?)?
        }
    };
    Ok(vec![Some(gx)])
}

fn keepdim_shape(shape: &Shape, dims: &[usize]) -> Shape {
    let mut d = shape.dims().to_vec();
    for &i in dims {
        d[i] = 1;
    }
    Shape::new(d)
}

fn squeezed_shape(shape: &Shape, dims: &[usize]) -> Shape {
    let d = shape.dims().iter().enumerate().filter(|(i, _)| !dims.contains(i)).map(|(_, &s)| s);
    Shape::new(d.collect())
}

impl Tensor {
    fn reduce_op(&self, dims: impl Dims, keepdim: bool, op: ReduceOp, name: &'static str) -> Result<Tensor> {
        self.require_float(name)?;
        let dims = dims.to_indices(name, self.rank())?;
        if op != ReduceOp::Sum && dims.iter().any(|&d| self.dims()[d] == 0) {
            return crate::error::invalid(name, format!("cannot reduce an empty dimension of shape {}", self.shape()));
        }
        let storage = self.storage().reduce(self.layout(), &dims, op)?;
        let kept = Tensor::from_storage(storage, keepdim_shape(self.shape(), &dims), self.device());
        let kept = kept.with_op(|| Op::Reduce(self.clone(), op, dims.clone()), &[self]);
        if keepdim { Ok(kept) } else { kept.reshape(squeezed_shape(self.shape(), &dims)) }
    }

    /// Sum over `dims`; `keepdim` keeps them with size 1.
    pub fn sum(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.reduce_op(dims, keepdim, ReduceOp::Sum, "sum")
    }
    /// Largest element over `dims` (NaN propagates).
    pub fn max(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.reduce_op(dims, keepdim, ReduceOp::Max, "max")
    }
    /// Smallest element over `dims` (NaN propagates).
    pub fn min(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.reduce_op(dims, keepdim, ReduceOp::Min, "min")
    }
    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(All, false)
    }
    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(All, false)
    }

    /// Mean over `dims`.
    pub fn mean(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        let idx = dims.to_indices("mean", self.rank())?;
        let n: usize = idx.iter().map(|&d| self.dims()[d]).product();
        self.sum(&idx, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Variance over `dims` with Bessel's correction (divides by n - 1), as `torch.var`.
    pub fn var(&self, dims: impl Dims, keepdim: bool) -> Result<Tensor> {
        self.var_with_correction(dims, keepdim, 1)
    }

    /// Variance over `dims`, dividing by `n - correction` (0 gives the population variance).
    pub fn var_with_correction(&self, dims: impl Dims, keepdim: bool, correction: usize) -> Result<Tensor> {
        let idx = dims.to_indices("var", self.rank())?;
        let n: usize = idx.iter().map(|&d| self.dims()[d]).product();
        if n <= correction {
            return crate::error::invalid(
                "var",
                format!("{n} elements leave no degrees of freedom with correction {correction}"),
            );
        }
        let centered = self.sub(&self.mean(&idx, true)?)?;
        centered.square()?.sum(&idx, keepdim)?.mul_scalar(1.0 / (n - correction) as f64)
    }

    fn arg_reduce(&self, dim: impl Dim, keepdim: bool, max: bool) -> Result<Tensor> {
        let name = if max { "argmax" } else { "argmin" };
        self.require_float(name)?;
        let d = dim.to_index(name, self.rank())?;
        if self.dims()[d] == 0 {
            return crate::error::invalid(name, "cannot take the index of an empty dimension");
        }
        let storage = self.storage().arg_reduce(self.layout(), d, max)?;
        let kept = Tensor::from_storage(storage, keepdim_shape(self.shape(), &[d]), self.device());
        if keepdim { Ok(kept) } else { kept.reshape(squeezed_shape(self.shape(), &[d])) }
    }
    /// Index (u32) of the first largest element along `dim`. No gradient.
    pub fn argmax(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(dim, keepdim, true)
    }
    /// Index (u32) of the first smallest element along `dim`. No gradient.
    pub fn argmin(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(dim, keepdim, false)
    }

    /// Sums this tensor down to `shape`, the inverse of broadcasting `shape` up to this tensor's
    /// shape: leading extra dimensions and dimensions where `shape` has 1 are summed.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.rank()).ok_or_else(|| Error::Broadcast {
            op: "sum_to",
            lhs: Box::new(self.shape().clone()),
            rhs: Box::new(shape.clone()),
        })?;
        let mut dims: Vec<usize> = (0..lead).collect();
        for (i, &s) in shape.dims().iter().enumerate() {
            let d = self.dims()[lead + i];
            if s == 1 && d != 1 {
                dims.push(lead + i);
            } else if s != d {
                return Err(Error::Broadcast {
                    op: "sum_to",
                    lhs: Box::new(self.shape().clone()),
                    rhs: Box::new(shape.clone()),
                });
            }
        }
        let summed = if dims.is_empty() { self.clone() } else { self.sum(&dims, true)? };
        summed.reshape(shape)
    }

    /// Number of positions where two u32 tensors agree (for accuracy). No gradient.
    pub fn count_equal(&self, other: &Tensor) -> Result<usize> {
        if self.dtype() != DType::U32 || other.dtype() != DType::U32 {
            return Err(Error::UnsupportedDType { op: "count_equal", dtype: self.dtype(), expected: "u32" });
        }
        let eq = self.eq(other)?;
        Ok(eq.to_vec::<u8>()?.iter().map(|&v| v as usize).sum())
    }
}
