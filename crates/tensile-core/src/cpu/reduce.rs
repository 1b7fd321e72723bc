//! Reductions, arg-reductions and the fused softmax.
//!
//! Every reduction is brought to the form `[outer, reduced, inner]` (by a permuted copy when the
//! reduced dimensions are not adjacent). Sums over a long row add fixed blocks of `BLOCK`
//! elements (eight lanes each, so the loop vectorizes), then add the block sums left to right:
//! the order depends only on the length, never on the threads, so any thread count gives the
//! same bits. Column reductions (`inner > 1`) add rows in order, one output element at a time.

use rayon::prelude::*;

use super::PAR_MIN;
use crate::dtype::Float;
use crate::ops::{ReduceOp, UnaryOp};
use crate::shape::{Layout, Shape};

/// Elements summed sequentially before their partial sum joins the others.
const BLOCK: usize = 4096;

/// `x` folded with `f` in eight lanes (element `i` joins lane `i % 8`), the lanes joined
/// pairwise, then the tail left to right: a loop the compiler vectorizes, in an order fixed by the
/// length alone.
#[inline(always)]
fn fold_lanes<T: Float>(x: &[T], init: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    let mut s = f(f(f(acc[0], acc[4]), f(acc[1], acc[5])), f(f(acc[2], acc[6]), f(acc[3], acc[7])));
    for &v in rem {
        s = f(s, v);
    }
    s
}

#[inline(always)]
fn fold_seq<T: Float>(x: &[T], op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => fold_lanes(x, T::ZERO, |a, b| a + b),
        // Exact operations: the lanes give the same result as a scan, NaN ignored the same way.
        ReduceOp::Max => fold_lanes(x, T::NEG_INFINITY, T::max),
        ReduceOp::Min => fold_lanes(x, T::INFINITY, T::min),
    }
}

#[inline]
fn combine<T: Float>(a: T, b: T, op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    }
}

/// One row reduced in the fixed blocked order; the blocks run in parallel when asked.
#[inline(always)]
pub(super) fn fold_row<T: Float>(x: &[T], op: ReduceOp, parallel: bool) -> T {
    if x.len() <= BLOCK {
        return fold_seq(x, op);
    }
    let partials: Vec<T> = if parallel {
        x.par_chunks(BLOCK).map(|c| fold_seq(c, op)).collect()
    } else {
        x.chunks(BLOCK).map(|c| fold_seq(c, op)).collect()
    };
    let mut acc = partials[0];
    for &p in &partials[1..] {
        acc = combine(acc, p, op);
    }
    acc
}

/// `[outer, red, inner] -> [outer, inner]`.
fn reduce3<T: Float>(x: &[T], outer: usize, red: usize, inner: usize, op: ReduceOp) -> Vec<T> {
    let init = match op {
        ReduceOp::Sum => T::ZERO,
        ReduceOp::Max => T::NEG_INFINITY,
        ReduceOp::Min => T::INFINITY,
    };
    let mut out = vec![init; outer * inner];
    if red == 0 || out.is_empty() {
        return out;
    }
    let threads = crate::threads::current();
    if inner == 1 {
        let big = x.len() >= PAR_MIN && threads > 1;
        if big && outer >= 2 * threads {
            out.par_iter_mut().enumerate().for_each(|(o, y)| *y = fold_row(&x[o * red..(o + 1) * red], op, false));
        } else {
            for (o, y) in out.iter_mut().enumerate() {
                *y = fold_row(&x[o * red..(o + 1) * red], op, big);
            }
        }
        return out;
    }
    // Column reduction: each output element accumulates its column top to bottom; the lanes of
    // a vector are neighbouring columns, so the width does not change the sums.
    let run = |s: usize, c: &mut [T]| {
        crate::simd::wide(
            #[inline(always)]
            || match op {
                ReduceOp::Sum => run_columns(x, s, c, red, inner, |a, b| a + b),
                ReduceOp::Max => run_columns(x, s, c, red, inner, |a: T, b| a.max(b)),
                ReduceOp::Min => run_columns(x, s, c, red, inner, |a: T, b| a.min(b)),
            },
        )
    };
    if x.len() >= PAR_MIN {
        // Chunk by output elements so every worker reads whole columns.
        let per = (PAR_MIN / red).max(64);
        if out.len() > per && threads > 1 {
            out.par_chunks_mut(per).enumerate().for_each(|(k, c)| run(k * per, c));
            return out;
        }
    }
    run(0, &mut out);
    out
}

/// Columns per register block of a column reduction (four AVX-512 registers of `f32`) ...
const COLS: usize = 64;
/// ... used for rows of at most this many elements.
const SHORT_ROW: usize = 256;

