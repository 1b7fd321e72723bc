//! Max pooling read straight from the input planes: each window's maximum and the index (within
//! its `H·W` plane) of the first maximum, which the backward pass scatters the gradient through.
//!
//! The earlier formulation unfolded the input with -inf padding into `[B, C, KH·KW, OH·OW]`
//! columns and took an argmax and a gather over them: three passes over a buffer `KH·KW` times
//! the output, where this reads every window in place once. Work is split over `(batch, channel)`
//! planes; each plane's outputs (and, backward, its input gradient) are written by one task in a
//! fixed order, so results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::PAR_MIN;
use crate::dtype::Float;
use crate::ops::Window2d;

/// The rule of `argmax`: a strictly larger value or the first NaN replaces the best, so ties keep
/// the first index (PyTorch's rule: the gradient goes to the first maximum) and a NaN stays.
#[inline(always)]
fn better<T: Float>(v: T, best: T) -> bool {
    !best.is_nan() && (v.is_nan() || v > best)
}

/// The inputs `i` in `0..size` that window position `o` covers along one dimension:
/// `o·stride − pad + k` for `k` in `0..kernel`, clipped to the input.
#[inline(always)]
fn span(o: usize, kernel: usize, stride: usize, pad: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    (start.saturating_sub(pad), (start + kernel).saturating_sub(pad).min(size))
}

/// Max pooling of one `H×W` plane into `OH×OW` values and indices.
#[inline(always)]
fn pool_plane<T: Float>(
    plane: &[T],
    (h, w, oh, ow): (usize, usize, usize, usize),
    win: &Window2d,
    out: &mut [MaybeUninit<T>],
    idx: &mut [MaybeUninit<u32>],
) {
    let (kh, kw) = win.kernel;
    let (sh, sw) = win.stride;
    let (ph, pw) = win.padding;
    for i in 0..oh {
        let (h0, h1) = span(i, kh, sh, ph, h);
        for j in 0..ow {
            let (w0, w1) = span(j, kw, sw, pw, w);
            // Every window holds at least one input element: the caller bounds the padding by
            // half the kernel. Padding reads as -inf, so it never beats a real element; like
            // PyTorch, an all -inf window points at its first real element.
            let mut best_at = h0 * w + w0;
            let mut best = plane[best_at];
            for r in h0..h1 {
                let row = &plane[r * w..r * w + w1];
                for (c, &v) in row.iter().enumerate().skip(w0) {
                    if better(v, best) {
                        best = v;
                        best_at = r * w + c;
                    }
                }
            }
            out[i * ow + j].write(best);
            idx[i * ow + j].write(best_at as u32);
        }
    }
}

