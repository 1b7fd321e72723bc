//! Forward values pinned by small hand-computed examples: numerically delicate cases (softmax
//! of large logits, NaN propagation, first-index ties), broadcasting, matrix products of known
//! matrices, indexing results, and the errors that bad arguments produce (never a panic).

use tensile_core::{All, DType, Error, Shape, Tensor};

// ---- helpers -------------------------------------------------------------------------------------

fn f32s(v: &[f32], shape: impl Into<Shape>) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn f64s(v: &[f64], shape: impl Into<Shape>) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn u32s(v: &[u32], shape: impl Into<Shape>) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

/// The values of an f32 tensor, after checking its shape.
fn vals(t: &Tensor, dims: &[usize]) -> Vec<f32> {
    assert_eq!(t.dims(), dims, "shape");
    t.to_vec::<f32>().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "lengths of {got:?} and {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "element {i}: got {g}, want {w} (all: {got:?})");
    }
}

/// `[[0, 1, 2, 3], [4, ...], ...]`: 0..n in `shape`, as f32.
fn iota(shape: &[usize]) -> Tensor {
    Tensor::arange(shape.iter().product(), DType::F32).reshape(shape.to_vec()).unwrap()
}

// ---- softmax -----------------------------------------------------------------------------------

#[test]
fn softmax_of_large_logits_equals_softmax_of_shifted_logits() {
    let big = f32s(&[1000.0, 1001.0, 1002.0], 3);
    let small = f32s(&[0.0, 1.0, 2.0], 3);
    for log in [false, true] {
        let f = |x: &Tensor| if log { x.log_softmax(0) } else { x.softmax(0) };
        let (b, s) = (vals(&f(&big).unwrap(), &[3]), vals(&f(&small).unwrap(), &[3]));
        assert!(b.iter().all(|v| v.is_finite()), "{b:?}");
        assert_eq!(b, s);
    }
    let want = [0.090_030_57, 0.244_728_47, 0.665_240_96];
    assert_close(&small.softmax(0).unwrap().to_f64_vec().unwrap(), &want, 1e-7);
    let want_log = [-2.407_605_964, -1.407_605_964, -0.407_605_964];
    assert_close(&small.log_softmax(0).unwrap().to_f64_vec().unwrap(), &want_log, 1e-6);
}

#[test]
fn log_softmax_of_large_f32_logits_is_not_rounded_at_their_magnitude() {
    // Regression: the kernel formed `v - (max + ln(sum))`, rounding `max + ln(sum)` to the f32
    // spacing at 1e4 (about 1e-3); `(v - max) - ln(sum)` keeps every log-probability exact.
    let shifted = f32s(&[1e4, 1e4 + 1.0, 1e4 + 2.0], 3).log_softmax(0).unwrap();
    let plain = f32s(&[0.0, 1.0, 2.0], 3).log_softmax(0).unwrap();
    assert_eq!(vals(&shifted, &[3]), vals(&plain, &[3]));
}

#[test]
fn log_softmax_of_far_apart_logits_is_finite() {
    let x = f32s(&[-1e4, 0.0], 2);
    assert_eq!(vals(&x.log_softmax(0).unwrap(), &[2]), vec![-1e4, 0.0]);
    assert_eq!(vals(&x.softmax(0).unwrap(), &[2]), vec![0.0, 1.0]);
    let masked = f32s(&[f32::NEG_INFINITY, 0.0], 2);
    assert_eq!(vals(&masked.softmax(0).unwrap(), &[2]), vec![0.0, 1.0]);
}

#[test]
fn softmax_along_a_leading_dim_normalizes_columns() {
    let x = f64s(&[1.0, 5.0, 3.0, 5.0], (2, 2));
    let y = x.softmax(0).unwrap();
    let e = (-2.0f64).exp();
    assert_close(&y.to_vec::<f64>().unwrap(), &[e / (1.0 + e), 0.5, 1.0 / (1.0 + e), 0.5], 1e-15);
    assert_eq!(y.to_vec::<f64>().unwrap(), x.t().unwrap().softmax(1).unwrap().t().unwrap().to_vec::<f64>().unwrap());
}

// ---- reductions --------------------------------------------------------------------------------

#[test]
fn var_is_unbiased_by_default() {
    let x = f64s(&[1.0, 2.0, 3.0, 4.0], 4);
    assert_close(&x.var(0, false).unwrap().to_f64_vec().unwrap(), &[5.0 / 3.0], 1e-15);
    assert_close(&x.var_with_correction(0, false, 0).unwrap().to_f64_vec().unwrap(), &[1.25], 1e-15);
    // Rows [1, 2, 3, 4] and [2, 4, 6, 8]; columns pairs differing by 1..4.
    let m = f64s(&[1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 6.0, 8.0], (2, 4));
    assert_close(&m.var(1, false).unwrap().to_f64_vec().unwrap(), &[5.0 / 3.0, 20.0 / 3.0], 1e-14);
    assert_close(&m.var(0, true).unwrap().to_f64_vec().unwrap(), &[0.5, 2.0, 4.5, 8.0], 1e-14);
    assert_eq!(m.var(0, true).unwrap().dims(), &[1, 4]);
    assert!(matches!(f64s(&[1.0], 1).var(0, false), Err(Error::Invalid { op: "var", .. })));
}

#[test]
fn sum_and_mean_over_several_dims() {
    // x[i, j, k] = 12i + 4j + k.
    let x = iota(&[2, 3, 4]);
    assert_eq!(vals(&x.sum([0, 2], false).unwrap(), &[3]), vec![60.0, 92.0, 124.0]);
    assert_eq!(vals(&x.sum([0, 2], true).unwrap(), &[1, 3, 1]), vec![60.0, 92.0, 124.0]);
    assert_eq!(vals(&x.mean([2, 0], false).unwrap(), &[3]), vec![7.5, 11.5, 15.5]);
    assert_eq!(vals(&x.sum([0, 1], false).unwrap(), &[4]), vec![60.0, 66.0, 72.0, 78.0]);
    assert_eq!(vals(&x.sum(-1, false).unwrap(), &[2, 3]), vec![6.0, 22.0, 38.0, 54.0, 70.0, 86.0]);
    assert_eq!(vals(&x.sum_all().unwrap(), &[]), vec![276.0]);
    assert_eq!(vals(&x.mean(All, true).unwrap(), &[1, 1, 1]), vec![11.5]);
    // Over a transposed view: the same sums, laid out the other way.
    assert_eq!(vals(&x.transpose(0, 2).unwrap().sum([0, 2], false).unwrap(), &[3]), vec![60.0, 92.0, 124.0]);
}

#[test]
fn max_min_argmax_argmin_take_the_first_of_ties() {
    let x = f32s(&[1.0, 3.0, 3.0, 2.0, 2.0, 0.0], (2, 3));
    assert_eq!(vals(&x.max(1, false).unwrap(), &[2]), vec![3.0, 2.0]);
    assert_eq!(vals(&x.min(1, false).unwrap(), &[2]), vec![1.0, 0.0]);
    assert_eq!(vals(&x.max(0, true).unwrap(), &[1, 3]), vec![2.0, 3.0, 3.0]);
    assert_eq!(x.argmax(1, false).unwrap().to_vec::<u32>().unwrap(), vec![1, 0]);
    assert_eq!(x.argmin(1, false).unwrap().to_vec::<u32>().unwrap(), vec![0, 2]);
    assert_eq!(x.argmax(0, false).unwrap().to_vec::<u32>().unwrap(), vec![1, 0, 0]);
    let tied = f32s(&[5.0, 1.0, 5.0, 1.0], (2, 2));
    assert_eq!(tied.argmax(0, false).unwrap().to_vec::<u32>().unwrap(), vec![0, 0]);
    assert_eq!(tied.argmin(0, true).unwrap().dims(), &[1, 2]);
    assert_eq!(tied.argmin(0, true).unwrap().dtype(), DType::U32);
}

#[test]
fn max_min_and_their_indices_propagate_nan() {
    let x = f32s(&[1.0, f32::NAN, 3.0], 3);
    assert!(x.max(0, false).unwrap().item().unwrap().is_nan());
    assert!(x.min(0, false).unwrap().item().unwrap().is_nan());
    assert_eq!(x.argmax(0, false).unwrap().to_vec::<u32>().unwrap(), vec![1]);
    assert_eq!(x.argmin(0, false).unwrap().to_vec::<u32>().unwrap(), vec![1]);
    let first = f32s(&[f32::NAN, 5.0, f32::NAN], 3);
    assert_eq!(first.argmax(0, false).unwrap().to_vec::<u32>().unwrap(), vec![0]);
    // Elementwise, in both argument orders.
    let (a, b) = (f32s(&[f32::NAN, 1.0], 2), f32s(&[1.0, f32::NAN], 2));
    assert!(a.maximum(&b).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_nan()));
    assert!(a.minimum(&b).unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_nan()));
    // Long rows take the blocked path; columns take the column path.
    let mut long = vec![0.0f32; 20_000];
    long[12_345] = f32::NAN;
    assert!(f32s(&long, 20_000).max(0, false).unwrap().item().unwrap().is_nan());
    let col = f32s(&long, (10_000, 2)).min(0, false).unwrap();
    assert_eq!(col.to_vec::<f32>().unwrap()[0], 0.0);
    assert!(col.to_vec::<f32>().unwrap()[1].is_nan());
}

