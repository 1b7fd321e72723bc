//! Optimizers: they move each parameter against its gradient, in place.
//!
//! An optimizer holds the parameters it updates (by handle; the model holds the same tensors)
//! and its per-parameter state. `step` reads gradients from a [`GradStore`]; a parameter without
//! a gradient (unused in this step's loss) is left unchanged, as in PyTorch. Updates run with no
//! graph recording and write into the parameters' storage, so a step allocates only its state
//! on the first call.

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use tensile_core::{DType, GradStore, Tensor};

use crate::error::{Error, Result};

/// What every optimizer offers a training loop.
pub trait Optimizer: Send {
    /// Applies one update from `grads`.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (schedules call this before a step).
    fn set_learning_rate(&mut self, lr: f64);
}

/// The gradient of `p` as a contiguous f32 vector, checked against the parameter's shape.
pub(crate) fn grad_of(name: &str, p: &Tensor, grads: &GradStore) -> Result<Option<Vec<f32>>> {
    let Some(g) = grads.get(p) else { return Ok(None) };
    if g.shape() != p.shape() || g.dtype() != DType::F32 {
        return Err(Error::GradShape {
            name: name.to_string(),
            expected: format!("{} f32", p.shape()),
            found: format!("{} {:?}", g.shape(), g.dtype()),
        });
    }
    Ok(Some(g.to_vec::<f32>()?))
}
