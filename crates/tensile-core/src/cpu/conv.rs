//! im2col and col2im for 2-D windows. Work is split over `(batch, channel)` planes: each plane's
//! columns depend on that plane only, and in `fold2d` each plane's sums are written by one task in
//! a fixed order, so results do not depend on the thread count.
//!
//! Rows are filled a whole output row at a time: the ranges of output rows and columns whose
//! source lies inside the input are computed once per op for each kernel position (`Geometry`),
//! so the inner loop is a plain copy (stride 1) or a strided read, with no per-element bounds
//! test. For `f32` with a width stride of 1 and AVX-512, each run (a dozen values in a small
//! convolution) is one masked load and one masked store instead of a call to `memcpy`. col2im
//! runs the other way round there: each block of 16 input values is summed in a register over
//! the kernel positions and stored once, eight input rows at a time (`FoldPlan`), where adding
//! run by run into the plane waited on the overlapping stores of the previous kernel column.
//! col2im writes every input value, so its output is never zero-filled first.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::PAR_MIN;
use crate::dtype::Float;
use crate::ops::{Conv2dSpec, ReduceOp, UnaryOp, Window2d};

struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Where each kernel position `ki·KW + kj` meets the input, worked out once per op rather
    /// than once per row of columns (a division per dimension: W2's second convolution has 288
    /// such rows per sample).
    runs: Vec<Option<Runs>>,
}

fn geometry(dims: &[usize], win: &Window2d) -> Geometry {
    let (h, w) = (dims[2], dims[3]);
    let (oh, ow) = win.output_size(h, w).expect("internal: window checked by the caller");
    let mut g = Geometry { planes: dims[0] * dims[1], h, w, oh, ow, runs: Vec::new() };
    let (kh, kw) = win.kernel;
    let runs = (0..kh * kw).map(|k| Runs::new(&g, win, k / kw, k % kw)).collect();
    g.runs = runs;
    g
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
fn for_planes<T: Send>(out: &mut [T], plane_out: usize, total_in: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if plane_out == 0 {
        return;
    }
    if total_in.max(out.len()) >= PAR_MIN && crate::threads::current() > 1 {
        out.par_chunks_mut(plane_out).enumerate().for_each(|(p, c)| f(p, c));
    } else {
        out.chunks_mut(plane_out).enumerate().for_each(|(p, c)| f(p, c));
    }
}

/// Where row `(ki, kj)` of a plane's columns meets the input: output rows `top..bottom` and
/// columns `lo..hi` of each read it, output row `top` from `start` in the input plane and each
/// next one `step` further, column by column `stride` apart.
struct Runs {
    lo: usize,
    hi: usize,
    top: usize,
    bottom: usize,
    start: usize,
    step: usize,
    stride: usize,
}

impl Runs {
    /// `None` when no output position of `(ki, kj)` reads the input (all padding).
    fn new(g: &Geometry, win: &Window2d, ki: usize, kj: usize) -> Option<Runs> {
        let (sw, dw, pw) = (win.stride.1, win.dilation.1, win.padding.1);
        let (lo, hi) = valid_range(g.ow, kj * dw, sw, pw, g.w);
        let (sh, dh, ph) = (win.stride.0, win.dilation.0, win.padding.0);
        let (top, bottom) = valid_range(g.oh, ki * dh, sh, ph, g.h);
        if lo >= hi || top >= bottom {
            return None;
        }
        let start = (top * sh + ki * dh - ph) * g.w + lo * sw + kj * dw - pw;
        Some(Runs { lo, hi, top, bottom, start, step: sh * g.w, stride: sw })
    }
}

/// Writes the row of kernel position `k` (`ki·KW + kj`) of one plane's columns (`OH·OW` values)
/// into `dst`; padding positions are left as they are.
#[inline(always)]
fn fill_row<T: Float>(plane: &[T], g: &Geometry, k: usize, dst: &mut [T]) {
    let Some(&Runs { lo, hi, top, bottom, start, step, stride }) = g.runs[k].as_ref() else { return };
    #[cfg(target_arch = "x86_64")]
    if stride == 1 && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && avx512::available() {
        let rows = bottom - top;
        assert!(
            start + (rows - 1) * step + (hi - lo) <= plane.len() && (bottom - 1) * g.ow + hi <= dst.len(),
            "internal: fill_row bounds"
        );
        // SAFETY: `T` is `f32` (checked above) and the CPU has AVX-512 (`available`); the
        // assert bounds the last run read and the last run written.
        unsafe {
            avx512::copy_runs(
                plane.as_ptr().cast::<f32>().add(start),
                step,
                dst.as_mut_ptr().cast::<f32>().add(top * g.ow + lo),
                g.ow,
                rows,
                hi - lo,
            )
        };
        return;
    }
    for (r, oh) in (top..bottom).enumerate() {
        let src = &plane[start + r * step..];
        let dst = &mut dst[oh * g.ow..(oh + 1) * g.ow];
        if stride == 1 {
            dst[lo..hi].copy_from_slice(&src[..hi - lo]);
        } else {
            for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                *d = src[i * stride];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    /// Whether the CPU has AVX-512F (the standard library caches the answer).
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// `rows` runs of `n` floats, run `r` from `src + r·src_stride` to `dst + r·dst_stride`, 16
    /// at a time with a masked last piece: one load and one store for a run of up to 16.
    ///
    /// # Safety
    ///
    /// AVX-512F, and every run readable at `src` and writable at `dst`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_runs(
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
        rows: usize,
        n: usize,
    ) {
        let full = n / 16;
        let tail: __mmask16 = ((1u32 << (n % 16)) - 1) as u16;
        for r in 0..rows {
            // SAFETY: forwarded to the caller; a masked load or store touches only the lanes
            // of the mask.
            unsafe {
                let (s, d) = (src.add(r * src_stride), dst.add(r * dst_stride));
                for p in 0..full {
                    _mm512_storeu_ps(d.add(16 * p), _mm512_loadu_ps(s.add(16 * p)));
                }
                if tail != 0 {
                    let v = _mm512_maskz_loadu_ps(tail, s.add(16 * full));
                    _mm512_mask_storeu_ps(d.add(16 * full), tail, v);
                }
            }
        }
    }

    /// `super::weight_gradient` for `f32`, `KK <= 16`: output rows two at a time and output
    /// columns up to eight at a time, each output a dot product over `L` in 16 lanes (a masked
    /// last piece), the lanes summed by `_mm512_reduce_add_ps`. The order of every sum depends
    /// on the sizes alone.
    ///
    /// # Safety
    ///
    /// AVX-512F, and the sizes of `super::weight_gradient`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_gradient(
        g: *const f32,
        cols: *const f32,
        dst: *mut f32,
        (og, kk, l): (usize, usize, usize),
        accumulate: bool,
    ) {
        for (o, rows) in super::super::blocks_of(og, 2) {
            for (j, width) in super::super::blocks_of(kk, 8) {
                let f = block_kernel!(block, rows, width,
                    1, 1; 1, 2; 1, 3; 1, 4; 1, 5; 1, 6; 1, 7; 1, 8;
                    2, 1; 2, 2; 2, 3; 2, 4; 2, 5; 2, 6; 2, 7; 2, 8);
                // SAFETY: rows `o..o + rows` of G, rows `j..j + width` of the columns and the
                // outputs `[o.., j..]` (column-major, column stride OG) lie inside the caller's
                // buffers.
                unsafe { f(g.add(o * l), cols.add(j * l), dst.add(j * og + o), (og, l), accumulate) };
            }
        }
    }

    /// `R` output rows by `J` output columns of [`weight_gradient`].
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize, const J: usize>(
        g: *const f32,
        cols: *const f32,
        dst: *mut f32,
        (og, l): (usize, usize),
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); J]; R];
        let (full, tail) = (l / 16, lanes(0, l % 16));
        let mut step = |at: usize, mask: __mmask16| {
            let mut gv = [_mm512_setzero_ps(); R];
            for (r, v) in gv.iter_mut().enumerate() {
                // SAFETY: lanes of the mask within row `r` of G (`at + 16 <= L`, or the tail).
                *v = unsafe { _mm512_maskz_loadu_ps(mask, g.add(r * l + at)) };
            }
            for j in 0..J {
                // SAFETY: as above, in row `j` of the columns.
                let c = unsafe { _mm512_maskz_loadu_ps(mask, cols.add(j * l + at)) };
                for (row, &gr) in acc.iter_mut().zip(&gv) {
                    row[j] = _mm512_fmadd_ps(gr, c, row[j]);
                }
            }
        };
        for p in 0..full {
            step(16 * p, 0xffff);
        }
        if tail != 0 {
            step(16 * full, tail);
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let sum = _mm512_reduce_add_ps(v);
                // SAFETY: output `[r, j]` of this block, inside the caller's column-major OG×KK
                // buffer.
                unsafe {
                    let d = dst.add(j * og + r);
                    *d = if accumulate { *d + sum } else { sum };
                }
            }
        }
    }

    /// `super::fold_plane` with a plan: eight input rows at a time, 16 values of each at a time,
    /// each the sum in a register of what every kernel position puts there, in kernel position
    /// order (the eight rows' sums advance together, so their additions overlap). Lanes a
    /// position does not reach add `+0`, which leaves a sum that starts at `+0` as it is (such
    /// a sum is never `-0`).
    ///
    /// # Safety
    ///
    /// AVX-512F; `cols` holds the plane's `KHW·OH·OW` columns and `plane` its `H·W` values, for
    /// the geometry `plan` was made from.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fold_plane(cols: *const f32, g: &super::Geometry, plan: &super::FoldPlan, plane: *mut f32) {
        const R: usize = 8;
        let l = g.oh * g.ow;
        for h0 in (0..g.h).step_by(R) {
            let n = (g.h - h0).min(R);
            for (b, &store) in plan.store.iter().enumerate() {
                let mut acc = [_mm512_setzero_ps(); R];
                for k in 0..plan.khw {
                    let (mask, at) = plan.lanes[k * plan.blocks + b];
                    if mask == 0 {
                        continue;
                    }
                    // Lane 0's address may lie before the row (or the buffer): only the mask's
                    // lanes, all inside output row `oh` of row `k`, are read.
                    let row = cols.wrapping_add(k * l).wrapping_offset(at);
                    for (r, acc) in acc.iter_mut().enumerate().take(n) {
                        if let Some(oh) = plan.rows[(h0 + r) * plan.khw + k] {
                            // SAFETY: the lanes of `mask` lie inside the caller's columns.
                            let v = unsafe { _mm512_maskz_loadu_ps(mask, row.wrapping_add(oh * g.ow)) };
                            *acc = _mm512_add_ps(*acc, v);
                        }
                    }
                }
                for (r, &acc) in acc.iter().enumerate().take(n) {
                    // SAFETY: the lanes of `store` lie inside input row `h0 + r` of the
                    // caller's plane.
                    unsafe { _mm512_mask_storeu_ps(plane.add((h0 + r) * g.w + 16 * b), store, acc) };
                }
            }
        }
    }

    /// The mask of lanes `at..at + n`.
    #[inline(always)]
    fn lanes(at: usize, n: usize) -> __mmask16 {
        (((1u32 << n) - 1) << at) as u16
    }
}