/// Sums, maxima and minima over a middle dimension (`[outer, red, inner]`, the column reduction)
/// of row lengths below, at and above a register block, with a NaN inside a block, equal the
/// definition (accumulated in row order, so sums match to the bit), with 1 and 2 threads; the
/// largest input is cut into parallel chunks that start inside a row.
#[test]
fn column_reductions_match_the_definition() {
    for &(outer, red, inner) in &[(1usize, 37usize, 150usize), (5, 3, 200), (2, 9, 64), (3, 1000, 70), (2, 40, 300)] {
        let n = outer * red * inner;
        let mut v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0).collect();
        v[(outer - 1) * red * inner + (red / 2) * inner + inner / 3] = f32::NAN;
        let x = f32s(&v, (outer, red, inner));
        let (mut sum, mut max, mut min) =
            (vec![0.0f32; outer * inner], vec![f32::NEG_INFINITY; outer * inner], vec![f32::INFINITY; outer * inner]);
        for o in 0..outer {
            for r in 0..red {
                for j in 0..inner {
                    let (e, k) = (v[(o * red + r) * inner + j], o * inner + j);
                    sum[k] += e;
                    max[k] = if max[k].is_nan() || e.is_nan() { f32::NAN } else { max[k].max(e) };
                    min[k] = if min[k].is_nan() || e.is_nan() { f32::NAN } else { min[k].min(e) };
                }
            }
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for threads in [1, 2] {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let case = format!("[{outer}, {red}, {inner}] with {threads} threads");
                assert_eq!(bits(&vals(&x.sum(1, false).unwrap(), &[outer, inner])), bits(&sum), "sum of {case}");
                assert_eq!(bits(&vals(&x.max(1, false).unwrap(), &[outer, inner])), bits(&max), "max of {case}");
                assert_eq!(bits(&vals(&x.min(1, false).unwrap(), &[outer, inner])), bits(&min), "min of {case}");
            });
        }
    }
}

// ---- broadcasting ------------------------------------------------------------------------------

#[test]
fn binary_ops_broadcast_as_numpy() {
    let col = f32s(&[1.0, 2.0, 3.0], (3, 1));
    let row = f32s(&[10.0, 20.0, 30.0, 40.0], (1, 4));
    let want: Vec<f32> = (1..=3).flat_map(|i| (1..=4).map(move |j| (i + 10 * j) as f32)).collect();
    assert_eq!(vals(&col.add(&row).unwrap(), &[3, 4]), want);
    assert_eq!(vals(&row.add(&col).unwrap(), &[3, 4]), want);
    // A bias over rows, one value per row, a rank-0 scalar, and a transposed operand.
    let m = iota(&[2, 3]);
    assert_eq!(vals(&m.add(&f32s(&[1.0, 2.0, 3.0], 3)).unwrap(), &[2, 3]), vec![1.0, 3.0, 5.0, 4.0, 6.0, 8.0]);
    assert_eq!(vals(&m.mul(&f32s(&[2.0, -1.0], (2, 1))).unwrap(), &[2, 3]), vec![0.0, 2.0, 4.0, -3.0, -4.0, -5.0]);
    assert_eq!(vals(&m.sub(&Tensor::scalar(1.0)).unwrap(), &[2, 3]), vec![-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(vals(&Tensor::scalar(6.0).div(&m.add_scalar(1.0).unwrap()).unwrap(), &[2, 3]), {
        vec![6.0, 3.0, 2.0, 1.5, 1.2, 1.0]
    });
    let mt = m.t().unwrap(); // [[0, 3], [1, 4], [2, 5]]
    assert_eq!(
        vals(&mt.add(&f32s(&[100.0, 200.0], 2)).unwrap(), &[3, 2]),
        vec![100.0, 203.0, 101.0, 204.0, 102.0, 205.0]
    );
    // [2, 1, 3] with [2, 1]: each side repeated along the other's size-1 dimension.
    let a = iota(&[2, 1, 3]);
    let b = f32s(&[0.0, 10.0], (2, 1));
    let want = vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 3.0, 4.0, 5.0, 13.0, 14.0, 15.0];
    assert_eq!(vals(&a.add(&b).unwrap(), &[2, 2, 3]), want);
}

/// The value of a broadcast operand (logical values `v`, row-major in `shape`) at output index
/// `idx`, NumPy's rule: dimensions aligned from the right, size-1 dimensions repeated.
fn broadcast_value(v: &[f32], shape: &[usize], idx: &[usize]) -> f32 {
    let skip = idx.len() - shape.len();
    let mut flat = 0;
    for (&d, &i) in shape.iter().zip(&idx[skip..]) {
        flat = flat * d + if d == 1 { 0 } else { i };
    }
    v[flat]
}

/// Operands of every kind the elementwise kernel has a path for (a repeated block, one value per
/// row, one value per channel, a per-row value read through a transposed view, a scalar, the
/// general walk), on either side of a non-commutative op, over an output large enough to be cut
/// into parallel chunks that start inside a block and inside a row: every element is the
/// definition's, with 1 and 2 threads.
#[test]
fn broadcast_operands_of_every_kind_match_the_definition() {
    let out = [4usize, 5, 41, 43];
    let n: usize = out.iter().product();
    let big = Tensor::arange(n, DType::F32).reshape(out.to_vec()).unwrap();
    let transposed_rows = iota(&[5, 4]).t().unwrap().unsqueeze(2).unwrap().unsqueeze(3).unwrap();
    let small = [
        iota(&[43]),
        iota(&[41, 43]),
        iota(&[4, 5, 1, 1]),
        iota(&[4, 5, 41, 1]),
        iota(&[1, 5, 1, 1]),
        iota(&[5, 1, 1]),
        transposed_rows,
        iota(&[4, 1, 41, 1]),
        iota(&[1]),
    ];
    let big_v = big.to_vec::<f32>().unwrap();
    for threads in [1, 2] {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            for b in &small {
                let b_v = b.to_vec::<f32>().unwrap();
                let (fwd, rev) = (big.sub(b).unwrap(), b.sub(&big).unwrap());
                let (fwd, rev) = (vals(&fwd, &out), vals(&rev, &out));
                let mut idx = [0usize; 4];
                for i in 0..n {
                    let mut r = i;
                    for (k, &d) in out.iter().enumerate().rev() {
                        idx[k] = r % d;
                        r /= d;
                    }
                    let y = broadcast_value(&b_v, b.dims(), &idx);
                    assert_eq!(fwd[i], big_v[i] - y, "big - {:?}, element {i}, {threads} threads", b.dims());
                    assert_eq!(rev[i], y - big_v[i], "{:?} - big, element {i}, {threads} threads", b.dims());
                }
            }
        });
    }
}

/// A single value broadcast to a shape, from a scalar or from inside a larger tensor, copies to
/// that value everywhere (the gradient of a mean takes this path into elementwise gradients).
#[test]
fn a_broadcast_single_value_copies_to_every_element() {
    let from_scalar = Tensor::scalar(2.5).broadcast_to((3, 4)).unwrap().contiguous().unwrap();
    assert_eq!(vals(&from_scalar, &[3, 4]), vec![2.5; 12]);
    let inside = iota(&[2, 3]).narrow(1, 2, 1).unwrap().narrow(0, 1, 1).unwrap(); // [[5.0]]
    let spread = inside.broadcast_to((2, 5, 2)).unwrap().contiguous().unwrap();
    assert_eq!(vals(&spread, &[2, 5, 2]), vec![5.0; 20]);
    // Through a gradient: d(mean(x²))/dx = 2x/n, with the mean's gradient broadcast.
    let x = f32s(&[1.0, -2.0, 3.0, 4.0], 4).requires_grad();
    let g = x.square().unwrap().mean_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f32>().unwrap(), vec![0.5, -1.0, 1.5, 2.0]);
}

/// Copies of transposed views (the column-major layouts that go through the tiled transpose):
/// matrices around the tile size, a narrowed one at an offset, a batch of permuted matrices and
/// a matrix broadcast over a batch, each element where the definition puts it.
#[test]
fn copies_of_transposed_views_match_the_definition() {
    for (r, c) in [(2, 2), (8, 8), (9, 17), (64, 3), (130, 70)] {
        let m = iota(&[r, c]);
        let t = m.t().unwrap().contiguous().unwrap();
        let want: Vec<f32> = (0..c).flat_map(|j| (0..r).map(move |i| (i * c + j) as f32)).collect();
        assert_eq!(vals(&t, &[c, r]), want, "{r}x{c}");
    }
    // Columns 1..6 of a 10x7 matrix, transposed: [5, 10] at an offset with column stride 7.
    let part = iota(&[10, 7]).narrow(1, 1, 5).unwrap().t().unwrap().contiguous().unwrap();
    let want: Vec<f32> = (1..6).flat_map(|j| (0..10).map(move |i| (i * 7 + j) as f32)).collect();
    assert_eq!(vals(&part, &[5, 10]), want);
    // [3, 11, 13] -> [3, 13, 11].
    let b = iota(&[3, 11, 13]).permute(&[0, 2, 1]).unwrap().contiguous().unwrap();
    let want: Vec<f32> =
        (0..3).flat_map(|k| (0..13).flat_map(move |j| (0..11).map(move |i| (k * 143 + i * 13 + j) as f32))).collect();
    assert_eq!(vals(&b, &[3, 13, 11]), want);
    // One transposed matrix seen by every entry of a batch of 4.
    let shared = iota(&[6, 9]).t().unwrap().broadcast_to((4, 9, 6)).unwrap().contiguous().unwrap();
    let one: Vec<f32> = (0..9).flat_map(|j| (0..6).map(move |i| (i * 9 + j) as f32)).collect();
    assert_eq!(vals(&shared, &[4, 9, 6]), one.repeat(4));
}

