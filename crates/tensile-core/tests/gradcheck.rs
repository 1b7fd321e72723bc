//! Gradient checks: every differentiable op's analytic gradient against central finite
//! differences, computed in f64 through the very same kernels.
//!
//! One helper, [`check`], does the work: it reduces the op's output to a scalar by a weighted sum
//! with fixed random weights (so every output element matters), runs backward, and compares the
//! gradient of every input element with `(L(x + eps) - L(x - eps)) / 2eps`. Shapes are drawn by
//! proptest (ranks 0-4, sizes 1-4); inputs are often views (transposed, permuted, narrowed,
//! broadcast) of a leaf of another shape, so the op under test meets non-contiguous and offset
//! layouts, and the gradient has to find its way back through the view. Inputs are drawn away
//! from kinks (0 for relu and abs, the bounds of clamp) and ties, where the derivative is not
//! defined and finite differences would straddle it.

use proptest::prelude::*;
use tensile_core::{All, DType, Error, Result, Rng, Tensor, is_grad_enabled, no_grad};

// ---- the checker -----------------------------------------------------------------------------

const EPS: f64 = 1e-6;

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs()
}

/// Checks the gradient of `f` with respect to each of `inputs` (f64 leaves) against central
/// finite differences. The scalar differentiated is `sum(f(inputs) * w)` for fixed random `w`.
fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: Vec<Tensor>) {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.requires_grad()).collect();
    let out = f(&leaves).expect("forward");
    assert_eq!(out.dtype(), DType::F64, "gradient checks run in f64");
    let weights = Tensor::rand_uniform(out.shape(), -1.0, 1.0, DType::F64, &mut Rng::seed(0x5eed));
    let loss = |out: &Tensor| out.mul(&weights)?.sum_all();
    let grads = loss(&out).expect("loss").backward().expect("backward");
    for (i, (input, leaf)) in inputs.iter().zip(&leaves).enumerate() {
        let analytic = match grads.get(leaf) {
            Some(g) => {
                assert_eq!(g.shape(), leaf.shape(), "gradient shape of input {i}");
                assert_eq!(g.dtype(), DType::F64, "gradient dtype of input {i}");
                g.to_vec::<f64>().unwrap()
            }
            None => vec![0.0; leaf.elem_count()],
        };
        let base = input.to_vec::<f64>().unwrap();
        let loss_at = |j: usize, delta: f64| {
            let mut v = base.clone();
            v[j] += delta;
            let mut xs = inputs.clone();
            xs[i] = Tensor::from_vec(v, input.shape()).unwrap();
            let _guard = no_grad();
            loss(&f(&xs).expect("forward")).unwrap().item().unwrap()
        };
        for (j, &a) in analytic.iter().enumerate() {
            let numeric = (loss_at(j, EPS) - loss_at(j, -EPS)) / (2.0 * EPS);
            assert!(
                close(a, numeric),
                "input {i} (shape {}) element {j}: analytic {a}, numeric {numeric}",
                input.shape()
            );
        }
    }
}

// ---- drawing inputs ----------------------------------------------------------------------------

/// Where input values are drawn.
#[derive(Clone, Copy, Debug)]
enum Domain {
    /// Uniform in [-2, 2].
    Any,
    /// Uniform in [0.5, 2].
    Positive,
    /// Uniform in [-2, 2] but at least 0.1 from each of these points (kinks of the op).
    AwayFrom(&'static [f64]),
}

fn values(shape: &[usize], domain: Domain, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| match domain {
            Domain::Any => rng.uniform(-2.0, 2.0),
            Domain::Positive => rng.uniform(0.5, 2.0),
            Domain::AwayFrom(points) => {
                let mut x = rng.uniform(-2.0, 2.0);
                for &p in points {
                    if (x - p).abs() < 0.1 {
                        x = if x < p { p - 0.1 - (x - p).abs() } else { p + 0.1 + (x - p).abs() };
                    }
                }
                x
            }
        })
        .collect();
    Tensor::from_vec(v, shape.to_vec()).unwrap()
}

/// How the op under test sees an input: the leaf itself, or a view of a leaf of another shape.
#[derive(Clone, Debug)]
enum View {
    Plain,
    /// `leaf.t()`.
    Transposed,
    /// `leaf.permute(perm)`.
    Permuted(Vec<usize>),
    /// `leaf.narrow(dim, 1, target[dim])` of a leaf 2 larger in `dim`; on dim 0 this is a
    /// contiguous view that starts at an offset.
    Narrowed(usize),
    /// `leaf.broadcast_to(target)` of a leaf with size-1 and missing leading dimensions.
    Broadcast,
}

#[derive(Clone, Debug)]
struct Input {
    target: Vec<usize>,
    leaf: Vec<usize>,
    view: View,
}

