//! Matrix products through the `gemm` crate (chosen by measurement; see ARCHITECTURE.md).
//!
//! `gemm` takes arbitrary row and column strides, so transposed and broadcast operands are read
//! in place, except a column-major right operand, which is copied row-major first, or, for a
//! single product where that operand is larger than the left one and the output together, left
//! as it is while the product is computed transposed from a copy of the left operand (see
//! `matmul`). A single product uses gemm's own threading, which measured faster than cutting it
//! ourselves (BENCHMARKS.md), except with a short K (below). The products of a batch are cut by
//! tensile: each product into blocks of output rows or columns, and the blocks of all products
//! run on the pool, each one a single-threaded gemm call (about 2x faster than running the
//! products one after another). How a batch is cut depends only on its shape, never on the
//! thread count, and neither gemm nor the cut ever splits the sum over K for one output element,
//! so 1, 2 or 4 threads give the same bits (tests/determinism.rs pins this).
//!
//! A single product with K at most [`SPLIT_MAX_K`] is cut into one block of rows per thread,
//! each a single-threaded gemm call. The count depends on the threads, but gemm does not cut K
//! below 512 and each output is one in-order sum in its kernels however the rows are blocked,
//! so the bits are those of the uncut call.
//!
//! Small `f32` products (or blocks) with contiguous rows of B skip gemm on AVX-512 CPUs: its
//! packing and dispatch cost more than their arithmetic, so [`avx512::product`] multiplies them
//! in place, on the calling thread, each output summed over K in order. The per-thread blocks
//! of a short-K product never take this path (the uncut product, above its size limit, would
//! not either).

use rayon::prelude::*;
use smallvec::{SmallVec, smallvec};

use crate::dtype::Float;
use crate::shape::Layout;
use crate::storage::MatmulDims;

/// Below this many multiply-adds in all, the products run on the calling thread.
const PAR_FLOPS: usize = 1 << 16;
/// A product is cut into one block per this many multiply-adds ...
const BLOCK_FLOPS: usize = 1 << 20;
/// ... but into at most this many blocks (each block packs the uncut operand again) ...
const MAX_BLOCKS: usize = 4;
/// ... each at least this many rows or columns wide.
const MIN_BLOCK: usize = 32;
/// Blocks of at most this many multiply-adds, at least [`SMALL_MIN_COLS`] columns wide, go to
/// [`avx512::product`] instead of gemm (for `f32` on AVX-512), whose packing and dispatch cost
/// more than the arithmetic at these sizes (W3's products, W1's last layer; BENCHMARKS.md).
const SMALL_FLOPS: usize = 1 << 19;
/// Narrower outputs waste most lanes of the kernel's vectors; gemm has dot-product paths for them.
const SMALL_MIN_COLS: usize = 8;
/// A single product with K at most this is cut into one block of rows per thread, each a
/// single-threaded gemm call, instead of going through gemm's threads: W1's weight gradient
/// (`[512×128] @ [128×784]`) ran 1.98x faster on two threads that way against 1.82x
/// (BENCHMARKS.md). gemm sums K in one block up to 512, so the cut changes no sum.
const SPLIT_MAX_K: usize = 256;
/// ... each block at least this many rows.
const SPLIT_MIN_ROWS: usize = 64;

/// The output buffer, shared by the tasks that write its disjoint blocks.
#[derive(Clone, Copy)]
struct Dst<T>(*mut T);
// SAFETY: the tasks write disjoint blocks of the buffer (see `matmul`), and the buffer outlives
// the parallel loop.
unsafe impl<T: Send> Send for Dst<T> {}
unsafe impl<T: Send> Sync for Dst<T> {}

