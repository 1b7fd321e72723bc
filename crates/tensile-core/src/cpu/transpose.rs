//! Out-of-place transposition of a strided matrix into a row-major one.
//!
//! Used where a kernel reads a matrix much faster in the other memory order than the one it is
//! stored in: the GEMM's right operand `Wᵀ` of a linear layer (see `matmul`). Tiles of 8×8 go
//! through registers (eight row loads, 24 shuffles, eight row stores with AVX for `f32`), so
//! each element is read and written once in whole cache lines instead of one strided load per
//! element. Output rows are cut into fixed pieces for the pool; the result is a copy, the same
//! bits whatever the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::dtype::WithDType;

/// Tile side.
const T: usize = 8;
/// Below this many elements the copy runs on the calling thread.
const PAR_MIN: usize = 1 << 16;
/// Output rows per parallel task (a multiple of the tile side).
const ROWS_PER_TASK: usize = 64;

/// `out[b][i * cols + j] = src[starts[b] + j * ld + i]` for `i < rows`, `j < cols`: for each
/// start, the transpose of the `cols × rows` row-major matrix there with row stride `ld` (that
/// is, of the `rows × cols` column-major matrix with column stride `ld`), written row-major, one
/// after another.
pub(crate) fn transpose<E: WithDType>(src: &[E], starts: &[usize], rows: usize, cols: usize, ld: usize) -> Vec<E> {
    let one = rows * cols;
    let total = starts.len() * one;
    if total == 0 {
        return Vec::new();
    }
    assert!(
        ld >= rows && starts.iter().all(|&s| s + (cols - 1) * ld + rows <= src.len()),
        "transpose: the source is too short"
    );
    let mut out: Vec<E> = Vec::with_capacity(total);
    let dst = &mut out.spare_capacity_mut()[..total];
    let piece = ROWS_PER_TASK * cols;
    let run = |(start, p, chunk): (usize, usize, &mut [MaybeUninit<E>])| {
        let r0 = p * ROWS_PER_TASK;
        let r1 = r0 + chunk.len() / cols;
        rows_of(&src[start..], r0, r1, cols, ld, chunk);
    };
    if total >= PAR_MIN && crate::threads::current() > 1 {
        dst.par_chunks_mut(one)
            .zip(starts)
            .flat_map(|(m, &s)| m.par_chunks_mut(piece).enumerate().map(move |(p, c)| (s, p, c)))
            .for_each(run);
    } else {
        dst.chunks_mut(one)
            .zip(starts)
            .flat_map(|(m, &s)| m.chunks_mut(piece).enumerate().map(move |(p, c)| (s, p, c)))
            .for_each(run);
    }
    // SAFETY: `rows_of` wrote every element of every chunk, and the chunks cover `total`.
    unsafe { out.set_len(total) };
    out
}

/// `dst[i * cols + j] = src[j * ld + i]` for `i < rows`, `j < cols`, on the calling thread: the
/// single-matrix [`transpose`] into a buffer of the caller's.
pub(super) fn transpose_into<E: WithDType>(src: &[E], rows: usize, cols: usize, ld: usize, dst: &mut [MaybeUninit<E>]) {
    assert!(
        dst.len() == rows * cols && (rows * cols == 0 || ld >= rows && (cols - 1) * ld + rows <= src.len()),
        "transpose_into: buffers of the wrong size"
    );
    rows_of(src, 0, rows, cols, ld, dst);
}

/// Output rows `r0..r1` into `dst` (which holds exactly those rows).
fn rows_of<E: WithDType>(src: &[E], r0: usize, r1: usize, cols: usize, ld: usize, dst: &mut [MaybeUninit<E>]) {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `E` is `f32` (checked), so the slices may be viewed as `f32`; the CPU has AVX.
        unsafe {
            let src = std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len());
            let dst = std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<MaybeUninit<f32>>(), dst.len());
            avx::rows_of(src, r0, r1, cols, ld, dst);
        }
        return;
    }
    let (rf, cf) = (r0 + (r1 - r0) / T * T, cols / T * T);
    for i0 in (r0..rf).step_by(T) {
        for j0 in (0..cf).step_by(T) {
            let mut tile = [[E::default(); T]; T];
            for (c, row) in tile.iter_mut().enumerate() {
                let s = (j0 + c) * ld + i0;
                row.copy_from_slice(&src[s..s + T]);
            }
            for r in 0..T {
                let d = (i0 - r0 + r) * cols + j0;
                for (c, row) in tile.iter().enumerate() {
                    dst[d + c].write(row[r]);
                }
            }
        }
    }
    edges(src, r0, r1, rf, cf, cols, ld, dst);
}

