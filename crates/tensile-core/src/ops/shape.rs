//! Shape operations. Reshape (of contiguous data), squeeze/unsqueeze, permute/transpose,
//! broadcast_to and narrow are views: a new layout over the same storage, no copy. Concatenation,
//! stacking and padding allocate. Each gradient rule is the inverse movement: permute back, sum
//! back over broadcast dimensions, pad a narrowed gradient with zeros, narrow a padded one.

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::shape::{Dim, Layout, Shape};
use crate::storage::{BackendStorage, Storage};
use crate::tensor::Tensor;

pub(crate) fn permute_backward(g: &Tensor, perm: &[usize]) -> Result<Vec<Option<Tensor>>> {
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(vec![Some(g.permute(&inverse)?)])
}

pub(crate) fn narrow_backward(x: &Tensor, g: &Tensor, dim: usize, start: usize) -> Result<Vec<Option<Tensor>>> {
    let mut pads = vec![(0, 0); x.rank()];
    pads[dim] = (start, x.dims()[dim] - start - g.dims()[dim]);
    Ok(vec![Some(g.pad(&pads, 0.0)?)])
}

pub(crate) fn pad_backward(g: &Tensor, pads: &[(usize, usize)]) -> Result<Vec<Option<Tensor>>> {
    let mut out = g.clone();
    for (d, &(before, after)) in pads.iter().enumerate() {
        if before + after > 0 {
            out = out.narrow(d, before, g.dims()[d] - before - after)?;
        }
    }
    Ok(vec![Some(out)])
}

pub(crate) fn cat_backward(ts: &[Tensor], g: &Tensor, dim: usize) -> Result<Vec<Option<Tensor>>> {
    let mut start = 0;
    let mut out = Vec::with_capacity(ts.len());
    for t in ts {
        let len = t.dims()[dim];
        out.push(if t.tracks_grad() { Some(g.narrow(dim, start, len)?) } else { None });
        start += len;
    }
    Ok(out)
}

