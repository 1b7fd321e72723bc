//! Activation functions as layers (no parameters).

use tensile_core::Tensor;

use crate::error::Result;
use crate::module::Module;

/// `max(x, 0)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relu;

impl Module for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.relu()?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "relu"
    }
}
