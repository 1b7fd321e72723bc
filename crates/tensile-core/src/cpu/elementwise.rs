//! Elementwise kernels: unary maps, broadcasting binary maps, selection and strided copies.
//!
//! Binary maps recognise the broadcast patterns that training produces (same layout; a scalar;
//! a bias repeated over rows; one value per row) and run them as plain slice loops that the
//! compiler vectorizes; anything else walks both layouts with a strided iterator.

use std::mem::MaybeUninit;

use super::{par_fill, par_new};
use crate::dtype::{Float, WithDType};
use crate::ops::{BinaryOp, CmpOp, UnaryOp};
use crate::shape::Layout;

/// Expands `$run!(op)` once per variant with the variant spelled out, so that after inlining
/// the per-element `match` in the op table disappears.
macro_rules! for_each_unary {
    ($op:expr, $run:ident) => {
        match $op {
            UnaryOp::Neg => $run!(UnaryOp::Neg),
            UnaryOp::Exp => $run!(UnaryOp::Exp),
            UnaryOp::Log => $run!(UnaryOp::Log),
            UnaryOp::Sqrt => $run!(UnaryOp::Sqrt),
            UnaryOp::Abs => $run!(UnaryOp::Abs),
            UnaryOp::Square => $run!(UnaryOp::Square),
            UnaryOp::Recip => $run!(UnaryOp::Recip),
            UnaryOp::Relu => $run!(UnaryOp::Relu),
            UnaryOp::LeakyRelu(a) => $run!(UnaryOp::LeakyRelu(a)),
            UnaryOp::Gelu => $run!(UnaryOp::Gelu),
            UnaryOp::GeluTanh => $run!(UnaryOp::GeluTanh),
            UnaryOp::Sigmoid => $run!(UnaryOp::Sigmoid),
            UnaryOp::Tanh => $run!(UnaryOp::Tanh),
            UnaryOp::Softplus => $run!(UnaryOp::Softplus),
            UnaryOp::Silu => $run!(UnaryOp::Silu),
            UnaryOp::Powf(e) => $run!(UnaryOp::Powf(e)),
            UnaryOp::Clamp(a, b) => $run!(UnaryOp::Clamp(a, b)),
            UnaryOp::Affine(m, a) => $run!(UnaryOp::Affine(m, a)),
        }
    };
}

/// The elements of `layout` in row-major order, in a new vector.
pub(crate) fn gather_strided<T: WithDType>(data: &[T], layout: &Layout) -> Vec<T> {
    if let Some(r) = layout.contiguous_range() {
        return data[r].to_vec();
    }
    let n = layout.elem_count();
    let dims = layout.dims();
    let strides = layout.strides();
    // One value broadcast to every element (the gradient of a mean, spread over its input).
    if n > 0 && strides.iter().all(|&s| s == 0) {
        return vec![data[layout.offset()]; n];
    }
    // Column-major matrices (a transposed view, or a batch of them): tiles through registers,
    // where the walk below reads with a stride of a whole column per element.
    let r = dims.len();
    if r >= 2 && strides[r - 2] == 1 && dims[r - 2] > 1 && dims[r - 1] > 1 && strides[r - 1] >= dims[r - 2] {
        let batch = Layout::new(crate::shape::Shape::from(&dims[..r - 2]), &strides[..r - 2], layout.offset());
        let starts: Vec<usize> = batch.offsets_from(0).collect();
        return super::transpose::transpose(data, &starts, dims[r - 2], dims[r - 1], strides[r - 1]);
    }
    // Fast path: the innermost dimension is contiguous, copy it as slices.
    if let (Some(&inner), Some(&1)) = (dims.last(), strides.last()) {
        let mut out = Vec::with_capacity(n);
        for start in layout.rows().offsets_from(0) {
            out.extend_from_slice(&data[start..start + inner]);
        }
        return out;
    }
    let mut out = Vec::with_capacity(n);
    out.extend(layout.offsets_from(0).map(|o| data[o]));
    out
}

