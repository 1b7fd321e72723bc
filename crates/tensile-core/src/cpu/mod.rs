//! The CPU backend: [`BackendStorage`] for [`CpuStorage`].
//!
//! Kernels are generic over the element type and monomorphized per dtype and per op (the op
//! tables live in `crate::ops`); the dtype and op are matched once per call, never per element.
//! Work is split over rayon in fixed-size chunks: a chunk's result never depends on which thread
//! ran it or how many threads there are, which is what makes results bit-identical across thread
//! counts.

/// `$kernel::<R, C>` for the run-time pair `($rows, $cols)`, one of the listed pairs of
/// literals: how the AVX-512 kernels pick a register block sized at compile time.
#[cfg(target_arch = "x86_64")]
macro_rules! block_kernel {
    ($kernel:ident, $rows:expr, $cols:expr, $($r:literal, $c:literal);*) => {
        match ($rows, $cols) {
            $(($r, $c) => $kernel::<$r, $c>,)*
            _ => unreachable!("internal: no {}x{} block of {}", $rows, $cols, stringify!($kernel)),
        }
    };
}

/// `0..total` cut into consecutive blocks of at most `max`: `(start, len)` of each.
#[cfg(target_arch = "x86_64")]
fn blocks_of(total: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total).step_by(max).map(move |start| (start, (total - start).min(max)))
}

mod conv;
mod elementwise;
mod index;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod transpose;
#[cfg(target_arch = "x86_64")]
mod winograd;

use std::mem::MaybeUninit;

use rayon::prelude::*;

pub(crate) use elementwise::gather_strided;

use crate::dtype::{DType, Float, WithDType};
use crate::error::{Error, Result};
use crate::ops::{BinaryOp, CmpOp, Conv2dSpec, ReduceOp, UnaryOp, Window2d};
use crate::shape::{Layout, Shape};
use crate::storage::{BackendStorage, CpuStorage, MatmulDims};

/// Below this many elements a kernel runs on the calling thread: waking a worker costs more
/// than it saves.
pub(crate) const PAR_MIN: usize = 1 << 15;
/// Elements per parallel task.
pub(crate) const CHUNK: usize = 1 << 13;

/// Fills `out` by calling `f(start, chunk)` on consecutive chunks, in parallel when large, each
/// call compiled with wide vectors ([`crate::simd::wide`]).
/// `start` is the index of the chunk's first element in `out`.
pub(crate) fn par_fill<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    if out.len() >= PAR_MIN && crate::threads::current() > 1 {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
            crate::simd::wide(
                #[inline(always)]
                || f(i * CHUNK, c),
            )
        });
    } else {
        crate::simd::wide(
            #[inline(always)]
            || f(0, out),
        )
    }
}

/// A new `Vec` of `n` elements made by [`par_fill`]-style calls `f(start, chunk)` on the
/// uninitialized buffer, without zero-filling it first (a pass over the whole output that
/// cost 1-1.5% of a W2 epoch per kernel). `f` must write every element of each chunk it is
/// given; the callers zip the chunk with input slices of exactly its length, which panic if
/// shorter.
pub(crate) fn par_new<T: Copy + Send>(n: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(n);
    par_fill(&mut out.spare_capacity_mut()[..n], f);
    // SAFETY: `f` wrote every element of every chunk (its contract above), and the chunks of
    // `par_fill` cover all `n` elements.
    unsafe { out.set_len(n) };
    out
}