/// Output elements `s..s + c.len()` of a column reduction of `[outer, red, inner]`, accumulated
/// into `c` (which holds the initial values) by `f`.
#[inline(always)]
fn run_columns<T: Float>(x: &[T], s: usize, c: &mut [T], red: usize, inner: usize, f: impl Fn(T, T) -> T) {
    let mut i = s;
    let mut rest = c;
    while !rest.is_empty() {
        let (o, j0) = (i / inner, i % inner);
        let len = (inner - j0).min(rest.len());
        let (seg, tail) = rest.split_at_mut(len);
        let base = o * red * inner + j0;
        // Short rows: blocks of `COLS` columns accumulate in registers over all rows and are
        // stored once, since accumulating in `seg` itself makes each row wait for the previous
        // row's store to the same place. Long rows stream through `seg` (no such wait, and the
        // input is read in order).
        let mut j = 0;
        while len <= SHORT_ROW && j + COLS <= len {
            let mut acc: [T; COLS] = seg[j..j + COLS].try_into().expect("COLS elements");
            for r in 0..red {
                let row = &x[base + r * inner + j..base + r * inner + j + COLS];
                for (a, &b) in acc.iter_mut().zip(row) {
                    *a = f(*a, b);
                }
            }
            seg[j..j + COLS].copy_from_slice(&acc);
            j += COLS;
        }
        for r in 0..red {
            let row = &x[base + r * inner + j..base + r * inner + len];
            seg[j..].iter_mut().zip(row).for_each(|(a, &b)| *a = f(*a, b));
        }
        i += len;
        rest = tail;
    }
}

/// The sum of the squares of the elements of `layout`, as one value: the same bits as squaring
/// them (`unary` with `Square`) and summing the result over every dimension (`reduce`), without
/// the tensors in between (a mean squared error's forward pass).
pub(crate) fn square_sum<T: Float>(data: &[T], layout: &Layout) -> Vec<T> {
    let x = super::contiguous_cow(data, layout);
    let squares: Vec<T> = crate::simd::wide(
        #[inline(always)]
        || x.iter().map(|&v| UnaryOp::Square.fwd(v)).collect(),
    );
    if layout.dims().is_empty() {
        // A scalar: `reduce` over no dimension is a copy.
        return squares;
    }
    // `reduce3` with one output and `red` = every element.
    let big = squares.len() >= PAR_MIN && crate::threads::current() > 1;
    vec![fold_row(&squares, ReduceOp::Sum, big)]
}

/// Reduces the sorted `dims` of `layout`; the result is contiguous in the keepdim shape.
pub(crate) fn reduce<T: Float>(data: &[T], layout: &Layout, dims: &[usize], op: ReduceOp) -> Vec<T> {
    let shape = layout.dims();
    if dims.is_empty() {
        return super::elementwise::gather_strided(data, layout);
    }
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    if adjacent {
        let (k1, k2) = (dims[0], dims[dims.len() - 1] + 1);
        let outer = shape[..k1].iter().product();
        let red = shape[k1..k2].iter().product();
        let inner = shape[k2..].iter().product();
        let x = super::contiguous_cow(data, layout);
        return reduce3(&x, outer, red, inner, op);
    }
    let mut perm: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
    let outer = perm.iter().map(|&d| shape[d]).product();
    perm.extend_from_slice(dims);
    let red = dims.iter().map(|&d| shape[d]).product();
    let x = super::elementwise::gather_strided(data, &layout.permute(&perm));
    reduce3(&x, outer, red, 1, op)
}

