//! A 3×3 convolution with stride 1 by Winograd's minimal filtering, F(2×2, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016), for `f32` on AVX-512 CPUs.
//!
//! Each 2×2 block of outputs ("tile") comes from the 4×4 block of input around it:
//! `Y = Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`. Over all tiles and channels the sum is 16
//! independent matrix products, one per position of the 4×4 transformed block:
//! `M_ξ [O × tiles] = U_ξ [O × C] @ V_ξ [C × tiles]`, with 4 multiply-adds per output where the
//! direct sum takes 9 (2.25 times fewer). The transforms are additions only (and halvings, exact
//! in binary), done 16 channels at a time in registers with the data channels-last; the
//! products go to gemm.
//!
//! The result is the convolution's up to rounding: the sums are grouped differently from the
//! direct ones, so values differ from im2col's in the last bits (about 1e-6 relative on W2's
//! second layer, like any other change in summation order). Samples are cut into groups by the
//! shape alone and each group is computed the same way on any thread, so the bits do not depend
//! on the thread count.
//!
//! [`Plan::applies`] says when this path is taken: where the products are the cost, a few dozen
//! channels in and out (W2's training step: 0.92-0.93x the time with its second convolution's
//! forward pass here, BENCHMARKS.md); a first layer on 1 or 3 channels keeps im2col. The backward pass
//! keeps im2col and col2im: the input gradient through this path (a convolution of the output
//! gradient with the flipped kernels) cost more than it saved on W2 (0.95-0.96x in all against
//! 0.91-0.93x without it, in groups of 4), its products having too few rows for gemm's widest
//! kernel.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Channels in and out at least this many: below, most of a 16-lane vector is masked off and
/// the products' K is too short to pay for the transforms.
const MIN_CHANNELS: usize = 16;
/// Tiles per group of samples at least this many (samples are grouped so that each product
/// is wide enough for gemm's kernels: 2 samples on W2; groups of 4 ran 1-2% faster there but
/// raised its peak resident memory by about 9 MiB), ...
const GROUP_TILES: usize = 64;
/// ... and at most this many per product (a block of tiles; large images run in several).
const BLOCK_TILES: usize = 256;

/// One convolution's shapes and its transformed filters.
pub(super) struct Plan {
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    pad: (usize, usize),
    oh: usize,
    ow: usize,
    /// Tiles per row and per column of one sample's output.
    th: usize,
    tw: usize,
    /// Samples per group.
    group: usize,
    /// `U [16][O][C]`: each filter `G g Gᵀ`.
    u: Vec<f32>,
}

/// `n` values to be written before they are read.
fn uninit(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` values need no initialization, and the capacity is `n`.
    unsafe { v.set_len(n) };
    v
}

/// `s` as `f32`s, once every element has been written.
///
/// # Safety
///
/// Every element of `s` is initialized.
unsafe fn assume_init(s: &[MaybeUninit<f32>]) -> &[f32] {
    // SAFETY: the caller's promise; `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}

impl Plan {
    /// Whether a convolution of `x [B, C, H, W]` with `w [O, C/groups, KH, KW]` under `spec` takes
    /// this path: 3×3, stride 1, no dilation, one group, zero padding, at least
    /// [`MIN_CHANNELS`] channels in and out, more than one sample (a single sample keeps
    /// im2col, whose one product gemm splits over the threads), and AVX-512 on the CPU.
    pub(super) fn applies(xd: &[usize], wd: &[usize], win: &crate::ops::Window2d, groups: usize) -> bool {
        win.kernel == (3, 3)
            && win.stride == (1, 1)
            && win.dilation == (1, 1)
            && win.pad_value == 0.0
            && groups == 1
            && xd[0] > 1
            && xd[1] >= MIN_CHANNELS
            && wd[0] >= MIN_CHANNELS
            && xd[2] + 2 * win.padding.0 >= 3
            && xd[3] + 2 * win.padding.1 >= 3
            && std::arch::is_x86_feature_detected!("avx512f")
    }

    /// The plan for `x [B, C, H, W]` and `w [O, C, 3, 3]` (as `w`'s values) with `padding`.
    pub(super) fn new(xd: &[usize], wd: &[usize], w: &[f32], padding: (usize, usize)) -> Plan {
        let (c, o, h, wi) = (xd[1], wd[0], xd[2], xd[3]);
        let (oh, ow) = (h + 2 * padding.0 - 2, wi + 2 * padding.1 - 2);
        let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
        let group = GROUP_TILES.div_ceil(th * tw).clamp(1, xd[0]);
        let mut u = vec![0.0; 16 * o * c];
        for (oc, g) in w.chunks_exact(9).enumerate() {
            // G g Gᵀ with G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]: rows, then columns.
            let rows = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            let t: [[f32; 4]; 3] = std::array::from_fn(|j| rows(g[j], g[3 + j], g[6 + j]));
            for i in 0..4 {
                for (j, v) in rows(t[0][i], t[1][i], t[2][i]).into_iter().enumerate() {
                    u[(i * 4 + j) * o * c + oc] = v;
                }
            }
        }
        Plan { c, o, h, w: wi, pad: padding, oh, ow, th, tw, group, u }
    }

