//! im2col and col2im for 2-D windows. Work is split over `(batch, channel)` planes: each plane's
//! columns depend on that plane only, and in `fold2d` each plane's sums are written by one task in
//! a fixed order, so results do not depend on the thread count.
//!
//! Rows are filled a whole output row at a time: the range of output columns whose source lies
//! inside the input is computed once, so the inner loop is a plain copy (stride 1) or a strided
//! read, with no per-element bounds test.

use rayon::prelude::*;

use super::PAR_MIN;
use crate::dtype::Float;
use crate::ops::Window2d;

struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

fn geometry(dims: &[usize], win: &Window2d) -> Geometry {
    let (h, w) = (dims[2], dims[3]);
    let (oh, ow) = win.output_size(h, w).expect("internal: window checked by the caller");
    Geometry { planes: dims[0] * dims[1], h, w, oh, ow }
}

/// Source index in one input dimension, or `None` in the padding.
#[inline(always)]
fn source(o: usize, k: usize, stride: usize, dilation: usize, pad: usize, size: usize) -> Option<usize> {
    let i = (o * stride + k * dilation).checked_sub(pad)?;
    (i < size).then_some(i)
}

/// The outputs `o` in `lo..hi` whose source `o·stride + offset − pad` lies in `0..size`.
#[inline(always)]
fn valid_range(n: usize, offset: usize, stride: usize, pad: usize, size: usize) -> (usize, usize) {
    let lo = if pad > offset { (pad - offset).div_ceil(stride) } else { 0 };
    let hi = if size + pad > offset { ((size + pad - offset - 1) / stride + 1).min(n) } else { 0 };
    (lo.min(n), hi.max(lo.min(n)))
}

/// Splits `out` into one piece of `plane_out` elements per plane and runs `f(plane, piece)` on
/// each, on the pool when the work is large enough.
fn for_planes<T: Float>(out: &mut [T], plane_out: usize, total_in: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if plane_out == 0 {
        return;
    }
    if total_in.max(out.len()) >= PAR_MIN && crate::threads::current() > 1 {
        out.par_chunks_mut(plane_out).enumerate().for_each(|(p, c)| f(p, c));
    } else {
        out.chunks_mut(plane_out).enumerate().for_each(|(p, c)| f(p, c));
    }
}

/// Writes row `(ki, kj)` of one plane's columns (`OH·OW` values) into `dst`; padding positions
/// are left as they are.
#[inline(always)]
fn fill_row<T: Float>(plane: &[T], g: &Geometry, win: &Window2d, ki: usize, kj: usize, dst: &mut [T]) {
    let (sw, dw, pw) = (win.stride.1, win.dilation.1, win.padding.1);
    let (lo, hi) = valid_range(g.ow, kj * dw, sw, pw, g.w);
    if lo >= hi {
        return;
    }
    for oh in 0..g.oh {
        let Some(ih) = source(oh, ki, win.stride.0, win.dilation.0, win.padding.0, g.h) else { continue };
        let src = &plane[ih * g.w..(ih + 1) * g.w];
        let dst = &mut dst[oh * g.ow..(oh + 1) * g.ow];
        let first = lo * sw + kj * dw - pw;
        if sw == 1 {
            dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
        } else {
            for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                *d = src[first + i * sw];
            }
        }
    }
}

/// Adds row `(ki, kj)` of one plane's columns (`OH·OW` values) back into the input plane.
#[inline(always)]
fn add_row<T: Float>(row: &[T], g: &Geometry, win: &Window2d, ki: usize, kj: usize, plane: &mut [T]) {
    let (sw, dw, pw) = (win.stride.1, win.dilation.1, win.padding.1);
    let (lo, hi) = valid_range(g.ow, kj * dw, sw, pw, g.w);
    if lo >= hi {
        return;
    }
    for oh in 0..g.oh {
        let Some(ih) = source(oh, ki, win.stride.0, win.dilation.0, win.padding.0, g.h) else { continue };
        let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
        let src = &row[oh * g.ow..(oh + 1) * g.ow];
        let first = lo * sw + kj * dw - pw;
        if sw == 1 {
            for (d, &v) in dst[first..first + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                *d += v;
            }
        } else {
            for (i, &v) in src[lo..hi].iter().enumerate() {
                dst[first + i * sw] += v;
            }
        }
    }
}