impl Input {
    /// An input of shape `target` seen through view `kind` (0 plain, 1 transposed, 2 permuted,
    /// 3 narrowed, 4 broadcast, falling back to plain where the rank does not allow it), with
    /// the view's details drawn from `seed`. Broadcast views repeat values, which ties max/min.
    fn new(target: &[usize], kind: u8, seed: u64, allow_broadcast: bool) -> Input {
        let mut rng = Rng::seed(seed ^ 0xa5a5);
        let r = target.len();
        let mut leaf = target.to_vec();
        let view = match kind % 5 {
            1 if r >= 2 => {
                leaf.swap(r - 2, r - 1);
                View::Transposed
            }
            2 if r >= 2 => {
                let perm = rng.permutation(r);
                for (i, &p) in perm.iter().enumerate() {
                    leaf[p] = target[i];
                }
                View::Permuted(perm)
            }
            3 if r >= 1 => {
                let d = rng.below(r as u64) as usize;
                leaf[d] += 2;
                View::Narrowed(d)
            }
            4 if allow_broadcast => {
                let drop = rng.below(r as u64 + 1) as usize;
                leaf = target[drop..].iter().map(|&d| if rng.bernoulli(0.5) { 1 } else { d }).collect();
                View::Broadcast
            }
            _ => View::Plain,
        };
        Input { target: target.to_vec(), leaf, view }
    }

    fn apply(&self, leaf: &Tensor) -> Result<Tensor> {
        let x = match &self.view {
            View::Plain => leaf.clone(),
            View::Transposed => leaf.t()?,
            View::Permuted(perm) => leaf.permute(perm)?,
            View::Narrowed(d) => leaf.narrow(*d, 1, self.target[*d])?,
            View::Broadcast => leaf.broadcast_to(self.target.clone())?,
        };
        assert_eq!(x.dims(), &self.target[..], "internal: view shape");
        Ok(x)
    }

    fn values(&self, domain: Domain, rng: &mut Rng) -> Tensor {
        values(&self.leaf, domain, rng)
    }
}

/// A shape that broadcasts to `out`: a suffix of it with some dimensions set to 1.
fn broadcast_operand(out: &[usize], rng: &mut Rng) -> Vec<usize> {
    let drop = rng.below(out.len() as u64 + 1) as usize;
    out[drop..].iter().map(|&d| if rng.bernoulli(0.3) { 1 } else { d }).collect()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 0..=4)
}

fn shape_of_rank_at_least(min: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, min..=4)
}

/// 32 cases per property by default; `PROPTEST_CASES=2000` runs a deeper search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    ProptestConfig::with_cases(cases)
}

fn idx(v: Vec<u32>, shape: impl Into<tensile_core::Shape>) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

// ---- elementwise ops of one tensor ---------------------------------------------------------------

macro_rules! unary_gradchecks {
    ($($name:ident: $domain:expr, |$x:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(s in shape(), kind in 0u8..5, seed in any::<u64>()) {
                    let input = Input::new(&s, kind, seed, true);
                    let x = input.values($domain, &mut Rng::seed(seed));
                    check(|xs| { let $x = input.apply(&xs[0])?; $body }, vec![x]);
                }
            )*
        }
    };
}

unary_gradchecks! {
    neg: Domain::Any, |x| x.neg();
    exp: Domain::Any, |x| x.exp();
    log_of_positive: Domain::Positive, |x| x.log();
    sqrt_of_positive: Domain::Positive, |x| x.sqrt();
    abs_away_from_zero: Domain::AwayFrom(&[0.0]), |x| x.abs();
    clamp_away_from_bounds: Domain::AwayFrom(&[-0.5, 0.5]), |x| x.clamp(-0.5, 0.5);
    square: Domain::Any, |x| x.square();
    recip_away_from_zero: Domain::AwayFrom(&[0.0]), |x| x.recip();
    relu_away_from_zero: Domain::AwayFrom(&[0.0]), |x| x.relu();
    leaky_relu_away_from_zero: Domain::AwayFrom(&[0.0]), |x| x.leaky_relu(0.1);
    gelu: Domain::Any, |x| x.gelu();
    gelu_tanh: Domain::Any, |x| x.gelu_tanh();
    sigmoid: Domain::Any, |x| x.sigmoid();
    tanh: Domain::Any, |x| x.tanh();
    softplus: Domain::Any, |x| x.softplus();
    silu: Domain::Any, |x| x.silu();
    powf_of_positive: Domain::Positive, |x| x.powf(2.5);
    powf_negative_exponent: Domain::Positive, |x| x.powf(-1.5);
    powf_integer_exponent_of_any_sign: Domain::Any, |x| x.powf(3.0);
    affine: Domain::Any, |x| x.affine(-1.5, 0.25);
    add_scalar: Domain::Any, |x| x.add_scalar(3.0);
    mul_scalar: Domain::Any, |x| x.mul_scalar(-0.7);
    contiguous_copy: Domain::Any, |x| x.contiguous()?.square();
}

// ---- elementwise ops of two tensors, with broadcasting --------------------------------------------

