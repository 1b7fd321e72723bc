//! Index kernels. Every index is checked against the dimension it selects from, so a bad label
//! is an error naming the index and the size, never an out-of-bounds read. Scatter-adds run in
//! index order, so repeated indices sum the same way every time.

use crate::dtype::{Float, WithDType};
use crate::error::{Error, Result};
use crate::shape::Shape;

fn split(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (dims[..dim].iter().product(), dims[dim], dims[dim + 1..].iter().product())
}

fn check(op: &'static str, idx: &[u32], size: usize) -> Result<()> {
    match idx.iter().find(|&&i| i as usize >= size) {
        Some(&i) => Err(Error::IndexOutOfRange { op, index: i as usize, size }),
        None => Ok(()),
    }
}

/// `[outer, size, inner]` -> `[outer, idx.len(), inner]`.
pub(crate) fn index_select<T: WithDType>(x: &[T], dims: &[usize], idx: &[u32], dim: usize) -> Result<Vec<T>> {
    let (outer, size, inner) = split(dims, dim);
    check("index_select", idx, size)?;
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * size + i as usize) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    Ok(out)
}

/// The adjoint of `index_select`: `g` of shape `[outer, idx.len(), inner]` added into zeros of
/// `shape` at the selected slices.
pub(crate) fn index_add<T: Float>(g: &[T], idx: &[u32], dim: usize, shape: &Shape) -> Result<Vec<T>> {
    let (outer, size, inner) = split(shape.dims(), dim);
    check("index_add", idx, size)?;
    let mut out = vec![T::ZERO; shape.elem_count()];
    for o in 0..outer {
        for (k, &i) in idx.iter().enumerate() {
            let d = (o * size + i as usize) * inner;
            let s = (o * idx.len() + k) * inner;
            for (a, &b) in out[d..d + inner].iter_mut().zip(&g[s..s + inner]) {
                *a += b;
            }
        }
    }
    Ok(out)
}

/// `out[o, i, j] = x[o, idx[o, i, j], j]`.
pub(crate) fn gather<T: WithDType>(
    x: &[T],
    xdims: &[usize],
    idx: &[u32],
    idims: &[usize],
    dim: usize,
) -> Result<Vec<T>> {
    let (outer, kx, inner) = split(xdims, dim);
    let ki = idims[dim];
    check("gather", idx, kx)?;
    let mut out = Vec::with_capacity(idx.len());
    for o in 0..outer {
        for i in 0..ki {
            for j in 0..inner {
                let ix = idx[(o * ki + i) * inner + j] as usize;
                out.push(x[(o * kx + ix) * inner + j]);
            }
        }
    }
    Ok(out)
}

/// The adjoint of `gather`: zeros of `shape` with `g[o, i, j]` added at `[o, idx[o, i, j], j]`.
pub(crate) fn scatter_add<T: Float>(
    g: &[T],
    idx: &[u32],
    idims: &[usize],
    dim: usize,
    shape: &Shape,
) -> Result<Vec<T>> {
    let (outer, kx, inner) = split(shape.dims(), dim);
    let ki = idims[dim];
    check("scatter_add", idx, kx)?;
    let mut out = vec![T::ZERO; shape.elem_count()];
    for o in 0..outer {
        for i in 0..ki {
            for j in 0..inner {
                let p = (o * ki + i) * inner + j;
                out[(o * kx + idx[p] as usize) * inner + j] += g[p];
            }
        }
    }
    Ok(out)
}
