//! Shape-only layers that keep the batch dimension: `Flatten` (PyTorch's `nn.Flatten()`,
//! `[B, ...] -> [B, D]`) and `Reshape` (a fixed per-sample shape, `[B, ...] -> [B, shape...]`,
//! e.g. flat rows of 64 pixels into `[B, 1, 8, 8]` images for a convolution). Both are views
//! when the input is contiguous.

use tensile_core::Tensor;

use crate::error::{Result, invalid};
use crate::module::Module;

/// `[B, d1, d2, ...] -> [B, d1·d2·...]` (PyTorch's `nn.Flatten()` with `start_dim=1`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return invalid("flatten", format!("expected input [B, ...] of rank 2 or more, found shape {}", x.shape()));
        }
        Ok(x.flatten_from(1)?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "flatten"
    }
}

/// `[B, ...] -> [B, shape...]`: each sample takes `shape`, which must hold the same number of
/// elements as the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    shape: Vec<usize>,
}

impl Reshape {
    /// A layer giving every sample `shape` (the batch dimension is not part of it).
    pub fn new(shape: &[usize]) -> Result<Reshape> {
        if shape.contains(&0) {
            return invalid("reshape", format!("target shape {shape:?} has a zero-sized dimension"));
        }
        Ok(Reshape { shape: shape.to_vec() })
    }
    /// The per-sample target shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl Module for Reshape {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let per_sample: usize = self.shape.iter().product();
        let fits = x.rank() >= 1 && x.dims()[1..].iter().product::<usize>() == per_sample;
        if !fits {
            let mut target = vec![x.dims().first().copied().unwrap_or(0)];
            target.extend_from_slice(&self.shape);
            return invalid(
                "reshape",
                format!(
                    "input {} cannot take shape {target:?}: a sample of {:?} does not hold the {per_sample} elements of {:?}",
                    x.shape(),
                    x.dims().get(1..).unwrap_or(&[]),
                    self.shape
                ),
            );
        }
        let mut dims = vec![x.dims()[0]];
        dims.extend_from_slice(&self.shape);
        Ok(x.reshape(dims)?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "reshape"
    }
}
