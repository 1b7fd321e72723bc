//! `Residual`: a skip connection around any module, `y = x + f(x)` (the block of ResNets and
//! pre-norm transformers).
//!
//! The wrapper adds no level to parameter names: it visits its inner module under its own
//! prefix, so a `Residual` at position 2 of a `Sequential` wrapping a `Sequential` names the first
//! layer's weight `2.0.weight`, as in PyTorch where such a block is usually an `nn.Sequential`
//! subclass whose `forward` adds the input back.

use std::sync::Mutex;

use tensile_core::{Rng, Tensor};

use crate::error::{Result, invalid};
use crate::module::Module;

/// `[...] -> [...]`: `x + f(x)`, where `f` must keep the shape of `x`.
pub struct Residual {
    inner: Box<dyn Module>,
}

impl Residual {
    /// Wraps `inner` (often a [`crate::Sequential`]).
    pub fn new(inner: impl Module + 'static) -> Residual {
        Residual { inner: Box::new(inner) }
    }
    /// Wraps an already boxed module.
    pub fn from_box(inner: Box<dyn Module>) -> Residual {
        Residual { inner }
    }
    /// The wrapped module `f`.
    pub fn inner(&self) -> &dyn Module {
        self.inner.as_ref()
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let fx = self.inner.forward(x)?;
        if fx.shape() != x.shape() {
            return invalid(
                "residual",
                format!(
                    "the inner {} maps input {} to {}; the shapes must match to add them",
                    self.inner.kind(),
                    x.shape(),
                    fx.shape()
                ),
            );
        }
        Ok(x.add(&fx)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner.visit_params(prefix, f);
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner.visit_buffers(prefix, f);
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        self.inner.visit_rngs(prefix, f);
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training);
    }
    /// The inner module's children when it is a `Sequential` (their names match the parameter
    /// names, and they run one after another, which a summary relies on); none otherwise, so a
    /// residual around a single layer or another composite shows as one row.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        if self.inner.kind() == "sequential" { self.inner.children() } else { Vec::new() }
    }
    fn kind(&self) -> &'static str {
        "residual"
    }
}
