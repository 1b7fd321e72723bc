//! Test support shared by tensile-nn's test files: finite-difference gradient checks in f64.
//!
//! `check_fn` compares the analytic gradients of `f(inputs)` with central differences for every
//! input that requires gradients; `check_module` does the same for a module's input and every
//! parameter. The output is reduced to a scalar with fixed random weights, so every output
//! element (and its position) matters.
#![allow(dead_code)]

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Module, cast, named_parameters};

pub const EPS: f64 = 1e-6;

fn weighted_sum(y: &Tensor, weights: &Tensor) -> Tensor {
    y.mul(weights).unwrap().sum_all().unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>().unwrap()
}

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs()
}

/// Random f64 tensor with entries in `[lo, hi)`.
pub fn rand(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, DType::F64, rng)
}

/// Checks d f(inputs) / d input for every input that tracks gradients. `inputs` must be f64
/// leaves (made with `requires_grad()` where a gradient is wanted).
pub fn check_fn(label: &str, f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    let y = f(inputs);
    let weights = Tensor::rand_uniform(y.shape(), 0.5, 1.5, DType::F64, &mut Rng::seed(99));
    let grads = weighted_sum(&y, &weights).backward().unwrap();
    for (i, x) in inputs.iter().enumerate() {
        if !x.tracks_grad() {
            continue;
        }
        let analytic = grads.get(x).map(values).unwrap_or_else(|| vec![0.0; x.elem_count()]);
        let base = values(x);
        for k in 0..base.len() {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[k] += delta;
                let xs: Vec<Tensor> = inputs
                    .iter()
                    .enumerate()
                    .map(|(j, t)| if j == i { Tensor::from_vec(v.clone(), t.shape()).unwrap() } else { t.detach() })
                    .collect();
                weighted_sum(&f(&xs), &weights).item().unwrap()
            };
            let numeric = (eval(EPS) - eval(-EPS)) / (2.0 * EPS);
            assert!(
                close(analytic[k], numeric),
                "{label}: input {i} element {k}: analytic {} vs numeric {numeric}",
                analytic[k]
            );
        }
    }
}

/// Checks the gradients of `module.forward(input)` with respect to the input and every
/// parameter. Casts the module to f64 first; `input` may be any float dtype.
pub fn check_module(label: &str, module: &dyn Module, input: &Tensor) {
    cast(module, DType::F64).unwrap();
    let x = input.to_dtype(DType::F64).unwrap().detach().requires_grad();
    let y = module.forward(&x).unwrap();
    let weights = Tensor::rand_uniform(y.shape(), 0.5, 1.5, DType::F64, &mut Rng::seed(98));
    let grads = weighted_sum(&y, &weights).backward().unwrap();
    let objective =
        |module: &dyn Module, x: &Tensor| weighted_sum(&module.forward(x).unwrap(), &weights).item().unwrap();

    // Input gradient.
    let analytic = grads.get(&x).map(values).unwrap_or_else(|| vec![0.0; x.elem_count()]);
    let base = values(&x);
    for k in 0..base.len() {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[k] += delta;
            objective(module, &Tensor::from_vec(v, x.shape()).unwrap())
        };
        let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
        assert!(
            close(analytic[k], numeric),
            "{label}: input element {k}: analytic {} vs numeric {numeric}",
            analytic[k]
        );
    }

    // Parameter gradients: perturb each parameter in place and restore it.
    let xd = x.detach();
    for (name, p) in named_parameters(module) {
        let analytic = grads.get(&p).map(values).unwrap_or_else(|| vec![0.0; p.elem_count()]);
        let base = values(&p);
        for k in 0..base.len() {
            let at = |delta: f64| {
                p.update_::<f64, _>(|w| w[k] = base[k] + delta).unwrap();
                let v = objective(module, &xd);
                p.update_::<f64, _>(|w| w[k] = base[k]).unwrap();
                v
            };
            let numeric = (at(EPS) - at(-EPS)) / (2.0 * EPS);
            assert!(
                close(analytic[k], numeric),
                "{label}: parameter {name} element {k}: analytic {} vs numeric {numeric}",
                analytic[k]
            );
        }
    }
}