/// The elements the 8×8 tiles left out: rows `rf..r1` and columns `cf..cols`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn edges<E: Copy>(
    src: &[E],
    r0: usize,
    r1: usize,
    rf: usize,
    cf: usize,
    cols: usize,
    ld: usize,
    dst: &mut [MaybeUninit<E>],
) {
    for i in r0..r1 {
        let from = if i < rf { cf } else { 0 };
        for j in from..cols {
            dst[(i - r0) * cols + j].write(src[j * ld + i]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{T, edges};

    /// [`super::rows_of`] for `f32`, one 8×8 tile in registers at a time.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn rows_of(
        src: &[f32],
        r0: usize,
        r1: usize,
        cols: usize,
        ld: usize,
        dst: &mut [MaybeUninit<f32>],
    ) {
        let (rf, cf) = (r0 + (r1 - r0) / T * T, cols / T * T);
        for i0 in (r0..rf).step_by(T) {
            for j0 in (0..cf).step_by(T) {
                // The last element each tile touches, for the bounds the intrinsics skip.
                assert!((j0 + T - 1) * ld + i0 + T <= src.len() && (i0 - r0 + T - 1) * cols + j0 + T <= dst.len());
                // SAFETY: every load reads 8 elements starting at `(j0 + c) * ld + i0`, every
                // store writes 8 starting at `(i0 - r0 + r) * cols + j0`; the assert above
                // bounds the last of each, and the earlier ones come before it.
                unsafe {
                    let s = src.as_ptr().add(j0 * ld + i0);
                    let l = |c: usize| _mm256_loadu_ps(s.add(c * ld));
                    let (a0, a1, a2, a3, a4, a5, a6, a7) = (l(0), l(1), l(2), l(3), l(4), l(5), l(6), l(7));
                    let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
                    let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
                    let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
                    let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let d = dst.as_mut_ptr().cast::<f32>().add((i0 - r0) * cols + j0);
                    let st = |r: usize, v: __m256| _mm256_storeu_ps(d.add(r * cols), v);
                    st(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                    st(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                    st(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                    st(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                    st(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                    st(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                    st(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                    st(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
                }
            }
        }
        edges(src, r0, r1, rf, cf, cols, ld, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(src: &[f32], rows: usize, cols: usize, ld: usize) -> Vec<f32> {
        (0..rows).flat_map(|i| (0..cols).map(move |j| src[j * ld + i])).collect()
    }

    #[test]
    fn matches_the_definition_for_every_edge_case() {
        // Sizes around the tile side and the task size, with and without padding (`ld > rows`).
        for &(rows, cols, pad) in
            &[(1, 1, 0), (8, 8, 0), (9, 7, 3), (16, 24, 0), (65, 33, 1), (130, 17, 5), (7, 130, 2), (300, 260, 4)]
        {
            let ld = rows + pad;
            let src: Vec<f32> = (0..cols * ld).map(|v| v as f32).collect();
            let want = reference(&src, rows, cols, ld);
            assert_eq!(transpose(&src, &[0], rows, cols, ld), want, "f32 {rows}x{cols} ld {ld}");
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            assert_eq!(pool.install(|| transpose(&src, &[0], rows, cols, ld)), want, "2 threads {rows}x{cols}");
            let src64: Vec<f64> = src.iter().map(|&v| f64::from(v)).collect();
            let want64: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
            assert_eq!(transpose(&src64, &[0], rows, cols, ld), want64, "f64 {rows}x{cols} ld {ld}");
        }
    }

    #[test]
    fn transposes_each_matrix_of_a_batch_from_its_own_start() {
        let (rows, cols, ld) = (70, 9, 72);
        let src: Vec<f32> = (0..3 * cols * ld + 5).map(|v| v as f32).collect();
        // The second matrix starts mid-buffer; the third repeats the first (a broadcast batch).
        let starts = [0, cols * ld + 5, 0];
        let want: Vec<f32> = starts.iter().flat_map(|&s| reference(&src[s..], rows, cols, ld)).collect();
        assert_eq!(transpose(&src, &starts, rows, cols, ld), want);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert_eq!(pool.install(|| transpose(&src, &starts, rows, cols, ld)), want);
    }
}
