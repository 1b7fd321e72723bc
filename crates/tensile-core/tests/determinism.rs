//! Bit-for-bit determinism: the same computation gives the same bits on repeated runs and
//! whatever the number of threads. Every case runs on rayon pools of 1, 2 and 4 threads and on
//! the global pool; sizes are chosen above the kernels' parallel thresholds, so the parallel
//! paths (blocked sums, chunked elementwise maps, multi-threaded and batch-parallel GEMM) really
//! run against the sequential ones.

use tensile_core::{DType, Rng, Tensor};

// ---- helpers -------------------------------------------------------------------------------------

/// The exact bits of a float tensor's elements (f32 widened without rounding).
fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits() as u64).collect(),
        DType::F64 => t.to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect(),
        other => panic!("bits of a {other:?} tensor"),
    }
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Runs `f` on the global pool twice and on pools of 1, 2 and 4 threads; asserts every run
/// returns the same bits.
fn assert_same_bits_on_any_thread_count(f: impl Fn() -> Vec<Tensor> + Sync) {
    let reference: Vec<Vec<u64>> = f().iter().map(bits).collect();
    let again: Vec<Vec<u64>> = f().iter().map(bits).collect();
    assert!(reference == again, "a repeated run gave different bits");
    for threads in [1, 2, 4] {
        let run: Vec<Vec<u64>> = in_pool(threads, || f().iter().map(bits).collect());
        for (i, (a, b)) in reference.iter().zip(&run).enumerate() {
            let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert!(diff == 0, "output {i}: {diff} of {} elements differ on {threads} thread(s)", a.len());
        }
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, 1.0, DType::F32, &mut Rng::seed(seed))
}

// ---- matrix products -----------------------------------------------------------------------------

#[test]
fn large_matmul_is_deterministic() {
    let (a, b) = (randn(&[300, 500], 1), randn(&[500, 400], 2));
    let bt = randn(&[400, 500], 3);
    // A short K: cut into one block of rows per thread (`cpu/matmul.rs`), with a transposed
    // left operand as in a weight gradient, and with a single output column.
    let (c, d) = (randn(&[200, 520], 8), randn(&[200, 300], 9));
    let (e, f) = (randn(&[2100, 256], 10), randn(&[256, 1], 11));
    // A linear layer with more features than rows, computed as `(W @ xᵀ)ᵀ`: K long enough for
    // gemm to cut it, and short enough for one block of rows per thread.
    let (x, w) = (randn(&[128, 784], 12), randn(&[512, 784], 13));
    let (y, v) = (randn(&[100, 200], 14), randn(&[600, 200], 15));
    assert_same_bits_on_any_thread_count(|| {
        vec![
            a.matmul(&b).unwrap(),
            a.matmul(&bt.t().unwrap()).unwrap(),
            c.t().unwrap().matmul(&d).unwrap(),
            e.matmul(&f).unwrap(),
            x.matmul(&w.t().unwrap()).unwrap(),
            y.matmul(&v.t().unwrap()).unwrap(),
        ]
    });
}

#[test]
fn batched_matmul_is_deterministic() {
    // Many small products (run in parallel over the batch) and a few large ones (run one after
    // another, each multi-threaded), with a broadcast right operand.
    let (a, b) = (randn(&[16, 64, 128], 4), randn(&[128, 96], 5));
    let (c, d) = (randn(&[4, 200, 300], 6), randn(&[4, 300, 200], 7));
    assert_same_bits_on_any_thread_count(|| vec![a.matmul(&b).unwrap(), c.matmul(&d).unwrap()]);
}

// ---- reductions and softmax ----------------------------------------------------------------------

#[test]
fn big_sums_and_means_are_deterministic() {
    let x = randn(&[1_000_000], 8);
    let m = randn(&[5000, 300], 9);
    assert_same_bits_on_any_thread_count(|| {
        vec![
            x.sum_all().unwrap(),
            x.mean_all().unwrap(),
            m.sum(0, false).unwrap(),
            m.sum(1, false).unwrap(),
            m.mean(0, true).unwrap(),
            m.t().unwrap().sum(1, false).unwrap(),
            m.max(0, false).unwrap(),
            m.var(1, false).unwrap(),
        ]
    });
    // And the blocked f32 sum is accurate, not just repeatable.
    let exact: f64 = x.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).sum();
    assert!((x.sum_all().unwrap().item().unwrap() - exact).abs() < 1e-2, "{exact}");
}

#[test]
fn softmax_is_deterministic() {
    let x = randn(&[2000, 100], 10);
    assert_same_bits_on_any_thread_count(|| {
        vec![x.softmax(1).unwrap(), x.log_softmax(1).unwrap(), x.softmax(0).unwrap(), x.log_softmax(0).unwrap()]
    });
}