    /// `O·OH·OW`.
    pub(super) fn outputs_per_sample(&self) -> usize {
        self.o * self.oh * self.ow
    }

    /// Samples per group; the caller hands [`Plan::run`] groups of this many (the last may be
    /// shorter).
    pub(super) fn group(&self) -> usize {
        self.group
    }

    /// The convolution without bias of the `n` samples in `x` (`[n, C, H, W]`) into `y`
    /// (`[n, O, OH·OW]`, every element written).
    pub(super) fn run(&self, x: &[f32], n: usize, y: &mut [MaybeUninit<f32>]) {
        let (c, o) = (self.c, self.o);
        let (hw, l) = (self.h * self.w, self.oh * self.ow);
        let tiles = n * self.th * self.tw;
        let block = tiles.min(BLOCK_TILES);
        assert!(x.len() == n * c * hw && y.len() == n * o * l, "winograd: buffers of the wrong size");
        // Written before they are read, so never filled: the inputs channels-last
        // `[n][H·W][C]`, `V [16][tiles of a block][C]`, `M [16][tiles of a block][O]` and the
        // outputs channels-last `[n][OH·OW][O]`.
        let (mut xt, mut v, mut m, mut yt) =
            (uninit(n * hw * c), uninit(16 * block * c), uninit(16 * block * o), uninit(n * l * o));
        for (xs, xt) in x.chunks_exact(c * hw).zip(xt.chunks_exact_mut(hw * c)) {
            // `xt[p][c] = xs[c][p]`.
            super::transpose::transpose_into(xs, hw, c, hw, xt);
        }
        // SAFETY: the transposes wrote every element.
        let xt = unsafe { assume_init(&xt) };
        for t0 in (0..tiles).step_by(block) {
            let nb = block.min(tiles - t0);
            // SAFETY: AVX-512F (checked by `applies`, which the caller asked first); the
            // buffers were sized above for `nb <= block` tiles and the group's samples.
            unsafe { self.input_transform(xt, &mut v, t0, nb) };
            for xi in 0..16 {
                // SAFETY: `U_ξ` is O×C row-major, `V_ξ` C×nb with rows of stride 1 (tile
                // `t` at `t·C`, all written by the input transform), `M_ξ` O×nb column-major
                // (tile `t` at `t·O`, written in full by gemm), all inside their buffers.
                unsafe {
                    super::conv::gemm_into(
                        (o, nb, c),
                        (m.as_mut_ptr().add(xi * nb * o).cast::<f32>(), 1, o),
                        false,
                        (self.u.as_ptr().add(xi * o * c), c, 1),
                        (v.as_ptr().add(xi * nb * c).cast::<f32>(), 1, c),
                        gemm::Parallelism::None,
                    )
                };
            }
            // SAFETY: as for the input transform; the products wrote `M`'s first `16·nb·O`.
            unsafe { self.output_transform(assume_init(&m[..16 * nb * o]), &mut yt, t0, nb) };
        }
        // SAFETY: the output transforms wrote every output of every sample (each lies in one
        // tile).
        let yt = unsafe { assume_init(&yt) };
        for (yt, ys) in yt.chunks_exact(l * o).zip(y.chunks_exact_mut(o * l)) {
            // `ys[o][p] = yt[p][o]`.
            super::transpose::transpose_into(yt, o, l, o, ys);
        }
    }