impl<T> Dst<T> {
    /// The start of the buffer (a method, so that closures capture the whole `Dst`).
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// How one M×K @ K×N product is cut: `(blocks, by_rows)`. The copy of the operand that is not
/// cut is packed again per block, so the output is cut along its longer side (rows when
/// `N <= M`), which repacks the smaller operand.
fn blocks(m: usize, k: usize, n: usize) -> (usize, bool) {
    let by_rows = n <= m;
    let side = if by_rows { m } else { n };
    let count = (m * n * k / BLOCK_FLOPS).min(side / MIN_BLOCK).clamp(1, MAX_BLOCKS);
    (count, by_rows)
}

/// `out[b] = a[b] @ b[b]`; the layouts are broadcast to `batch + [M, K]` and `batch + [K, N]`.
pub(crate) fn matmul<T: Float>(a: &[T], la: &Layout, b: &[T], lb: &Layout, d: &MatmulDims) -> Vec<T> {
    let MatmulDims { batch, m, k, n } = d;
    let (m, k, n) = (*m, *k, *n);
    let nb = batch.elem_count();
    let total = nb * m * n;
    if total == 0 || k == 0 {
        return vec![T::ZERO; total];
    }
    // The output is not zero-filled first: with `read_dst = false` gemm writes every element of
    // each block without reading it, and the fill cost ~15% at n = 256 (BENCHMARKS.md).
    let mut out: Vec<T> = Vec::with_capacity(total);
    let r = la.dims().len();
    let (a_rs, a_cs) = (la.strides()[r - 2], la.strides()[r - 1]);
    let (mut b_rs, mut b_cs) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let batch_offsets = |l: &Layout| -> SmallVec<[usize; 1]> {
        if r == 2 {
            return smallvec![l.offset()];
        }
        let bl = Layout::new(batch.clone(), &l.strides()[..r - 2], l.offset());
        bl.offsets_from(0).collect()
    };
    let (oa, mut ob) = (batch_offsets(la), batch_offsets(lb));
    // One product whose right operand is column-major and larger than the left operand and the
    // output together (a linear layer's `x @ Wᵀ` with more features than rows): computed as
    // `outᵀ = W @ xᵀ`, where `W` is row-major as stored, so that the copies are of `x` and of
    // the result instead of `W` (W1's first layer: 165 K values copied instead of 401 K;
    // BENCHMARKS.md). Each output is the same products summed over K by gemm; which way a
    // product goes depends only on its shape.
    if nb == 1
        && a_cs == 1
        && b_rs == 1
        && b_cs >= k
        && m > 1
        && k > 1
        && n > 1
        && m * (k + n) < n * k
        && m * n * k > SMALL_FLOPS
    {
        let at = super::transpose::transpose(a, &oa, k, m, a_rs);
        let w = Layout::new(crate::Shape::new(vec![n, k]), &[b_cs, 1], ob[0]);
        let xt = Layout::contiguous(crate::Shape::new(vec![k, m]));
        let dims = MatmulDims { batch: crate::Shape::scalar(), m: n, k, n: m };
        let out_t = matmul(b, &w, &at, &xt, &dims);
        return super::transpose::transpose(&out_t, &[0], m, n, m);
    }
    // A column-major right operand (a linear layer's `Wᵀ`, attention's `Kᵀ`) is copied
    // row-major first: gemm packs it several times slower in that order, and for few rows it
    // has no fast path at all (BENCHMARKS.md). A single row is left alone: gemm reads it as dot
    // products of contiguous columns, which is already the right order. One matrix broadcast
    // over the batch is copied once.
    let row_major_b;
    let mut b = b;
    if b_rs == 1 && b_cs >= k && m > 1 && k > 1 && n > 1 {
        let shared = ob.iter().all(|&o| o == ob[0]);
        let starts = if shared { &ob[..1] } else { &ob[..] };
        row_major_b = super::transpose::transpose(b, starts, k, n, b_cs);
        b = &row_major_b;
        ob = if shared { SmallVec::from_elem(0, nb) } else { (0..nb).map(|i| i * k * n).collect() };
        (b_rs, b_cs) = (n, 1);
    }
    let threads = crate::threads::current();
    let parallel = threads > 1 && nb * m * n * k >= PAR_FLOPS;
    // One product: one gemm call with gemm's threads, or, with a short K, one block of rows per
    // thread. A batch: blocks on the pool.
    let split = nb == 1 && parallel && k <= SPLIT_MAX_K && m >= 2 * SPLIT_MIN_ROWS && m * n * k > SMALL_FLOPS;
    let (count, by_rows) = if split {
        (threads.min(m / SPLIT_MIN_ROWS), true)
    } else if nb == 1 {
        (1, true)
    } else {
        blocks(m, k, n)
    };
    let inner = if nb == 1 && parallel && !split { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let side = if by_rows { m } else { n };
    let dst = Dst(out.as_mut_ptr());
    // Block `u` is block `u % count` of product `u / count`: rows (or columns) `start..end`.
    let one = |u: usize| {
        let (i, j) = (u / count, u % count);
        let (start, end) = (side * j / count, side * (j + 1) / count);
        let (rows, cols) = if by_rows { (end - start, n) } else { (m, end - start) };
        let (ia, ib, id) = if by_rows {
            (oa[i] + start * a_rs, ob[i], i * m * n + start * n)
        } else {
            (oa[i], ob[i] + start * b_cs, i * m * n + start)
        };
        #[cfg(target_arch = "x86_64")]
        if b_cs == 1
            && !split
            && cols >= SMALL_MIN_COLS
            && rows * cols * k <= SMALL_FLOPS
            && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && std::arch::is_x86_feature_detected!("avx512f")
        {
            // SAFETY: `T` is `f32` and the CPU has AVX-512F (checked above); the regions are
            // those of the gemm call below, B's rows contiguous (`b_cs == 1`).
            unsafe {
                avx512::product(
                    (rows, k, cols),
                    (a.as_ptr().cast::<f32>().add(ia), a_rs, a_cs),
                    (b.as_ptr().cast::<f32>().add(ib), b_rs),
                    (dst.ptr().cast::<f32>().add(id), n),
                )
            };
            return;
        }
        // SAFETY: the strided rows×K and K×cols regions starting at `ia`/`ib` lie inside `a`/`b`
        // (their layouts were validated against the storages, and a block only narrows them);
        // the rows×cols block at `id` with row stride `n` lies inside the `total`-element
        // buffer, no other task writes it, and gemm only writes it (`read_dst = false`).
        unsafe {
            gemm::gemm(
                rows,
                cols,
                k,
                dst.ptr().add(id),
                1,
                n as isize,
                false,
                a.as_ptr().add(ia),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr().add(ib),
                b_cs as isize,
                b_rs as isize,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                inner,
            )
        }
    };
    let units = nb * count;
    if units > 1 && parallel {
        (0..units).into_par_iter().for_each(one);
    } else {
        (0..units).for_each(one);
    }
    // SAFETY: the blocks of every product cover its M×N elements, and gemm wrote each one.
    unsafe { out.set_len(total) };
    out
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `C (M×N) = A (M×K) @ B (K×N)` for small products: A at any row and column strides, B's
    /// rows contiguous, C row-major with row stride `c_rs`. Blocks of up to 4 rows by 64
    /// columns (16 accumulators); for each `p` in order, one row of B is loaded and each row's
    /// `A[i, p]` broadcast into a fused multiply-add, so every output is the sum over `p` in
    /// order from zero, whatever the block sizes (the order gemm's kernels use too). The last
    /// vector of a block is masked.
    ///
    /// # Safety
    ///
    /// AVX-512F; `A[i, p]` readable at `a + i·a_rs + p·a_cs`, `B[p, j]` at `b + p·b_rs + j`,
    /// and `C[i, j]` writable at `c + i·c_rs + j`, for `i < M`, `p < K`, `j < N`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        (m, k, n): (usize, usize, usize),
        (a, a_rs, a_cs): (*const f32, usize, usize),
        (b, b_rs): (*const f32, usize),
        (c, c_rs): (*mut f32, usize),
    ) {
        for (j, width) in super::super::blocks_of(n, 64) {
            let vecs = width.div_ceil(16);
            // The lanes of the last vector: 1 to 16.
            let last = ((1u32 << (width - 16 * (vecs - 1))) - 1) as __mmask16;
            for (i, rows) in super::super::blocks_of(m, 4) {
                let f = block_kernel!(block, rows, vecs,
                    1, 1; 1, 2; 1, 3; 1, 4; 2, 1; 2, 2; 2, 3; 2, 4;
                    3, 1; 3, 2; 3, 3; 3, 4; 4, 1; 4, 2; 4, 3; 4, 4);
                // SAFETY: rows `i..i + rows` and columns `j..j + width` of the caller's regions.
                unsafe { f(k, (a.add(i * a_rs), a_rs, a_cs), b.add(j), b_rs, (c.add(i * c_rs + j), c_rs), last) };
            }
        }
    }

    /// `R` rows by `V` vectors of [`product`], the last vector's lanes masked by `last`.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize, const V: usize>(
        k: usize,
        (a, a_rs, a_cs): (*const f32, usize, usize),
        b: *const f32,
        b_rs: usize,
        (c, c_rs): (*mut f32, usize),
        last: __mmask16,
    ) {
        let mask = |v: usize| if v + 1 == V { last } else { 0xffff };
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..k {
            let mut row = [_mm512_setzero_ps(); V];
            for (v, x) in row.iter_mut().enumerate() {
                // SAFETY: lanes of the mask in row `p` of B, inside the caller's columns.
                *x = unsafe { _mm512_maskz_loadu_ps(mask(v), b.add(p * b_rs + 16 * v)) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `A[r, p]` of this block.
                let x = _mm512_set1_ps(unsafe { *a.add(r * a_rs + p * a_cs) });
                for (acc, &y) in acc.iter_mut().zip(&row) {
                    *acc = _mm512_fmadd_ps(x, y, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &x) in acc.iter().enumerate() {
                // SAFETY: lanes of the mask in row `r` of this block of C.
                unsafe { _mm512_mask_storeu_ps(c.add(r * c_rs + 16 * v), mask(v), x) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;

    /// `A @ B` by the definition, each output the fused multiply-adds over `p` in order from
    /// zero: the order of both the small-product kernel and gemm's kernels.
    fn reference(a: &[f32], (a_rs, a_cs): (usize, usize), b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).fold(0.0f32, |s, p| a[i * a_rs + p * a_cs].mul_add(b[p * n + j], s));
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    /// Products small enough for the AVX-512 kernel (every row and column tail of its blocks,
    /// more than one block of columns, row- and column-major left operands) and a batch whose
    /// products are cut into blocks: the same bits as the sums in order.
    #[test]
    fn small_products_sum_in_order() {
        for &(m, k, n) in &[
            (1, 32, 64),
            (3, 5, 8),
            (5, 1, 17),
            (7, 9, 15),
            (6, 33, 63),
            (9, 16, 64),
            (4, 7, 65),
            (2, 3, 130),
            (64, 256, 20),
        ] {
            for column_major in [false, true] {
                let a = values(m * k, m + k);
                let b = values(k * n, n);
                let (strides, a_rs, a_cs) = if column_major { ([1, m], 1, m) } else { ([k, 1], k, 1) };
                let la = Layout::new(Shape::from([m, k]), &strides, 0);
                let lb = Layout::contiguous(Shape::from([k, n]));
                let d = MatmulDims { batch: Shape::scalar(), m, k, n };
                let got = matmul(&a, &la, &b, &lb, &d);
                assert_eq!(
                    got,
                    reference(&a, (a_rs, a_cs), &b, (m, k, n)),
                    "{m}x{k} @ {k}x{n}, A column-major: {column_major}"
                );
            }
        }
        // Three 64x32 @ 32x96 products, each cut into column blocks.
        let (nb, m, k, n) = (3, 64, 32, 96);
        let a = values(nb * m * k, 1);
        let b = values(nb * k * n, 2);
        let d = MatmulDims { batch: Shape::from([nb]), m, k, n };
        let got = matmul(
            &a,
            &Layout::contiguous(Shape::from([nb, m, k])),
            &b,
            &Layout::contiguous(Shape::from([nb, k, n])),
            &d,
        );
        for i in 0..nb {
            let want = reference(&a[i * m * k..], (k, 1), &b[i * k * n..(i + 1) * k * n], (m, k, n));
            assert_eq!(&got[i * m * n..(i + 1) * m * n], &want[..], "product {i} of the batch");
        }
    }
}
