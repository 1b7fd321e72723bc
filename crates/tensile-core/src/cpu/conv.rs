//! im2col and col2im for 2-D windows. Work is split over `(batch, channel)` planes: each plane's
//! columns depend on that plane only, and in `fold2d` each plane's sums are written by one task in
//! a fixed order, so results do not depend on the thread count.

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

/// `[B, C, H, W] -> [B, C, KH·KW, OH·OW]`.
pub(crate) fn unfold2d<T: Float>(x: &[T], dims: &[usize], win: &Window2d) -> Vec<T> {
    let g = geometry(dims, win);
    let (kh, kw) = win.kernel;
    let l = g.oh * g.ow;
    let pad = T::from_f64(win.pad_value);
    let mut out = vec![pad; g.planes * kh * kw * l];
    for_planes(&mut out, kh * kw * l, x.len(), |p, cols| {
        let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &mut cols[(ki * kw + kj) * l..(ki * kw + kj + 1) * l];
                for oh in 0..g.oh {
                    let Some(ih) = source(oh, ki, win.stride.0, win.dilation.0, win.padding.0, g.h) else { continue };
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    let dst = &mut row[oh * g.ow..(oh + 1) * g.ow];
                    for (ow, d) in dst.iter_mut().enumerate() {
                        if let Some(iw) = source(ow, kj, win.stride.1, win.dilation.1, win.padding.1, g.w) {
                            *d = src[iw];
                        }
                    }
                }
            }
        }
    });
    out
}

/// The adjoint of `unfold2d`: columns `[B, C, KH·KW, OH·OW]` summed into `[B, C, H, W]`.
pub(crate) fn fold2d<T: Float>(cols: &[T], dims: &[usize], win: &Window2d) -> Vec<T> {
    let g = geometry(dims, win);
    let (kh, kw) = win.kernel;
    let l = g.oh * g.ow;
    let mut out = vec![T::ZERO; g.planes * g.h * g.w];
    for_planes(&mut out, g.h * g.w, cols.len(), |p, plane| {
        let pc = &cols[p * kh * kw * l..(p + 1) * kh * kw * l];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = &pc[(ki * kw + kj) * l..(ki * kw + kj + 1) * l];
                for oh in 0..g.oh {
                    let Some(ih) = source(oh, ki, win.stride.0, win.dilation.0, win.padding.0, g.h) else { continue };
                    let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
                    for (ow, &v) in row[oh * g.ow..(oh + 1) * g.ow].iter().enumerate() {
                        if let Some(iw) = source(ow, kj, win.stride.1, win.dilation.1, win.padding.1, g.w) {
                            dst[iw] += v;
                        }
                    }
                }
            }
        }
    });
    out
}