/// How col2im reads one plane's columns when every row is read with a width stride of 1, for
/// `f32` on AVX-512: for input row `h` and kernel position `k`, the output row whose values land
/// there (`rows[h·KHW + k]`), and for each block of 16 input columns and each `k`, the lanes that
/// `k` reaches and where lane 0's value would sit in its output row (`lanes[k·blocks + b]`,
/// possibly before the row's start: only the mask's lanes are read).
struct FoldPlan {
    khw: usize,
    rows: Vec<Option<usize>>,
    blocks: usize,
    lanes: Vec<(u16, isize)>,
    /// The lanes of each block inside the plane's width.
    store: Vec<u16>,
}

impl FoldPlan {
    /// `None` unless the vector path applies: `T` is `f32`, the CPU has AVX-512 and the width
    /// stride is 1.
    fn new<T: Float>(g: &Geometry, stride_w: usize) -> Option<FoldPlan> {
        #[cfg(target_arch = "x86_64")]
        if stride_w == 1 && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && avx512::available() {
            let (khw, blocks) = (g.runs.len(), g.w.div_ceil(16));
            let mut rows = vec![None; g.h * khw];
            let mut lanes = vec![(0u16, 0isize); khw * blocks];
            for (k, runs) in g.runs.iter().enumerate() {
                let Some(r) = runs else { continue };
                // The input row and column of output `(top, lo)`, and the input rows between
                // consecutive output rows.
                let (row0, col0, sh) = (r.start / g.w, r.start % g.w, r.step / g.w);
                for (i, oh) in (r.top..r.bottom).enumerate() {
                    rows[(row0 + i * sh) * khw + k] = Some(oh);
                }
                let width = r.hi - r.lo;
                for b in 0..blocks {
                    let mask = (0..16).filter(|&j| (col0..col0 + width).contains(&(16 * b + j)));
                    let mask = mask.fold(0u16, |m, j| m | (1 << j));
                    lanes[k * blocks + b] = (mask, (16 * b + r.lo) as isize - col0 as isize);
                }
            }
            let store = (0..blocks).map(|b| ((1u32 << (g.w - 16 * b).min(16)) - 1) as u16).collect();
            return Some(FoldPlan { khw, rows, blocks, lanes, store });
        }
        let _ = (g, stride_w);
        None
    }
}

/// Writes the sum of one plane's columns (`KH·KW` rows of `OH·OW` values) into the input plane,
/// every value of it, initialized or not: each input value is `0 +` the values that land there,
/// added in kernel position order, the sums `add_row` leaves in a plane of zeros. With a plan
/// (`FoldPlan`) each block of 16 input values is summed in a register, one masked load per
/// kernel position, where adding row by row into memory waits on its own overlapping stores.
fn fold_plane<T: Float>(cols: &[T], g: &Geometry, plan: Option<&FoldPlan>, plane: &mut [MaybeUninit<T>]) {
    let l = g.oh * g.ow;
    assert!(cols.len() == g.runs.len() * l && plane.len() == g.h * g.w, "internal: fold_plane sizes");
    #[cfg(target_arch = "x86_64")]
    if let Some(plan) = plan {
        // SAFETY: a plan exists only for `f32` on a CPU with AVX-512; the sizes are asserted
        // above and the plan was made from `g`. The kernel writes every value of the plane.
        unsafe { avx512::fold_plane(cols.as_ptr().cast::<f32>(), g, plan, plane.as_mut_ptr().cast::<f32>()) };
        return;
    }
    let _ = plan;
    let plane = super::init_zeros(plane);
    for k in 0..g.runs.len() {
        add_row(&cols[k * l..(k + 1) * l], g, k, plane);
    }
}