/// `[B, C, H, W] -> [B, C, KH·KW, OH·OW]`.
pub(crate) fn unfold2d<T: Float>(x: &[T], dims: &[usize], win: &Window2d) -> Vec<T> {
    let g = geometry(dims, win);
    let (kh, kw) = win.kernel;
    let (l, hw) = (g.oh * g.ow, g.h * g.w);
    let mut out = vec![T::from_f64(win.pad_value); g.planes * kh * kw * l];
    for_planes(&mut out, kh * kw * l, x.len(), |p, cols| {
        let plane = &x[p * hw..(p + 1) * hw];
        for ki in 0..kh {
            for kj in 0..kw {
                fill_row(plane, &g, win, ki, kj, &mut cols[(ki * kw + kj) * l..(ki * kw + kj + 1) * l]);
            }
        }
    });
    out
}

/// The adjoint of `unfold2d`: columns `[B, C, KH·KW, OH·OW]` summed into `[B, C, H, W]`.
pub(crate) fn fold2d<T: Float>(cols: &[T], dims: &[usize], win: &Window2d) -> Vec<T> {
    let g = geometry(dims, win);
    let (kh, kw) = win.kernel;
    let (k, l, hw) = (kh * kw, g.oh * g.ow, g.h * g.w);
    let mut out = vec![T::ZERO; g.planes * hw];
    for_planes(&mut out, hw, cols.len(), |p, plane| {
        let pc = &cols[p * k * l..(p + 1) * k * l];
        for ki in 0..kh {
            for kj in 0..kw {
                add_row(&pc[(ki * kw + kj) * l..(ki * kw + kj + 1) * l], &g, win, ki, kj, plane);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(stride: usize, padding: usize, dilation: usize, pad_value: f64) -> Window2d {
        Window2d {
            kernel: (3, 2),
            stride: (stride, stride + 1),
            padding: (padding, padding),
            dilation: (dilation, 1),
            pad_value,
        }
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::Rng::seed(seed);
        (0..n).map(|_| rng.next_f64() - 0.5).collect()
    }

    /// Every column element equals the input pixel (or the pad value) the definition names, and
    /// `fold2d` is the adjoint of `unfold2d`: `<unfold(x), c> == <x, fold(c)>`.
    #[test]
    fn columns_match_the_definition_and_fold_is_the_adjoint() {
        let dims = [3, 2, 7, 9];
        let x = values(dims.iter().product(), 1);
        for (stride, padding, dilation) in [(1, 0, 1), (1, 1, 1), (2, 1, 2), (3, 1, 1), (1, 4, 1)] {
            let win = window(stride, padding, dilation, -7.0);
            let (oh, ow) = win.output_size(dims[2], dims[3]).unwrap();
            let l = oh * ow;
            let cols = unfold2d(&x, &dims, &win);
            assert_eq!(cols.len(), dims[0] * dims[1] * 6 * l);
            for p in 0..dims[0] * dims[1] {
                for k in 0..6 {
                    for o in 0..l {
                        let (ki, kj, o_h, o_w) = (k / 2, k % 2, o / ow, o % ow);
                        let ih = (o_h * win.stride.0 + ki * win.dilation.0).checked_sub(padding);
                        let iw = (o_w * win.stride.1 + kj).checked_sub(padding);
                        let want = match (ih, iw) {
                            (Some(i), Some(j)) if i < dims[2] && j < dims[3] => x[(p * dims[2] + i) * dims[3] + j],
                            _ => -7.0,
                        };
                        assert_eq!(cols[(p * 6 + k) * l + o], want, "window {win:?}, plane {p}, row {k}, column {o}");
                    }
                }
            }
            let g = values(cols.len(), 2);
            let folded = fold2d(&g, &dims, &win);
            let zero = window(stride, padding, dilation, 0.0);
            let lhs: f64 = unfold2d(&x, &dims, &zero).iter().zip(&g).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&folded).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-12, "window {win:?}: {lhs} vs {rhs}");
        }
    }

    /// Above the parallel threshold, pools of 1, 2 and 4 threads give the same bits.
    #[test]
    fn unfold_and_fold_do_not_depend_on_the_thread_count() {
        let dims = [8, 16, 20, 20];
        let x: Vec<f32> = values(dims.iter().product(), 3).into_iter().map(|v| v as f32).collect();
        let win = window(1, 1, 1, 0.0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let cols = unfold2d(&x, &dims, &win);
                assert!(cols.len() >= PAR_MIN);
                let folded = fold2d(&cols, &dims, &win);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                (bits(&cols), bits(&folded))
            })
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(4), one);
    }
}
