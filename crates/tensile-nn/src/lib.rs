//! tensile-nn: the building blocks of models — the [`Module`] trait, layers, initializers,
//! losses and optimizers.
//!
//! Layers follow PyTorch's shapes, defaults and parameter names, so models and results port.
//! This crate knows nothing of data files, the training loop or the command line.
//!
//! One training step by hand:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tensile_core::{DType, Rng, Tensor};
//! use tensile_nn::{Adam, AdamConfig, Linear, Module, Optimizer, Relu, Sequential, cross_entropy, named_parameters};
//!
//! let mut rng = Rng::seed(0);
//! let model = Sequential::new()
//!     .with(Linear::new(4, 16, true, &mut rng))
//!     .with(Relu)
//!     .with(Linear::new(16, 3, true, &mut rng));
//! let mut opt = Adam::new(named_parameters(&model), AdamConfig { lr: 0.01, ..Default::default() });
//! let x = Tensor::randn((8, 4), 0.0, 1.0, DType::F32, &mut rng);
//! let y = Tensor::from_vec(vec![0u32, 1, 2, 0, 1, 2, 0, 1], 8)?;
//! let before = cross_entropy(&model.forward(&x)?, &y)?;
//! for _ in 0..50 {
//!     let loss = cross_entropy(&model.forward(&x)?, &y)?;
//!     opt.step(&loss.backward()?)?;
//! }
//! let after = cross_entropy(&model.forward(&x)?, &y)?;
//! assert!(after.item()? < before.item()? / 4.0, "{before:?} -> {after:?}");
//! # Ok(()) }
//! ```

pub mod activation;
pub mod error;
pub mod init;
pub mod linear;
pub mod loss;
pub mod module;
pub mod optim;

pub use activation::Relu;
pub use error::{Error, Result};
pub use linear::Linear;
pub use loss::cross_entropy;
pub use module::{Module, Sequential, join_name, named_parameters, parameter_count};
pub use optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