/// Adds the row of kernel position `k` of one plane's columns (`OH·OW` values) back into the
/// input plane.
#[inline(always)]
fn add_row<T: Float>(row: &[T], g: &Geometry, k: usize, plane: &mut [T]) {
    let Some(&Runs { lo, hi, top, bottom, start, step, stride }) = g.runs[k].as_ref() else { return };
    for (r, oh) in (top..bottom).enumerate() {
        let dst = &mut plane[start + r * step..];
        let src = &row[oh * g.ow..(oh + 1) * g.ow];
        if stride == 1 {
            for (d, &v) in dst[..hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += v;
            }
        } else {
            for (i, &v) in src[lo..hi].iter().enumerate() {
                dst[i * stride] += v;
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
        for k in 0..kh * kw {
            fill_row(plane, &g, k, &mut cols[k * l..(k + 1) * l]);
        }
    });
    out
}

/// The adjoint of `unfold2d`: columns `[B, C, KH·KW, OH·OW]` summed into `[B, C, H, W]`.
pub(crate) fn fold2d<T: Float>(cols: &[T], dims: &[usize], win: &Window2d) -> Vec<T> {
    let g = geometry(dims, win);
    let (kh, kw) = win.kernel;
    let (k, l, hw) = (kh * kw, g.oh * g.ow, g.h * g.w);
    let plan = FoldPlan::new::<T>(&g, win.stride.1);
    let mut out: Vec<T> = Vec::with_capacity(g.planes * hw);
    for_planes(&mut out.spare_capacity_mut()[..g.planes * hw], hw, cols.len(), |p, plane| {
        fold_plane(&cols[p * k * l..(p + 1) * k * l], &g, plan.as_ref(), plane)
    });
    // SAFETY: `for_planes` gave every plane of the output to `fold_plane`, which writes it all.
    unsafe { out.set_len(g.planes * hw) };
    out
}

// ---- convolution ---------------------------------------------------------------------------------

/// The sizes of one convolution: `x [B, C, H, W]`, weight `[O, CG, KH, KW]` with `CG = C / G`,
/// output `[B, O, OH, OW]`; `kk = CG·KH·KW` rows of columns per group, `l = OH·OW` columns.
struct ConvDims {
    b: usize,
    c: usize,
    o: usize,
    og: usize,
    groups: usize,
    kk: usize,
    l: usize,
    g: Geometry,
}

impl ConvDims {
    fn new(xd: &[usize], wd: &[usize], spec: &Conv2dSpec) -> ConvDims {
        let g = geometry(&[1, 1, xd[2], xd[3]], &spec.win);
        let (o, groups) = (wd[0], spec.groups);
        ConvDims { b: xd[0], c: xd[1], o, og: o / groups, groups, kk: wd[1] * wd[2] * wd[3], l: g.oh * g.ow, g }
    }
    /// Channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// A 1×1 kernel with stride 1 and no padding: the input planes are the columns, no copy.
    fn direct(&self, win: &Window2d) -> bool {
        win.kernel == (1, 1) && win.stride == (1, 1) && win.padding == (0, 0)
    }
    /// The columns of group `gi` of one sample `xs [C, H, W]`: `[CG·KH·KW, OH·OW]`, in `cols`
    /// unless the input itself is the columns. Padding positions are never written: `cols`
    /// starts as zeros and every sample leaves the same positions untouched.
    fn columns<'a, T: Float>(&self, xs: &'a [T], gi: usize, win: &Window2d, cols: &'a mut [T]) -> &'a [T] {
        let (cg, hw) = (self.cg(), self.g.h * self.g.w);
        let planes = &xs[gi * cg * hw..(gi + 1) * cg * hw];
        if self.direct(win) {
            return planes;
        }
        let (khw, l) = (self.g.runs.len(), self.l);
        for (ci, plane) in planes.chunks_exact(hw).enumerate() {
            for k in 0..khw {
                let row = ci * khw + k;
                fill_row(plane, &self.g, k, &mut cols[row * l..(row + 1) * l]);
            }
        }
        cols
    }
    fn scratch<T: Float>(&self, win: &Window2d) -> Vec<T> {
        if self.direct(win) { Vec::new() } else { vec![T::ZERO; self.kk * self.l] }
    }
}

/// `dst (m×n) = a (m×k) @ b (k×n)`, or `dst += a @ b` when `accumulate`; the destination and
/// the operands are given as `(pointer, row stride, column stride)`.
///
/// # Safety
///
/// The strided regions must lie inside live buffers, and no other thread may touch `dst`'s.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_into<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: (*mut T, usize, usize),
    accumulate: bool,
    a: (*const T, usize, usize),
    b: (*const T, usize, usize),
    parallelism: gemm::Parallelism,
) {
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            a.0,
            a.2 as isize,
            a.1 as isize,
            b.0,
            b.2 as isize,
            b.1 as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `dst (OG×KK) = G (OG×L) @ colsᵀ`, or `dst += ...` when `accumulate`: one sample's share of a
/// convolution's weight gradient, `G` and the columns both row-major with `L` columns.
///
/// gemm's kernels are built for products whose output is wide; with few columns of output
/// (`KK`: a first layer on one or three input channels has 9 or 27) this is `OG·KK` long dot
/// products, where gemm reached 38 GFLOP/s on W2's first layer (`OG = 32`, `KK = 9`,
/// `L = 676`). For `f32` on AVX-512 with at most 16 columns, single-threaded products go to
/// `avx512::weight_gradient` instead (dot products in 16 lanes, summed in a fixed order).
///
/// `dst` is column-major (output `[o, k]` at `k·OG + o`). gemm's kernels store along an output's
/// columns; given a row-major destination it computes the transposed product instead, whose
/// left operand is then the columns read across their rows, and packing them that way cost about
/// 15% of this product on W2's second layer (BENCHMARKS.md). Column-major, the transposed
/// operand is `G`, a quarter of the size there. The sums and their order are the same either way.
///
/// # Safety
///
/// `g` holds OG rows of L values, `cols` KK rows of L, and `dst` OG·KK writable values (readable
/// too when `accumulate`), not touched by any other thread.
unsafe fn weight_gradient<T: Float>(
    g: *const T,
    cols: &[T],
    dst: *mut T,
    (og, kk, l): (usize, usize, usize),
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    #[cfg(target_arch = "x86_64")]
    if kk <= 16
        && matches!(parallelism, gemm::Parallelism::None)
        && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && avx512::available()
    {
        // SAFETY: `T` is `f32` and the CPU has AVX-512 (checked above); the sizes are the
        // caller's.
        unsafe {
            avx512::weight_gradient(
                g.cast::<f32>(),
                cols.as_ptr().cast::<f32>(),
                dst.cast::<f32>(),
                (og, kk, l),
                accumulate,
            )
        };
        return;
    }
    // SAFETY: G is OG×L (row stride L); colsᵀ is L×KK read with row stride 1 and column stride
    // L; the destination is the caller's, OG×KK with row stride 1 and column stride OG.
    unsafe { gemm_into((og, kk, l), (dst, 1, og), accumulate, (g, l, 1), (cols.as_ptr(), 1, l), parallelism) }
}

/// Multiply-adds below which a convolution runs on the calling thread.
const CONV_PAR_FLOPS: usize = 1 << 18;

/// The gemm parallelism of one product when the batch has a single sample (the batch loop is
/// then sequential, and gemm's own threads split the product without splitting its sums).
fn inner_parallelism(d: &ConvDims) -> gemm::Parallelism {
    let threads = crate::threads::current();
    if d.b == 1 && threads > 1 && d.o * d.l * d.kk >= CONV_PAR_FLOPS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// Whether the batch loop runs on the pool.
fn batch_parallel(d: &ConvDims) -> bool {
    d.b > 1 && crate::threads::current() > 1 && d.b * d.o * d.l * d.kk >= CONV_PAR_FLOPS
}

/// `x [B, C, H, W]`, `w [O, CG, KH, KW]`, `bias [O]` -> `y [B, O, OH, OW]`: per sample and
/// group, im2col into a scratch buffer reused across the samples of a task, one GEMM straight
/// into the output (`W_g [OG, CG·KH·KW] @ cols [CG·KH·KW, OH·OW]`), then the bias added (and a
/// folded ReLU applied) while the sample's output is in cache. Samples run in parallel; each is
/// computed alone, so the bits do not depend on the thread count.
///
/// Where the Winograd path applies (`winograd.rs`: 3×3, stride 1, one group, 16 channels or
/// more, a batch of `f32` on AVX-512), it computes groups of samples whose size depends on the
/// shape alone in place of im2col and the GEMM; the bias, ReLU and pool follow as below.
///
/// With a folded max pool (`spec.pool`) the sample's output goes to a scratch buffer of the
/// task instead and is pooled from there, plane by plane, into `[B, O, PH, PW]`, with the index
/// of each window's first maximum within its `OH·OW` plane (returned as the second value): the
/// values and indices `max_pool2d` gives for the unpooled output, without that output ever
/// leaving the cache.
pub(crate) fn conv2d<T: Float>(
    x: &[T],
    xd: &[usize],
    w: &[T],
    wd: &[usize],
    bias: Option<&[T]>,
    spec: &Conv2dSpec,
) -> (Vec<T>, Option<Vec<u32>>) {
    let d = ConvDims::new(xd, wd, spec);
    let win = &spec.win;
    let (og, kk, l) = (d.og, d.kk, d.l);
    let per = d.o * l;
    let total = d.b * per;
    // The bias, then the folded ReLU, in one pass over each output row.
    let relu = |v: T| UnaryOp::Relu.fwd(v);
    let add_bias = |y: &mut [T]| match (bias, spec.relu) {
        (Some(bias), false) => {
            for (row, &bv) in y.chunks_exact_mut(l).zip(bias) {
                row.iter_mut().for_each(|v| *v += bv);
            }
        }
        (Some(bias), true) => {
            for (row, &bv) in y.chunks_exact_mut(l).zip(bias) {
                row.iter_mut().for_each(|v| *v = relu(*v + bv));
            }
        }
        (None, true) => y.iter_mut().for_each(|v| *v = relu(*v)),
        (None, false) => {}
    };
    if total == 0 || kk == 0 {
        let mut y = vec![T::ZERO; total];
        y.chunks_mut(per.max(1)).for_each(add_bias);
        return match &spec.pool {
            Some(pw) => {
                let (values, idx) = super::pool::max_pool2d(&y, &[d.b, d.o, d.g.oh, d.g.ow], pw);
                (values, Some(idx))
            }
            None => (y, None),
        };
    }
    let chw = d.c * d.g.h * d.g.w;
    let inner = inner_parallelism(&d);
    // Sample `bi`'s `O·L` outputs into `y`, without the bias.
    let one = |cols: &mut Vec<T>, bi: usize, y: *mut T| {
        let xs = &x[bi * chw..(bi + 1) * chw];
        for gi in 0..d.groups {
            let rhs = d.columns(xs, gi, win, cols);
            // SAFETY: W_g is OG×KK at `gi·OG·KK` in `w` ([O, KK]); the columns are KK×L; the
            // destination is this sample's OG×L block of group `gi` (the caller hands over
            // `O·L` writable elements), written only here and fully (gemm does not read it).
            unsafe {
                gemm_into(
                    (og, l, kk),
                    (y.add(gi * og * l), l, 1),
                    false,
                    (w.as_ptr().add(gi * og * kk), kk, 1),
                    (rhs.as_ptr(), l, 1),
                    inner,
                )
            };
        }
    };
    let wino = Winograd::plan::<T>(xd, wd, w, spec);
    // Samples are taken in groups: one at a time for im2col, as many as a Winograd product wants.
    let group = wino.as_ref().map_or(1, |p| p.group());
    // Samples `b0..b0 + n`'s `n·O·L` outputs into `y`, each with its bias (and ReLU).
    let samples = |s: &mut Scratch<T>, b0: usize, n: usize, y: *mut T| {
        match &wino {
            // SAFETY: the plan exists only for `T = f32`; the caller hands over `n·O·L`
            // writable elements at `y`.
            Some(plan) => unsafe { plan.run(&x[b0 * chw..(b0 + n) * chw], n, y) },
            // SAFETY: sample `b0 + i`'s block lies at `i·O·L`, inside what the caller hands over.
            None => (0..n).for_each(|i| one(&mut s.cols, b0 + i, unsafe { y.add(i * per) })),
        }
        // SAFETY: the products above initialized all `n·O·L` elements.
        let y = unsafe { std::slice::from_raw_parts_mut(y, n * per) };
        crate::simd::wide(
            #[inline(always)]
            || y.chunks_exact_mut(per).for_each(add_bias),
        );
    };
    let scratch = || Scratch::<T> { cols: if wino.is_some() { Vec::new() } else { d.scratch(win) }, ys: Vec::new() };
    let parallel = batch_parallel(&d);
    if let Some(pw) = &spec.pool {
        let pool = super::pool::PlanePool::new::<T>((d.g.oh, d.g.ow), pw);
        let pl = pool.plane_out();
        let per_out = d.o * pl;
        let total_out = d.b * per_out;
        let mut out: Vec<T> = Vec::with_capacity(total_out);
        let mut idx: Vec<u32> = Vec::with_capacity(total_out);
        if per_out > 0 {
            let pooled = |s: &mut Scratch<T>, g: usize, o: &mut [MaybeUninit<T>], ix: &mut [MaybeUninit<u32>]| {
                let n = o.len() / per_out;
                s.ys.resize(n * per, T::ZERO);
                let ys = s.ys.as_mut_ptr();
                samples(s, g * group, n, ys);
                for (p, plane) in s.ys.chunks_exact(l).enumerate() {
                    pool.run(plane, &mut o[p * pl..(p + 1) * pl], &mut ix[p * pl..(p + 1) * pl]);
                }
            };
            let (o, ix) = (&mut out.spare_capacity_mut()[..total_out], &mut idx.spare_capacity_mut()[..total_out]);
            let chunk = group * per_out;
            if parallel {
                let groups = o.par_chunks_mut(chunk).zip(ix.par_chunks_mut(chunk)).enumerate();
                groups.for_each_init(scratch, |s, (g, (o, ix))| pooled(s, g, o, ix));
            } else {
                let mut s = scratch();
                let groups = o.chunks_mut(chunk).zip(ix.chunks_mut(chunk)).enumerate();
                groups.for_each(|(g, (o, ix))| pooled(&mut s, g, o, ix));
            }
        }
        // SAFETY: every sample's `O·PH·PW` values and indices were written by `PlanePool::run`.
        unsafe {
            out.set_len(total_out);
            idx.set_len(total_out);
        }
        return (out, Some(idx));
    }
    let mut out: Vec<T> = Vec::with_capacity(total);
    let spare = &mut out.spare_capacity_mut()[..total];
    let run = |s: &mut Scratch<T>, (g, y): (usize, &mut [MaybeUninit<T>])| {
        samples(s, g * group, y.len() / per, y.as_mut_ptr().cast::<T>())
    };
    if parallel {
        spare.par_chunks_mut(group * per).enumerate().for_each_init(scratch, run);
    } else {
        let mut s = scratch();
        spare.chunks_mut(group * per).enumerate().for_each(|gy| run(&mut s, gy));
    }
    // SAFETY: every sample's block was written above.
    unsafe { out.set_len(total) };
    (out, None)
}

/// Working memory of one task of [`conv2d`]: the columns of a sample (im2col) and the unpooled
/// outputs of a group of samples (with a folded pool).
struct Scratch<T> {
    cols: Vec<T>,
    ys: Vec<T>,
}

/// The Winograd path (`winograd.rs`) of one convolution, where it applies.
struct Winograd {
    #[cfg(target_arch = "x86_64")]
    plan: super::winograd::Plan,
}

impl Winograd {
    /// The plan when `T` is `f32` and the convolution is one the Winograd path takes.
    #[allow(unused_variables)]
    fn plan<T: Float>(xd: &[usize], wd: &[usize], w: &[T], spec: &Conv2dSpec) -> Option<Winograd> {
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && super::winograd::Plan::applies(xd, wd, &spec.win, spec.groups)
        {
            // SAFETY: `T` is `f32` (checked above).
            let w = unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<f32>(), w.len()) };
            return Some(Winograd { plan: super::winograd::Plan::new(xd, wd, w, spec.win.padding) });
        }
        None
    }

    fn group(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        return self.plan.group();
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("internal: no Winograd plan without x86-64")
    }

    /// The convolution without bias of the `n` samples in `x` into `y` (`n·O·L` elements).
    ///
    /// # Safety
    ///
    /// `T` is `f32` (as [`Winograd::plan`] made sure), and `y` holds `n·O·L` writable elements.
    #[allow(unused_variables)]
    unsafe fn run<T: Float>(&self, x: &[T], n: usize, y: *mut T) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `T` is `f32` and `y` holds `n·O·L` elements (the caller's promise), which
            // the plan writes as `f32`.
            let (x, y) = unsafe {
                (
                    std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()),
                    std::slice::from_raw_parts_mut(y.cast::<MaybeUninit<f32>>(), n * self.plan.outputs_per_sample()),
                )
            };
            self.plan.run(x, n, y)
        }
    }
}