// ---- matrix products ---------------------------------------------------------------------------

#[test]
fn matmul_of_known_matrices() {
    let a = f32s(&[1.0, 2.0, 3.0, 4.0], (2, 2));
    let b = f32s(&[5.0, 6.0, 7.0, 8.0], (2, 2));
    assert_eq!(vals(&a.matmul(&b).unwrap(), &[2, 2]), vec![19.0, 22.0, 43.0, 50.0]);
    assert_eq!(vals(&a.t().unwrap().matmul(&b).unwrap(), &[2, 2]), vec![26.0, 30.0, 38.0, 44.0]);
    assert_eq!(vals(&a.matmul(&b.t().unwrap()).unwrap(), &[2, 2]), vec![17.0, 23.0, 39.0, 53.0]);
    // [2, 3] @ [3, 1]
    let c = iota(&[2, 3]);
    assert_eq!(vals(&c.matmul(&f32s(&[1.0, 1.0, 1.0], (3, 1))).unwrap(), &[2, 1]), vec![3.0, 12.0]);
}

/// `a @ b` in f64 by the definition, for 2-D or 3-D operands of any layout.
fn naive_matmul(a: &Tensor, b: &Tensor) -> Vec<f32> {
    let (a3, b3) = (as_3d(a), as_3d(b));
    let (av, bv) =
        (a3.contiguous().unwrap().to_vec::<f32>().unwrap(), b3.contiguous().unwrap().to_vec::<f32>().unwrap());
    let (nb, m, k) = (a3.dims()[0], a3.dims()[1], a3.dims()[2]);
    let n = b3.dims()[2];
    let mut out = Vec::with_capacity(nb * m * n);
    for p in 0..nb {
        let q = if b3.dims()[0] == 1 { 0 } else { p };
        for i in 0..m {
            for j in 0..n {
                let dot: f64 =
                    (0..k).map(|l| f64::from(av[(p * m + i) * k + l]) * f64::from(bv[(q * k + l) * n + j])).sum();
                out.push(dot as f32);
            }
        }
    }
    out
}

/// A 2-D tensor as a batch of one; a 3-D one as it is.
fn as_3d(t: &Tensor) -> Tensor {
    if t.rank() == 2 { t.unsqueeze(0).unwrap() } else { t.clone() }
}

#[test]
fn matmul_by_column_major_right_operands_of_many_sizes() {
    // `x @ Wᵀ` with `Wᵀ` a transposed view (a linear layer), with an edge of 8x8 tiles left over,
    // a padded column stride (a narrowed weight), a batch of `Kᵀ` views (attention scores) and
    // one broadcast over the batch; every case against the definition. The last four have more
    // features than rows, so they run as `(W @ xᵀ)ᵀ` (`cpu/matmul.rs`), with a K that gemm cuts
    // and one that it does not, a narrowed weight and a narrowed input at an offset, and an
    // input that is itself a transposed view (which goes the usual way).
    let mut rng = tensile_core::Rng::seed(11);
    let mut rand = |d: &[usize]| Tensor::randn(d.to_vec(), 0.0, 1.0, DType::F32, &mut rng);
    let cases: Vec<(Tensor, Tensor)> = vec![
        (rand(&[2, 3]), rand(&[4, 3]).t().unwrap()),
        (rand(&[37, 29]), rand(&[19, 29]).t().unwrap()),
        (rand(&[130, 70]), rand(&[66, 70]).t().unwrap()),
        (rand(&[9, 20]), rand(&[17, 24]).narrow(1, 2, 20).unwrap().t().unwrap()),
        (rand(&[3, 10, 16]), rand(&[3, 12, 16]).transpose(1, 2).unwrap()),
        (rand(&[4, 9, 11]), rand(&[13, 11]).t().unwrap().unsqueeze(0).unwrap().broadcast_to((4, 11, 13)).unwrap()),
        (rand(&[40, 600]), rand(&[500, 600]).t().unwrap()),
        (rand(&[37, 200]), rand(&[450, 210]).narrow(1, 7, 200).unwrap().t().unwrap()),
        (rand(&[50, 300]).narrow(0, 5, 41).unwrap(), rand(&[333, 300]).t().unwrap()),
        (rand(&[300, 40]).t().unwrap(), rand(&[500, 300]).t().unwrap()),
    ];
    for (a, b) in &cases {
        let got = a.matmul(b).unwrap();
        let want = naive_matmul(a, b);
        let got = got.to_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{:?} @ {:?}: element {i} is {g}, want {w}",
                a.dims(),
                b.dims()
            );
        }
    }
}

#[test]
fn matmul_broadcasts_batch_dims() {
    // Batch [2] @ unbatched: batch 0 is the identity, batch 1 twice the identity.
    let eye2 = f32s(&[1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0], (2, 2, 2));
    let b = f32s(&[5.0, 6.0, 7.0, 8.0], (2, 2));
    assert_eq!(vals(&eye2.matmul(&b).unwrap(), &[2, 2, 2]), vec![5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0]);
    // [2, 1, 1, 2] @ [3, 2, 1] -> [2, 3, 1, 1]: out[i, j] = a[i] · b[j].
    let a = f32s(&[1.0, 0.0, 0.0, 1.0], (2, 1, 1, 2));
    let bs = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (3, 2, 1));
    assert_eq!(vals(&a.matmul(&bs).unwrap(), &[2, 3, 1, 1]), vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
}

#[test]
fn matmul_with_vector_operands_drops_the_added_dims() {
    let a = f32s(&[1.0, 2.0, 3.0, 4.0], (2, 2));
    let v = f32s(&[5.0, 6.0], 2);
    assert_eq!(vals(&v.matmul(&a).unwrap(), &[2]), vec![23.0, 34.0]);
    assert_eq!(vals(&a.matmul(&v).unwrap(), &[2]), vec![17.0, 39.0]);
}

#[test]
fn matmul_of_two_vectors_is_a_scalar() {
    // Regression: `[K] @ [K]` squeezed a dimension that was already gone and errored.
    let dot = f32s(&[1.0, 2.0, 3.0], 3).matmul(&f32s(&[4.0, 5.0, 6.0], 3)).unwrap();
    assert_eq!(vals(&dot, &[]), vec![32.0]);
}

#[test]
fn linear_is_matmul_by_the_transpose_plus_bias_to_the_bit_with_or_without_relu() {
    // Values and gradients of the one-op `linear` against `t`, `matmul` and `add`: the same
    // kernels in the same order, so the same bits. Shapes: a batch (the transposed weight is
    // copied row-major first), one row, a sequence, no bias, a vector input, a transposed weight,
    // and an output large enough for the bias and ReLU to run in parallel pieces that start and
    // end inside rows (8,192 values each, rows of 70). Gradients smaller than that go through the
    // ReLU and into the bias's gradient in one pass, in blocks of 64 columns and what is left
    // (64, 150, 70 and 3 outputs here).
    let mut rng = tensile_core::Rng::seed(11);
    let cases: [(&[usize], usize, bool, bool); 10] = [
        (&[32, 16], 64, true, false),
        (&[5, 6], 150, true, false),
        (&[1, 5], 3, true, false),
        (&[2, 3, 4], 5, true, false),
        (&[7, 9], 6, false, false),
        (&[4], 3, true, false),
        (&[6, 5], 4, true, true),
        (&[33, 130], 70, true, false),
        (&[520, 8], 70, true, false),
        (&[520, 8], 70, false, false),
    ];
    for (xd, out, with_bias, transposed_w) in cases {
        let in_f = xd[xd.len() - 1];
        let x = Tensor::randn(xd.to_vec(), 0.0, 1.0, DType::F32, &mut rng).requires_grad();
        let w = if transposed_w {
            Tensor::randn((in_f, out), 0.0, 1.0, DType::F32, &mut rng).requires_grad()
        } else {
            Tensor::randn((out, in_f), 0.0, 1.0, DType::F32, &mut rng).requires_grad()
        };
        // One view per graph: a backward pass consumes the graph it walks.
        let wv = || if transposed_w { w.t().unwrap() } else { w.clone() };
        let b = Tensor::randn(out, 0.0, 1.0, DType::F32, &mut rng).requires_grad();
        let bias = with_bias.then_some(&b);
        // Without and with the ReLU folded in (about half of the outputs are negative).
        for relu in [false, true] {
            let fused = if relu { x.linear_relu(&wv(), bias) } else { x.linear(&wv(), bias) }.unwrap();
            let mut composed = x.matmul(&wv().t().unwrap()).unwrap();
            if let Some(b) = bias {
                composed = composed.add(b).unwrap();
            }
            if relu {
                composed = composed.relu().unwrap();
            }
            let case =
                format!("x {xd:?}, {out} outputs, bias {with_bias}, transposed weight {transposed_w}, relu {relu}");
            assert_eq!(fused.dims(), composed.dims(), "{case}");
            let bits = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&composed), "values, {case}");
            let seed = Tensor::randn(fused.shape(), 0.0, 1.0, DType::F32, &mut rng);
            let (gf, gc) = (fused.backward_with(&seed).unwrap(), composed.backward_with(&seed).unwrap());
            let mut leaves = vec![("x", &x), ("w", &w)];
            if with_bias {
                leaves.push(("b", &b));
            }
            for (name, t) in leaves {
                let (f, c) = (gf.get(t).unwrap(), gc.get(t).unwrap());
                assert_eq!(f.dims(), t.dims(), "gradient shape of {name}, {case}");
                assert_eq!(bits(f), bits(c), "gradient of {name}, {case}");
            }
            if !with_bias {
                assert!(gf.get(&b).is_none(), "{case}");
            }
        }
    }
}