macro_rules! binary_gradchecks {
    ($($name:ident: $da:expr, $db:expr, |$a:ident, $b:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(out in shape(), ka in 0u8..5, kb in 0u8..5, seed in any::<u64>()) {
                    let mut rng = Rng::seed(seed);
                    let (sa, sb) = (broadcast_operand(&out, &mut rng), broadcast_operand(&out, &mut rng));
                    let (ia, ib) = (Input::new(&sa, ka, seed, true), Input::new(&sb, kb, !seed, true));
                    let inputs = vec![ia.values($da, &mut rng), ib.values($db, &mut rng)];
                    check(|xs| { let ($a, $b) = (ia.apply(&xs[0])?, ib.apply(&xs[1])?); $body }, inputs);
                }
            )*
        }
    };
}

binary_gradchecks! {
    add: Domain::Any, Domain::Any, |a, b| a.add(&b);
    sub: Domain::Any, Domain::Any, |a, b| a.sub(&b);
    mul: Domain::Any, Domain::Any, |a, b| a.mul(&b);
    div_by_nonzero: Domain::Any, Domain::AwayFrom(&[0.0]), |a, b| a.div(&b);
    pow_of_positive_base: Domain::Positive, Domain::Any, |a, b| a.pow(&b);
    // Continuous random values: the chance of a tie within 2·eps is negligible.
    maximum: Domain::Any, Domain::Any, |a, b| a.maximum(&b);
    minimum: Domain::Any, Domain::Any, |a, b| a.minimum(&b);
}

#[test]
fn add_broadcasts_both_ways() {
    // [3, 1, 4] with [2, 1] -> [3, 2, 4]: each input is repeated along a dimension of the other.
    let mut rng = Rng::seed(1);
    let inputs = vec![values(&[3, 1, 4], Domain::Any, &mut rng), values(&[2, 1], Domain::Any, &mut rng)];
    check(|xs| xs[0].add(&xs[1]), inputs.clone());
    check(|xs| xs[0].mul(&xs[1]), inputs);
}

// ---- reductions ------------------------------------------------------------------------------------

fn chosen_dims(rank: usize, mask: &[bool]) -> Vec<usize> {
    (0..rank).filter(|&d| mask[d]).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sum_over_chosen_dims(s in shape(), mask in prop::collection::vec(any::<bool>(), 4), keepdim in any::<bool>(),
                            kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let dims = chosen_dims(s.len(), &mask);
        check(|xs| input.apply(&xs[0])?.sum(dims.clone(), keepdim), vec![input.values(Domain::Any, &mut Rng::seed(seed))]);
    }

    #[test]
    fn mean_over_chosen_dims(s in shape(), mask in prop::collection::vec(any::<bool>(), 4), keepdim in any::<bool>(),
                             kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let dims = chosen_dims(s.len(), &mask);
        check(|xs| input.apply(&xs[0])?.mean(dims.clone(), keepdim), vec![input.values(Domain::Any, &mut Rng::seed(seed))]);
    }

    #[test]
    fn max_and_min_over_chosen_dims(s in shape(), mask in prop::collection::vec(any::<bool>(), 4),
                                    keepdim in any::<bool>(), kind in 0u8..5, seed in any::<u64>()) {
        // No broadcast views: they repeat values, and a tied extreme has no derivative.
        let input = Input::new(&s, kind, seed, false);
        let dims = chosen_dims(s.len(), &mask);
        let x = input.values(Domain::Any, &mut Rng::seed(seed));
        check(|xs| input.apply(&xs[0])?.max(dims.clone(), keepdim), vec![x.clone()]);
        check(|xs| input.apply(&xs[0])?.min(dims.clone(), keepdim), vec![x]);
    }

    #[test]
    fn var_over_chosen_dims(s in shape(), mask in prop::collection::vec(any::<bool>(), 4), keepdim in any::<bool>(),
                            kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let dims = chosen_dims(s.len(), &mask);
        let n: usize = dims.iter().map(|&d| s[d]).product();
        let correction = if n >= 2 { 1 } else { 0 };
        let x = input.values(Domain::Any, &mut Rng::seed(seed));
        check(|xs| input.apply(&xs[0])?.var_with_correction(dims.clone(), keepdim, correction), vec![x]);
    }
}

#[test]
fn full_reductions() {
    let x = values(&[2, 3, 4], Domain::Any, &mut Rng::seed(2));
    check(|xs| xs[0].sum_all(), vec![x.clone()]);
    check(|xs| xs[0].mean_all(), vec![x.clone()]);
    check(|xs| xs[0].max(All, false), vec![x.clone()]);
    check(|xs| xs[0].min(All, true), vec![x.clone()]);
    check(|xs| xs[0].var(All, false), vec![x.clone()]);
    check(|xs| xs[0].var([0, 2], true), vec![x]);
}

// ---- matrix products -------------------------------------------------------------------------------