/// One sample's convolution output gradient `[O, L]` (into `dy`) from the gradient `g` of its
/// folded max pool `[O, PL]`: each plane zeroed, `g` added at the pool's indices in window
/// order, then, with a folded ReLU (`y`, the pooled values, given), each pooled position
/// multiplied by the ReLU's gradient at that value (the value the pool took from there). A
/// position no window took keeps `+0`, as `0 · relu'(y)` gives, so the bits equal those of the
/// pool's and the ReLU's backward passes one after the other.
///
/// When windows do not overlap (`disjoint`: stride at least the kernel) no position is taken
/// twice, and each is written once as `(0 + g) · relu'(y)`, the same expression in one pass.
fn unpool<T: Float>(dy: &mut [T], g: &[T], idx: &[u32], y: Option<&[T]>, (l, pl): (usize, usize), disjoint: bool) {
    let relu_grad = |yv: T| UnaryOp::Relu.grad(yv, yv);
    for (p, plane) in dy.chunks_exact_mut(l).enumerate() {
        plane.fill(T::ZERO);
        let (gp, ip) = (&g[p * pl..(p + 1) * pl], &idx[p * pl..(p + 1) * pl]);
        match y {
            Some(y) if disjoint => {
                for ((&gv, &i), &yv) in gp.iter().zip(ip).zip(&y[p * pl..(p + 1) * pl]) {
                    plane[i as usize] = (T::ZERO + gv) * relu_grad(yv);
                }
            }
            Some(y) => {
                super::pool::scatter_plane(plane, gp, ip);
                // A position taken twice is masked twice: by 0 or 1 again, which leaves it as
                // it is.
                for (&i, &yv) in ip.iter().zip(&y[p * pl..(p + 1) * pl]) {
                    let v = &mut plane[i as usize];
                    *v = *v * relu_grad(yv);
                }
            }
            None => super::pool::scatter_plane(plane, gp, ip),
        }
    }
}

