//! tensile-core: tensors, CPU kernels and reverse-mode autodiff.
//!
//! A [`Tensor`] is an n-dimensional array of `f32` (or `f64`, `u32`, `u8`) on a [`Device`],
//! viewed through a [`Layout`] (shape, strides, offset) so that transposes, slices and broadcasts
//! are views. Operations on tensors that require gradients record themselves; [`Tensor::backward`]
//! returns a [`GradStore`] with the gradient of every such tensor.
//!
//! Shape notation in docs: `B` batch, `T` time, `C` channels, `D` features, `...` any leading
//! dimensions; `[M, K] @ [K, N]` for matrix products.
//!
//! ```
//! use tensile_core::{DType, Tensor};
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], 3).unwrap().requires_grad();
//! let loss = x.square().unwrap().sum_all().unwrap();
//! let grads = loss.backward().unwrap();
//! assert_eq!(grads.get(&x).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
//! assert_eq!(loss.dtype(), DType::F32);
//! ```
//!
//! This crate knows nothing of layers, data files, training or the command line.

pub mod autograd;
mod cpu;
pub mod device;
pub mod dtype;
pub mod error;
mod math;
pub mod ops;
pub mod rng;
pub mod shape;
pub mod simd;
pub mod storage;
pub mod tensor;
pub mod threads;

pub use autograd::{GradStore, NoGradGuard, is_grad_enabled, no_grad};
pub use device::Device;
pub use dtype::{DType, Float, WithDType};
pub use error::{Error, Result};
pub use rng::Rng;
pub use shape::{All, Dim, Dims, Layout, Shape};
pub use tensor::{Tensor, TensorId, live_tensors};