/// A matmul operand of logical shape `batch + [rows, cols]`: plain, a transposed view of a
/// `[cols, rows]` leaf, or (kind 2) a view broadcast over its batch dimensions.
fn matmul_operand(batch: &[usize], rows: usize, cols: usize, kind: u8, seed: u64) -> Input {
    let mut target = batch.to_vec();
    target.extend([rows, cols]);
    match kind % 3 {
        1 => Input::new(&target, 1, seed, false),
        2 => {
            let mut rng = Rng::seed(seed);
            let drop = rng.below(batch.len() as u64 + 1) as usize;
            let mut leaf: Vec<usize> = batch[drop..].iter().map(|&d| if rng.bernoulli(0.5) { 1 } else { d }).collect();
            leaf.extend([rows, cols]);
            Input { target, leaf, view: View::Broadcast }
        }
        _ => Input::new(&target, 0, seed, false),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_2d(m in 1usize..=4, k in 1usize..=4, n in 1usize..=4, ka in 0u8..2, kb in 0u8..2, seed in any::<u64>()) {
        let (a, b) = (matmul_operand(&[], m, k, ka, seed), matmul_operand(&[], k, n, kb, !seed));
        let mut rng = Rng::seed(seed);
        let inputs = vec![a.values(Domain::Any, &mut rng), b.values(Domain::Any, &mut rng)];
        check(|xs| a.apply(&xs[0])?.matmul(&b.apply(&xs[1])?), inputs);
    }

    #[test]
    fn matmul_batched_with_broadcast_batch_dims(batch in prop::collection::vec(1usize..=3, 1..=2),
                                                m in 1usize..=3, k in 1usize..=3, n in 1usize..=3,
                                                ka in 0u8..3, kb in 0u8..3, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let (ba, bb) = (broadcast_operand(&batch, &mut rng), broadcast_operand(&batch, &mut rng));
        let (a, b) = (matmul_operand(&ba, m, k, ka, seed), matmul_operand(&bb, k, n, kb, !seed));
        let inputs = vec![a.values(Domain::Any, &mut rng), b.values(Domain::Any, &mut rng)];
        check(|xs| a.apply(&xs[0])?.matmul(&b.apply(&xs[1])?), inputs);
    }

    #[test]
    fn matmul_with_vector_operands(batch in prop::collection::vec(1usize..=3, 0..=2), m in 1usize..=4,
                                   k in 1usize..=4, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let mut mat = batch.clone();
        mat.extend([k, m]);
        let (v, a) = (values(&[k], Domain::Any, &mut rng), values(&mat, Domain::Any, &mut rng));
        check(|xs| xs[0].matmul(&xs[1]), vec![v.clone(), a.clone()]);
        check(|xs| xs[1].t()?.matmul(&xs[0]), vec![v, a]);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn linear_with_and_without_bias(lead in prop::collection::vec(1usize..=3, 0..=2), k in 1usize..=4,
                                    n in 1usize..=4, kx in 0u8..4, kw in 0u8..2, bias in any::<bool>(),
                                    seed in any::<u64>()) {
        // `x` plain, transposed, permuted or narrowed; the weight plain or a transposed view.
        let mut target = lead.clone();
        target.push(k);
        let x = Input::new(&target, kx, seed, false);
        let w = matmul_operand(&[], n, k, kw, !seed);
        let mut rng = Rng::seed(seed);
        let mut inputs = vec![x.values(Domain::Any, &mut rng), w.values(Domain::Any, &mut rng)];
        if bias {
            inputs.push(values(&[n], Domain::Any, &mut rng));
        }
        check(|xs| x.apply(&xs[0])?.linear(&w.apply(&xs[1])?, xs.get(2)), inputs);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mse_loss_to_both_operands(s in shape(), ki in 0u8..4, kt in 0u8..4, mean in any::<bool>(), seed in any::<u64>()) {
        let (i, t) = (Input::new(&s, ki, seed, false), Input::new(&s, kt, !seed, false));
        let mut rng = Rng::seed(seed);
        let inputs = vec![i.values(Domain::Any, &mut rng), t.values(Domain::Any, &mut rng)];
        check(|xs| i.apply(&xs[0])?.mse_loss(&t.apply(&xs[1])?, mean), inputs);
    }
}

#[test]
fn matmul_of_two_vectors_is_a_scalar_with_gradients() {
    // Regression: `[K] @ [K]` squeezed a dimension that was already gone and errored.
    let mut rng = Rng::seed(3);
    check(|xs| xs[0].matmul(&xs[1]), vec![values(&[4], Domain::Any, &mut rng), values(&[4], Domain::Any, &mut rng)]);
}

#[test]
fn matmul_of_a_sequence_by_a_transposed_matrix() {
    // A linear layer on `[B, T, in]`: computed as one `[B·T, in] @ [in, out]` product.
    let mut rng = Rng::seed(5);
    let inputs = vec![values(&[2, 3, 4], Domain::Any, &mut rng), values(&[5, 4], Domain::Any, &mut rng)];
    check(|xs| xs[0].matmul(&xs[1].t()?), inputs.clone());
    check(|xs| xs[0].matmul(&xs[1].t()?)?.square(), inputs);
}

#[test]
fn matmul_4d_with_transposed_operands() {
    let mut rng = Rng::seed(4);
    let inputs = vec![values(&[2, 1, 3, 4], Domain::Any, &mut rng), values(&[3, 2, 3], Domain::Any, &mut rng)];
    // [2,1,4,3] @ [3,3,2] -> [2,3,4,2]
    check(|xs| xs[0].t()?.matmul(&xs[1].t()?), inputs);
}

// ---- shape ops ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reshape_of_a_view(s in shape(), kind in 0u8..5, flat in any::<bool>(), seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let target: Vec<usize> = if flat { vec![s.iter().product()] } else { s.iter().rev().copied().collect() };
        check(|xs| input.apply(&xs[0])?.reshape(target.clone()), vec![input.values(Domain::Any, &mut Rng::seed(seed))]);
    }

    #[test]
    fn transpose_and_permute(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let (d1, d2) = (rng.below(s.len() as u64) as usize, rng.below(s.len() as u64) as usize);
        let perm = rng.permutation(s.len());
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.transpose(d1, d2)?.exp(), vec![x.clone()]);
        check(|xs| input.apply(&xs[0])?.permute(&perm)?.square(), vec![x]);
    }

    #[test]
    fn broadcast_to(s in shape(), seed in any::<u64>()) {
        let input = Input::new(&s, 4, seed, true);
        check(|xs| input.apply(&xs[0])?.exp(), vec![input.values(Domain::Any, &mut Rng::seed(seed))]);
    }

    #[test]
    fn narrow(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64) as usize;
        let start = rng.below(s[d] as u64) as usize;
        let len = 1 + rng.below((s[d] - start) as u64) as usize;
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.narrow(d, start, len)?.square(), vec![x]);
    }

    #[test]
    fn squeeze_unsqueeze_flatten(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64 + 1) as usize;
        let f = rng.below(s.len() as u64) as usize;
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.unsqueeze(d)?.exp()?.squeeze(d), vec![x.clone()]);
        check(|xs| input.apply(&xs[0])?.flatten_from(f)?.exp(), vec![x]);
    }

    #[test]
    fn cat_and_stack(s in shape_of_rank_at_least(1), kinds in prop::collection::vec(0u8..5, 3),
                     count in 2usize..=3, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64) as usize;
        let cat_inputs: Vec<Input> = (0..count).map(|i| {
            let mut si = s.clone();
            si[d] = 1 + rng.below(3) as usize;
            Input::new(&si, kinds[i], seed + i as u64, true)
        }).collect();
        let xs: Vec<Tensor> = cat_inputs.iter().map(|i| i.values(Domain::Any, &mut rng)).collect();
        check(|xs| {
            let views = xs.iter().zip(&cat_inputs).map(|(x, i)| i.apply(x)).collect::<Result<Vec<_>>>()?;
            Tensor::cat(&views.iter().collect::<Vec<_>>(), d)
        }, xs);

        let stack_inputs: Vec<Input> = (0..count).map(|i| Input::new(&s, kinds[i], seed + i as u64, true)).collect();
        let xs: Vec<Tensor> = stack_inputs.iter().map(|i| i.values(Domain::Any, &mut rng)).collect();
        let new_dim = rng.below(s.len() as u64 + 1) as usize;
        check(|xs| {
            let views = xs.iter().zip(&stack_inputs).map(|(x, i)| i.apply(x)).collect::<Result<Vec<_>>>()?;
            Tensor::stack(&views.iter().collect::<Vec<_>>(), new_dim)
        }, xs);
    }

    #[test]
    fn split_then_cat_in_reverse(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64) as usize;
        let size = 1 + rng.below(s[d] as u64) as usize;
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| {
            let pieces = input.apply(&xs[0])?.split(size, d)?;
            let squared = pieces.iter().map(|p| p.square()).collect::<Result<Vec<_>>>()?;
            Tensor::cat(&squared.iter().rev().collect::<Vec<_>>(), d)
        }, vec![x]);
    }

    #[test]
    fn pad(s in shape(), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let pads: Vec<(usize, usize)> = s.iter().map(|_| (rng.below(3) as usize, rng.below(3) as usize)).collect();
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.pad(&pads, 0.5)?.exp(), vec![x]);
    }
}