/// Index of the first extreme element along `dim` (NaN counts as extreme).
pub(crate) fn arg_reduce<T: Float>(data: &[T], layout: &Layout, dim: usize, max: bool) -> Vec<u32> {
    let rank = layout.dims().len();
    let inner: usize = layout.dims()[dim + 1..].iter().product();
    if inner > 1
        && let Some(r) = layout.contiguous_range()
    {
        // `[outer, len, inner]` read in place (max pooling's windows): each row of `inner`
        // candidates is compared with the best so far, no permuted copy.
        let len = layout.dims()[dim];
        let x = &data[r];
        let mut out = vec![0u32; x.len() / len.max(1)];
        crate::simd::wide(
            #[inline(always)]
            || {
                let mut best = vec![T::ZERO; inner];
                for (xo, oo) in x.chunks_exact(len * inner).zip(out.chunks_exact_mut(inner)) {
                    best.copy_from_slice(&xo[..inner]);
                    for (i, row) in xo.chunks_exact(inner).enumerate().skip(1) {
                        for ((b, o), &v) in best.iter_mut().zip(oo.iter_mut()).zip(row) {
                            // The rule of the scan below: a strictly better value or the first NaN
                            // replaces the best, so ties keep the first index and a NaN stays.
                            let better = !b.is_nan() && (v.is_nan() || if max { v > *b } else { v < *b });
                            if better {
                                *b = v;
                                *o = i as u32;
                            }
                        }
                    }
                }
            },
        );
        return out;
    }
    let mut perm: Vec<usize> = (0..rank).filter(|&d| d != dim).collect();
    perm.push(dim);
    let x = super::elementwise::gather_strided(data, &layout.permute(&perm));
    let len = layout.dims()[dim];
    x.chunks(len)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                let b = row[best];
                if b.is_nan() {
                    break;
                }
                if v.is_nan() || (max && v > b) || (!max && v < b) {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Calls `f(first_row, rows)` on consecutive runs of whole rows of `len` elements of `out`, in
/// parallel tasks of about [`super::CHUNK`] elements when large, each compiled with wide vectors.
fn by_rows<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rows_per_task = (super::CHUNK / len).max(1);
    let task = rows_per_task * len;
    let run = |i: usize, c: &mut [T]| {
        crate::simd::wide(
            #[inline(always)]
            || f(i * rows_per_task, c),
        )
    };
    if out.len() >= PAR_MIN && crate::threads::current() > 1 {
        out.par_chunks_mut(task).enumerate().for_each(|(i, c)| run(i, c));
    } else {
        run(0, out);
    }
}

/// Softmax (or log-softmax) of each row of the contiguous `x` of shape `dims`.
///
/// Per row: the maximum, `exp(x - max)` written out, its sum (in [`fold_row`]'s order), then
/// one scaling pass: four loops that each vectorize.
pub(crate) fn softmax_last<T: Float>(x: &[T], dims: &[usize], log: bool) -> Vec<T> {
    let n = Shape::from(dims).elem_count();
    let len = dims.last().copied().unwrap_or(1);
    let mut out = vec![T::ZERO; n];
    if n == 0 || len == 0 {
        return out;
    }
    by_rows(
        &mut out,
        len,
        #[inline(always)]
        |first, rows| {
            for (yr, xr) in rows.chunks_exact_mut(len).zip(x[first * len..].chunks_exact(len)) {
                let m = fold_row(xr, ReduceOp::Max, false);
                // A row of -inf would give (-inf) - (-inf) = NaN; shift by 0 instead (result:
                // NaN-free for finite rows, and the same NaN PyTorch gives for an all -inf row).
                let m = if m.is_finite() { m } else { T::ZERO };
                for (y, &v) in yr.iter_mut().zip(xr) {
                    *y = (v - m).exp();
                }
                let s = fold_row(yr, ReduceOp::Sum, false);
                if log {
                    // `(v - m) - ln s`, not `v - (m + ln s)`: `v - m` is exact, while `m + ln s`
                    // would be rounded at the magnitude of the logits (a 1e-3 error for f32
                    // logits near 1e4).
                    let ln_s = s.ln();
                    for (y, &v) in yr.iter_mut().zip(xr) {
                        *y = (v - m) - ln_s;
                    }
                } else {
                    let inv = T::ONE / s;
                    for y in yr.iter_mut() {
                        *y = *y * inv;
                    }
                }
            }
        },
    );
    out
}

/// The gradient of [`softmax_last`] from its output `y` and the gradient `g` (both contiguous,
/// rows of `len`): softmax `y * (g - sum(g * y))`, log-softmax `g - exp(y) * sum(g)`, per row in
/// one pass. The same bits as those formulas computed op by op (each sum in [`fold_row`]'s
/// order).
pub(crate) fn softmax_last_backward<T: Float>(y: &[T], g: &[T], len: usize, log: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; y.len()];
    if out.is_empty() || len == 0 {
        return out;
    }
    by_rows(
        &mut out,
        len,
        #[inline(always)]
        |first, rows| {
            let (y, g) = (&y[first * len..], &g[first * len..]);
            for ((dr, yr), gr) in rows.chunks_exact_mut(len).zip(y.chunks_exact(len)).zip(g.chunks_exact(len)) {
                if log {
                    let s = fold_row(gr, ReduceOp::Sum, false);
                    for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                        *d = gv - yv.exp() * s;
                    }
                } else {
                    for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                        *d = gv * yv;
                    }
                    let s = fold_row(dr, ReduceOp::Sum, false);
                    for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                        *d = yv * (gv - s);
                    }
                }
            }
        },
    );
    out
}
