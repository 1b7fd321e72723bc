//! Indexing: `index_select` (whole slices by a list of indices, e.g. embedding lookup, batch
//! gathering), `gather` (one element per position, e.g. the target's log-probability) and
//! `where_cond` (choose between two tensors by a mask). Index tensors are `u32`; masks are `u8`.
//! The gradient of a selection is a scatter-add into zeros, done sequentially over the indices
//! of each slice so repeated indices sum in a fixed order.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::shape::{Dim, Shape};
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

pub(crate) fn index_select_backward(x: &Tensor, idx: &Tensor, g: &Tensor, dim: usize) -> Result<Vec<Option<Tensor>>> {
    let g = g.dense()?;
    let storage = g.storage().index_add(&idx.storage(), idx.layout(), dim, x.shape())?;
    Ok(vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device())), None])
}

pub(crate) fn gather_backward(x: &Tensor, idx: &Tensor, g: &Tensor, dim: usize) -> Result<Vec<Option<Tensor>>> {
    let g = g.dense()?;
    let storage = g.storage().scatter_add(&idx.storage(), idx.layout(), dim, x.shape())?;
    Ok(vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device())), None])
}

pub(crate) fn where_backward(m: &Tensor, a: &Tensor, b: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let zero = Tensor::zeros((), g.dtype());
    let ga = if a.tracks_grad() { Some(m.where_cond(g, &zero)?.sum_to(a.shape())?) } else { None };
    let gb = if b.tracks_grad() { Some(m.where_cond(&zero, g)?.sum_to(b.shape())?) } else { None };
    Ok(vec![None, ga, gb])
}

fn require_u32(op: &'static str, idx: &Tensor) -> Result<()> {
    if idx.dtype() == DType::U32 {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, dtype: idx.dtype(), expected: "u32 indices" })
    }
}

impl Tensor {
    /// Slices of dimension `dim` picked by the 1-D `u32` tensor `idx`, in its order (indices may
    /// repeat). `[.., N, ..].index_select(idx[K], dim) -> [.., K, ..]`.
    pub fn index_select(&self, idx: &Tensor, dim: impl Dim) -> Result<Tensor> {
        let d = dim.to_index("index_select", self.rank())?;
        require_u32("index_select", idx)?;
        if idx.rank() != 1 {
            return crate::error::invalid("index_select", format!("indices must be 1-D, found shape {}", idx.shape()));
        }
        let storage = self.storage().index_select(self.layout(), &idx.storage(), idx.layout(), d)?;
        let mut dims = self.dims().to_vec();
        dims[d] = idx.elem_count();
        let out = Tensor::from_storage(storage, Shape::new(dims), self.device());
        Ok(out.with_op(|| Op::IndexSelect(self.clone(), idx.clone(), d), &[self]))
    }

    /// `out[i][j] = self[i][idx[i][j]]` for `dim = 1`, and likewise for any `dim`: `idx` has the
    /// rank of `self` and the same size in every other dimension; the result has `idx`'s shape.
    pub fn gather(&self, idx: &Tensor, dim: impl Dim) -> Result<Tensor> {
        let d = dim.to_index("gather", self.rank())?;
        require_u32("gather", idx)?;
        let compatible = idx.rank() == self.rank()
            && idx.dims().iter().zip(self.dims()).enumerate().all(|(i, (a, b))| i == d || a == b);
        if !compatible {
            return Err(Error::ShapeMismatch {
                op: "gather",
                lhs: Box::new(self.shape().clone()),
                rhs: Box::new(idx.shape().clone()),
            });
        }
        let storage = self.storage().gather(self.layout(), &idx.storage(), idx.layout(), d)?;
        let out = Tensor::from_storage(storage, idx.shape().clone(), self.device());
        Ok(out.with_op(|| Op::Gather(self.clone(), idx.clone(), d), &[self]))
    }

    /// Elementwise `if mask { on_true } else { on_false }` with broadcasting; `self` is the `u8`
    /// mask.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        if self.dtype() != DType::U8 {
            return Err(Error::UnsupportedDType { op: "where_cond", dtype: self.dtype(), expected: "a u8 mask" });
        }
        if on_true.dtype() != on_false.dtype() {
            return Err(Error::DTypeMismatch { op: "where_cond", lhs: on_true.dtype(), rhs: on_false.dtype() });
        }
        let shape = Shape::broadcast("where_cond", self.shape(), on_true.shape())?;
        let shape = Shape::broadcast("where_cond", &shape, on_false.shape())?;
        let m = self.layout().broadcast_to("where_cond", &shape)?;
        let a = on_true.layout().broadcast_to("where_cond", &shape)?;
        let b = on_false.layout().broadcast_to("where_cond", &shape)?;
        let storage = self.storage().where_cond(&m, &on_true.storage(), &a, &on_false.storage(), &b)?;
        let out = Tensor::from_storage(storage, shape, on_true.device());
        Ok(out.with_op(|| Op::Where(self.clone(), on_true.clone(), on_false.clone()), &[on_true, on_false]))
    }
}
