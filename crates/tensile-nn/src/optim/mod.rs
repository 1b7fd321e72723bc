//! Optimizers: they move each parameter against its gradient, in place.
//!
//! An optimizer holds the parameters it updates (by handle; the model holds the same tensors),
//! split into parameter groups ([`ParamGroup`]: own learning rate and weight decay), and each
//! parameter's state (a step count and named f32 buffers such as `exp_avg`). `step` reads
//! gradients from a [`GradStore`]; a parameter without a gradient (unused in this step's loss) is
//! left unchanged and its step count does not advance, as in PyTorch. Updates run with no graph
//! recording and write into the parameters' storage.
//!
//! Every optimizer follows the single-tensor (for-loop) algorithm of its `torch.optim`
//! counterpart, operation by operation in f32 with scalar coefficients worked out in f64 first
//! (as Python does), so results agree with PyTorch to rounding (Adam and AdamW multiply by one
//! reciprocal where PyTorch divides; see their module). Lion, which torch lacks, follows
//! lucidrains' `lion-pytorch`.
//!
//! [`Optimizer::state`] exports everything a resumed run needs as plain data
//! ([`OptimizerState`], keyed by parameter name); [`Optimizer::load_state`] puts it back, and the
//! continued run is bit-identical to one that never stopped. [`clip`] limits gradients before a
//! step; the learning rate over time comes from [`crate::schedule`].

mod adagrad;
mod adam;
mod adamw;
pub mod clip;
mod group;
mod lion;
mod rmsprop;
mod sgd;
mod state;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{GradClip, clip_grad_norm, clip_grad_value, grad_norm};
pub use group::{ParamGroup, decay_split, split_by, split_by_patterns};
pub use lion::{Lion, LionConfig};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};
pub use state::{GroupState, OptimizerState, ParamState};

use tensile_core::{DType, GradStore, Tensor};

use crate::error::{Error, Result, invalid};

/// What every optimizer offers a training loop.
///
/// Learning rates: an optimizer has one learning rate ([`Optimizer::learning_rate`]), which
/// schedules drive through [`Optimizer::set_learning_rate`]. A group built with its own `lr`
/// keeps its ratio to that rate: setting the optimizer's rate to `r` gives the group
/// `r * group_lr / config_lr`. This is how PyTorch's schedulers treat groups (each group's base
/// rate is scaled by the schedule) for every multiplicative schedule; for cosine's `eta_min` and
/// plateau's `min_lr`, which PyTorch applies per group as absolute values, the floor applies to
/// the optimizer's rate and the groups follow in proportion. For full control per group there is
/// [`Optimizer::set_group_learning_rate`] (overridden by the next `set_learning_rate`).
pub trait Optimizer: Send {
    /// Applies one update from `grads`. Fails, changing nothing, when a gradient has the wrong
    /// shape or dtype, or when a hyperparameter or learning rate is out of range (the configs
    /// and rates can change after construction, so they are checked here).
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The optimizer's learning rate (groups with their own rate scale it).
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate of every group: `lr` itself, or `lr` times the group's ratio for
    /// groups built with their own rate. Schedules call this before a step.
    fn set_learning_rate(&mut self, lr: f64);
    /// The learning rate each group will use in the next step, in group order.
    fn group_learning_rates(&self) -> Vec<f64>;
    /// Sets one group's learning rate, until the next [`Optimizer::set_learning_rate`].
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()>;
    /// Everything needed to continue this optimizer exactly, as plain data.
    fn state(&self) -> OptimizerState;
    /// Restores a state saved by [`Optimizer::state`] from an optimizer of the same kind, the
    /// same hyperparameters and the same groups of parameter names. Checks everything before
    /// changing anything.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// Implements the [`Optimizer`] methods every optimizer shares by delegating to its `groups`
/// field and its `hyperparameters()` method.
macro_rules! shared_optimizer_methods {
    () => {
        fn learning_rate(&self) -> f64 {
            self.groups.lr()
        }
        fn set_learning_rate(&mut self, lr: f64) {
            self.groups.set_lr(lr)
        }
        fn group_learning_rates(&self) -> Vec<f64> {
            self.groups.group_lrs()
        }
        fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> $crate::error::Result<()> {
            self.groups.set_group_lr(group, lr)
        }
        fn state(&self) -> $crate::optim::OptimizerState {
            self.groups.state(Self::KIND, self.hyperparameters())
        }
        fn load_state(&mut self, state: &$crate::optim::OptimizerState) -> $crate::error::Result<()> {
            let hyperparameters = self.hyperparameters();
            self.groups.load_state(Self::KIND, &hyperparameters, state)
        }
    };
}
pub(crate) use shared_optimizer_methods;

/// Checks that `p`'s gradient (if any) is an f32 tensor of `p`'s shape.
pub(crate) fn check_grad(name: &str, p: &Tensor, grads: &GradStore) -> Result<()> {
    match grads.get(p) {
        Some(g) if g.shape() != p.shape() || g.dtype() != DType::F32 => Err(Error::GradShape {
            name: name.to_string(),
            expected: format!("{} f32", p.shape()),
            found: format!("{} {:?}", g.shape(), g.dtype()),
        }),
        _ => Ok(()),
    }
}

/// PyTorch's `lerp(a, b, w)` (`a.lerp_(b, w)`): two formulas so that both ends are exact.
#[inline(always)]
pub(crate) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 { a + w * (b - a) } else { b - (b - a) * (1.0 - w) }
}

/// `torch.maximum`: NaN propagates (Rust's `f32::max` would drop it).
#[inline(always)]
pub(crate) fn maximum(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) }
}

/// Fails unless `lo <= value` (and `value <= hi` when given); NaN always fails.
pub(crate) fn check_range(what: &str, field: &str, value: f64, lo: f64, hi: Option<f64>) -> Result<()> {
    let ok = value >= lo && hi.is_none_or(|hi| value <= hi);
    if ok {
        return Ok(());
    }
    match hi {
        Some(hi) => invalid(what, format!("{field} must be in [{lo}, {hi}], got {value}")),
        None => invalid(what, format!("{field} must be >= {lo}, got {value}")),
    }
}

/// Fails unless `0 <= beta < 1`.
pub(crate) fn check_beta(what: &str, field: &str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        return Ok(());
    }
    invalid(what, format!("{field} must be in [0, 1), got {value}"))
}