// ---- indexing -------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn index_select_with_repeated_indices(s in shape_of_rank_at_least(1), kind in 0u8..5, len in 1usize..=6,
                                          seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64) as usize;
        let mut picks: Vec<u32> = (0..len).map(|_| rng.below(s[d] as u64) as u32).collect();
        if len >= 2 {
            picks[len - 1] = picks[0];
        }
        let i = idx(picks, len);
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.index_select(&i, d)?.square(), vec![x]);
    }

    #[test]
    fn gather(s in shape_of_rank_at_least(1), kind in 0u8..5, k in 1usize..=4, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let d = rng.below(s.len() as u64) as usize;
        let mut ishape = s.clone();
        ishape[d] = k;
        let n = ishape.iter().product();
        let i = idx((0..n).map(|_| rng.below(s[d] as u64) as u32).collect(), ishape);
        let x = input.values(Domain::Any, &mut rng);
        check(|xs| input.apply(&xs[0])?.gather(&i, d)?.square(), vec![x]);
    }

    #[test]
    fn where_cond(out in shape(), ka in 0u8..5, kb in 0u8..5, seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let sm = broadcast_operand(&out, &mut rng);
        let mask_values: Vec<u8> = (0..sm.iter().product()).map(|_| rng.bernoulli(0.5) as u8).collect();
        let mask = Tensor::from_vec(mask_values, sm).unwrap();
        let (sa, sb) = (broadcast_operand(&out, &mut rng), broadcast_operand(&out, &mut rng));
        let (ia, ib) = (Input::new(&sa, ka, seed, true), Input::new(&sb, kb, !seed, true));
        let inputs = vec![ia.values(Domain::Any, &mut rng), ib.values(Domain::Any, &mut rng)];
        check(|xs| mask.where_cond(&ia.apply(&xs[0])?, &ib.apply(&xs[1])?.exp()?), inputs);
    }
}

