//! Matrix products through the `gemm` crate (chosen by measurement; see ARCHITECTURE.md).
//!
//! `gemm` takes arbitrary row and column strides, so transposed and broadcast operands are read
//! in place, except a column-major right operand, which is copied row-major first (see
//! `matmul`). A single product uses gemm's own threading, which measured faster than cutting it
//! ourselves (BENCHMARKS.md). The products of a batch are cut by tensile: each product into
//! blocks of output rows or columns, and the blocks of all products run on the pool, each one a
//! single-threaded gemm call (about 2x faster than running the products one after another).
//! How a product is cut depends only on its shape, never on the thread count, and neither gemm
//! nor the cut ever splits the sum over K for one output element, so 1, 2 or 4 threads give the
//! same bits (tests/determinism.rs pins this).

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
    // One product: one gemm call with gemm's threads. A batch: blocks on the pool.
    let (count, by_rows) = if nb == 1 { (1, true) } else { blocks(m, k, n) };
    let inner = if nb == 1 && parallel { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
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
