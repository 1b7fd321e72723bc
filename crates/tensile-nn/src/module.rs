//! The [`Module`] trait and sequential composition.
//!
//! A module maps a tensor to a tensor and owns named parameters: leaf tensors made with
//! `requires_grad()`. Their names are stable dotted paths (`0.weight`, `encoder.1.bias`) used as
//! keys in saved weights and by optimizers' parameter groups. Parameters keep their identity for
//! the whole run (optimizers update their storage in place), so gradients from
//! [`tensile_core::GradStore`] find them by tensor id.

use std::sync::Mutex;

use tensile_core::ops::PoolWindow;
use tensile_core::{DType, Rng, Tensor};

use crate::error::Result;

/// A layer or a model.
pub trait Module: Send {
    /// Computes the output for input `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Calls `f(name, parameter)` for each parameter, names prefixed by `prefix` (`""` at the
    /// top). The order is fixed: it is the order of saved weights and optimizer state.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor));

    /// Calls `f(name, buffer)` for each non-trainable state tensor that belongs with the
    /// weights (batch norm's running statistics), in a fixed order.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}

    /// Calls `f(name, rng)` for each random stream the module draws from while training
    /// (dropout), so a checkpoint can save and restore it.
    fn visit_rngs(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Mutex<Rng>)) {}

    /// Switches between training and evaluation behaviour (dropout, batch norm).
    fn set_training(&mut self, _training: bool) {}

    /// Direct sub-modules with their names, for summaries (empty for a plain layer).
    fn children(&self) -> Vec<(String, &dyn Module)> {
        Vec::new()
    }

    /// A short lower-case name for summaries (`linear`, `relu`, `sequential`).
    fn kind(&self) -> &'static str;

    /// `relu(self.forward(x))` computed as one op, for a layer that can (a linear layer);
    /// `None` for the others. [`Sequential`] calls it for a layer followed by a ReLU.
    fn forward_relu(&self, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }

    /// Whether `forward` is exactly `x.relu()` ([`crate::Relu`]), so that [`Sequential`] may
    /// fold it into the layer before (see [`Module::forward_relu`]).
    fn is_relu(&self) -> bool {
        false
    }

    /// `max_pool2d(relu(self.forward(x)))` as one op, `pool` being the max pool's `(kernel,
    /// stride, padding)`, for a layer that can (a 2-D convolution); `None` for the others.
    /// [`Sequential`] calls it for a layer followed by a ReLU and a [`crate::MaxPool2d`].
    fn forward_relu_max_pool2d(&self, _x: &Tensor, _pool: PoolWindow) -> Option<Result<Tensor>> {
        None
    }

    /// The window of a layer whose `forward` is exactly a 2-D max pool ([`crate::MaxPool2d`]),
    /// so that [`Sequential`] may fold it (see [`Module::forward_relu_max_pool2d`]).
    fn max_pool2d_window(&self) -> Option<PoolWindow> {
        None
    }
}

/// A boxed module is a module, so boxed layers compose like concrete ones.
impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        (**self).visit_params(prefix, f)
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        (**self).visit_buffers(prefix, f)
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        (**self).visit_rngs(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
    fn forward_relu(&self, x: &Tensor) -> Option<Result<Tensor>> {
        (**self).forward_relu(x)
    }
    fn is_relu(&self) -> bool {
        (**self).is_relu()
    }
    fn forward_relu_max_pool2d(&self, x: &Tensor, pool: PoolWindow) -> Option<Result<Tensor>> {
        (**self).forward_relu_max_pool2d(x, pool)
    }
    fn max_pool2d_window(&self) -> Option<PoolWindow> {
        (**self).max_pool2d_window()
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        (**self).children()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

/// Converts every parameter and buffer of `m` to `dtype` in place (`f64` for gradient checks),
/// like PyTorch's `module.double()`. Optimizers built before the cast see the new dtype.
pub fn cast(m: &dyn Module, dtype: DType) -> Result<()> {
    let mut result = Ok(());
    let mut visit = |_: &str, t: &Tensor| {
        if result.is_ok() {
            result = t.cast_(dtype);
        }
    };
    m.visit_params("", &mut visit);
    m.visit_buffers("", &mut visit);
    Ok(result?)
}

/// Joins a prefix and a name with a dot, leaving out an empty prefix.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Every parameter of `m` with its dotted name, in visiting order.
pub fn named_parameters(m: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.visit_params("", &mut |name, t| out.push((name.to_string(), t.clone())));
    out
}

/// Number of trainable scalars in `m`.
pub fn parameter_count(m: &dyn Module) -> usize {
    named_parameters(m).iter().map(|(_, t)| t.elem_count()).sum()
}

/// Modules applied one after another; parameters are named by position (`0.weight`).
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }
    /// Appends a layer (builder style).
    pub fn with(mut self, layer: impl Module + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }
    pub fn push(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            // A layer, the ReLU and the max pool after it as one op where the layer offers it:
            // the same values and gradients, and the layer's output never stored. Should it
            // fail (a window that does not fit), the layers below run one by one and the
            // error names the one at fault, as without the fold.
            if self.layers.get(i + 1).is_some_and(|next| next.is_relu())
                && let Some(pool) = self.layers.get(i + 2).and_then(|next| next.max_pool2d_window())
                && let Some(Ok(y)) = self.layers[i].forward_relu_max_pool2d(&h, pool)
            {
                h = y;
                i += 3;
                continue;
            }
            // A layer and the ReLU after it as one op where the layer offers it: the same
            // values and gradients, one graph node fewer.
            if self.layers.get(i + 1).is_some_and(|next| next.is_relu())
                && let Some(y) = self.layers[i].forward_relu(&h)
            {
                h = y?;
                i += 2;
                continue;
            }
            h = self.layers[i].forward(&h)?;
            i += 1;
        }
        Ok(h)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_params(&join_name(prefix, &i.to_string()), f);
        }
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_buffers(&join_name(prefix, &i.to_string()), f);
        }
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_rngs(&join_name(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.layers.iter().enumerate().map(|(i, l)| (i.to_string(), l.as_ref())).collect()
    }
    fn kind(&self) -> &'static str {
        "sequential"
    }
}