/// `op` applied to every element, as one monomorphized loop per op.
pub(crate) fn unary<T: Float>(data: &[T], layout: &Layout, op: UnaryOp) -> Vec<T> {
    let x = super::contiguous_cow(data, layout);
    macro_rules! run {
        ($o:expr) => {{
            par_new(
                x.len(),
                #[inline(always)]
                |s, c| {
                    let e = s + c.len();
                    for (y, &v) in c.iter_mut().zip(&x[s..e]) {
                        y.write($o.fwd(v));
                    }
                },
            )
        }};
    }
    for_each_unary!(op, run)
}

/// `g * f'(x)` with `y = f(x)`, one fused pass.
pub(crate) fn unary_backward<T: Float>(x: &[T], y: &[T], g: &[T], op: UnaryOp) -> Vec<T> {
    grad_pass(x, y, op, |s, e| g[s..e].iter().copied())
}

/// `g * f'(x)` with `y = f(x)` and one gradient value `g` for every element: the values of
/// [`unary_backward`] with `g` broadcast, without the broadcast's copy.
pub(crate) fn unary_backward_scalar<T: Float>(x: &[T], y: &[T], g: T, op: UnaryOp) -> Vec<T> {
    grad_pass(x, y, op, |s, e| std::iter::repeat_n(g, e - s))
}

/// The loop of [`unary_backward`] and [`unary_backward_scalar`]: `grads(s, e)` yields the
/// gradients of elements `s..e`.
#[inline(always)]
fn grad_pass<T: Float, I: Iterator<Item = T>>(
    x: &[T],
    y: &[T],
    op: UnaryOp,
    grads: impl Fn(usize, usize) -> I + Sync,
) -> Vec<T> {
    macro_rules! run {
        ($o:expr) => {{
            par_new(
                x.len(),
                #[inline(always)]
                |s, c| {
                    let e = s + c.len();
                    for (((d, &xv), &yv), gv) in c.iter_mut().zip(&x[s..e]).zip(&y[s..e]).zip(grads(s, e)) {
                        d.write(gv * $o.grad(xv, yv));
                    }
                },
            )
        }};
    }
    for_each_unary!(op, run)
}

/// A linear layer's epilogue in place on its product `out` (rows of `bias.len()`, or of any
/// length without a bias): `out[i, j] + bias[j]`, then the ReLU when `relu`. The same values as
/// `binary(Add)` and then `unary(Relu)`, in one pass over memory the product just wrote and with
/// no new buffer.
pub(crate) fn bias_relu_<T: Float>(out: &mut [T], bias: Option<&[T]>, relu: bool) {
    let act = |v: T| if relu { UnaryOp::Relu.fwd(v) } else { v };
    match bias {
        Some(bias) if !bias.is_empty() => par_fill(
            out,
            #[inline(always)]
            |start, c| {
                // A chunk may start and end inside a row: its first partial row, its whole rows,
                // then what is left.
                let n = bias.len();
                let j0 = start % n;
                let (head, rest) = c.split_at_mut(((n - j0) % n).min(c.len()));
                head.iter_mut().zip(&bias[j0..]).for_each(|(v, &b)| *v = act(*v + b));
                let mut rows = rest.chunks_exact_mut(n);
                for row in &mut rows {
                    row.iter_mut().zip(bias).for_each(|(v, &b)| *v = act(*v + b));
                }
                rows.into_remainder().iter_mut().zip(bias).for_each(|(v, &b)| *v = act(*v + b));
            },
        ),
        _ if relu => par_fill(
            out,
            #[inline(always)]
            |_, c| c.iter_mut().for_each(|v| *v = act(*v)),
        ),
        _ => {}
    }
}

