//! Linear layer: PyTorch's initialization bounds, forward values and gradients.

mod common;

use tensile_core::{DType, Rng, Tensor};
use tensile_nn::{Linear, Module, named_parameters};

#[test]
fn linear_forward_matches_hand_computation() {
    let w = Tensor::from_vec(vec![1.0f32, 2.0, -1.0, 0.5, 0.0, 3.0], (2, 3)).unwrap();
    let b = Tensor::from_vec(vec![0.5f32, -1.0], 2).unwrap();
    let layer = Linear::from_tensors(w, Some(b)).unwrap();
    let x = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 2.0, 0.0, -1.0], (2, 3)).unwrap();
    let y = layer.forward(&x).unwrap().to_vec::<f32>().unwrap();
    // [1+2-1+0.5, 0.5+0+3-1, 2+0+1+0.5, 1+0-3-1]
    assert_eq!(y, vec![2.5, 2.5, 3.5, -3.0]);
}

#[test]
fn linear_initialization_is_bounded_by_one_over_sqrt_fan_in_and_named_like_pytorch() {
    let layer = Linear::new(100, 50, true, &mut Rng::seed(0));
    let names: Vec<String> = named_parameters(&layer).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["weight", "bias"]);
    let w = layer.weight().to_vec::<f32>().unwrap();
    assert!(w.iter().all(|v| v.abs() <= 0.1));
    let spread = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.09, "weights should fill the range, max |w| = {spread}");
}

#[test]
fn linear_gradients_match_finite_differences_on_batched_input() {
    let mut rng = Rng::seed(1);
    let layer = Linear::new(4, 3, true, &mut rng);
    let x = Tensor::randn((2, 5, 4), 0.0, 1.0, DType::F64, &mut rng);
    common::check_module("linear", &layer, &x);
}