/// `buf` filled with zeros, as initialized values (a buffer from `spare_capacity_mut` that a
/// kernel zeroes piece by piece, in the task that then writes into it).
pub(crate) fn init_zeros<T: Float>(buf: &mut [MaybeUninit<T>]) -> &mut [T] {
    for v in buf.iter_mut() {
        v.write(T::ZERO);
    }
    // SAFETY: every element was written just above; `MaybeUninit<T>` has `T`'s layout.
    unsafe { &mut *(buf as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// A contiguous slice of the elements of `layout`, borrowed when possible.
pub(crate) fn contiguous_cow<'a, T: WithDType>(data: &'a [T], layout: &Layout) -> std::borrow::Cow<'a, [T]> {
    match layout.contiguous_range() {
        Some(r) => std::borrow::Cow::Borrowed(&data[r]),
        None => std::borrow::Cow::Owned(elementwise::gather_strided(data, layout)),
    }
}

fn unsupported(op: &'static str, dtype: DType, expected: &'static str) -> Error {
    Error::UnsupportedDType { op, dtype, expected }
}

/// Runs `$body` with `$v` bound to the float slice, wrapping the `Vec` result back into storage.
macro_rules! float_map {
    ($s:expr, $op:literal, |$v:ident| $body:expr) => {
        match $s {
            CpuStorage::F32($v) => CpuStorage::F32($body),
            CpuStorage::F64($v) => CpuStorage::F64($body),
            other => return Err(unsupported($op, other.dtype(), "f32 or f64")),
        }
    };
}

/// Like `float_map`, for kernels of two (or three) storages of one float dtype.
macro_rules! float_map2 {
    ($a:expr, $b:expr, $op:literal, |$x:ident, $y:ident| $body:expr) => {
        match ($a, $b) {
            (CpuStorage::F32($x), CpuStorage::F32($y)) => CpuStorage::F32($body),
            (CpuStorage::F64($x), CpuStorage::F64($y)) => CpuStorage::F64($body),
            (a, b) if a.dtype() != b.dtype() => {
                return Err(Error::DTypeMismatch { op: $op, lhs: a.dtype(), rhs: b.dtype() })
            }
            (a, _) => return Err(unsupported($op, a.dtype(), "f32 or f64")),
        }
    };
}

/// Runs `$body` for any dtype, wrapping the result.
macro_rules! any_map {
    ($s:expr, |$v:ident| $body:expr) => {
        match $s {
            CpuStorage::F32($v) => CpuStorage::F32($body),
            CpuStorage::F64($v) => CpuStorage::F64($body),
            CpuStorage::U8($v) => CpuStorage::U8($body),
            CpuStorage::U32($v) => CpuStorage::U32($body),
        }
    };
}

fn index_slice<'a>(op: &'static str, s: &'a CpuStorage) -> Result<&'a [u32]> {
    match s {
        CpuStorage::U32(v) => Ok(v),
        other => Err(unsupported(op, other.dtype(), "u32 indices")),
    }
}

/// The elements of `layout` in `s`, which must hold `T` (the dtype of `op`'s first operand).
fn typed<'a, T: WithDType>(op: &'static str, s: &'a CpuStorage, layout: &Layout) -> Result<std::borrow::Cow<'a, [T]>> {
    let v = T::slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })?;
    Ok(contiguous_cow(v, layout))
}

fn conv2d_typed<T: Float + WithDType>(
    x: &[T],
    l: &Layout,
    w: &CpuStorage,
    wl: &Layout,
    bias: Option<(&CpuStorage, &Layout)>,
    spec: &Conv2dSpec,
) -> Result<(Vec<T>, Option<CpuStorage>)> {
    let w = typed::<T>("conv2d", w, wl)?;
    let bias = bias.map(|(b, bl)| typed::<T>("conv2d", b, bl)).transpose()?;
    let (y, idx) = conv::conv2d(&contiguous_cow(x, l), l.dims(), &w, wl.dims(), bias.as_deref(), spec);
    Ok((y, idx.map(CpuStorage::U32)))
}

#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn conv2d_backward_typed<T: Float + WithDType>(
    x: &[T],
    l: &Layout,
    w: &CpuStorage,
    wl: &Layout,
    g: &CpuStorage,
    gl: &Layout,
    y: Option<&CpuStorage>,
    argmax: Option<&CpuStorage>,
    spec: &Conv2dSpec,
    need: [bool; 3],
) -> Result<(Option<CpuStorage>, Option<CpuStorage>, Option<CpuStorage>)> {
    let w = typed::<T>("conv2d backward", w, wl)?;
    let g = typed::<T>("conv2d backward", g, gl)?;
    let y = y.map(|y| whole::<T>("conv2d backward", y)).transpose()?;
    let argmax = argmax.map(|a| index_slice("conv2d backward", a)).transpose()?;
    if y.is_some_and(|y| y.len() != g.len()) || argmax.is_some_and(|a| a.len() != g.len()) {
        return crate::error::invalid(
            "conv2d backward",
            "internal: the output, its pool indices and its gradient differ in length",
        );
    }
    if argmax.is_some() != spec.pool.is_some() {
        return crate::error::invalid(
            "conv2d backward",
            "internal: pool indices without a pool, or a pool without them",
        );
    }
    let (dx, dw, db) = conv::conv2d_backward(&contiguous_cow(x, l), l.dims(), &w, wl.dims(), &g, y, argmax, spec, need);
    Ok((dx.map(T::wrap), dw.map(T::wrap), db.map(T::wrap)))
}

