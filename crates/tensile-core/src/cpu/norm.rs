//! Layer normalization over contiguous rows, forward and backward each one fused pass per row.
//!
//! Row sums use [`fold_row`]'s fixed order. The weight and bias gradients are sums over rows:
//! each task of a fixed number of rows (set by the row length alone) sums its rows in order, and
//! the task sums are added in task order, so any thread count gives the same bits.

use rayon::prelude::*;

use super::reduce::fold_row;
use super::{CHUNK, PAR_MIN};
use crate::dtype::{Float, WithDType};
use crate::ops::ReduceOp;

/// Rows per task for rows of `n` elements.
fn rows_per_task(n: usize) -> usize {
    (CHUNK / n).max(1)
}

fn parallel(len: usize) -> bool {
    len >= PAR_MIN && crate::threads::current() > 1
}

/// The sum of a row in [`fold_row`]'s order.
#[inline(always)]
fn sum<T: Float>(x: &[T]) -> T {
    fold_row(x, ReduceOp::Sum, false)
}

/// `y = (x - mean) * rstd * w + b` per row of `n`, with `rstd = 1 / sqrt(var + eps)` and the
/// biased variance; returns `(y, mean, rstd)`, the statistics one per row.
pub(crate) fn layer_norm<T: Float + WithDType>(
    x: &[T],
    w: Option<&[T]>,
    b: Option<&[T]>,
    n: usize,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len() / n;
    let (mut y, mut mean, mut rstd) = (vec![T::ZERO; x.len()], vec![T::ZERO; rows], vec![T::ZERO; rows]);
    let (inv_n, eps) = (T::ONE / T::from_f64(n as f64), T::from_f64(eps));
    let per = rows_per_task(n);
    let task = |i: usize, (yc, (mc, rc)): (&mut [T], (&mut [T], &mut [T]))| {
        crate::simd::wide(
            #[inline(always)]
            || {
                let mut sq = vec![T::ZERO; n];
                let xc = &x[i * per * n..];
                for (((yr, xr), m), r) in yc.chunks_exact_mut(n).zip(xc.chunks_exact(n)).zip(mc).zip(rc) {
                    let mu = sum(xr) * inv_n;
                    for ((c, s), &v) in yr.iter_mut().zip(sq.iter_mut()).zip(xr) {
                        *c = v - mu;
                        *s = *c * *c;
                    }
                    let rs = T::ONE / (sum(&sq) * inv_n + eps).sqrt();
                    for y in yr.iter_mut() {
                        *y = *y * rs;
                    }
                    if let Some(w) = w {
                        yr.iter_mut().zip(w).for_each(|(y, &w)| *y = *y * w);
                    }
                    if let Some(b) = b {
                        yr.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
                    }
                    (*m, *r) = (mu, rs);
                }
            },
        )
    };
    if parallel(x.len()) {
        let stats = mean.par_chunks_mut(per).zip(rstd.par_chunks_mut(per));
        y.par_chunks_mut(per * n).zip(stats).enumerate().for_each(|(i, c)| task(i, c));
    } else {
        let stats = mean.chunks_mut(per).zip(rstd.chunks_mut(per));
        y.chunks_mut(per * n).zip(stats).enumerate().for_each(|(i, c)| task(i, c));
    }
    (y, mean, rstd)
}

/// The gradients of [`layer_norm`] from its input `x`, weight, saved statistics and the output
/// gradient `g`: `(dx, dw, db)`, `dw` and `db` only where `need_w` / `need_b` ask. With
/// `x̂ = (x - mean) * rstd` and `d = g * w`: `dx = rstd * (d - mean(d) - x̂ * mean(d * x̂))`,
/// `dw = Σ_rows g * x̂`, `db = Σ_rows g`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn layer_norm_backward<T: Float + WithDType>(
    x: &[T],
    w: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
    g: &[T],
    n: usize,
    need_w: bool,
    need_b: bool,
) -> (Vec<T>, Option<Vec<T>>, Option<Vec<T>>) {
    let mut dx = vec![T::ZERO; x.len()];
    let inv_n = T::ONE / T::from_f64(n as f64);
    let per = rows_per_task(n);
    // Each task returns its rows' sums of `g * x̂` and of `g` (empty when not needed).
    let task = |i: usize, dc: &mut [T]| -> (Vec<T>, Vec<T>) {
        crate::simd::wide(
            #[inline(always)]
            || {
                let mut dw = vec![T::ZERO; if need_w { n } else { 0 }];
                let mut db = vec![T::ZERO; if need_b { n } else { 0 }];
                let (mut xh, mut t) = (vec![T::ZERO; n], vec![T::ZERO; n]);
                let (xc, gc) = (&x[i * per * n..], &g[i * per * n..]);
                let stats = mean[i * per..].iter().zip(&rstd[i * per..]);
                for (((dr, xr), gr), (&mu, &rs)) in
                    dc.chunks_exact_mut(n).zip(xc.chunks_exact(n)).zip(gc.chunks_exact(n)).zip(stats)
                {
                    for (h, &v) in xh.iter_mut().zip(xr) {
                        *h = (v - mu) * rs;
                    }
                    match w {
                        Some(w) => dr.iter_mut().zip(gr).zip(w).for_each(|((d, &g), &w)| *d = g * w),
                        None => dr.copy_from_slice(gr),
                    }
                    for ((p, &d), &h) in t.iter_mut().zip(dr.iter()).zip(&xh) {
                        *p = d * h;
                    }
                    let (a, c) = (sum(dr) * inv_n, sum(&t) * inv_n);
                    for (d, &h) in dr.iter_mut().zip(&xh) {
                        *d = rs * ((*d - a) - h * c);
                    }
                    if need_w {
                        dw.iter_mut().zip(gr).zip(&xh).for_each(|((s, &g), &h)| *s += g * h);
                    }
                    if need_b {
                        db.iter_mut().zip(gr).for_each(|(s, &g)| *s += g);
                    }
                }
                (dw, db)
            },
        )
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = if parallel(x.len()) {
        dx.par_chunks_mut(per * n).enumerate().map(|(i, c)| task(i, c)).collect()
    } else {
        dx.chunks_mut(per * n).enumerate().map(|(i, c)| task(i, c)).collect()
    };
    let total = |pick: fn(&(Vec<T>, Vec<T>)) -> &Vec<T>| {
        let mut acc = vec![T::ZERO; n];
        for p in &partials {
            acc.iter_mut().zip(pick(p)).for_each(|(a, &v)| *a += v);
        }
        acc
    };
    let dw = need_w.then(|| total(|p| &p.0));
    let db = need_b.then(|| total(|p| &p.1));
    (dx, dw, db)
}