// ---- softmax ----------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn softmax_and_log_softmax_along_every_dim(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let x = input.values(Domain::Any, &mut Rng::seed(seed));
        for d in 0..s.len() {
            check(|xs| input.apply(&xs[0])?.softmax(d), vec![x.clone()]);
            check(|xs| input.apply(&xs[0])?.log_softmax(d), vec![x.clone()]);
        }
    }
}

// ---- layer norm --------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn layer_norm_over_any_number_of_trailing_dims(s in shape_of_rank_at_least(1), kind in 0u8..5, seed in any::<u64>()) {
        let input = Input::new(&s, kind, seed, true);
        let mut rng = Rng::seed(seed);
        let x = input.values(Domain::Any, &mut rng);
        for dims in 1..=s.len() {
            let normalized = &s[s.len() - dims..];
            let (w, b) = (values(normalized, Domain::Any, &mut rng), values(normalized, Domain::Any, &mut rng));
            // eps 1e-3 keeps rows of two nearly equal values from amplifying the finite
            // differences' rounding; the rule itself does not depend on eps.
            check(|xs| input.apply(&xs[0])?.layer_norm(dims, Some(&xs[1]), Some(&xs[2]), 1e-3), vec![x.clone(), w, b.clone()]);
            check(|xs| input.apply(&xs[0])?.layer_norm(dims, None, Some(&xs[1]), 1e-3), vec![x.clone(), b]);
            check(|xs| input.apply(&xs[0])?.layer_norm(dims, None, None, 1e-3), vec![x.clone()]);
        }
    }
}

// ---- dtype conversion ---------------------------------------------------------------------------------

#[test]
fn to_dtype_round_trip_passes_the_gradient_back_in_the_input_dtype() {
    // Finite differences through f32 would measure rounding, so the rule is checked exactly:
    // d/dx sum(w * f64(f32(x))) = w, itself rounded to f32 on its way back through the f32 part.
    let x = values(&[2, 3], Domain::Any, &mut Rng::seed(5)).requires_grad();
    let w = values(&[2, 3], Domain::Any, &mut Rng::seed(6));
    let y = x.to_dtype(DType::F32).unwrap().to_dtype(DType::F64).unwrap();
    let grads = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = grads.get(&x).unwrap();
    assert_eq!(g.dtype(), DType::F64);
    let w_through_f32 = w.to_dtype(DType::F32).unwrap().to_dtype(DType::F64).unwrap();
    assert_eq!(g.to_vec::<f64>().unwrap(), w_through_f32.to_vec::<f64>().unwrap());

    // And an f32 leaf computed on in f64: d/dx sum(f32(f64(x)²)) = 2x, in f32.
    let x = Tensor::from_vec(vec![1.5f32, -2.0, 0.25], 3).unwrap().requires_grad();
    let y = x.to_dtype(DType::F64).unwrap().square().unwrap().to_dtype(DType::F32).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(&x).unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![3.0, -4.0, 0.5]);
}

// ---- the graph --------------------------------------------------------------------------------------

#[test]
fn fan_in_sums_gradients() {
    let x = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], 3).unwrap().requires_grad();
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    let grads = y.backward().unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![3.0, -3.0, 7.0]);
    check(
        |xs| xs[0].mul(&xs[0])?.add(&xs[0])?.exp()?.mul(&xs[0]),
        vec![values(&[2, 3], Domain::Any, &mut Rng::seed(7))],
    );
}

