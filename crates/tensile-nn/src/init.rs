//! Weight initializers. Each draws from a caller-supplied seeded [`Rng`], in row-major order, so
//! the same seed gives the same weights. Defaults follow PyTorch, so ported models start alike.

use tensile_core::{DType, Rng, Tensor};

/// `U(-bound, bound)` with `bound = 1/sqrt(fan_in)`: PyTorch's default for linear and
/// convolution weights and biases (`kaiming_uniform_(a=√5)` reduces to this bound).
pub fn uniform_fan_in(shape: &[usize], fan_in: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    let bound = if fan_in == 0 { 0.0 } else { 1.0 / (fan_in as f64).sqrt() };
    Tensor::rand_uniform(shape, -bound, bound, dtype, rng)
}