#[test]
fn a_weight_used_again_gives_the_same_products_and_follows_in_place_writes() {
    // From its second use at one version of its data, `linear` reads a kept row-major copy of
    // `wᵀ`; every in-place write (an optimizer step, `assign_`, `cast_`) must retire it.
    let mut rng = tensile_core::Rng::seed(14);
    let x = Tensor::randn((4, 5), 0.0, 1.0, DType::F32, &mut rng);
    let w = Tensor::randn((6, 5), 0.0, 1.0, DType::F32, &mut rng).requires_grad();
    let bits = |t: &Tensor| -> Vec<u64> {
        t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    let by_matmul = |x: &Tensor, w: &Tensor| bits(&x.matmul(&w.t().unwrap()).unwrap());
    let uses = |x: &Tensor, w: &Tensor, what: &str| {
        let want = by_matmul(x, w);
        for use_ in 1..=3 {
            assert_eq!(bits(&x.linear(w, None).unwrap()), want, "{what}, use {use_}");
        }
    };
    uses(&x, &w, "fresh weight");
    // With more features than rows, the first use computes `(w @ xᵀ)ᵀ` and the later ones read
    // the kept copy: the same sums in the same order, so the same bits.
    let (xb, wb) = (
        Tensor::randn((40, 600), 0.0, 1.0, DType::F32, &mut rng),
        Tensor::randn((500, 600), 0.0, 1.0, DType::F32, &mut rng),
    );
    uses(&xb, &wb, "more features than rows");
    let before = by_matmul(&x, &w);
    w.update_::<f32, _>(|v| v.iter_mut().for_each(|v| *v = *v * -2.0 + 0.5)).unwrap();
    assert_ne!(by_matmul(&x, &w), before);
    uses(&x, &w, "after update_");
    w.assign_(&Tensor::randn((6, 5), 0.0, 1.0, DType::F32, &mut rng)).unwrap();
    uses(&x, &w, "after assign_");
    w.cast_(DType::F64).unwrap();
    uses(&x.to_dtype(DType::F64).unwrap(), &w, "after cast_");
    // Two views of one storage, used in turn, each get their own product.
    let both = Tensor::randn((12, 5), 0.0, 1.0, DType::F32, &mut rng);
    let (top, bottom) = (both.narrow(0, 0, 6).unwrap(), both.narrow(0, 6, 6).unwrap());
    for _ in 0..3 {
        assert_eq!(bits(&x.linear(&top, None).unwrap()), by_matmul(&x, &top));
        assert_eq!(bits(&x.linear(&bottom, None).unwrap()), by_matmul(&x, &bottom));
    }
    // Gradients through a use that reads the kept copy are those of the op-by-op product.
    let w = Tensor::randn((6, 5), 0.0, 1.0, DType::F32, &mut rng).requires_grad();
    let xg = x.requires_grad();
    x.linear(&w, None).unwrap();
    let (fused, composed) = (xg.linear(&w, None).unwrap(), xg.matmul(&w.t().unwrap()).unwrap());
    let seed = Tensor::randn((4, 6), 0.0, 1.0, DType::F32, &mut rng);
    let (gf, gc) = (fused.backward_with(&seed).unwrap(), composed.backward_with(&seed).unwrap());
    for t in [&xg, &w] {
        assert_eq!(bits(gf.get(t).unwrap()), bits(gc.get(t).unwrap()));
    }
}

#[test]
fn linear_argument_errors_name_the_problem() {
    let x = Tensor::zeros((2, 4), DType::F32);
    let w = Tensor::zeros((3, 4), DType::F32);
    let err = |r: tensile_core::Result<Tensor>| r.unwrap_err().to_string();
    let rank = err(x.linear(&Tensor::zeros(4, DType::F32), None));
    assert!(
        rank.contains("linear") && rank.contains("weight must be [out_features, in_features], found [4]"),
        "{rank}"
    );
    let inner = err(Tensor::zeros((2, 5), DType::F32).linear(&w, None));
    assert!(inner.contains("linear") && inner.contains("[2, 5]") && inner.contains("[3, 4]"), "{inner}");
    let scalar = err(Tensor::zeros((), DType::F32).linear(&w, None));
    assert!(scalar.contains("linear"), "{scalar}");
    let bias = err(x.linear(&w, Some(&Tensor::zeros(4, DType::F32))));
    assert!(bias.contains("bias must have shape [3], found [4]"), "{bias}");
    let f64_weight = err(x.linear(&w.to_dtype(DType::F64).unwrap(), None));
    assert!(f64_weight.contains("weight has dtype F64 but the input has F32"), "{f64_weight}");
    let f64_bias = err(x.linear(&w, Some(&Tensor::zeros(3, DType::F64))));
    assert!(f64_bias.contains("bias has dtype F64 but the input has F32"), "{f64_bias}");
    let ints = err(Tensor::zeros((2, 4), DType::U32).linear(&w, None));
    assert!(ints.contains("linear"), "{ints}");
}

#[test]
fn mse_loss_is_the_op_by_op_formula_to_the_bit() {
    // Value and gradients of the one-op loss against `sub`, `square` and `mean_all` / `sum_all`,
    // for a batch of predictions, a matrix with a tracked target, a scalar, f64, and a vector
    // long enough for the sum to run in parallel blocks and its gradient in parallel pieces.
    let mut rng = tensile_core::Rng::seed(12);
    let cases: [(&[usize], DType, bool); 6] = [
        (&[32, 1], DType::F32, false),
        (&[7, 13], DType::F32, true),
        (&[], DType::F32, true),
        (&[300], DType::F32, false),
        (&[4, 5], DType::F64, true),
        (&[50_000], DType::F32, true),
    ];
    let bits = |t: &Tensor| -> Vec<u64> {
        let t = t.to_dtype(DType::F64).unwrap();
        t.to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    for (dims, dtype, target_tracks) in cases {
        for mean in [true, false] {
            let x = Tensor::randn(dims.to_vec(), 0.0, 1.0, dtype, &mut rng).requires_grad();
            let t = Tensor::randn(dims.to_vec(), 0.0, 1.0, dtype, &mut rng);
            let t = if target_tracks { t.requires_grad() } else { t };
            let fused = x.mse_loss(&t, mean).unwrap();
            let sq = x.sub(&t).unwrap().square().unwrap();
            let composed = if mean { sq.mean_all().unwrap() } else { sq.sum_all().unwrap() };
            let case = format!("{dims:?} {dtype:?}, mean {mean}, tracked target {target_tracks}");
            assert_eq!(fused.dims(), &[] as &[usize], "{case}");
            assert_eq!(bits(&fused), bits(&composed), "value, {case}");
            let seed = Tensor::full(0.75, (), dtype);
            let (gf, gc) = (fused.backward_with(&seed).unwrap(), composed.backward_with(&seed).unwrap());
            assert_eq!(bits(gf.get(&x).unwrap()), bits(gc.get(&x).unwrap()), "input gradient, {case}");
            match target_tracks {
                true => assert_eq!(bits(gf.get(&t).unwrap()), bits(gc.get(&t).unwrap()), "target gradient, {case}"),
                false => assert!(gf.get(&t).is_none(), "{case}"),
            }
        }
    }
}

#[test]
fn mse_loss_argument_errors_name_the_problem() {
    let x = Tensor::zeros((2, 3), DType::F32);
    let err = |r: tensile_core::Result<Tensor>| r.unwrap_err().to_string();
    let shape = err(x.mse_loss(&Tensor::zeros((3, 2), DType::F32), true));
    assert!(shape.contains("mse_loss") && shape.contains("[2, 3]") && shape.contains("[3, 2]"), "{shape}");
    let dtype = err(x.mse_loss(&Tensor::zeros((2, 3), DType::F64), true));
    assert!(dtype.contains("mse_loss"), "{dtype}");
    let ints = err(Tensor::zeros((2, 3), DType::U32).mse_loss(&Tensor::zeros((2, 3), DType::U32), false));
    assert!(ints.contains("mse_loss"), "{ints}");
}

// ---- indexing, selection and shape ops ----------------------------------------------------------

#[test]
fn gather_picks_one_element_per_position() {
    let x = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3));
    assert_eq!(vals(&x.gather(&u32s(&[2, 0, 1, 1], (2, 2)), 1).unwrap(), &[2, 2]), vec![3.0, 1.0, 5.0, 5.0]);
    assert_eq!(vals(&x.gather(&u32s(&[1, 0, 1], (1, 3)), 0).unwrap(), &[1, 3]), vec![4.0, 2.0, 6.0]);
    // Through a transposed view: xt = [[1, 4], [2, 5], [3, 6]].
    let xt = x.t().unwrap();
    assert_eq!(vals(&xt.gather(&u32s(&[1, 0, 1], (3, 1)), 1).unwrap(), &[3, 1]), vec![4.0, 2.0, 6.0]);
}