#[test]
fn an_input_used_through_two_views() {
    let x = values(&[3, 3], Domain::Any, &mut Rng::seed(8));
    check(|xs| xs[0].t()?.matmul(&xs[0]), vec![x.clone()]);
    check(|xs| xs[0].narrow(0, 0, 2)?.mul(&xs[0].narrow(0, 1, 2)?.t()?.t()?), vec![x.clone()]);
    check(|xs| xs[0].permute(&[1, 0])?.add(&xs[0].narrow(1, 2, 1)?), vec![x]);
}

#[test]
fn unary_backward_reads_a_narrowed_input_at_its_offset() {
    // Regression: a narrow of dim 0 is contiguous but starts at an offset into a larger storage;
    // the unary gradient kernel read the whole storage from 0 and panicked (or misread).
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], 4).unwrap().requires_grad();
    let grads = x.narrow(0, 1, 2).unwrap().square().unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![0.0, 4.0, 6.0, 0.0]);
}

#[test]
fn index_gradients_read_an_offset_output_gradient_at_its_offset() {
    // Regression: `cat` hands its second input a gradient that is a view at an offset; the
    // index_select and gather rules read the gradient's whole storage from 0.
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], (1, 3)).unwrap().requires_grad();
    let y = Tensor::from_vec(vec![0.0f64, 0.0], (1, 2)).unwrap();
    let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], (1, 4)).unwrap();
    let i = idx(vec![0, 2], 2);
    let selected = x.index_select(&i, 1).unwrap();
    let loss = Tensor::cat(&[&y, &selected], 1).unwrap().mul(&w).unwrap().sum_all().unwrap();
    assert_eq!(loss.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap(), vec![3.0, 0.0, 4.0]);

    let gathered = x.gather(&idx(vec![2, 2], (1, 2)), 1).unwrap();
    let loss = Tensor::cat(&[&y, &gathered], 1).unwrap().mul(&w).unwrap().sum_all().unwrap();
    assert_eq!(loss.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap(), vec![0.0, 0.0, 7.0]);
}

#[test]
fn detach_stops_gradients() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], 2).unwrap().requires_grad();
    let d = x.detach();
    assert!(!d.tracks_grad());
    let grads = d.mul(&x).unwrap().sum_all().unwrap().backward().unwrap();
    // Only the tracked factor contributes: d/dx (c·x) = c, not 2x.
    assert_eq!(grads.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
    assert!(grads.get(&d).is_none());
}

#[test]
fn no_grad_records_nothing() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], 2).unwrap().requires_grad();
    {
        let _guard = no_grad();
        assert!(!is_grad_enabled());
        let y = x.exp().unwrap().sum_all().unwrap();
        assert!(!y.tracks_grad());
        assert_eq!(y.backward().err(), Some(Error::NoGraph));
    }
    assert!(is_grad_enabled());
    assert!(x.exp().unwrap().tracks_grad());
}

#[test]
fn backward_of_a_non_scalar_is_an_error() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], 2).unwrap().requires_grad();
    let err = x.exp().unwrap().backward().err().unwrap();
    assert!(matches!(err, Error::NotScalar { op: "backward", .. }), "{err:?}");
}

#[test]
fn backward_of_a_tensor_that_needs_no_grad_is_an_error() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], 2).unwrap();
    assert_eq!(x.sum_all().unwrap().backward().err(), Some(Error::NoGraph));
    // Integer tensors can never require gradients.
    let i = idx(vec![1, 2], 2).requires_grad();
    assert!(!i.tracks_grad());
}

// ---- convolution and pooling ------------------------------------------------------------------------

/// x shape, weight shape, stride, padding, dilation, groups, bias.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), (usize, usize), (usize, usize), usize, bool);

#[test]
fn conv2d_gradients_across_groups_stride_padding_and_dilation() {
    let mut rng = Rng::seed(21);
    // The last cases: 1x1 kernels (read without im2col when stride 1 and no padding), and a
    // batch of 9, cut into several backward chunks.
    let cases: [ConvCase; 6] = [
        ([2, 2, 5, 5], [3, 2, 3, 3], (1, 1), (0, 0), (1, 1), 1, true),
        ([2, 4, 6, 5], [4, 2, 2, 3], (2, 1), (1, 2), (1, 2), 2, true),
        ([1, 3, 7, 6], [6, 1, 3, 2], (2, 3), (1, 0), (2, 1), 3, false),
        ([2, 3, 4, 3], [2, 3, 1, 1], (1, 1), (0, 0), (1, 1), 1, true),
        ([2, 2, 4, 4], [4, 1, 1, 1], (2, 1), (1, 0), (1, 1), 2, true),
        ([9, 1, 4, 4], [2, 1, 2, 2], (1, 1), (0, 0), (1, 1), 1, true),
    ];
    for (xs, ws, stride, padding, dilation, groups, bias) in cases {
        let mut inputs = vec![values(&xs, Domain::Any, &mut rng), values(&ws, Domain::Any, &mut rng)];
        if bias {
            inputs.push(values(&[ws[0]], Domain::Any, &mut rng));
        }
        check(|t| t[0].conv2d(&t[1], t.get(2), stride, padding, dilation, groups), inputs.clone());
        // The input and the weight as non-contiguous views.
        check(
            |t| {
                let x = t[0].permute(&[0, 1, 3, 2])?.transpose(2, 3)?;
                x.conv2d(&t[1].transpose(2, 3)?.transpose(2, 3)?, t.get(2), stride, padding, dilation, groups)
            },
            inputs,
        );
    }
}