/// Samples per backward task: fixed by the batch size alone (at most 8 tasks), so the partial
/// weight gradients, and the order they are summed in, do not depend on the thread count.
fn backward_chunk(b: usize) -> usize {
    b.div_ceil(8).max(1)
}

/// The gradients of `conv2d` that `need` (`[x, weight, bias]`) asks for, given `g [B, O, OH, OW]`:
///
/// - `dW_g = Σ_b G_bg @ cols_bgᵀ`, the columns recomputed from `x` rather than kept from the
///   forward pass (`CG·KH·KW` times the input's memory, for an im2col that costs little next to
///   the GEMM);
/// - `dx_bg = col2im(W_gᵀ @ G_bg)`;
/// - `dbias = Σ_b Σ_l G_b`.
///
/// The batch is cut into chunks of a size fixed by `B` alone; each chunk sums its samples' weight
/// and bias gradients in order (the GEMM accumulating into its partial), and the partials are
/// added in chunk order, so the bits do not depend on the thread count.
///
/// `y` is the output, given when a ReLU is folded in (its gradient is read from it). With a
/// folded max pool, `g` and `y` are the pooled `[B, O, PH, PW]` and `argmax` holds the pool's
/// indices: each sample's `[O, OH·OW]` gradient is built in a scratch buffer, `g` scattered
/// through the indices and then masked by the ReLU's gradient, the values `max_pool2d`'s and
/// the ReLU's backward passes give.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn conv2d_backward<T: Float>(
    x: &[T],
    xd: &[usize],
    w: &[T],
    wd: &[usize],
    g: &[T],
    y: Option<&[T]>,
    argmax: Option<&[u32]>,
    spec: &Conv2dSpec,
    need: [bool; 3],
) -> (Option<Vec<T>>, Option<Vec<T>>, Option<Vec<T>>) {
    let d = ConvDims::new(xd, wd, spec);
    let win = &spec.win;
    let (og, kk, l) = (d.og, d.kk, d.l);
    let [need_x, need_w, need_b] = need;
    let chw = d.c * d.g.h * d.g.w;
    let per = d.o * l;
    let chunk = backward_chunk(d.b);
    let chunks = d.b.div_ceil(chunk);
    let inner = inner_parallelism(&d);
    let wn = d.o * kk;
    let products = d.b * per * kk > 0;
    // The pool's indices and the pooled values per plane, and `g`'s elements per sample.
    let pooled = argmax.zip(spec.pool.as_ref()).map(|(idx, pw)| {
        let disjoint = pw.stride.0 >= pw.kernel.0 && pw.stride.1 >= pw.kernel.1;
        let (ph, pw) = pw.output_size(d.g.oh, d.g.ow).expect("internal: window checked by the caller");
        (idx, ph * pw, disjoint)
    });
    let g_per = pooled.map_or(per, |(_, pl, _)| d.o * pl);
    let plan = if need_x { FoldPlan::new::<T>(&d.g, win.stride.1) } else { None };
    // One chunk of samples: its partial weight and bias gradients; the input gradient of its
    // samples goes into `dx` (this chunk's `[chunk, C, H, W]` slice, uninitialized on entry and
    // written in full).
    type Scratch<T> = (Vec<T>, Box<[MaybeUninit<T>]>, Vec<T>);
    let task = |j: usize, dx: Option<&mut [MaybeUninit<T>]>, scratch: &mut Scratch<T>| -> (Vec<T>, Vec<T>) {
        let (cols, dcols, masked) = scratch;
        let samples = j * chunk..((j + 1) * chunk).min(d.b);
        let mut dw: Vec<T> = Vec::new();
        let mut db = vec![T::ZERO; if need_b { d.o } else { 0 }];
        if need_w && products {
            dw.reserve_exact(wn);
        }
        let mut dx = dx;
        for (n, bi) in samples.enumerate() {
            let xs = &x[bi * chw..(bi + 1) * chw];
            let mut gb = &g[bi * g_per..(bi + 1) * g_per];
            if let Some((idx, pl, disjoint)) = pooled {
                let ib = &idx[bi * g_per..(bi + 1) * g_per];
                let yb = y.map(|y| &y[bi * g_per..(bi + 1) * g_per]);
                unpool(masked, gb, ib, yb, (l, pl), disjoint);
                gb = masked;
            } else if let Some(y) = y {
                // A folded ReLU: this sample's gradient times the ReLU's, as its own backward
                // kernel computes it.
                let yb = &y[bi * per..(bi + 1) * per];
                crate::simd::wide(
                    #[inline(always)]
                    || {
                        for ((m, &gv), &yv) in masked.iter_mut().zip(gb).zip(yb) {
                            *m = gv * UnaryOp::Relu.grad(yv, yv);
                        }
                    },
                );
                gb = masked;
            }
            if need_b {
                crate::simd::wide(
                    #[inline(always)]
                    || {
                        for (s, row) in db.iter_mut().zip(gb.chunks_exact(l)) {
                            // In eight lanes (a sum one add after another does not
                            // vectorize), the order of `sum` over a last dimension.
                            *s += super::reduce::fold_row(row, ReduceOp::Sum, false);
                        }
                    },
                );
            }
            if !products {
                continue;
            }
            for gi in 0..d.groups {
                let gg = gb[gi * og * l..].as_ptr();
                let wg = w[gi * og * kk..].as_ptr();
                if need_w {
                    let rhs = d.columns(xs, gi, win, cols);
                    // SAFETY: G_bg is OG×L (row stride L) in `g`; the columns are KK×L; the
                    // destination is this chunk's own partial, OG×KK column-major at `gi·OG·KK`
                    // inside the `O·KK` reserved above, written fully by the first sample (not
                    // read) and accumulated by the next ones.
                    unsafe { weight_gradient(gg, rhs, dw.as_mut_ptr().add(gi * og * kk), (og, kk, l), n > 0, inner) };
                }
                if let Some(dx) = dx.as_deref_mut() {
                    // SAFETY: W_gᵀ is KK×OG read with row stride 1 and column stride KK; G_bg
                    // as above; `dcols` is this task's KK×L scratch, written in full (not read)
                    // by the product, which makes it initialized for the slice after it.
                    let dcols = unsafe {
                        let at = dcols.as_mut_ptr().cast::<T>();
                        gemm_into((kk, l, og), (at, l, 1), false, (wg, 1, kk), (gg, l, 1), inner);
                        std::slice::from_raw_parts(at, kk * l)
                    };
                    let (cg, hw, kl) = (d.cg(), d.g.h * d.g.w, d.g.runs.len() * l);
                    let base = (n * d.c + gi * cg) * hw;
                    for (ci, plane) in dx[base..base + cg * hw].chunks_exact_mut(hw).enumerate() {
                        fold_plane(&dcols[ci * kl..(ci + 1) * kl], &d.g, plan.as_ref(), plane);
                    }
                }
            }
        }
        if need_w && products {
            // SAFETY: the first sample's GEMMs wrote all O·KK elements (every group's block).
            unsafe { dw.set_len(wn) };
        }
        (dw, db)
    };
    let scratch = || {
        let cols = if need_w { d.scratch(win) } else { Vec::new() };
        let dcols = Box::new_uninit_slice(if need_x { kk * l } else { 0 });
        let masked = if y.is_some() || pooled.is_some() { vec![T::ZERO; per] } else { Vec::new() };
        (cols, dcols, masked)
    };
    // Written by the tasks when there are products; zeros otherwise (below).
    let mut dx: Option<Vec<T>> = need_x.then(|| Vec::with_capacity(d.b * chw));
    let parallel = batch_parallel(&d) && chunks > 1;
    // With no input elements (`C = 0`) or no products there are no `dx` chunks to walk: walk the
    // chunk indices.
    let dx_chunks = dx.as_mut().filter(|_| chw > 0 && products).map(|dx| &mut dx.spare_capacity_mut()[..d.b * chw]);
    let partials: Vec<(Vec<T>, Vec<T>)> = match (dx_chunks, parallel) {
        (Some(dx), true) => dx
            .par_chunks_mut((chunk * chw).max(1))
            .enumerate()
            .map_init(scratch, |s, (j, dx)| task(j, Some(dx), s))
            .collect(),
        (None, true) => (0..chunks).into_par_iter().map_init(scratch, |s, j| task(j, None, s)).collect(),
        (Some(dx), false) => {
            let mut s = scratch();
            dx.chunks_mut((chunk * chw).max(1)).enumerate().map(|(j, dx)| task(j, Some(dx), &mut s)).collect()
        }
        (None, false) => {
            let mut s = scratch();
            (0..chunks).map(|j| task(j, None, &mut s)).collect()
        }
    };
    if let Some(dx) = dx.as_mut() {
        if chw > 0 && products {
            // SAFETY: every chunk's samples wrote each of their `C` planes (`fold_plane`, for
            // every group and channel), which cover all `B·C·H·W` values.
            unsafe { dx.set_len(d.b * chw) };
        } else {
            dx.resize(d.b * chw, T::ZERO);
        }
    }
    // Each partial holds every group's OG×KK block column-major (`weight_gradient`); the
    // gradient is `[O, KK]` row-major.
    let dw = need_w.then(|| {
        let mut total = vec![T::ZERO; wn];
        let block = og * kk;
        for (p, _) in partials.iter().filter(|(p, _)| block > 0 && !p.is_empty()) {
            for (tb, pb) in total.chunks_exact_mut(block).zip(p.chunks_exact(block)) {
                for (o, row) in tb.chunks_exact_mut(kk).enumerate() {
                    row.iter_mut().enumerate().for_each(|(k, t)| *t += pb[k * og + o]);
                }
            }
        }
        total
    });
    let db = need_b.then(|| {
        let mut total = vec![T::ZERO; d.o];
        for (_, p) in &partials {
            total.iter_mut().zip(p).for_each(|(t, &v)| *t += v);
        }
        total
    });
    (dx, dw, db)
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

    fn f32s(n: usize, seed: u64) -> Vec<f32> {
        values(n, seed).into_iter().map(|v| v as f32).collect()
    }

    /// A square window with unit dilation.
    fn square(kernel: usize, stride: usize, padding: (usize, usize), pad_value: f64) -> Window2d {
        Window2d { kernel: (kernel, kernel), stride: (stride, stride), padding, dilation: (1, 1), pad_value }
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

    /// Rows read with a width stride of 1 (the vector path for `f32`): runs shorter than, as
    /// long as and longer than a 16-float vector, with padding, a height stride and dilations.
    /// Columns equal the definition, and `fold2d` equals the definition's sums in its order
    /// (kernel row by kernel row), to the bit.
    #[test]
    fn unit_stride_rows_of_f32_match_the_definition() {
        for (w, (sh, ph, dh, dw)) in
            [5, 16, 20, 37].into_iter().zip([(1, 0, 1, 1), (1, 1, 1, 2), (2, 1, 2, 1), (1, 2, 1, 1)])
        {
            let dims = [2, 3, 9, w];
            let x: Vec<f32> = values(dims.iter().product(), 7).into_iter().map(|v| v as f32).collect();
            let win =
                Window2d { kernel: (3, 3), stride: (sh, 1), padding: (ph, ph), dilation: (dh, dw), pad_value: -7.0 };
            let (oh, ow) = win.output_size(dims[2], dims[3]).unwrap();
            let (l, planes) = (oh * ow, dims[0] * dims[1]);
            let source = |k: usize, o: usize| {
                let (ki, kj, o_h, o_w) = (k / 3, k % 3, o / ow, o % ow);
                let ih = (o_h * sh + ki * dh).checked_sub(ph).filter(|&i| i < dims[2])?;
                let iw = (o_w + kj * dw).checked_sub(ph).filter(|&j| j < dims[3])?;
                Some(ih * dims[3] + iw)
            };
            let cols = unfold2d(&x, &dims, &win);
            let g: Vec<f32> = values(cols.len(), 8).into_iter().map(|v| v as f32).collect();
            let folded = fold2d(&g, &dims, &win);
            let hw = dims[2] * dims[3];
            for p in 0..planes {
                let mut want_fold = vec![0f32; hw];
                for k in 0..9 {
                    for o in 0..l {
                        let at = (p * 9 + k) * l + o;
                        let want = source(k, o).map_or(-7.0, |i| x[p * hw + i]);
                        assert_eq!(cols[at], want, "width {w}, plane {p}, row {k}, column {o}");
                        if let Some(i) = source(k, o) {
                            want_fold[i] += g[at];
                        }
                    }
                }
                let got: Vec<u32> = folded[p * hw..(p + 1) * hw].iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want_fold.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "width {w}, plane {p}");
            }
        }
    }

    /// A sample's weight gradient with few output columns (the AVX-512 kernel for `f32` where
    /// the CPU has it): each output, column-major, within rounding of the definition's dot
    /// product in `f64`, written or added to what is there, for row and column counts off the
    /// kernel's blocks and lengths off its 16 lanes.
    #[test]
    fn weight_gradients_with_few_columns_match_the_definition() {
        for (og, kk, l) in [(1, 1, 5), (3, 9, 16), (32, 9, 676), (5, 16, 37), (2, 7, 33)] {
            let g: Vec<f32> = values(og * l, 11).into_iter().map(|v| v as f32).collect();
            let cols: Vec<f32> = values(kk * l, 12).into_iter().map(|v| v as f32).collect();
            for accumulate in [false, true] {
                let mut dst = vec![0.5f32; og * kk];
                // SAFETY: `g` is OG×L, `cols` KK×L and `dst` OG×KK.
                unsafe {
                    weight_gradient(
                        g.as_ptr(),
                        &cols,
                        dst.as_mut_ptr(),
                        (og, kk, l),
                        accumulate,
                        gemm::Parallelism::None,
                    )
                };
                for o in 0..og {
                    for j in 0..kk {
                        let terms = (0..l).map(|t| g[o * l + t] as f64 * cols[j * l + t] as f64);
                        let scale: f64 = terms.clone().map(f64::abs).sum::<f64>() + 0.5;
                        let want = terms.sum::<f64>() + if accumulate { 0.5 } else { 0.0 };
                        let got = dst[j * og + o] as f64;
                        assert!((got - want).abs() <= 1e-6 * scale, "{og}x{kk}, L {l}, [{o}, {j}]: {got} vs {want}");
                    }
                }
            }
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

    /// Convolution forward and backward (plain, with a folded ReLU, and with a folded ReLU and
    /// max pool), above the parallel threshold and with a batch that splits into several
    /// backward chunks, give the same bits on pools of 1, 2 and 4 threads.
    /// The convolution of `x [B, C, H, W]` with `w [O, C, 3, 3]` (stride 1, one group, zero
    /// padding `pad`) plus `b`, by the definition in f64.
    fn conv_definition(x: &[f32], xd: [usize; 4], w: &[f32], o: usize, b: &[f32], pad: (usize, usize)) -> Vec<f64> {
        let [bn, c, h, wi] = xd;
        let (oh, ow) = (h + 2 * pad.0 - 2, wi + 2 * pad.1 - 2);
        let mut y = vec![0.0; bn * o * oh * ow];
        for (n, oc, oy, ox) in positions(bn, o, oh, ow) {
            let mut sum = b[oc] as f64;
            for ci in 0..c {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy + ky) as isize - pad.0 as isize, (ox + kx) as isize - pad.1 as isize);
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wi {
                            let xv = x[((n * c + ci) * h + iy as usize) * wi + ix as usize] as f64;
                            sum += xv * w[((oc * c + ci) * 3 + ky) * 3 + kx] as f64;
                        }
                    }
                }
            }
            y[((n * o + oc) * oh + oy) * ow + ox] = sum;
        }
        y
    }

    fn positions(a: usize, b: usize, c: usize, d: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l)))))
    }

    /// The Winograd path (a 3×3 convolution with stride 1 and at least 16 channels, on AVX-512)
    /// gives the convolution up to f32 rounding: channel counts that fill no whole vector, odd
    /// and even output sizes (tiles cut at the edge), padding, batches that are not a whole
    /// number of groups, and images whose tiles take several products.
    /// The input gradient (col2im) of the same convolutions, alone and through a folded ReLU and
    /// max pool.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn winograd_convolution_matches_the_definition() {
        if !avx512::available() {
            return;
        }
        let cases = [
            ([3, 20, 9, 7], 24, (0, 0)),
            ([5, 16, 8, 8], 17, (1, 1)),
            ([6, 33, 5, 6], 16, (2, 1)),
            ([3, 16, 40, 34], 16, (1, 1)),
            // A batch whose backward pass runs in chunks of two samples.
            ([17, 16, 6, 7], 16, (1, 0)),
        ];
        for (xd, o, pad) in cases {
            let wd = [o, xd[1], 3, 3];
            let win = square(3, 1, pad, 0.0);
            assert!(super::super::winograd::Plan::applies(&xd, &wd, &win, 1), "{xd:?}");
            let (x, w, b) = (f32s(xd.iter().product(), 7), f32s(wd.iter().product(), 8), f32s(o, 9));
            let want = conv_definition(&x, xd, &w, o, &b, pad);
            let spec = Conv2dSpec { win, groups: 1, relu: false, pool: None };
            let (y, _) = conv2d(&x, &xd, &w, &wd, Some(&b), &spec);
            assert_eq!(y.len(), want.len());
            // Each output sums 9·C products of values below 0.5 in size; f32 rounding of sums
            // grouped another way stays far below this.
            let tol = 1e-6 * (9 * xd[1]) as f64;
            for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
                assert!((got as f64 - want).abs() <= tol, "{xd:?} output {i}: {got} vs {want}");
            }
            // With a folded ReLU and max pool, the pooled values of the same outputs.
            let pool = square(2, 2, (0, 0), f64::NEG_INFINITY);
            let spec = Conv2dSpec { win, groups: 1, relu: true, pool: Some(pool) };
            let (pooled, idx) = conv2d(&x, &xd, &w, &wd, Some(&b), &spec);
            let relu: Vec<f32> = y.iter().map(|&v| v.max(0.0)).collect();
            let (oh, ow) = (xd[2] + 2 * pad.0 - 2, xd[3] + 2 * pad.1 - 2);
            let (unfused, unfused_idx) = super::super::pool::max_pool2d(&relu, &[xd[0], o, oh, ow], &pool);
            assert_eq!(pooled, unfused, "{xd:?}");
            let idx = idx.unwrap();
            assert_eq!(idx, unfused_idx, "{xd:?}");

            // The input gradient: `g` through the flipped kernels, by the definition.
            let input_gradient = |gy: &[f32]| {
                let (c, h, wi) = (xd[1], xd[2], xd[3]);
                let mut dx = vec![0.0f64; x.len()];
                for (n, oc, oy, ox) in positions(xd[0], o, oh, ow) {
                    let gv = gy[((n * o + oc) * oh + oy) * ow + ox] as f64;
                    for (ci, ky, kx) in
                        (0..c).flat_map(|ci| (0..3).flat_map(move |ky| (0..3).map(move |kx| (ci, ky, kx))))
                    {
                        let (iy, ix) = ((oy + ky) as isize - pad.0 as isize, (ox + kx) as isize - pad.1 as isize);
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wi {
                            dx[((n * c + ci) * h + iy as usize) * wi + ix as usize] +=
                                gv * w[((oc * c + ci) * 3 + ky) * 3 + kx] as f64;
                        }
                    }
                }
                dx
            };
            let close = |got: &[f32], want: &[f64], what: &str| {
                let tol = 1e-6 * (9 * o) as f64;
                for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
                    assert!((a as f64 - b).abs() <= tol, "{xd:?} {what} {i}: {a} vs {b}");
                }
            };
            let gy = f32s(y.len(), 10);
            let spec = Conv2dSpec { win, groups: 1, relu: false, pool: None };
            let (dx, _, _) = conv2d_backward(&x, &xd, &w, &wd, &gy, None, None, &spec, [true, false, false]);
            close(&dx.unwrap(), &input_gradient(&gy), "dx");
            // Through the folded pool and ReLU: the pool's gradient scattered to the arg-max
            // positions, masked by the ReLU's gradient, then the same product.
            let gp = f32s(pooled.len(), 11);
            let spec = Conv2dSpec { win, groups: 1, relu: true, pool: Some(pool) };
            let (dx, _, _) =
                conv2d_backward(&x, &xd, &w, &wd, &gp, Some(&pooled), Some(&idx), &spec, [true, false, false]);
            let mut unpooled = super::super::pool::max_pool2d_backward(&gp, &idx, &[xd[0], o, oh, ow]);
            unpooled.iter_mut().zip(&y).for_each(|(g, &v)| *g = if v > 0.0 { *g } else { 0.0 });
            close(&dx.unwrap(), &input_gradient(&unpooled), "dx through pool and ReLU");
        }
    }

    #[test]
    fn convolution_does_not_depend_on_the_thread_count() {
        for (xd, wd, groups) in [([10, 4, 16, 16], [16, 2, 3, 3], 2), ([10, 16, 12, 12], [16, 16, 3, 3], 1)] {
            thread_count_case(xd, wd, groups);
        }
    }

    fn thread_count_case(xd: [usize; 4], wd: [usize; 4], groups: usize) {
        let win = square(3, 1, (1, 1), 0.0);
        let max_pool = square(3, 2, (1, 1), f64::NEG_INFINITY);
        let (x, w, b) = (f32s(xd.iter().product(), 4), f32s(wd.iter().product(), 5), f32s(16, 6));
        for (relu, pool) in [(false, None), (true, None), (true, Some(max_pool))] {
            let spec = Conv2dSpec { win, groups, relu, pool };
            let d = ConvDims::new(&xd, &wd, &spec);
            assert!(d.b * d.o * d.l * d.kk >= CONV_PAR_FLOPS && backward_chunk(d.b) < d.b);
            let run = |threads: usize| {
                let threads = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                threads.install(|| {
                    let (y, idx) = conv2d(&x, &xd, &w, &wd, Some(&b), &spec);
                    assert_eq!(idx.is_some(), pool.is_some());
                    let g: Vec<f32> = (0..y.len()).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
                    let y_arg = relu.then_some(&y[..]);
                    let (dx, dw, db) =
                        conv2d_backward(&x, &xd, &w, &wd, &g, y_arg, idx.as_deref(), &spec, [true, true, true]);
                    let idx = idx.unwrap_or_default().iter().map(|&i| i as f32).collect();
                    [y, idx, dx.unwrap(), dw.unwrap(), db.unwrap()]
                        .map(|v| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                })
            };
            let one = run(1);
            assert_eq!(run(2), one, "relu {relu}, pool {pool:?}");
            assert_eq!(run(4), one, "relu {relu}, pool {pool:?}");
        }
    }
}