/// A linear layer's output gradient `g` (contiguous rows of `n`) on its way back: through the
/// ReLU when `y` (the layer's output) is given, `g · relu'(y)` as [`unary_backward`] computes
/// it, and the bias's gradient, the column sums of that, each accumulated top to bottom from
/// zero as a column reduction does (`reduce.rs`), so the same bits as the two ops in turn. One
/// pass, on the calling thread, for gradients too small to go parallel.
pub(crate) fn relu_grad_col_sums<T: Float>(g: &[T], y: Option<&[T]>, n: usize) -> (Option<Vec<T>>, Vec<T>) {
    let mut sums = vec![T::ZERO; n];
    let Some(y) = y else {
        crate::simd::wide(
            #[inline(always)]
            || col_sums::<T, false>(g, g, &mut [], &mut sums),
        );
        return (None, sums);
    };
    let mut masked: Vec<T> = Vec::with_capacity(g.len());
    crate::simd::wide(
        #[inline(always)]
        || col_sums::<T, true>(g, y, &mut masked.spare_capacity_mut()[..g.len()], &mut sums),
    );
    // SAFETY: `col_sums` with `RELU` wrote every element of `g.len()`.
    unsafe { masked.set_len(g.len()) };
    (Some(masked), sums)
}

/// Column blocks of [`relu_grad_col_sums`], accumulated in registers over all rows.
const SUM_COLS: usize = 64;

/// [`relu_grad_col_sums`]: `sums[j] += v` over the rows in order, `v` the element of `g` or,
/// with `RELU`, `g · relu'(y)`, which is also written to `out`.
#[inline(always)]
fn col_sums<T: Float, const RELU: bool>(g: &[T], y: &[T], out: &mut [MaybeUninit<T>], sums: &mut [T]) {
    let n = sums.len();
    if n == 0 {
        return;
    }
    let rows = g.len() / n;
    let mut j0 = 0;
    while j0 + SUM_COLS <= n {
        // A whole block: a fixed width, so that the sums stay in registers over the rows.
        col_block::<T, RELU, SUM_COLS>(g, y, out, &mut sums[j0..j0 + SUM_COLS], (rows, n, j0), SUM_COLS);
        j0 += SUM_COLS;
    }
    let w = n - j0;
    if w > 0 {
        col_block::<T, RELU, SUM_COLS>(g, y, out, &mut sums[j0..], (rows, n, j0), w);
    }
}

/// Columns `j0..j0 + w` (`w <= W`) of [`col_sums`], summed in a local block of `W` and stored
/// into `sums` (its first `w`) at the end.
#[inline(always)]
fn col_block<T: Float, const RELU: bool, const W: usize>(
    g: &[T],
    y: &[T],
    out: &mut [MaybeUninit<T>],
    sums: &mut [T],
    (rows, n, j0): (usize, usize, usize),
    w: usize,
) {
    let mut acc = [T::ZERO; W];
    for r in 0..rows {
        let at = r * n + j0;
        let row = &g[at..at + w];
        if RELU {
            let (yr, or) = (&y[at..at + w], &mut out[at..at + w]);
            for (((a, &gv), &yv), o) in acc.iter_mut().zip(row).zip(yr).zip(or) {
                let v = gv * UnaryOp::Relu.grad(yv, yv);
                o.write(v);
                *a += v;
            }
        } else {
            for (a, &gv) in acc.iter_mut().zip(row) {
                *a += gv;
            }
        }
    }
    sums[..w].copy_from_slice(&acc[..w]);
}

pub(crate) fn binary<T: Float>(a: &[T], la: &Layout, b: &[T], lb: &Layout, op: BinaryOp) -> Vec<T> {
    macro_rules! run {
        ($o:expr) => {{
            zip_map(
                a,
                la,
                b,
                lb,
                #[inline(always)]
                |x: T, y: T| $o.fwd(x, y),
            )
        }};
    }
    match op {
        BinaryOp::Add => run!(BinaryOp::Add),
        BinaryOp::Sub => run!(BinaryOp::Sub),
        BinaryOp::Mul => run!(BinaryOp::Mul),
        BinaryOp::Div => run!(BinaryOp::Div),
        BinaryOp::Pow => run!(BinaryOp::Pow),
        BinaryOp::Maximum => run!(BinaryOp::Maximum),
        BinaryOp::Minimum => run!(BinaryOp::Minimum),
    }
}