#[test]
fn index_select_picks_whole_slices_in_order() {
    let x = iota(&[3, 2]);
    assert_eq!(vals(&x.index_select(&u32s(&[2, 0, 2], 3), 0).unwrap(), &[3, 2]), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    assert_eq!(vals(&x.index_select(&u32s(&[1, 1], 2), 1).unwrap(), &[3, 2]), vec![1.0, 1.0, 3.0, 3.0, 5.0, 5.0]);
}

#[test]
fn where_cond_chooses_by_mask_with_broadcasting() {
    let mask = Tensor::from_slice(&[1u8, 0, 1], 3).unwrap();
    let a = iota(&[2, 3]);
    let got = mask.where_cond(&a, &Tensor::scalar(-1.0)).unwrap();
    assert_eq!(vals(&got, &[2, 3]), vec![0.0, -1.0, 2.0, 3.0, -1.0, 5.0]);
}

#[test]
fn pad_cat_stack_split_values() {
    let x = f32s(&[1.0, 2.0, 3.0, 4.0], (2, 2));
    let padded = x.pad(&[(1, 0), (0, 2)], 9.0).unwrap();
    assert_eq!(vals(&padded, &[3, 4]), vec![9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0, 9.0]);
    let y = f32s(&[5.0, 6.0], (2, 1));
    assert_eq!(vals(&Tensor::cat(&[&x, &y], 1).unwrap(), &[2, 3]), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    assert_eq!(vals(&Tensor::cat(&[&x, &y.t().unwrap()], 0).unwrap(), &[3, 2]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(vals(&Tensor::stack(&[&x, &x], 2).unwrap(), &[2, 2, 2]), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    let pieces = iota(&[5]).split(2, 0).unwrap();
    let got: Vec<Vec<f32>> = pieces.iter().map(|p| p.to_vec::<f32>().unwrap()).collect();
    assert_eq!(got, vec![vec![0.0, 1.0], vec![2.0, 3.0], vec![4.0]]);
}

/// `cat` of views whose last dimension is strided (a permuted tensor, the gradient of a
/// transposed key in attention) or broadcast (stride 0) places each element where the
/// concatenation of the pieces' own values puts it, along the last dimension and along another.
#[test]
fn cat_places_strided_and_broadcast_views() {
    let permuted = iota(&[2, 3, 4]).permute(&[0, 2, 1]).unwrap(); // [2, 4, 3], last stride 4
    let broadcast = f32s(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0], (2, 4, 1)).broadcast_to((2, 4, 2)).unwrap();
    let plain = iota(&[2, 4, 2]).mul_scalar(-1.0).unwrap();
    let pieces = [&permuted, &broadcast, &plain];
    let values: Vec<Vec<f32>> = pieces.iter().map(|p| p.to_vec::<f32>().unwrap()).collect();
    // Along the last dimension: row r of the result is row r of each piece in turn.
    let widths = [3, 2, 2];
    let mut want = Vec::new();
    for r in 0..8 {
        for (v, w) in values.iter().zip(widths) {
            want.extend_from_slice(&v[r * w..(r + 1) * w]);
        }
    }
    assert_eq!(vals(&Tensor::cat(&pieces, 2).unwrap(), &[2, 4, 7]), want);
    // Along dimension 1 (each piece's rows kept whole, strided ones included).
    let (a, b) = (permuted.narrow(2, 0, 2).unwrap(), broadcast.clone());
    let (va, vb) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let mut want = Vec::new();
    for n in 0..2 {
        want.extend_from_slice(&va[n * 8..(n + 1) * 8]);
        want.extend_from_slice(&vb[n * 8..(n + 1) * 8]);
    }
    assert_eq!(vals(&Tensor::cat(&[&a, &b], 1).unwrap(), &[2, 8, 2]), want);
}

#[test]
fn views_read_the_right_elements() {
    let x = iota(&[2, 3]);
    assert_eq!(vals(&x.t().unwrap(), &[3, 2]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(vals(&x.narrow(1, 1, 2).unwrap(), &[2, 2]), vec![1.0, 2.0, 4.0, 5.0]);
    assert_eq!(vals(&x.t().unwrap().reshape(6).unwrap(), &[6]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(vals(&f32s(&[1.0, 2.0], (2, 1)).broadcast_to((2, 3)).unwrap(), &[2, 3]), {
        vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    });
    let p = iota(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.dims(), &[4, 2, 3]);
    assert_eq!(p.to_vec::<f32>().unwrap()[..6], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
}

#[test]
fn a_cast_in_place_changes_the_dtype_every_view_reports() {
    let t = f32s(&[1.0, 2.5, -3.0, 4.0, 0.5, 6.0], (2, 3));
    let (view, copy) = (t.t().unwrap(), t.mul_scalar(1.0).unwrap());
    t.cast_(DType::F64).unwrap();
    assert_eq!((t.dtype(), view.dtype(), copy.dtype()), (DType::F64, DType::F64, DType::F32));
    assert_eq!(view.to_vec::<f64>().unwrap(), vec![1.0, 4.0, 2.5, 0.5, -3.0, 6.0]);
    assert_eq!(t.add(&t).unwrap().dtype(), DType::F64);
    assert!(matches!(t.add(&copy), Err(Error::DTypeMismatch { .. })));
    for (i, d) in DType::ALL.iter().enumerate() {
        assert_eq!(*d as usize, i, "{d:?}");
    }
}

#[test]
fn assign_accepts_a_narrowed_source() {
    // Regression: a source that is a contiguous view at an offset was refused with "the tensor
    // must own all of its storage", because its whole storage was copied instead of its elements.
    let p = Tensor::zeros(2, DType::F32);
    let src = f32s(&[1.0, 2.0, 3.0], 3).narrow(0, 1, 2).unwrap();
    p.assign_(&src).unwrap();
    assert_eq!(p.to_vec::<f32>().unwrap(), vec![2.0, 3.0]);
    p.assign_(&f32s(&[7.0, 8.0], (1, 2)).t().unwrap().reshape(2).unwrap()).unwrap();
    assert_eq!(p.to_vec::<f32>().unwrap(), vec![7.0, 8.0]);
}

/// Binary ops on views whose rows are contiguous but not adjacent (narrowed columns, permuted
/// leading dimensions, a row broadcast down a stride-0 dimension) equal the same ops on
/// contiguous copies, at sizes where the work splits into chunks that start mid-row.
#[test]
fn binary_ops_on_strided_views_match_contiguous_copies() {
    let mut rng = tensile_core::Rng::seed(5);
    let mut randn = |dims: &[usize]| Tensor::randn(dims.to_vec(), 0.0, 1.0, DType::F32, &mut rng);
    let wide = randn(&[400, 300]);
    let other = randn(&[400, 250]);
    let row = randn(&[1, 300]);
    let cube = randn(&[6, 50, 130]);
    let (wide2, cube2) = (randn(&[400, 300]), randn(&[6, 50, 130]));
    let cases: Vec<(Tensor, Tensor)> = vec![
        // Both narrowed (chunks of 8192 elements split the 100-wide rows).
        (wide.narrow(1, 37, 100).unwrap(), other.narrow(1, 5, 100).unwrap()),
        // A narrowed row repeated down every row against narrowed columns.
        (row.narrow(1, 3, 100).unwrap().broadcast_to([400, 100]).unwrap(), wide.narrow(1, 200, 100).unwrap()),
        // Permuted leading dimensions, narrowed last dimension; small enough to stay serial.
        (
            cube.permute(&[1, 0, 2]).unwrap().narrow(2, 1, 7).unwrap(),
            cube.narrow(0, 0, 6).unwrap().permute(&[1, 0, 2]).unwrap().narrow(2, 9, 7).unwrap(),
        ),
        // The same, large enough for the parallel path.
        (
            cube.permute(&[1, 0, 2]).unwrap().narrow(2, 0, 120).unwrap(),
            cube.permute(&[1, 0, 2]).unwrap().narrow(2, 10, 120).unwrap(),
        ),
        // Both transposed alike: combined in memory order, the result keeps their layout.
        (wide.t().unwrap(), wide2.t().unwrap()),
        (cube.permute(&[2, 0, 1]).unwrap(), cube2.permute(&[2, 0, 1]).unwrap()),
    ];
    for (i, (a, b)) in cases.iter().enumerate() {
        assert!(!a.is_contiguous() || !b.is_contiguous(), "case {i} must use a strided view");
        let (ac, bc) = (a.contiguous().unwrap(), b.contiguous().unwrap());
        for (name, got, want) in [
            ("add", a.add(b).unwrap(), ac.add(&bc).unwrap()),
            ("sub", a.sub(b).unwrap(), ac.sub(&bc).unwrap()),
            ("mul", a.mul(b).unwrap(), ac.mul(&bc).unwrap()),
            ("maximum", a.maximum(b).unwrap(), ac.maximum(&bc).unwrap()),
        ] {
            assert_eq!(got.dims(), a.dims(), "case {i} {name} shape");
            assert_eq!(got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap(), "case {i} {name}");
            // Whatever layout the result has, the next op reads it right.
            let (next, next_want) = (got.mul(&ac).unwrap().add(b).unwrap(), want.mul(&ac).unwrap().add(&bc).unwrap());
            assert_eq!(
                next.to_vec::<f32>().unwrap(),
                next_want.to_vec::<f32>().unwrap(),
                "case {i} {name} then mul, add"
            );
        }
    }
}

// ---- elementwise functions ---------------------------------------------------------------------

/// GELU(x) = x·Φ(x), with Φ the standard normal CDF (values of Φ from tables of erf).
const GELU_POINTS: [(f64, f64); 6] = [
    (-2.0, -2.0 * 0.022_750_131_948_179_195),
    (-1.0, -0.158_655_253_931_457_07),
    (0.0, 0.0),
    (0.5, 0.5 * 0.691_462_461_274_013_1),
    (1.0, 0.841_344_746_068_542_9),
    (2.0, 2.0 * 0.977_249_868_051_820_8),
];

#[test]
fn gelu_gradient_in_f32_matches_f64() {
    // The gradient reads Φ(x) back from the output as y / x: check it where that is delicate
    // (0, tiny and large magnitudes, the far negative side where y underflows).
    let mut xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.025).collect();
    xs.extend([0.0, -0.0, 1e-35, -1e-35, 1e-20, -1e-20, -12.0, -20.0, 30.0]);
    let grad = |x: Tensor| {
        let x = x.requires_grad();
        x.gelu().unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_f64_vec().unwrap()
    };
    let n = xs.len();
    let got = grad(f32s(&xs, n));
    let want = grad(Tensor::from_vec(xs.iter().map(|&x| x as f64).collect::<Vec<_>>(), n).unwrap());
    for ((&x, g), w) in xs.iter().zip(&got).zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "gelu'({x}): f32 {g}, f64 {w}");
    }
}

#[test]
fn gelu_matches_x_times_normal_cdf() {
    let xs: Vec<f64> = GELU_POINTS.iter().map(|p| p.0).collect();
    let want: Vec<f64> = GELU_POINTS.iter().map(|p| p.1).collect();
    assert_close(&f64s(&xs, 6).gelu().unwrap().to_vec::<f64>().unwrap(), &want, 1e-14);
    let xs32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
    assert_close(&f32s(&xs32, 6).gelu().unwrap().to_f64_vec().unwrap(), &want, 1e-6);
    // The tanh approximation stays within 1e-3 of the exact form and matches its own formula.
    let approx = f64s(&xs, 6).gelu_tanh().unwrap().to_vec::<f64>().unwrap();
    let formula: Vec<f64> = xs
        .iter()
        .map(|&x| 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()))
        .collect();
    assert_close(&approx, &formula, 1e-14);
    assert_close(&approx, &want, 1e-3);
}

#[test]
fn saturating_functions_stay_finite_at_extremes() {
    let x = f32s(&[-1000.0, 0.0, 1000.0], 3);
    assert_eq!(vals(&x.sigmoid().unwrap(), &[3]), vec![0.0, 0.5, 1.0]);
    assert_eq!(vals(&x.softplus().unwrap(), &[3]), vec![0.0, std::f32::consts::LN_2, 1000.0]);
    assert_eq!(vals(&x.tanh().unwrap(), &[3]), vec![-1.0, 0.0, 1.0]);
    assert_eq!(vals(&x.silu().unwrap(), &[3]), vec![-0.0, 0.0, 1000.0]);
    assert_eq!(vals(&x.relu().unwrap(), &[3]), vec![0.0, 0.0, 1000.0]);
    assert_eq!(vals(&x.leaky_relu(0.01).unwrap(), &[3]), vec![-10.0, 0.0, 1000.0]);
    assert_eq!(vals(&x.clamp(-1.0, 2.0).unwrap(), &[3]), vec![-1.0, 0.0, 2.0]);
}

#[test]
fn comparisons_produce_u8_masks() {
    let a = f32s(&[1.0, 2.0, 3.0], 3);
    let b = f32s(&[2.0, 2.0, 2.0], 3);
    let mask = |m: Tensor| {
        assert_eq!(m.dtype(), DType::U8);
        m.to_vec::<u8>().unwrap()
    };
    assert_eq!(mask(a.lt(&b).unwrap()), vec![1, 0, 0]);
    assert_eq!(mask(a.le(&b).unwrap()), vec![1, 1, 0]);
    assert_eq!(mask(a.eq(&b).unwrap()), vec![0, 1, 0]);
    assert_eq!(mask(a.ne(&b).unwrap()), vec![1, 0, 1]);
    assert_eq!(mask(a.gt(&b).unwrap()), vec![0, 0, 1]);
    assert_eq!(mask(a.ge(&b).unwrap()), vec![0, 1, 1]);
    assert_eq!(mask(a.gt(&Tensor::scalar(1.5)).unwrap()), vec![0, 1, 1]);
    let nan = f32s(&[f32::NAN], 1);
    assert_eq!(mask(nan.eq(&nan).unwrap()), vec![0]);
    assert_eq!(mask(nan.ne(&nan).unwrap()), vec![1]);
    let labels = u32s(&[1, 2, 3], 3);
    assert_eq!(labels.count_equal(&u32s(&[1, 0, 3], 3)).unwrap(), 2);
}

// ---- errors ------------------------------------------------------------------------------------

#[test]
fn indices_out_of_range_are_errors() {
    let x = iota(&[2, 3]);
    let err = x.index_select(&u32s(&[0, 3], 2), 1).unwrap_err();
    assert_eq!(err, Error::IndexOutOfRange { op: "index_select", index: 3, size: 3 });
    let err = x.gather(&u32s(&[0, 2, 1, 7], (2, 2)), 1).unwrap_err();
    assert_eq!(err, Error::IndexOutOfRange { op: "gather", index: 7, size: 3 });
    assert!(matches!(x.narrow(1, 2, 2), Err(Error::IndexOutOfRange { op: "narrow", .. })));
    assert!(matches!(x.sum(2, false), Err(Error::DimOutOfRange { op: "sum", dim: 2, rank: 2 })));
    assert!(matches!(x.softmax(-3), Err(Error::DimOutOfRange { op: "softmax", dim: -3, rank: 2 })));
    let float_index = f32s(&[0.0], 1);
    assert!(matches!(x.index_select(&float_index, 0), Err(Error::UnsupportedDType { .. })));
}

/// Asserts that `err` is an error whose message names `op` and both shapes.
fn assert_names(err: Error, op: &str, lhs: &str, rhs: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(op) && msg.contains(lhs) && msg.contains(rhs),
        "message {msg:?} should name {op}, {lhs}, {rhs}"
    );
}

#[test]
fn shape_mismatches_name_the_op_and_both_shapes() {
    let (a, b) = (iota(&[2, 3]), iota(&[4]));
    assert_names(a.add(&b).unwrap_err(), "add", "[2, 3]", "[4]");
    assert_names(a.mul(&b).unwrap_err(), "mul", "[2, 3]", "[4]");
    assert_names(a.matmul(&iota(&[4, 5])).unwrap_err(), "matmul", "[2, 3]", "[4, 5]");
    assert_names(iota(&[2, 2, 3]).matmul(&iota(&[3, 3, 1])).unwrap_err(), "matmul", "[2]", "[3]");
    assert_names(Tensor::cat(&[&a, &iota(&[2, 4])], 0).unwrap_err(), "cat", "[2, 3]", "[2, 4]");
    assert_names(a.gather(&u32s(&[0, 0], (1, 2)), 1).unwrap_err(), "gather", "[2, 3]", "[1, 2]");
    assert_names(a.broadcast_to((3, 3)).unwrap_err(), "broadcast_to", "[2, 3]", "[3, 3]");
    assert_names(a.reshape((4, 2)).unwrap_err(), "reshape", "6", "[4, 2]");
    assert_names(a.assign_(&iota(&[3, 2])).unwrap_err(), "assign_", "[2, 3]", "[3, 2]");
    let mask = Tensor::from_slice(&[1u8, 0], 2).unwrap();
    assert_names(mask.where_cond(&a, &a).unwrap_err(), "where_cond", "[2]", "[2, 3]");
}

#[test]
fn dtype_mismatches_are_errors() {
    let a = iota(&[2]);
    let b = Tensor::zeros(2, DType::F64);
    assert!(matches!(a.add(&b), Err(Error::DTypeMismatch { op: "add", lhs: DType::F32, rhs: DType::F64 })));
    assert!(matches!(u32s(&[1], 1).exp(), Err(Error::UnsupportedDType { .. })));
}

#[test]
fn backward_twice_on_one_graph_is_an_error_not_silently_empty() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0], 2).unwrap().requires_grad();
    let loss = x.square().unwrap().sum_all().unwrap();
    assert!(loss.backward().unwrap().get(&x).is_some());
    let err = loss.backward().err().expect("second backward must fail");
    assert!(err.to_string().contains("already used"), "{err}");
}

// ---- convolution and pooling ---------------------------------------------------------------------

/// x shape, weight shape, stride, padding, dilation, groups.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), (usize, usize), (usize, usize), usize);

/// Overlapping windows that stick out of the input on every side, with ties: each output is the
/// window's maximum, and the gradient goes to the first maximum in row-major window order
/// (PyTorch's rule), summed where one pixel is the first maximum of several windows.
#[test]
fn max_pool_with_padding_stride_and_ties_sends_the_gradient_to_the_first_maximum() {
    let x = f32s(&[1., 5., 5., 2., 5., 0., 7., 7., 3., 3., 7., -1.], (1, 1, 3, 4)).requires_grad();
    // Kernel 2x2, stride (1, 2), padding 1: output 4x3; row windows {0}, {0,1}, {1,2}, {2};
    // column windows {0}, {1,2}, {3}.
    let y = x.max_pool2d((2, 2), (1, 2), (1, 1)).unwrap();
    assert_eq!(vals(&y, &[1, 1, 4, 3]), [1., 5., 2., 5., 7., 7., 5., 7., 7., 3., 7., -1.]);
    let w = Tensor::arange(12, DType::F32).add_scalar(1.0).unwrap().reshape((1, 1, 4, 3)).unwrap();
    let grads = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    // (1, 2) is the first 7 of two windows that also hold the 7 at (2, 2); (1, 0) and (1, 3)
    // are the maxima of two windows each.
    let want = [1., 2., 0., 3., 11., 0., 13., 15., 10., 0., 11., 12.];
    assert_eq!(vals(grads.get(&x).unwrap(), &[1, 1, 3, 4]), want);
}

#[test]
fn max_pool_propagates_nan_and_pools_strided_views() {
    let x = f32s(&[1., f32::NAN, 3., 2., -4., -5.], (1, 1, 6));
    let y = vals(&x.max_pool1d(2, 2, 0).unwrap(), &[1, 1, 3]);
    assert!(y[0].is_nan());
    assert_eq!(y[1..], [3., -4.]);
    // A transposed (non-contiguous) input pools like its contiguous copy.
    let t = iota(&[1, 2, 4, 3]).transpose(2, 3).unwrap();
    let (a, b) = (
        t.max_pool2d((2, 2), (2, 2), (0, 0)).unwrap(),
        t.contiguous().unwrap().max_pool2d((2, 2), (2, 2), (0, 0)).unwrap(),
    );
    assert_eq!(vals(&a, &[1, 2, 1, 2]), vals(&b, &[1, 2, 1, 2]));
    assert_eq!(vals(&a, &[1, 2, 1, 2]), [4., 10., 16., 22.]);
}

/// `conv2d` against the unfold formulation written out here (im2col, grouped batched matmul,
/// broadcast bias), on random inputs over groups, stride, padding, dilation, 1x1 kernels and a
/// batch large enough for the parallel paths.
#[test]
fn conv2d_matches_the_unfold_formulation() {
    let mut rng = tensile_core::Rng::seed(11);
    let cases: [ConvCase; 6] = [
        ([2, 3, 7, 6], [4, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1),
        ([3, 4, 9, 8], [6, 2, 3, 2], (2, 1), (1, 2), (2, 1), 2),
        ([1, 6, 8, 8], [6, 1, 3, 3], (1, 2), (2, 1), (1, 2), 6),
        ([2, 4, 5, 5], [8, 4, 1, 1], (1, 1), (0, 0), (1, 1), 1),
        ([2, 4, 5, 5], [8, 2, 1, 1], (2, 2), (1, 1), (1, 1), 2),
        ([20, 8, 12, 12], [16, 8, 3, 3], (1, 1), (1, 1), (1, 1), 1),
    ];
    for (xs, ws, stride, padding, dilation, groups) in cases {
        let x = Tensor::randn(xs.to_vec(), 0.0, 1.0, DType::F32, &mut rng);
        let w = Tensor::randn(ws.to_vec(), 0.0, 1.0, DType::F32, &mut rng);
        let b = Tensor::randn(ws[0], 0.0, 1.0, DType::F32, &mut rng);
        let win = tensile_core::ops::Window2d { kernel: (ws[2], ws[3]), stride, padding, dilation, pad_value: 0.0 };
        let (oh, ow) = win.output_size(xs[2], xs[3]).unwrap();
        let k = ws[1] * ws[2] * ws[3];
        let cols = x.unfold2d(&win).unwrap().reshape([xs[0], groups, k, oh * ow]).unwrap();
        let wm = w.reshape([groups, ws[0] / groups, k]).unwrap();
        let want = wm.matmul(&cols).unwrap().reshape([xs[0], ws[0], oh, ow]).unwrap();
        for bias in [None, Some(&b)] {
            let want = match bias {
                Some(b) => want.add(&b.reshape([1, ws[0], 1, 1]).unwrap()).unwrap(),
                None => want.clone(),
            };
            let got = x.conv2d(&w, bias, stride, padding, dilation, groups).unwrap();
            let label = format!("x {xs:?} w {ws:?} stride {stride:?} padding {padding:?} dilation {dilation:?}");
            assert_eq!(got.dims(), want.dims(), "{label}");
            assert_close(&got.to_f64_vec().unwrap(), &want.to_f64_vec().unwrap(), 1e-4);
        }
    }
}

/// A fused op's output `fused` against the same ops one by one (`composed`): the same values
/// to the bit, outputs on both sides of the ReLU, and the same gradients to the bit for every
/// leaf, from one random output gradient.
fn assert_fused_is_composed(
    fused: &Tensor,
    composed: &Tensor,
    leaves: &[(&str, &Tensor)],
    rng: &mut tensile_core::Rng,
    case: &str,
) {
    let bits = |t: &Tensor| -> Vec<u64> {
        t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    };
    assert_eq!(fused.dims(), composed.dims(), "{case}");
    assert_eq!(bits(fused), bits(composed), "values, {case}");
    let v = fused.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    assert!(v.contains(&0.0) && v.iter().any(|&y| y > 0.0), "both sides of the ReLU, {case}");
    let seed = Tensor::randn(fused.shape(), 0.0, 1.0, fused.dtype(), rng);
    let (gf, gc) = (fused.backward_with(&seed).unwrap(), composed.backward_with(&seed).unwrap());
    for &(name, t) in leaves {
        assert_eq!(bits(gf.get(t).unwrap()), bits(gc.get(t).unwrap()), "gradient of {name}, {case}");
    }
}

#[test]
fn conv2d_relu_is_conv2d_then_relu_to_the_bit() {
    // Values and the gradients of input, weight and bias, with and without a bias, over a
    // batch (parallel samples), a strided padded grouped case, and f64.
    let mut rng = tensile_core::Rng::seed(13);
    type Case = (&'static [usize], &'static [usize], (usize, usize), (usize, usize), usize, bool, DType);
    let cases: [Case; 4] = [
        (&[16, 3, 12, 12], &[8, 3, 3, 3], (1, 1), (0, 0), 1, true, DType::F32),
        (&[2, 4, 9, 7], &[6, 2, 3, 2], (2, 1), (1, 1), 2, true, DType::F32),
        (&[3, 2, 6, 6], &[4, 2, 1, 1], (1, 1), (0, 0), 1, false, DType::F32),
        (&[2, 2, 5, 5], &[3, 2, 3, 3], (1, 2), (1, 0), 1, true, DType::F64),
    ];
    for (xd, wd, stride, padding, groups, with_bias, dtype) in cases {
        let x = Tensor::randn(xd.to_vec(), 0.0, 1.0, dtype, &mut rng).requires_grad();
        let w = Tensor::randn(wd.to_vec(), 0.0, 0.5, dtype, &mut rng).requires_grad();
        let b = Tensor::randn(wd[0], 0.0, 0.5, dtype, &mut rng).requires_grad();
        let bias = with_bias.then_some(&b);
        let fused = x.conv2d_relu(&w, bias, stride, padding, (1, 1), groups).unwrap();
        let composed = x.conv2d(&w, bias, stride, padding, (1, 1), groups).unwrap().relu().unwrap();
        let case = format!("x {xd:?}, w {wd:?}, stride {stride:?}, padding {padding:?}, bias {with_bias}, {dtype:?}");
        let leaves = [("x", &x), ("w", &w), ("b", &b)];
        assert_fused_is_composed(&fused, &composed, &leaves[..2 + with_bias as usize], &mut rng, &case);
    }
}

#[test]
fn conv2d_relu_max_pool2d_is_the_three_ops_to_the_bit() {
    // Values and the gradients of input, weight and bias against conv2d_relu then max_pool2d:
    // 2x2 windows over an even and an odd output (the AVX path and its overlapping last group,
    // the last row and column left out), overlapping padded windows (positions taken twice),
    // a batch split over threads, grouped, without a bias, f64; and inputs with many ties
    // (zeros from the ReLU, equal maxima: the first index wins in both).
    let mut rng = tensile_core::Rng::seed(21);
    type Pool = ((usize, usize), (usize, usize), (usize, usize));
    type Case = (&'static [usize], &'static [usize], (usize, usize), usize, bool, Pool, DType);
    let cases: [Case; 6] = [
        (&[16, 1, 28, 28], &[8, 1, 3, 3], (0, 0), 1, true, ((2, 2), (2, 2), (0, 0)), DType::F32),
        (&[8, 4, 13, 13], &[6, 4, 3, 3], (0, 0), 1, true, ((2, 2), (2, 2), (0, 0)), DType::F32),
        (&[3, 4, 9, 8], &[6, 2, 3, 2], (1, 1), 2, true, ((3, 3), (2, 2), (1, 1)), DType::F32),
        (&[2, 3, 10, 10], &[4, 3, 3, 3], (1, 1), 1, false, ((2, 3), (1, 2), (1, 1)), DType::F32),
        (&[2, 2, 7, 7], &[3, 2, 3, 3], (1, 1), 1, true, ((2, 2), (2, 2), (0, 0)), DType::F64),
        (&[4, 2, 12, 12], &[5, 2, 1, 1], (0, 0), 1, false, ((2, 2), (2, 2), (0, 0)), DType::F32),
    ];
    for (i, (xd, wd, padding, groups, with_bias, pool, dtype)) in cases.into_iter().enumerate() {
        let x = if i == 5 {
            // Whole numbers in a small range: many equal values in a window.
            let n: usize = xd.iter().product();
            let v: Vec<f64> = (0..n).map(|j| ((j * j * 3 + j) % 5) as f64 - 2.0).collect();
            Tensor::from_vec(v, xd.to_vec()).unwrap().to_dtype(dtype).unwrap().requires_grad()
        } else {
            Tensor::randn(xd.to_vec(), 0.0, 1.0, dtype, &mut rng).requires_grad()
        };
        let w = if i == 5 {
            Tensor::ones(wd.to_vec(), dtype).requires_grad()
        } else {
            Tensor::randn(wd.to_vec(), 0.0, 0.5, dtype, &mut rng).requires_grad()
        };
        let b = Tensor::randn(wd[0], 0.0, 0.5, dtype, &mut rng).requires_grad();
        let bias = with_bias.then_some(&b);
        let fused = x.conv2d_relu_max_pool2d(&w, bias, (1, 1), padding, (1, 1), groups, pool).unwrap();
        let composed = x
            .conv2d_relu(&w, bias, (1, 1), padding, (1, 1), groups)
            .unwrap()
            .max_pool2d(pool.0, pool.1, pool.2)
            .unwrap();
        let case = format!("x {xd:?}, w {wd:?}, padding {padding:?}, bias {with_bias}, pool {pool:?}, {dtype:?}");
        let leaves = [("x", &x), ("w", &w), ("b", &b)];
        assert_fused_is_composed(&fused, &composed, &leaves[..2 + with_bias as usize], &mut rng, &case);
    }
}

#[test]
fn conv2d_relu_max_pool2d_argument_errors_name_the_problem() {
    let x = Tensor::zeros((1, 2, 5, 5), DType::F32);
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32);
    let err = |pool| x.conv2d_relu_max_pool2d(&w, None, (1, 1), (0, 0), (1, 1), 1, pool).unwrap_err().to_string();
    let padding = err(((2, 2), (2, 2), (2, 0)));
    assert!(padding.contains("conv2d_relu_max_pool2d") && padding.contains("at most half the kernel"), "{padding}");
    // The convolution's output is 3x3: a 4x4 window does not fit it.
    let large = err(((4, 4), (1, 1), (0, 0)));
    assert!(large.contains("height: input size 3 with padding 0 is smaller than the kernel span 4"), "{large}");
    let stride = err(((2, 2), (0, 1), (0, 0)));
    assert!(stride.contains("at least 1"), "{stride}");
}

#[test]
fn conv2d_argument_errors_name_the_problem() {
    let x = Tensor::zeros((1, 2, 5, 5), DType::F32);
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32);
    let err = |r: tensile_core::Result<Tensor>| r.unwrap_err().to_string();
    let bad_bias = err(x.conv2d(&w, Some(&Tensor::zeros(3, DType::F32)), (1, 1), (0, 0), (1, 1), 1));
    assert!(bad_bias.contains("bias must have shape [4], found [3]"), "{bad_bias}");
    let f64_bias = err(x.conv2d(&w, Some(&Tensor::zeros(4, DType::F64)), (1, 1), (0, 0), (1, 1), 1));
    assert!(f64_bias.contains("bias has dtype F64 but the input has F32"), "{f64_bias}");
    let f64_weight = err(x.conv2d(&w.to_dtype(DType::F64).unwrap(), None, (1, 1), (0, 0), (1, 1), 1));
    assert!(f64_weight.contains("weight has dtype F64"), "{f64_weight}");
    let groups = err(x.conv2d(&w, None, (1, 1), (0, 0), (1, 1), 3));
    assert!(groups.contains("do not fit 3 groups"), "{groups}");
    let small = err(x.conv2d(&Tensor::zeros((4, 2, 7, 3), DType::F32), None, (1, 1), (0, 0), (1, 1), 1));
    assert!(small.contains("height: input size 5 with padding 0 is smaller than the kernel span 7"), "{small}");
    let pool = err(x.max_pool2d((2, 2), (2, 2), (2, 0)));
    assert!(pool.contains("must be at most half the kernel"), "{pool}");
    let ints = err(Tensor::zeros((1, 1, 2, 2), DType::U32).max_pool2d((2, 2), (2, 2), (0, 0)));
    assert!(ints.contains("max_pool2d"), "{ints}");
}