#[test]
fn softmax_gradients_are_deterministic_and_equal_their_formulas() {
    let x = randn(&[2000, 100], 15).requires_grad();
    let g = randn(&[2000, 100], 16);
    // The gradient of sum(g * softmax(x)) with respect to x is the backward pass fed `g`.
    let grad = |log: bool| {
        let y = if log { x.log_softmax(1) } else { x.softmax(1) }.unwrap();
        y.backward_with(&g).unwrap().get(&x).unwrap().clone()
    };
    assert_same_bits_on_any_thread_count(|| vec![grad(false), grad(true)]);
    // The fused kernel gives the bits of the textbook formulas computed op by op.
    let y = x.detach().softmax(1).unwrap();
    let want = y.mul(&g.sub(&g.mul(&y).unwrap().sum(1, true).unwrap()).unwrap()).unwrap();
    assert_eq!(bits(&grad(false)), bits(&want));
    let ly = x.detach().log_softmax(1).unwrap();
    let want = g.sub(&ly.exp().unwrap().mul(&g.sum(1, true).unwrap()).unwrap()).unwrap();
    assert_eq!(bits(&grad(true)), bits(&want));
}

#[test]
fn layer_norm_and_its_gradients_are_deterministic() {
    let x = randn(&[600, 256], 17).requires_grad();
    let w = randn(&[256], 18).requires_grad();
    let b = randn(&[256], 19).requires_grad();
    let g = randn(&[600, 256], 20);
    assert_same_bits_on_any_thread_count(|| {
        let y = x.layer_norm(1, Some(&w), Some(&b), 1e-5).unwrap();
        let grads = y.backward_with(&g).unwrap();
        let grad = |t: &Tensor| grads.get(t).unwrap().clone();
        vec![y.detach(), grad(&x), grad(&w), grad(&b)]
    });
}

// ---- elementwise ---------------------------------------------------------------------------------

#[test]
fn large_elementwise_ops_are_deterministic() {
    let x = randn(&[1000, 128], 11);
    let y = randn(&[1000, 128], 12);
    let bias = randn(&[128], 13);
    let per_row = randn(&[1000, 1], 14);
    assert_same_bits_on_any_thread_count(|| {
        vec![
            x.exp().unwrap(),
            x.gelu().unwrap(),
            x.add(&y).unwrap(),
            x.mul(&bias).unwrap(),
            x.sub(&per_row).unwrap(),
            x.t().unwrap().maximum(&y.t().unwrap()).unwrap(),
            x.gt(&y).unwrap().where_cond(&x, &y).unwrap(),
        ]
    });
}

// ---- a whole training step -----------------------------------------------------------------------

/// Loss and gradients of a 2-layer MLP (64 -> 256 -> 10) on a batch of 256, from core ops.
fn mlp_step(x: &Tensor, labels: &Tensor, params: &[Tensor]) -> Vec<Tensor> {
    let [w1, b1, w2, b2] = params else { panic!("four parameters") };
    let h = x.matmul(w1).unwrap().add(b1).unwrap().relu().unwrap();
    let logits = h.matmul(w2).unwrap().add(b2).unwrap();
    let logp = logits.log_softmax(-1).unwrap();
    let picked = logp.gather(&labels.unsqueeze(1).unwrap(), 1).unwrap();
    let loss = picked.mean_all().unwrap().neg().unwrap();
    let grads = loss.backward().unwrap();
    let mut out = vec![loss.detach()];
    out.extend(params.iter().map(|p| grads.get(p).expect("every parameter has a gradient").clone()));
    out
}

#[test]
fn mlp_forward_and_backward_are_deterministic() {
    let x = randn(&[256, 64], 15);
    let mut rng = Rng::seed(16);
    let labels: Vec<u32> = (0..256).map(|_| rng.below(10) as u32).collect();
    let labels = Tensor::from_vec(labels, 256).unwrap();
    let params: Vec<Tensor> = [vec![64, 256], vec![256], vec![256, 10], vec![10]]
        .iter()
        .enumerate()
        .map(|(i, s)| Tensor::randn(s.clone(), 0.0, 0.1, DType::F32, &mut Rng::seed(17 + i as u64)).requires_grad())
        .collect();
    assert_same_bits_on_any_thread_count(|| mlp_step(&x, &labels, &params));
}

/// Loss and the gradients of the input and of every parameter of `relu(x @ w1ᵀ + b1) @ w2ᵀ +
/// b2` through `linear_relu` and `linear`, whose backward runs the input's and the weight's
/// products side by side on a pool of several threads.
fn linear_step(x: &Tensor, params: &[Tensor]) -> Vec<Tensor> {
    let [w1, b1, w2, b2] = params else { panic!("four parameters") };
    let h = x.linear_relu(w1, Some(b1)).unwrap();
    let loss = h.linear(w2, Some(b2)).unwrap().square().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut out = vec![loss.detach()];
    for p in std::iter::once(x).chain(params) {
        let g = grads.get(p).expect("every leaf has a gradient");
        assert!(!g.tracks_grad(), "a gradient records a graph of its own");
        out.push(g.clone());
    }
    out
}

#[test]
fn linear_layers_forward_and_backward_are_deterministic() {
    let x = randn(&[256, 96], 18).requires_grad();
    let params: Vec<Tensor> = [vec![192, 96], vec![192], vec![40, 192], vec![40]]
        .iter()
        .enumerate()
        .map(|(i, s)| Tensor::randn(s.clone(), 0.0, 0.1, DType::F32, &mut Rng::seed(19 + i as u64)).requires_grad())
        .collect();
    assert_same_bits_on_any_thread_count(|| linear_step(&x, &params));
}