    /// `V` for tiles `t0..t0 + nb` of the group (tile `t` is tile `t mod TH·TW` of sample
    /// `t / (TH·TW)`, row-major), from the channels-last input `xt`.
    ///
    /// # Safety
    ///
    /// AVX-512F; `xt` holds the group's samples and `v` at least `16·nb·C` values.
    #[target_feature(enable = "avx512f")]
    unsafe fn input_transform(&self, xt: &[f32], v: &mut [MaybeUninit<f32>], t0: usize, nb: usize) {
        let (c, hw, per) = (self.c, self.h * self.w, self.th * self.tw);
        assert!(v.len() >= 16 * nb * c && xt.len() >= (t0 + nb).div_ceil(per) * hw * c);
        let zero = _mm512_setzero_ps();
        for tb in 0..nb {
            let (sample, t) = ((t0 + tb) / per, (t0 + tb) % per);
            let (ty, tx) = (t / self.tw, t % self.tw);
            let plane = &xt[sample * hw * c..(sample + 1) * hw * c];
            // Input row and column of the block's first position, and which of its 4×4
            // positions lie inside the input (the rest read as the zero padding).
            let (y0, x0) = ((2 * ty) as isize - self.pad.0 as isize, (2 * tx) as isize - self.pad.1 as isize);
            let inside = |p: isize, n: usize| p >= 0 && (p as usize) < n;
            for cb in (0..c).step_by(16) {
                let mask = lanes(c - cb);
                let mut d = [[zero; 4]; 4];
                for (i, row) in d.iter_mut().enumerate() {
                    let yy = y0 + i as isize;
                    if !inside(yy, self.h) {
                        continue;
                    }
                    for (j, dij) in row.iter_mut().enumerate() {
                        let xx = x0 + j as isize;
                        if inside(xx, self.w) {
                            let at = (yy as usize * self.w + xx as usize) * c + cb;
                            // SAFETY: `at + lanes <= plane.len()`: the position is inside the
                            // plane and the mask stops at channel C.
                            *dij = unsafe { _mm512_maskz_loadu_ps(mask, plane.as_ptr().add(at)) };
                        }
                    }
                }
                // Bᵀ d B with Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
                let bt = |a: [__m512; 4]| {
                    [
                        _mm512_sub_ps(a[0], a[2]),
                        _mm512_add_ps(a[1], a[2]),
                        _mm512_sub_ps(a[2], a[1]),
                        _mm512_sub_ps(a[1], a[3]),
                    ]
                };
                let cols: [[__m512; 4]; 4] = std::array::from_fn(|j| bt([d[0][j], d[1][j], d[2][j], d[3][j]]));
                let blocks: [[__m512; 4]; 4] = std::array::from_fn(|i| bt(std::array::from_fn(|j| cols[j][i])));
                for (i, q) in blocks.into_iter().enumerate() {
                    for (j, qj) in q.into_iter().enumerate() {
                        let at = ((i * 4 + j) * nb + tb) * c + cb;
                        // SAFETY: `at` is inside `v` (asserted length), the mask stops at C.
                        unsafe { _mm512_mask_storeu_ps(v.as_mut_ptr().add(at).cast::<f32>(), mask, qj) };
                    }
                }
            }
        }
    }

    /// `Aᵀ M A` for tiles `t0..t0 + nb` into the channels-last outputs `yt`, only the outputs
    /// inside `OH × OW` (a tile on an odd edge has one row or column).
    ///
    /// # Safety
    ///
    /// AVX-512F; `m` holds `16·nb·O` values and `yt` the group's outputs.
    #[target_feature(enable = "avx512f")]
    unsafe fn output_transform(&self, m: &[f32], yt: &mut [MaybeUninit<f32>], t0: usize, nb: usize) {
        let (o, l, per) = (self.o, self.oh * self.ow, self.th * self.tw);
        assert!(m.len() >= 16 * nb * o && yt.len() >= (t0 + nb).div_ceil(per) * l * o);
        for tb in 0..nb {
            let (sample, t) = ((t0 + tb) / per, (t0 + tb) % per);
            let (ty, tx) = (t / self.tw, t % self.tw);
            let (rows, cols) = ((self.oh - 2 * ty).min(2), (self.ow - 2 * tx).min(2));
            let out = sample * l * o;
            for ob in (0..o).step_by(16) {
                let mask = lanes(o - ob);
                // SAFETY: every load is inside `m` (asserted length), the mask stops at O.
                let mm: [[__m512; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| unsafe {
                        _mm512_maskz_loadu_ps(mask, m.as_ptr().add(((i * 4 + j) * nb + tb) * o + ob))
                    })
                });
                // Aᵀ m A with Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]].
                let at = |a: [__m512; 4]| {
                    [_mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]), _mm512_sub_ps(_mm512_sub_ps(a[1], a[2]), a[3])]
                };
                let half: [[__m512; 2]; 4] = std::array::from_fn(|j| at([mm[0][j], mm[1][j], mm[2][j], mm[3][j]]));
                let outputs: [[__m512; 2]; 2] = std::array::from_fn(|i| at(std::array::from_fn(|j| half[j][i])));
                for (i, q) in outputs.into_iter().enumerate().take(rows) {
                    for (j, qj) in q.into_iter().enumerate().take(cols) {
                        let p = (2 * ty + i) * self.ow + 2 * tx + j;
                        // SAFETY: `p < OH·OW` (rows and cols stop at the edge), so the store is
                        // inside the sample's outputs; the mask stops at O.
                        unsafe { _mm512_mask_storeu_ps(yt.as_mut_ptr().add(out + p * o + ob).cast::<f32>(), mask, qj) };
                    }
                }
            }
        }
    }
}

/// The first `n` (at most 16) lanes.
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 { !0 } else { (1u16 << n) - 1 }
}