// ---- layer norm ---------------------------------------------------------------------------------

#[test]
fn layer_norm_of_known_rows() {
    // Row 1: mean 2.5, biased variance 1.25; row 2 is constant and becomes the bias alone.
    let x = f32s(&[1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0, 2.0], (2, 4));
    let w = f32s(&[1.0, 2.0, 1.0, 1.0], 4);
    let b = f32s(&[0.0, 0.0, 1.0, 0.0], 4);
    let y = x.layer_norm(1, Some(&w), Some(&b), 1e-5).unwrap().to_dtype(DType::F64).unwrap();
    let s = (1.25f64 + 1e-5).sqrt();
    let want = [-1.5 / s, -1.0 / s, 0.5 / s + 1.0, 1.5 / s, 0.0, 0.0, 1.0, 0.0];
    assert_close(&y.to_vec::<f64>().unwrap(), &want, 1e-6);
    // Over two dimensions of a transposed view: the rows are the columns of `x`.
    let xt = x.reshape((2, 2, 2)).unwrap().permute(&[2, 1, 0]).unwrap();
    let both = xt.layer_norm(2, None, None, 0.0).unwrap();
    let by_hand = xt.contiguous().unwrap().reshape((2, 4)).unwrap().layer_norm(1, None, None, 0.0).unwrap();
    assert_eq!(vals(&both, &[2, 2, 2]), vals(&by_hand.reshape((2, 2, 2)).unwrap(), &[2, 2, 2]));
}