/// All the elements of `s`, which must hold `T`.
fn whole<'a, T: WithDType>(op: &'static str, s: &'a CpuStorage) -> Result<&'a [T]> {
    T::slice(s).ok_or(Error::DTypeMismatch { op, lhs: T::DTYPE, rhs: s.dtype() })
}

fn layer_norm_typed<T: Float + WithDType>(
    x: &[T],
    l: &Layout,
    w: Option<(&CpuStorage, &Layout)>,
    b: Option<(&CpuStorage, &Layout)>,
    n: usize,
    eps: f64,
) -> Result<(CpuStorage, CpuStorage, CpuStorage)> {
    let w = w.map(|(w, wl)| typed::<T>("layer_norm", w, wl)).transpose()?;
    let b = b.map(|(b, bl)| typed::<T>("layer_norm", b, bl)).transpose()?;
    let (y, mean, rstd) = norm::layer_norm(&contiguous_cow(x, l), w.as_deref(), b.as_deref(), n, eps);
    Ok((T::wrap(y), T::wrap(mean), T::wrap(rstd)))
}

#[allow(clippy::type_complexity)]
fn layer_norm_backward_typed<T: Float + WithDType>(
    x: &[T],
    l: &Layout,
    w: Option<(&CpuStorage, &Layout)>,
    stats: (&CpuStorage, &CpuStorage),
    g: (&CpuStorage, &Layout),
    n: usize,
    need: [bool; 3],
) -> Result<(CpuStorage, Option<CpuStorage>, Option<CpuStorage>)> {
    let op = "layer_norm backward";
    let w = w.map(|(w, wl)| typed::<T>(op, w, wl)).transpose()?;
    let (mean, rstd, g) = (whole::<T>(op, stats.0)?, whole::<T>(op, stats.1)?, typed::<T>(op, g.0, g.1)?);
    let x = contiguous_cow(x, l);
    let (dx, dw, db) = norm::layer_norm_backward(&x, w.as_deref(), mean, rstd, &g, n, need[1], need[2]);
    Ok((T::wrap(dx), dw.map(T::wrap), db.map(T::wrap)))
}

fn convert<S: WithDType, D: WithDType>(v: &[S], layout: &Layout) -> Vec<D> {
    let c = contiguous_cow(v, layout);
    c.iter().map(|&x| D::from_f64(x.to_f64())).collect()
}

