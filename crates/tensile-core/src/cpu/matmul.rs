//! Matrix products through the `gemm` crate (chosen by measurement; see ARCHITECTURE.md).
//!
//! `gemm` takes arbitrary row and column strides, so transposed and broadcast operands are read
//! in place. Its summation order over K does not depend on the thread count, so 1 and 2 threads
//! give the same bits (a test pins this). Many small products of a batch run in parallel over
//! the batch, each single-threaded; large ones run one after another, each using every thread.

use rayon::prelude::*;

use crate::dtype::Float;
use crate::shape::Layout;
use crate::storage::MatmulDims;

/// Below this many multiply-adds per product, threads cost more than they give.
const PAR_FLOPS: usize = 1 << 16;

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
    // each M×N block without reading it, and the fill cost ~15% at n = 256 (BENCHMARKS.md).
    let mut out: Vec<T> = Vec::with_capacity(total);
    let r = la.dims().len();
    let (a_rs, a_cs) = (la.strides()[r - 2], la.strides()[r - 1]);
    let (b_rs, b_cs) = (lb.strides()[r - 2], lb.strides()[r - 1]);
    let batch_offsets = |l: &Layout| -> Vec<usize> {
        let bl = Layout::new(batch.clone(), l.strides()[..r - 2].to_vec(), l.offset());
        bl.offsets_from(0).collect()
    };
    let (oa, ob) = (batch_offsets(la), batch_offsets(lb));
    let threads = crate::threads::current();
    let one = |dst: &mut [std::mem::MaybeUninit<T>], ia: usize, ib: usize, par: gemm::Parallelism| {
        // SAFETY: the strided M×K and K×N regions starting at `ia`/`ib` lie inside `a`/`b`
        // (their layouts were validated against the storages), and `dst` is a fresh M×N
        // row-major buffer that gemm only writes (`read_dst = false`).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr().cast::<T>(),
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
                par,
            )
        }
    };
    let flops = m * n * k;
    let spare = &mut out.spare_capacity_mut()[..total];
    if nb > 1 && threads > 1 && flops < PAR_FLOPS * 16 {
        spare.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| one(dst, oa[i], ob[i], gemm::Parallelism::None));
    } else {
        let par =
            if threads > 1 && flops >= PAR_FLOPS { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        for (i, dst) in spare.chunks_mut(m * n).enumerate() {
            one(dst, oa[i], ob[i], par);
        }
    }
    // SAFETY: every one of the `total` elements was written by gemm above.
    unsafe { out.set_len(total) };
    out
}