#[test]
fn layer_norm_argument_errors_name_the_problem() {
    let x = Tensor::zeros((3, 4), DType::F32);
    let err = |r: tensile_core::Result<Tensor>| r.unwrap_err().to_string();
    let dims = err(x.layer_norm(3, None, None, 1e-5));
    assert!(dims.contains("cannot normalize the last 3 dimensions of shape [3, 4]"), "{dims}");
    let none = err(x.layer_norm(0, None, None, 1e-5));
    assert!(none.contains("last 0 dimensions"), "{none}");
    let weight = err(x.layer_norm(1, Some(&Tensor::zeros(3, DType::F32)), None, 1e-5));
    assert!(weight.contains("weight must have shape [4], found [3]"), "{weight}");
    let bias = err(x.layer_norm(1, None, Some(&Tensor::zeros(4, DType::F64)), 1e-5));
    assert!(bias.contains("bias has dtype F64 but the input has F32"), "{bias}");
    let eps = err(x.layer_norm(1, None, None, f64::NAN));
    assert!(eps.contains("eps = NaN"), "{eps}");
    let empty = err(Tensor::zeros((3, 0), DType::F32).layer_norm(1, None, None, 1e-5));
    assert!(empty.contains("hold no elements"), "{empty}");
    let ints = err(Tensor::zeros((3, 4), DType::U32).layer_norm(1, None, None, 1e-5));
    assert!(ints.contains("layer_norm"), "{ints}");
}