/// [`pool_plane`] for the common 2×2 window with stride 2 and no padding: the four candidates of
/// each output in the generic scan's order (top row, then bottom row), with selects instead of
/// per-window bounds and branches.
#[inline(always)]
fn pool_plane_2x2<T: Float>(
    plane: &[T],
    (w, oh, ow): (usize, usize, usize),
    out: &mut [MaybeUninit<T>],
    idx: &mut [MaybeUninit<u32>],
) {
    for i in 0..oh {
        let (top, bottom) = (2 * i * w, (2 * i + 1) * w);
        let (r0, r1) = (&plane[top..top + 2 * ow], &plane[bottom..bottom + 2 * ow]);
        let outs = out[i * ow..(i + 1) * ow].iter_mut().zip(&mut idx[i * ow..(i + 1) * ow]);
        for (j, ((o, ix), (a, b))) in outs.zip(r0.chunks_exact(2).zip(r1.chunks_exact(2))).enumerate() {
            let (mut best, mut at) = (a[0], top + 2 * j);
            for (v, k) in [(a[1], top + 2 * j + 1), (b[0], bottom + 2 * j), (b[1], bottom + 2 * j + 1)] {
                let take = better(v, best);
                best = if take { v } else { best };
                at = if take { k } else { at };
            }
            o.write(best);
            ix.write(at as u32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// [`super::pool_plane_2x2`] for an `f32` plane at least eight outputs wide, eight outputs
    /// at a time in AVX2 registers (the scalar loop does not vectorize: its pairs are
    /// interleaved). A row whose width is not a multiple of 8 ends with the group of its last
    /// eight outputs, which overlaps the group before and writes the same values there. Same
    /// rule as the scalar loop (`better`, candidates in window order), so the same values and
    /// indices.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn plane_2x2(
        plane: &[f32],
        (w, oh, ow): (usize, usize, usize),
        out: &mut [MaybeUninit<f32>],
        idx: &mut [MaybeUninit<u32>],
    ) {
        assert!(
            ow >= 8 && 2 * ow <= w && 2 * oh * w <= plane.len() && out.len() == oh * ow && idx.len() == oh * ow,
            "internal: plane_2x2 sizes"
        );
        let (one, two) = (_mm256_set1_epi32(1), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
        for i in 0..oh {
            let (top, bottom) = (2 * i * w, (2 * i + 1) * w);
            let mut j = 0;
            loop {
                // SAFETY: `j + 8 <= OW`, so the inputs `top + 2j .. top + 2j + 16` lie in row
                // `2i` (`2·OW <= W`), those of row `2i + 1` in the plane (asserted above), and the
                // outputs `i·OW + j .. + 8` in `out` and `idx`.
                unsafe {
                    let (a0, a1) = deinterleave(plane.as_ptr().add(top + 2 * j));
                    let (b0, b1) = deinterleave(plane.as_ptr().add(bottom + 2 * j));
                    let at_top = _mm256_add_epi32(_mm256_set1_epi32((top + 2 * j) as i32), two);
                    let at_bottom = _mm256_add_epi32(_mm256_set1_epi32((bottom + 2 * j) as i32), two);
                    let (mut best, mut at) = (a0, _mm256_castsi256_ps(at_top));
                    for (v, k) in
                        [(a1, _mm256_add_epi32(at_top, one)), (b0, at_bottom), (b1, _mm256_add_epi32(at_bottom, one))]
                    {
                        let take = better(v, best);
                        best = _mm256_blendv_ps(best, v, take);
                        at = _mm256_blendv_ps(at, _mm256_castsi256_ps(k), take);
                    }
                    let o = i * ow + j;
                    _mm256_storeu_ps(out.as_mut_ptr().add(o).cast::<f32>(), best);
                    _mm256_storeu_si256(idx.as_mut_ptr().add(o).cast::<__m256i>(), _mm256_castps_si256(at));
                }
                if j + 8 == ow {
                    break;
                }
                j = (j + 8).min(ow - 8);
            }
        }
    }

    /// The even- and odd-indexed elements of the 16 floats at `p`.
    #[inline(always)]
    unsafe fn deinterleave(p: *const f32) -> (__m256, __m256) {
        // SAFETY: the caller guarantees 16 readable floats at `p` and AVX2.
        unsafe {
            let (lo, hi) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
            // Within each 128-bit lane: [x0 x2 x8 x10 | x4 x6 x12 x14] and the odd ones; then
            // the 64-bit pairs reordered 0, 2, 1, 3.
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
            let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
            (order(even), order(odd))
        }
    }

    /// `super::better` lane by lane: all ones where `v` replaces `best`.
    #[inline(always)]
    unsafe fn better(v: __m256, best: __m256) -> __m256 {
        // SAFETY: AVX comparisons on registers; the caller has AVX2.
        unsafe {
            let best_is_number = _mm256_cmp_ps::<_CMP_ORD_Q>(best, best);
            let v_is_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
            let larger = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            _mm256_and_ps(best_is_number, _mm256_or_ps(v_is_nan, larger))
        }
    }
}

/// Max pooling of planes of one size with one window: the kernel chosen once (the AVX2 path for
/// `f32` 2×2 windows with stride 2, the generic 2×2 loop, or the generic window scan), then run
/// plane by plane. Used by `max_pool2d` and by a convolution with a folded max pool
/// (`cpu/conv.rs`), so both give the same values and indices.
pub(crate) struct PlanePool<'a> {
    win: &'a Window2d,
    geometry: (usize, usize, usize, usize),
    two_by_two: bool,
    #[cfg(target_arch = "x86_64")]
    vector: bool,
}

impl<'a> PlanePool<'a> {
    /// For `H×W` planes of `T`. The caller has checked the window (`output_size`) and that the
    /// padding is at most half the kernel.
    pub(crate) fn new<T: Float>((h, w): (usize, usize), win: &'a Window2d) -> PlanePool<'a> {
        let (oh, ow) = win.output_size(h, w).expect("internal: window checked by the caller");
        let two_by_two = win.kernel == (2, 2) && win.stride == (2, 2) && win.padding == (0, 0);
        PlanePool {
            win,
            geometry: (h, w, oh, ow),
            two_by_two,
            #[cfg(target_arch = "x86_64")]
            vector: two_by_two
                && ow >= 8
                && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
                && std::arch::is_x86_feature_detected!("avx2"),
        }
    }

    /// Inputs per plane (`H·W`).
    pub(crate) fn plane_in(&self) -> usize {
        self.geometry.0 * self.geometry.1
    }

    /// Outputs per plane (`OH·OW`).
    pub(crate) fn plane_out(&self) -> usize {
        self.geometry.2 * self.geometry.3
    }

    /// One plane's `OH·OW` maxima and their indices within the plane.
    #[inline]
    pub(crate) fn run<T: Float>(&self, plane: &[T], o: &mut [MaybeUninit<T>], ix: &mut [MaybeUninit<u32>]) {
        let (_, w, oh, ow) = self.geometry;
        #[cfg(target_arch = "x86_64")]
        if self.vector {
            // SAFETY: `T` is `f32` and the CPU has AVX2 (both checked in `new`), so the slices
            // may be viewed as `f32`; the plane holds `H·W` inputs and the outputs `OH·OW`
            // elements.
            unsafe {
                let plane = std::slice::from_raw_parts(plane.as_ptr().cast::<f32>(), plane.len());
                let o = std::slice::from_raw_parts_mut(o.as_mut_ptr().cast::<MaybeUninit<f32>>(), o.len());
                avx::plane_2x2(plane, (w, oh, ow), o, ix);
            }
            return;
        }
        if self.two_by_two {
            crate::simd::wide(
                #[inline(always)]
                || pool_plane_2x2(plane, (w, oh, ow), o, ix),
            )
        } else {
            pool_plane(plane, self.geometry, self.win, o, ix)
        }
    }
}

/// `[B, C, H, W] -> ([B, C, OH, OW], indices)`: each window's maximum and the index in its plane
/// (`ih·W + iw`) of the first maximum. The caller checks that a plane has fewer than 2^32
/// elements and that the padding is at most half the kernel.
pub(crate) fn max_pool2d<T: Float>(x: &[T], dims: &[usize], win: &Window2d) -> (Vec<T>, Vec<u32>) {
    let pool = PlanePool::new::<T>((dims[2], dims[3]), win);
    let (plane_in, plane_out) = (pool.plane_in(), pool.plane_out());
    let total = dims[0] * dims[1] * plane_out;
    let mut out: Vec<T> = Vec::with_capacity(total);
    let mut idx: Vec<u32> = Vec::with_capacity(total);
    if total > 0 {
        let o = &mut out.spare_capacity_mut()[..total];
        let ix = &mut idx.spare_capacity_mut()[..total];
        let one = |p: usize, o: &mut [MaybeUninit<T>], ix: &mut [MaybeUninit<u32>]| {
            pool.run(&x[p * plane_in..(p + 1) * plane_in], o, ix)
        };
        if x.len() >= PAR_MIN && crate::threads::current() > 1 {
            o.par_chunks_mut(plane_out)
                .zip(ix.par_chunks_mut(plane_out))
                .enumerate()
                .for_each(|(p, (o, ix))| one(p, o, ix));
        } else {
            o.chunks_mut(plane_out).zip(ix.chunks_mut(plane_out)).enumerate().for_each(|(p, (o, ix))| one(p, o, ix));
        }
    }
    // SAFETY: `PlanePool::run` wrote all `OH·OW` values and indices of every plane.
    unsafe {
        out.set_len(total);
        idx.set_len(total);
    }
    (out, idx)
}

/// One plane's gradient: each element of `g` added into `dx` at its window's index, in window
/// order.
#[inline]
pub(crate) fn scatter_plane<T: Float>(dx: &mut [T], g: &[T], idx: &[u32]) {
    for (&v, &i) in g.iter().zip(idx) {
        dx[i as usize] += v;
    }
}

/// The gradient of `max_pool2d`: `g [B, C, OH, OW]` added into zeros of `[B, C, H, W]` at the
/// saved indices (a pixel that is the maximum of several overlapping windows gets each of
/// their gradients, summed in window order).
pub(crate) fn max_pool2d_backward<T: Float>(g: &[T], idx: &[u32], dims: &[usize]) -> Vec<T> {
    let (planes, plane_in) = (dims[0] * dims[1], dims[2] * dims[3]);
    let total = planes * plane_in;
    if planes == 0 || plane_in == 0 || g.is_empty() {
        return vec![T::ZERO; total];
    }
    let plane_out = g.len() / planes;
    // Each plane is zeroed by the task that scatters into it, right before it does: in
    // parallel, and while the plane is in that core's cache (a zero fill of the whole output
    // first was a serial pass over it).
    let one = |dx: &mut [MaybeUninit<T>], g: &[T], idx: &[u32]| {
        scatter_plane(super::init_zeros(dx), g, idx);
    };
    let mut out: Vec<T> = Vec::with_capacity(total);
    let dx = &mut out.spare_capacity_mut()[..total];
    if total >= PAR_MIN && crate::threads::current() > 1 {
        dx.par_chunks_mut(plane_in)
            .zip(g.par_chunks(plane_out).zip(idx.par_chunks(plane_out)))
            .for_each(|(dx, (g, idx))| one(dx, g, idx));
    } else {
        dx.chunks_mut(plane_in)
            .zip(g.chunks(plane_out).zip(idx.chunks(plane_out)))
            .for_each(|(dx, (g, idx))| one(dx, g, idx));
    }
    // SAFETY: the `planes` chunks of `plane_in` elements cover `total`, and `one` wrote each.
    unsafe { out.set_len(total) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 windows with stride 2 over `f32` planes wide enough for the vector path (widths that
    /// are multiples of 8 outputs and widths that end in an overlapping group; odd input sizes
    /// that leave a last row and column out), on values with many ties and some NaNs: values
    /// (to the bit) and indices equal a scan of the definition, where a strictly larger value or
    /// the first NaN wins.
    #[test]
    fn f32_two_by_two_windows_match_the_definition() {
        let mut rng = crate::Rng::seed(9);
        for dims in [[2, 3, 7, 17], [1, 2, 6, 26], [1, 1, 4, 32], [2, 1, 3, 21], [1, 1, 2, 16]] {
            let n: usize = dims.iter().product();
            let x: Vec<f32> = (0..n).map(|_| if rng.below(40) == 0 { f32::NAN } else { rng.below(4) as f32 }).collect();
            let win = Window2d {
                kernel: (2, 2),
                stride: (2, 2),
                padding: (0, 0),
                dilation: (1, 1),
                pad_value: f64::NEG_INFINITY,
            };
            let (h, w) = (dims[2], dims[3]);
            let (oh, ow) = win.output_size(h, w).unwrap();
            let (y, idx) = max_pool2d(&x, &dims, &win);
            for p in 0..dims[0] * dims[1] {
                for o in 0..oh * ow {
                    let (i0, j0) = (2 * (o / ow), 2 * (o % ow));
                    let (mut best, mut at) = (x[p * h * w + i0 * w + j0], i0 * w + j0);
                    for (i, j) in [(i0, j0 + 1), (i0 + 1, j0), (i0 + 1, j0 + 1)] {
                        let v = x[p * h * w + i * w + j];
                        if !best.is_nan() && (v.is_nan() || v > best) {
                            (best, at) = (v, i * w + j);
                        }
                    }
                    let k = p * oh * ow + o;
                    assert_eq!(
                        (y[k].to_bits(), idx[k] as usize),
                        (best.to_bits(), at),
                        "{dims:?}, plane {p}, output {o}"
                    );
                }
            }
        }
    }

    /// Windows that overlap, stick out of the input (padding) and skip inputs (stride > kernel)
    /// against a plain scan of the definition, on values with many ties.
    #[test]
    fn values_and_indices_match_the_definition() {
        let dims = [2, 3, 7, 8];
        let mut rng = crate::Rng::seed(5);
        let x: Vec<f64> = (0..dims.iter().product()).map(|_| rng.below(4) as f64).collect();
        for (kernel, stride, padding) in
            [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1)), ((3, 3), (2, 1), (1, 0)), ((1, 2), (3, 3), (0, 1))]
        {
            let win = Window2d { kernel, stride, padding, dilation: (1, 1), pad_value: f64::NEG_INFINITY };
            let (oh, ow) = win.output_size(dims[2], dims[3]).unwrap();
            let (y, idx) = max_pool2d(&x, &dims, &win);
            for p in 0..dims[0] * dims[1] {
                for o in 0..oh * ow {
                    let (mut best, mut at) = (f64::NEG_INFINITY, usize::MAX);
                    for ki in 0..kernel.0 {
                        for kj in 0..kernel.1 {
                            let i = ((o / ow) * stride.0 + ki).checked_sub(padding.0);
                            let j = ((o % ow) * stride.1 + kj).checked_sub(padding.1);
                            if let (Some(i), Some(j)) = (i, j)
                                && i < dims[2]
                                && j < dims[3]
                                && (at == usize::MAX || x[p * 56 + i * 8 + j] > best)
                            {
                                best = x[p * 56 + i * 8 + j];
                                at = i * 8 + j;
                            }
                        }
                    }
                    assert_eq!((y[p * oh * ow + o], idx[p * oh * ow + o] as usize), (best, at), "{win:?}, {p}/{o}");
                }
            }
        }
    }

    /// The 2×2 fast path keeps the generic rule for NaN (the first NaN wins) and ties (the first
    /// maximum wins), on an odd-sized plane whose last row and column no window covers.
    #[test]
    fn two_by_two_windows_keep_the_first_nan_and_the_first_tie() {
        let nan = f32::NAN;
        #[rustfmt::skip]
        let x = [
            1.0, nan, 5.0, 5.0, 9.0,
            nan, 3.0, 5.0, 5.0, 9.0,
            2.0, 2.0, 0.0, 7.0, 9.0,
        ];
        let win = Window2d { kernel: (2, 2), stride: (2, 2), padding: (0, 0), dilation: (1, 1), pad_value: 0.0 };
        let (y, idx) = max_pool2d(&x, &[1, 1, 3, 5], &win);
        assert!(y[0].is_nan());
        assert_eq!((y[1], &idx[..]), (5.0, &[1, 2][..]));
    }

    /// Above the parallel threshold, pools of 1, 2 and 4 threads give the same bits.
    #[test]
    fn pooling_does_not_depend_on_the_thread_count() {
        let dims = [8, 16, 20, 20];
        let mut rng = crate::Rng::seed(6);
        let x: Vec<f32> = (0..dims.iter().product()).map(|_| rng.next_f64() as f32).collect();
        let win = Window2d { kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), pad_value: 0.0 };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (y, idx) = max_pool2d(&x, &dims, &win);
                let dx = max_pool2d_backward(&y, &idx, &dims);
                (
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    idx,
                    dx.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            })
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(4), one);
    }
}