#[test]
fn conv1d_gradients() {
    let mut rng = Rng::seed(22);
    let inputs = vec![
        values(&[2, 4, 9], Domain::Any, &mut rng),
        values(&[6, 2, 3], Domain::Any, &mut rng),
        values(&[6], Domain::Any, &mut rng),
    ];
    check(|t| t[0].conv1d(&t[1], Some(&t[2]), 2, 1, 2, 2), inputs);
}

/// Inputs drawn at random have no ties, so the finite differences stay inside one window's
/// maximum; overlapping windows (stride below the kernel) add several gradients into a pixel.
#[test]
fn max_pool_gradients_with_padding_stride_and_overlap() {
    let mut rng = Rng::seed(23);
    for (kernel, stride, padding) in
        [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 2), (1, 1)), ((3, 3), (2, 1), (1, 0)), ((2, 3), (3, 3), (1, 1))]
    {
        let x = values(&[2, 3, 7, 6], Domain::Any, &mut rng);
        check(|t| t[0].max_pool2d(kernel, stride, padding), vec![x.clone()]);
        check(|t| t[0].transpose(2, 3)?.max_pool2d(kernel, stride, padding), vec![x]);
    }
    check(|t| t[0].max_pool1d(3, 2, 1), vec![values(&[2, 3, 10], Domain::Any, &mut rng)]);
    check(|t| t[0].avg_pool2d((3, 2), (2, 1), (1, 1)), vec![values(&[2, 2, 5, 4], Domain::Any, &mut rng)]);
}

/// At W2-like sizes in f32, the gradients of `conv2d` and of max pooling equal those of the
/// unfold formulation (unfold, grouped matmul, broadcast bias; unfold with -inf, argmax, gather)
/// computed here.
#[test]
fn conv_and_pool_gradients_match_the_unfold_formulation() {
    let mut rng = Rng::seed(24);
    let x = Tensor::randn((12, 4, 10, 10), 0.0, 1.0, DType::F32, &mut rng);
    let w = Tensor::randn((8, 2, 3, 3), 0.0, 1.0, DType::F32, &mut rng);
    let b = Tensor::randn(8, 0.0, 1.0, DType::F32, &mut rng);
    let weights = Tensor::randn((12, 8, 5, 5), 0.0, 1.0, DType::F32, &mut rng);
    let (stride, padding, dilation, groups) = ((1, 1), (1, 1), (1, 1), 2);
    let pool = |y: &Tensor, unfold: bool| -> Result<Tensor> {
        if !unfold {
            return y.max_pool2d((3, 3), (2, 2), (1, 1));
        }
        let win = tensile_core::ops::Window2d {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
            dilation: (1, 1),
            pad_value: f64::NEG_INFINITY,
        };
        let cols = y.unfold2d(&win)?;
        cols.gather(&cols.argmax(2, true)?, 2)?.reshape((12, 8, 5, 5))
    };
    let run = |unfold: bool| -> Vec<Vec<f64>> {
        let (x, w, b) = (x.requires_grad(), w.requires_grad(), b.requires_grad());
        let y = if unfold {
            let win = tensile_core::ops::Window2d { kernel: (3, 3), stride, padding, dilation, pad_value: 0.0 };
            let cols = x.unfold2d(&win).unwrap().reshape((12, groups, 18, 100)).unwrap();
            let y = w.reshape((groups, 4, 18)).unwrap().matmul(&cols).unwrap().reshape((12, 8, 10, 10)).unwrap();
            y.add(&b.reshape((1, 8, 1, 1)).unwrap()).unwrap()
        } else {
            x.conv2d(&w, Some(&b), stride, padding, dilation, groups).unwrap()
        };
        let y = pool(&y.relu().unwrap(), unfold).unwrap();
        let grads = y.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap();
        [&x, &w, &b].map(|t| grads.get(t).unwrap().to_f64_vec().unwrap()).to_vec()
    };
    let (direct, reference) = (run(false), run(true));
    for (name, (d, r)) in ["x", "weight", "bias"].iter().zip(direct.iter().zip(&reference)) {
        assert_eq!(d.len(), r.len());
        for (i, (a, e)) in d.iter().zip(r).enumerate() {
            assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{name} element {i}: {a} vs {e}");
        }
    }
}