pub(crate) fn cmp<T: WithDType>(a: &[T], la: &Layout, b: &[T], lb: &Layout, op: CmpOp) -> Vec<u8> {
    zip_map(a, la, b, lb, move |x: T, y: T| op.fwd(x, y) as u8)
}

/// If `l` repeats one contiguous block (leading dimensions have stride 0, the rest are
/// row-major), the block's length.
fn repeated_block(l: &Layout) -> Option<usize> {
    let (dims, strides) = (l.dims(), l.strides());
    let mut acc = 1;
    let mut k = dims.len();
    while k > 0 && (dims[k - 1] == 1 || strides[k - 1] == acc) {
        acc *= dims[k - 1];
        k -= 1;
    }
    (dims[..k].iter().zip(&strides[..k]).all(|(&d, &s)| s == 0 || d == 1)).then_some(acc)
}

/// If `l` holds one value per row of `inner > 1` elements (its trailing dimensions have stride
/// 0), `inner` and the layout of the rows' values: its `r`-th offset is row `r`'s value. The
/// leading dimensions may have any strides, so a per-channel value (`[C, 1, 1]` over
/// `[N, C, H, W]`) qualifies as well as a per-row one.
fn value_per_row(l: &Layout) -> Option<(usize, Layout)> {
    let (dims, strides) = (l.dims(), l.strides());
    let mut inner = 1;
    let mut k = dims.len();
    while k > 0 && (strides[k - 1] == 0 || dims[k - 1] == 1) {
        inner *= dims[k - 1];
        k -= 1;
    }
    (inner > 1).then(|| (inner, Layout::new(crate::shape::Shape::from(&dims[..k]), &strides[..k], l.offset())))
}