impl Tensor {
    /// The same elements in a new shape with the same element count. A view when contiguous.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ElementCount {
                op: "reshape",
                expected: shape.elem_count(),
                got: self.elem_count(),
                shape: Box::new(shape),
            });
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let src = self.contiguous()?;
        let out = src.view_untracked(Layout::contiguous_at(shape, src.layout().offset()));
        Ok(out.with_op(|| Op::Reshape(src.clone()), &[&src]))
    }

    /// Inserts a dimension of size 1 at `dim` (which may equal the rank, to append).
    pub fn unsqueeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.to_index("unsqueeze", self.rank() + 1)?;
        let mut dims = self.dims().to_vec();
        dims.insert(d, 1);
        self.reshape(dims)
    }

    /// Removes dimension `dim`, which must have size 1.
    pub fn squeeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.to_index("squeeze", self.rank())?;
        if self.dims()[d] != 1 {
            return crate::error::invalid("squeeze", format!("dimension {d} of shape {} is not 1", self.shape()));
        }
        let mut dims = self.dims().to_vec();
        dims.remove(d);
        self.reshape(dims)
    }

    /// Merges dimensions `dim..` into one: `[B, C, H, W].flatten_from(1) -> [B, C*H*W]`.
    pub fn flatten_from(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.to_index("flatten", self.rank())?;
        let mut dims = self.dims()[..d].to_vec();
        dims.push(self.dims()[d..].iter().product());
        self.reshape(dims)
    }

    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]`. A view.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        let valid =
            perm.len() == self.rank() && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return crate::error::invalid(
                "permute",
                format!("{perm:?} is not a permutation of the {} dimensions", self.rank()),
            );
        }
        let out = self.view_untracked(self.layout().permute(perm));
        Ok(out.with_op(|| Op::Permute(self.clone(), perm.to_vec()), &[self]))
    }

    /// Swaps two dimensions. A view.
    pub fn transpose(&self, d1: impl Dim, d2: impl Dim) -> Result<Tensor> {
        let (a, b) = (d1.to_index("transpose", self.rank())?, d2.to_index("transpose", self.rank())?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two dimensions (`[..., M, N] -> [..., N, M]`). A view.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return crate::error::invalid("t", format!("needs at least 2 dimensions, found shape {}", self.shape()));
        }
        self.transpose(-2, -1)
    }

    /// Repeats size-1 (or missing leading) dimensions to `shape`, NumPy style. A view.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let out = self.view_untracked(self.layout().broadcast_to("broadcast_to", &shape)?);
        Ok(out.with_op(|| Op::Broadcast(self.clone()), &[self]))
    }

    /// Elements `start..start + len` of dimension `dim`. A view.
    pub fn narrow(&self, dim: impl Dim, start: usize, len: usize) -> Result<Tensor> {
        let d = dim.to_index("narrow", self.rank())?;
        let size = self.dims()[d];
        if start + len > size {
            return Err(Error::IndexOutOfRange { op: "narrow", index: start + len, size });
        }
        if start == 0 && len == size {
            return Ok(self.clone());
        }
        let out = self.view_untracked(self.layout().narrow(d, start, len));
        Ok(out.with_op(|| Op::Narrow(self.clone(), d, start), &[self]))
    }

    /// Pads each dimension `d` with `pads[d].0` elements before and `pads[d].1` after, all equal
    /// to `value`. `pads` has one pair per dimension.
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        if pads.len() != self.rank() {
            return crate::error::invalid(
                "pad",
                format!("{} pairs given for a tensor of rank {}", pads.len(), self.rank()),
            );
        }
        let dims: Vec<usize> = self.dims().iter().zip(pads).map(|(&d, &(a, b))| d + a + b).collect();
        let shape = Shape::new(dims);
        let mut storage = Storage::full(self.dtype(), shape.elem_count(), value);
        let mut region = Layout::contiguous(shape.clone());
        for (d, &(before, _)) in pads.iter().enumerate() {
            region = region.narrow(d, before, self.dims()[d]);
        }
        self.storage().copy_into(self.layout(), &mut storage, &region)?;
        let out = Tensor::from_storage(storage, shape, self.device());
        Ok(out.with_op(|| Op::Pad(self.clone(), pads.to_vec()), &[self]))
    }

    /// Joins tensors along an existing dimension; all other dimensions must match.
    pub fn cat(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let first = tensors.first().ok_or(Error::Invalid { op: "cat", msg: "no tensors given".into() })?;
        let d = dim.to_index("cat", first.rank())?;
        let mut total = 0;
        for t in tensors {
            let same_rest = t.rank() == first.rank()
                && t.dims().iter().zip(first.dims()).enumerate().all(|(i, (a, b))| i == d || a == b);
            if !same_rest {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: Box::new(first.shape().clone()),
                    rhs: Box::new(t.shape().clone()),
                });
            }
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch { op: "cat", lhs: first.dtype(), rhs: t.dtype() });
            }
            total += t.dims()[d];
        }
        let mut dims = first.dims().to_vec();
        dims[d] = total;
        let shape = Shape::new(dims);
        let mut storage = Storage::full(first.dtype(), shape.elem_count(), 0.0);
        let full = Layout::contiguous(shape.clone());
        let mut start = 0;
        for t in tensors {
            let len = t.dims()[d];
            t.storage().copy_into(t.layout(), &mut storage, &full.narrow(d, start, len))?;
            start += len;
        }
        let out = Tensor::from_storage(storage, shape, first.device());
        let owned: Vec<Tensor> = tensors.iter().map(|t| (*t).clone()).collect();
        Ok(out.with_op(|| Op::Cat(owned, d), tensors))
    }

    /// Joins tensors of one shape along a new dimension `dim`.
    pub fn stack(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let first = tensors.first().ok_or(Error::Invalid { op: "stack", msg: "no tensors given".into() })?;
        let d = dim.to_index("stack", first.rank() + 1)?;
        let expanded = tensors.iter().map(|t| t.unsqueeze(d)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = expanded.iter().collect();
        Tensor::cat(&refs, d)
    }

    /// Splits dimension `dim` into pieces of `size` (the last may be smaller). Views.
    pub fn split(&self, size: usize, dim: impl Dim) -> Result<Vec<Tensor>> {
        let d = dim.to_index("split", self.rank())?;
        if size == 0 {
            return crate::error::invalid("split", "piece size must be positive");
        }
        let n = self.dims()[d];
        (0..n).step_by(size).map(|s| self.narrow(d, s, size.min(n - s))).collect()
    }
}