fn convert_to<S: WithDType>(v: &[S], layout: &Layout, dtype: DType) -> CpuStorage {
    match dtype {
        DType::F32 => CpuStorage::F32(convert(v, layout)),
        DType::F64 => CpuStorage::F64(convert(v, layout)),
        DType::U8 => CpuStorage::U8(convert(v, layout)),
        DType::U32 => CpuStorage::U32(convert(v, layout)),
    }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::U32(_) => DType::U32,
        }
    }

    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
            CpuStorage::U32(v) => v.len(),
        }
    }

    fn copy_strided(&self, layout: &Layout) -> Result<Self> {
        Ok(any_map!(self, |v| elementwise::gather_strided(v, layout)))
    }

    fn to_dtype(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        Ok(match self {
            CpuStorage::F32(v) => convert_to(v, layout, dtype),
            CpuStorage::F64(v) => convert_to(v, layout, dtype),
            CpuStorage::U8(v) => convert_to(v, layout, dtype),
            CpuStorage::U32(v) => convert_to(v, layout, dtype),
        })
    }

    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        Ok(float_map!(self, "unary", |v| elementwise::unary(v, layout, op)))
    }

    fn unary_backward(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self> {
        Ok(match (self, y, grad) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(elementwise::unary_backward(x, y, g, op))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(elementwise::unary_backward(x, y, g, op))
            }
            (x, _, g) => return Err(Error::DTypeMismatch { op: "unary backward", lhs: x.dtype(), rhs: g.dtype() }),
        })
    }

    fn unary_backward_scalar(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self> {
        Ok(match (self, y, grad) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(g)) if g.len() == 1 => {
                CpuStorage::F32(elementwise::unary_backward_scalar(x, y, g[0], op))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(g)) if g.len() == 1 => {
                CpuStorage::F64(elementwise::unary_backward_scalar(x, y, g[0], op))
            }
            (_, _, g) if g.len() != 1 => {
                let msg = format!("one gradient value expected, found {}", g.len());
                return Err(Error::Invalid { op: "unary backward", msg });
            }
            (x, _, g) => return Err(Error::DTypeMismatch { op: "unary backward", lhs: x.dtype(), rhs: g.dtype() }),
        })
    }

    fn square_sum(&self, layout: &Layout) -> Result<Self> {
        Ok(float_map!(self, "mse_loss", |v| reduce::square_sum(v, layout)))
    }

    fn relu_grad_col_sums(&self, y: Option<&Self>, n: usize) -> Result<(Option<Self>, Self)> {
        fn run<T: Float>(g: &[T], y: Option<&CpuStorage>, n: usize) -> Result<(Option<Vec<T>>, Vec<T>)> {
            let y = match y {
                Some(y) => Some(T::slice(y).ok_or(Error::DTypeMismatch {
                    op: "linear backward",
                    lhs: T::DTYPE,
                    rhs: y.dtype(),
                })?),
                None => None,
            };
            Ok(elementwise::relu_grad_col_sums(g, y, n))
        }
        Ok(match self {
            CpuStorage::F32(g) => {
                let (m, s) = run(g, y, n)?;
                (m.map(CpuStorage::F32), CpuStorage::F32(s))
            }
            CpuStorage::F64(g) => {
                let (m, s) = run(g, y, n)?;
                (m.map(CpuStorage::F64), CpuStorage::F64(s))
            }
            other => return Err(unsupported("linear backward", other.dtype(), "f32 or f64")),
        })
    }

    fn bias_relu_(&mut self, bias: Option<(&Self, &Layout)>, relu: bool) -> Result<()> {
        fn run<T: Float>(out: &mut [T], bias: Option<(&CpuStorage, &Layout)>, relu: bool) -> Result<()> {
            let bias = match bias {
                Some((b, bl)) => Some(contiguous_cow(
                    T::slice(b).ok_or(Error::DTypeMismatch { op: "linear", lhs: T::DTYPE, rhs: b.dtype() })?,
                    bl,
                )),
                None => None,
            };
            elementwise::bias_relu_(out, bias.as_deref(), relu);
            Ok(())
        }
        match self {
            CpuStorage::F32(out) => run(out, bias, relu),
            CpuStorage::F64(out) => run(out, bias, relu),
            other => Err(unsupported("linear", other.dtype(), "f32 or f64")),
        }
    }

    fn binary(&self, l: &Layout, rhs: &Self, r: &Layout, op: BinaryOp) -> Result<Self> {
        Ok(float_map2!(self, rhs, "binary", |a, b| elementwise::binary(a, l, b, r, op)))
    }

    fn cmp(&self, l: &Layout, rhs: &Self, r: &Layout, op: CmpOp) -> Result<Self> {
        let out = match (self, rhs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => elementwise::cmp(a, l, b, r, op),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => elementwise::cmp(a, l, b, r, op),
            (CpuStorage::U8(a), CpuStorage::U8(b)) => elementwise::cmp(a, l, b, r, op),
            (CpuStorage::U32(a), CpuStorage::U32(b)) => elementwise::cmp(a, l, b, r, op),
            (a, b) => return Err(Error::DTypeMismatch { op: "compare", lhs: a.dtype(), rhs: b.dtype() }),
        };
        Ok(CpuStorage::U8(out))
    }

    fn reduce(&self, layout: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        Ok(float_map!(self, "reduce", |v| reduce::reduce(v, layout, dims, op)))
    }

    fn arg_reduce(&self, layout: &Layout, dim: usize, max: bool) -> Result<Self> {
        Ok(CpuStorage::U32(match self {
            CpuStorage::F32(v) => reduce::arg_reduce(v, layout, dim, max),
            CpuStorage::F64(v) => reduce::arg_reduce(v, layout, dim, max),
            other => return Err(unsupported("argmax", other.dtype(), "f32 or f64")),
        }))
    }

    fn matmul(&self, l: &Layout, rhs: &Self, r: &Layout, dims: &MatmulDims) -> Result<Self> {
        Ok(float_map2!(self, rhs, "matmul", |a, b| matmul::matmul(a, l, b, r, dims)))
    }

    fn softmax_last(&self, layout: &Layout, log: bool) -> Result<Self> {
        Ok(float_map!(self, "softmax", |v| reduce::softmax_last(&contiguous_cow(v, layout), layout.dims(), log)))
    }

    fn softmax_last_backward(&self, grad: &Self, len: usize, log: bool) -> Result<Self> {
        Ok(match (self, grad) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => CpuStorage::F32(reduce::softmax_last_backward(y, g, len, log)),
            (CpuStorage::F64(y), CpuStorage::F64(g)) => CpuStorage::F64(reduce::softmax_last_backward(y, g, len, log)),
            (y, g) => return Err(Error::DTypeMismatch { op: "softmax backward", lhs: y.dtype(), rhs: g.dtype() }),
        })
    }

    fn where_cond(&self, m: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout) -> Result<Self> {
        let CpuStorage::U8(mask) = self else {
            return Err(unsupported("where_cond", self.dtype(), "a u8 mask"));
        };
        Ok(match (a, b) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => CpuStorage::F32(elementwise::select(mask, m, x, al, y, bl)),
            (CpuStorage::F64(x), CpuStorage::F64(y)) => CpuStorage::F64(elementwise::select(mask, m, x, al, y, bl)),
            (CpuStorage::U8(x), CpuStorage::U8(y)) => CpuStorage::U8(elementwise::select(mask, m, x, al, y, bl)),
            (CpuStorage::U32(x), CpuStorage::U32(y)) => CpuStorage::U32(elementwise::select(mask, m, x, al, y, bl)),
            (x, y) => return Err(Error::DTypeMismatch { op: "where_cond", lhs: x.dtype(), rhs: y.dtype() }),
        })
    }

    fn index_select(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self> {
        let idx = contiguous_cow(index_slice("index_select", idx)?, il);
        Ok(any_map!(self, |v| index::index_select(&contiguous_cow(v, layout), layout.dims(), &idx, dim)?))
    }

    fn index_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self> {
        let idx = contiguous_cow(index_slice("index_add", idx)?, il);
        Ok(float_map!(self, "index_add", |v| index::index_add(v, &idx, dim, shape)?))
    }

    fn gather(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self> {
        let idx = contiguous_cow(index_slice("gather", idx)?, il);
        Ok(any_map!(self, |v| index::gather(&contiguous_cow(v, layout), layout.dims(), &idx, il.dims(), dim)?))
    }

    fn scatter_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self> {
        let idx = contiguous_cow(index_slice("scatter_add", idx)?, il);
        Ok(float_map!(self, "scatter_add", |v| index::scatter_add(v, &idx, il.dims(), dim, shape)?))
    }

    fn copy_into(&self, src: &Layout, dst: &mut Self, dst_layout: &Layout) -> Result<()> {
        match (self, dst) {
            (CpuStorage::F32(s), CpuStorage::F32(d)) => elementwise::copy_into(s, src, d, dst_layout),
            (CpuStorage::F64(s), CpuStorage::F64(d)) => elementwise::copy_into(s, src, d, dst_layout),
            (CpuStorage::U8(s), CpuStorage::U8(d)) => elementwise::copy_into(s, src, d, dst_layout),
            (CpuStorage::U32(s), CpuStorage::U32(d)) => elementwise::copy_into(s, src, d, dst_layout),
            (s, d) => return Err(Error::DTypeMismatch { op: "copy", lhs: s.dtype(), rhs: d.dtype() }),
        }
        Ok(())
    }

    fn full(dtype: DType, n: usize, v: f64) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![v as f32; n]),
            DType::F64 => CpuStorage::F64(vec![v; n]),
            DType::U8 => CpuStorage::U8(vec![v as u8; n]),
            DType::U32 => CpuStorage::U32(vec![v as u32; n]),
        }
    }

    fn unfold2d(&self, layout: &Layout, win: &Window2d) -> Result<Self> {
        Ok(float_map!(self, "unfold2d", |v| conv::unfold2d(&contiguous_cow(v, layout), layout.dims(), win)))
    }

    fn fold2d(&self, shape: &Shape, win: &Window2d) -> Result<Self> {
        Ok(float_map!(self, "fold2d", |v| conv::fold2d(v, shape.dims(), win)))
    }

    fn conv2d(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        bias: Option<(&Self, &Layout)>,
        spec: &Conv2dSpec,
    ) -> Result<(Self, Option<Self>)> {
        match self {
            CpuStorage::F32(v) => conv2d_typed(v, l, w, wl, bias, spec).map(|(y, i)| (CpuStorage::F32(y), i)),
            CpuStorage::F64(v) => conv2d_typed(v, l, w, wl, bias, spec).map(|(y, i)| (CpuStorage::F64(y), i)),
            other => Err(unsupported("conv2d", other.dtype(), "f32 or f64")),
        }
    }

    fn layer_norm(
        &self,
        l: &Layout,
        w: Option<(&Self, &Layout)>,
        b: Option<(&Self, &Layout)>,
        n: usize,
        eps: f64,
    ) -> Result<(Self, Self, Self)> {
        match self {
            CpuStorage::F32(v) => layer_norm_typed(v, l, w, b, n, eps),
            CpuStorage::F64(v) => layer_norm_typed(v, l, w, b, n, eps),
            other => Err(unsupported("layer_norm", other.dtype(), "f32 or f64")),
        }
    }

    fn layer_norm_backward(
        &self,
        l: &Layout,
        w: Option<(&Self, &Layout)>,
        stats: (&Self, &Self),
        g: (&Self, &Layout),
        n: usize,
        need: [bool; 3],
    ) -> Result<(Self, Option<Self>, Option<Self>)> {
        match self {
            CpuStorage::F32(v) => layer_norm_backward_typed(v, l, w, stats, g, n, need),
            CpuStorage::F64(v) => layer_norm_backward_typed(v, l, w, stats, g, n, need),
            other => Err(unsupported("layer_norm backward", other.dtype(), "f32 or f64")),
        }
    }

    fn conv2d_backward(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        g: &Self,
        gl: &Layout,
        y: Option<&Self>,
        argmax: Option<&Self>,
        spec: &Conv2dSpec,
        need: [bool; 3],
    ) -> Result<(Option<Self>, Option<Self>, Option<Self>)> {
        match self {
            CpuStorage::F32(v) => conv2d_backward_typed(v, l, w, wl, g, gl, y, argmax, spec, need),
            CpuStorage::F64(v) => conv2d_backward_typed(v, l, w, wl, g, gl, y, argmax, spec, need),
            other => Err(unsupported("conv2d backward", other.dtype(), "f32 or f64")),
        }
    }

    fn max_pool2d(&self, layout: &Layout, win: &Window2d) -> Result<(Self, Self)> {
        let (values, argmax) = match self {
            CpuStorage::F32(v) => {
                let (y, i) = pool::max_pool2d(&contiguous_cow(v, layout), layout.dims(), win);
                (CpuStorage::F32(y), i)
            }
            CpuStorage::F64(v) => {
                let (y, i) = pool::max_pool2d(&contiguous_cow(v, layout), layout.dims(), win);
                (CpuStorage::F64(y), i)
            }
            other => return Err(unsupported("max_pool2d", other.dtype(), "f32 or f64")),
        };
        Ok((values, CpuStorage::U32(argmax)))
    }

    fn max_pool2d_backward(&self, layout: &Layout, argmax: &Self, shape: &Shape) -> Result<Self> {
        let idx = index_slice("max_pool2d backward", argmax)?;
        Ok(float_map!(self, "max_pool2d backward", |v| pool::max_pool2d_backward(
            &contiguous_cow(v, layout),
            idx,
            shape.dims()
        )))
    }
}