/// `out[i] = f(a[i], b[i])` over two layouts already broadcast to one shape.
pub(crate) fn zip_map<A, B, O>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    f: impl Fn(A, B) -> O + Sync + Copy,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send,
{
    let n = la.elem_count();
    if n == 0 {
        return Vec::new();
    }
    let (ra, rb) = (la.contiguous_range(), lb.contiguous_range());
    let a_scalar = la.strides().iter().all(|&s| s == 0);
    let b_scalar = lb.strides().iter().all(|&s| s == 0);
    // Every path writes each element of each chunk it is given (`par_new`'s contract): the
    // chunk is zipped with slices of its own length, or walked in full by `blocks` and `rows`;
    // the two paths that follow layout iterators check that they covered the chunk, so a
    // layout bug panics instead of leaving elements unwritten.
    match (ra, rb) {
        (Some(ra), Some(rb)) => {
            let (a, b) = (&a[ra], &b[rb]);
            par_new(
                n,
                #[inline(always)]
                |s, c| {
                    let e = s + c.len();
                    for ((o, &x), &y) in c.iter_mut().zip(&a[s..e]).zip(&b[s..e]) {
                        o.write(f(x, y));
                    }
                },
            )
        }
        (Some(ra), None) if b_scalar => {
            let (a, y) = (&a[ra], b[lb.offset()]);
            par_new(
                n,
                #[inline(always)]
                |s, c| {
                    let e = s + c.len();
                    for (o, &x) in c.iter_mut().zip(&a[s..e]) {
                        o.write(f(x, y));
                    }
                },
            )
        }
        (None, Some(rb)) if a_scalar => {
            let (x, b) = (a[la.offset()], &b[rb]);
            par_new(
                n,
                #[inline(always)]
                |s, c| {
                    let e = s + c.len();
                    for (o, &y) in c.iter_mut().zip(&b[s..e]) {
                        o.write(f(x, y));
                    }
                },
            )
        }
        (Some(ra), None) if repeated_block(lb).is_some() => {
            let block = repeated_block(lb).expect("checked");
            with_repeated_block(&a[ra], &b[lb.offset()..lb.offset() + block], n, f)
        }
        (None, Some(rb)) if repeated_block(la).is_some() => {
            let block = repeated_block(la).expect("checked");
            with_repeated_block(&b[rb], &a[la.offset()..la.offset() + block], n, move |y, x| f(x, y))
        }
        (Some(ra), None) if value_per_row(lb).is_some() => {
            let (inner, values) = value_per_row(lb).expect("checked");
            with_value_per_row(&a[ra], b, inner, &values, f)
        }
        (None, Some(rb)) if value_per_row(la).is_some() => {
            let (inner, values) = value_per_row(la).expect("checked");
            with_value_per_row(&b[rb], a, inner, &values, move |y, x| f(x, y))
        }
        _ if unit_last_stride(la) && unit_last_stride(lb) => {
            // Rows contiguous in both, at any row strides (a narrowed view of a wider tensor, a
            // recurrent cell's gates): whole rows at a time instead of element by element.
            let inner = la.dims()[la.dims().len() - 1];
            let (pa, pb) = (la.rows(), lb.rows());
            par_new(
                n,
                #[inline(always)]
                |s, c| {
                    let (mut k, mut i) = (0, s);
                    for (oa, ob) in pa.offsets_from(s / inner).zip(pb.offsets_from(s / inner)) {
                        if k == c.len() {
                            break;
                        }
                        let j = i % inner;
                        let len = (inner - j).min(c.len() - k);
                        let (xa, xb) = (&a[oa + j..oa + j + len], &b[ob + j..ob + j + len]);
                        for ((o, &x), &y) in c[k..k + len].iter_mut().zip(xa).zip(xb) {
                            o.write(f(x, y));
                        }
                        k += len;
                        i += len;
                    }
                    assert_eq!(k, c.len(), "internal: the rows of the layouts end before the output");
                },
            )
        }
        _ => par_new(
            n,
            #[inline(always)]
            |s, c| {
                let mut written = 0;
                for ((o, oa), ob) in c.iter_mut().zip(la.offsets_from(s)).zip(lb.offsets_from(s)) {
                    o.write(f(a[oa], b[ob]));
                    written += 1;
                }
                assert_eq!(written, c.len(), "internal: the layouts' offsets end before the output");
            },
        ),
    }
}

/// `out[i] = f(full[i], block[i mod block.len()])` for the `n` elements of `full`: one operand
/// contiguous, the other one block repeated (a bias over rows). Each side of `zip_map` calls it,
/// the right-hand one with `f`'s arguments swapped back.
#[inline(always)]
fn with_repeated_block<A, B, O>(full: &[A], block: &[B], n: usize, f: impl Fn(A, B) -> O + Sync + Copy) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send,
{
    par_new(
        n,
        #[inline(always)]
        |s, c| {
            blocks(c, s, block.len(), |run, i, j| {
                let len = run.len();
                for ((o, &x), &y) in run.iter_mut().zip(&full[i..i + len]).zip(&block[j..j + len]) {
                    o.write(f(x, y));
                }
            })
        },
    )
}

/// `out[i] = f(full[i], data[v_r])` for the elements of `full` (contiguous), where row `r` of
/// `inner` elements holds the value at the `r`-th offset of `values` (see `value_per_row`).
#[inline(always)]
fn with_value_per_row<A, B, O>(
    full: &[A],
    data: &[B],
    inner: usize,
    values: &Layout,
    f: impl Fn(A, B) -> O + Sync + Copy,
) -> Vec<O>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send,
{
    par_new(
        full.len(),
        #[inline(always)]
        |s, c| {
            // One run per row, in order: the row values' offsets are read in step.
            let mut value = values.offsets_from(s / inner);
            rows(c, s, inner, |run, i| {
                let y = data[value.next().expect("internal: one value per row")];
                let len = run.len();
                for (o, &x) in run.iter_mut().zip(&full[i..i + len]) {
                    o.write(f(x, y));
                }
            })
        },
    )
}

/// Whether the last dimension of `l` is contiguous and long enough to be worth a row loop.
fn unit_last_stride(l: &Layout) -> bool {
    l.dims().last().is_some_and(|&d| d >= 4) && l.strides().last() == Some(&1)
}

/// Cuts `c` (global indices from `start`) into runs that stay inside one block of `block`
/// elements and calls `g(run, i, j)` on each: `i` is the run's first global index and `j = i mod
/// block`. The callers zip each run with slices of the inputs, a loop with no index arithmetic
/// or bounds checks, which vectorizes.
#[inline(always)]
fn blocks<O>(c: &mut [O], start: usize, block: usize, mut g: impl FnMut(&mut [O], usize, usize)) {
    let mut i = start;
    let mut rest = c;
    while !rest.is_empty() {
        let j = i % block;
        let len = (block - j).min(rest.len());
        let (run, tail) = rest.split_at_mut(len);
        g(run, i, j);
        i += len;
        rest = tail;
    }
}

/// Cuts `c` into runs of one row of `inner` elements and calls `g(run, i)` on each, `i` being
/// the run's first global index.
#[inline(always)]
fn rows<O>(c: &mut [O], start: usize, inner: usize, mut g: impl FnMut(&mut [O], usize)) {
    let mut i = start;
    let mut rest = c;
    while !rest.is_empty() {
        let len = (inner - i % inner).min(rest.len());
        let (run, tail) = rest.split_at_mut(len);
        g(run, i);
        i += len;
        rest = tail;
    }
}

/// `mask ? a : b` over three layouts broadcast to one shape.
pub(crate) fn select<T: WithDType + Default>(
    mask: &[u8],
    lm: &Layout,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
) -> Vec<T> {
    let n = lm.elem_count();
    let mut out = vec![T::default(); n];
    par_fill(
        &mut out,
        #[inline(always)]
        |s, c| {
            let it = lm.offsets_from(s).zip(la.offsets_from(s)).zip(lb.offsets_from(s));
            for (o, ((om, oa), ob)) in c.iter_mut().zip(it) {
                *o = if mask[om] != 0 { a[oa] } else { b[ob] };
            }
        },
    );
    out
}

/// Writes the elements of `src` (seen through `ls`) into `dst` at the positions of `ld`; both
/// layouts have one shape.
///
/// Row by row along the last dimension: a slice copy where both rows are contiguous, else a
/// strided loop over the row (the gradient of a transposed view joined by `cat`, such as
/// attention's keys), so the multi-dimensional offset walk runs once per row, not per element.
pub(crate) fn copy_into<T: WithDType>(src: &[T], ls: &Layout, dst: &mut [T], ld: &Layout) {
    let rank = ld.dims().len();
    if rank == 0 {
        dst[ld.offset()] = src[ls.offset()];
        return;
    }
    let inner = ld.dims()[rank - 1];
    let (ss, ds) = (ls.strides()[rank - 1], ld.strides()[rank - 1]);
    if inner == 0 {
        return;
    }
    for (s, d) in ls.rows().offsets_from(0).zip(ld.rows().offsets_from(0)) {
        if ss == 1 && ds == 1 {
            dst[d..d + inner].copy_from_slice(&src[s..s + inner]);
        } else if ss > 0 && ds > 0 {
            let (src, dst) = (&src[s..=s + (inner - 1) * ss], &mut dst[d..=d + (inner - 1) * ds]);
            for (d, &v) in dst.iter_mut().step_by(ds).zip(src.iter().step_by(ss)) {
                *d = v;
            }
        } else {
            // A broadcast row (stride 0).
            for i in 0..inner {
                dst[d + i * ds] = src[s + i * ss];
            }
        }
    }
}
