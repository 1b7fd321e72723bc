//! Parameter groups: which parameters share a learning rate and a weight decay, the helpers that
//! split a model's named parameters into groups (the usual decay / no-decay split), and
//! [`Groups`], the bookkeeping every optimizer shares: groups, per-parameter step counts and
//! buffers, learning rates.

use std::collections::HashSet;

use tensile_core::{GradStore, Tensor, TensorId};

use super::{check_grad, check_range};
use crate::error::{Result, invalid};

/// Named parameters, as [`crate::named_parameters`] gives them.
type Named = Vec<(String, Tensor)>;

/// Parameters that share hyperparameters, like one entry of PyTorch's `param_groups`.
#[derive(Clone)]
pub struct ParamGroup {
    /// The parameters with their dotted names (as [`crate::named_parameters`] gives them).
    pub params: Vec<(String, Tensor)>,
    /// This group's learning rate; `None` uses the optimizer config's `lr`. A group rate keeps
    /// its ratio to the optimizer's rate when a schedule changes it (see [`super::Optimizer`]).
    pub lr: Option<f64>,
    /// This group's weight decay; `None` uses the optimizer config's `weight_decay`.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group with the optimizer's own hyperparameters.
    pub fn new(params: Vec<(String, Tensor)>) -> ParamGroup {
        ParamGroup { params, lr: None, weight_decay: None }
    }
    pub fn with_lr(mut self, lr: f64) -> ParamGroup {
        self.lr = Some(lr);
        self
    }
    pub fn with_weight_decay(mut self, weight_decay: f64) -> ParamGroup {
        self.weight_decay = Some(weight_decay);
        self
    }
}

impl std::fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ParamGroup")
            .field("params", &names)
            .field("lr", &self.lr)
            .field("weight_decay", &self.weight_decay)
            .finish()
    }
}

/// Splits `params` into those for which `pred(name, tensor)` holds and the rest, keeping order.
pub fn split_by(params: Vec<(String, Tensor)>, mut pred: impl FnMut(&str, &Tensor) -> bool) -> (Named, Named) {
    params.into_iter().partition(|(name, t)| pred(name, t))
}

/// Splits `params` into those whose name matches any of `patterns` and the rest. A pattern is a
/// whole-name match where `*` stands for any run of characters (`*.bias`, `*norm*`,
/// `encoder.0.*`).
pub fn split_by_patterns(params: Vec<(String, Tensor)>, patterns: &[&str]) -> (Named, Named) {
    split_by(params, |name, _| patterns.iter().any(|p| glob_match(p, name)))
}

/// The usual split for weight decay: `[decay, no_decay]`, where parameters with fewer than two
/// dimensions (biases, normalization weights and biases) and any parameter named `bias` or
/// `*.bias` get no decay, and the rest (matrices, convolution kernels, embeddings) get
/// `weight_decay`. Both groups are always returned, possibly empty, so that group indices (and
/// saved states) do not depend on the model.
pub fn decay_split(params: Vec<(String, Tensor)>, weight_decay: f64) -> Vec<ParamGroup> {
    let (no_decay, decay) = split_by(params, |name, t| t.rank() < 2 || name == "bias" || name.ends_with(".bias"));
    vec![ParamGroup::new(decay).with_weight_decay(weight_decay), ParamGroup::new(no_decay).with_weight_decay(0.0)]
}

/// Whole-string match with `*` as a wildcard for any (possibly empty) run of characters.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let middle: Vec<&str> = parts.collect();
    let Some((last, inner)) = middle.split_last() else { return rest.is_empty() };
    for part in inner {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One parameter and its optimizer state.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) tensor: Tensor,
    /// Steps taken with a gradient (PyTorch's `state['step']`).
    pub(crate) step: u64,
    /// One buffer per name in the optimizer's buffer list; empty until first used, which is
    /// what PyTorch's lazily created state (and SGD's `momentum_buffer is None`) means.
    pub(crate) buffers: Vec<Vec<f32>>,
}

pub(crate) struct Group {
    /// The rate of the next step.
    pub(crate) lr: f64,
    /// `group lr / optimizer lr` for groups built with their own rate.
    pub(crate) lr_ratio: Option<f64>,
    pub(crate) weight_decay: f64,
    pub(crate) slots: Vec<Slot>,
}

/// What an optimizer's update rule sees for one parameter.
pub(crate) struct ParamStep<'a> {
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
    /// Step count including this step (1 on the first).
    pub(crate) step: u64,
    pub(crate) w: &'a mut [f32],
    pub(crate) g: &'a [f32],
    pub(crate) buffers: &'a mut [Vec<f32>],
}

/// The groups, learning rates and per-parameter state of one optimizer.
pub(crate) struct Groups {
    lr: f64,
    pub(crate) groups: Vec<Group>,
    pub(crate) buffer_names: &'static [&'static str],
}

impl Groups {
    /// One group of `params`; a tensor listed twice (tied weights visited under two names) is
    /// kept once, under its first name, as PyTorch's `named_parameters()` does.
    pub(crate) fn single(
        params: Vec<(String, Tensor)>,
        lr: f64,
        weight_decay: f64,
        buffer_names: &'static [&'static str],
    ) -> Groups {
        let mut seen = HashSet::new();
        let params = params.into_iter().filter(|(_, t)| seen.insert(t.id())).collect();
        let group = Group { lr, lr_ratio: None, weight_decay, slots: slots(params, buffer_names.len()) };
        Groups { lr, groups: vec![group], buffer_names }
    }

    /// Groups from specs; a tensor or a name may appear only once across all groups.
    pub(crate) fn new(
        what: &str,
        specs: Vec<ParamGroup>,
        lr: f64,
        weight_decay: f64,
        buffer_names: &'static [&'static str],
    ) -> Result<Groups> {
        check_range(what, "lr", lr, 0.0, Some(f64::MAX))?;
        let mut ids: HashSet<TensorId> = HashSet::new();
        let mut names: HashSet<String> = HashSet::new();
        let mut groups = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            for (name, t) in &spec.params {
                if !ids.insert(t.id()) || !names.insert(name.clone()) {
                    return invalid(what, format!("parameter '{name}' appears more than once (group {i})"));
                }
            }
            let wd = spec.weight_decay.unwrap_or(weight_decay);
            check_range(what, &format!("group {i} weight_decay"), wd, 0.0, Some(f64::MAX))?;
            let (group_lr, lr_ratio) = match spec.lr {
                None => (lr, None),
                Some(g) => {
                    check_range(what, &format!("group {i} lr"), g, 0.0, Some(f64::MAX))?;
                    if lr <= 0.0 {
                        return invalid(what, format!("group {i} has its own lr, which needs a positive optimizer lr"));
                    }
                    (g, Some(g / lr))
                }
            };
            let slots = slots(spec.params, buffer_names.len());
            groups.push(Group { lr: group_lr, lr_ratio, weight_decay: wd, slots });
        }
        Ok(Groups { lr, groups, buffer_names })
    }

    pub(crate) fn lr(&self) -> f64 {
        self.lr
    }
    pub(crate) fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        for g in &mut self.groups {
            g.lr = g.lr_ratio.map_or(lr, |r| lr * r);
        }
    }
    pub(crate) fn group_lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }
    pub(crate) fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let n = self.groups.len();
        match self.groups.get_mut(group) {
            Some(g) => {
                g.lr = lr;
                Ok(())
            }
            None => invalid("set_group_learning_rate", format!("group {group} does not exist ({n} groups)")),
        }
    }

    /// Runs `update` on every parameter that has a gradient, after counting its step. All
    /// gradients and learning rates are checked first, so an error changes nothing.
    pub(crate) fn step(&mut self, what: &str, grads: &GradStore, mut update: impl FnMut(ParamStep<'_>)) -> Result<()> {
        for (i, group) in self.groups.iter().enumerate() {
            if !(group.lr >= 0.0 && group.lr.is_finite()) {
                return invalid(what, format!("group {i} learning rate must be finite and >= 0, got {}", group.lr));
            }
            for slot in &group.slots {
                check_grad(&slot.name, &slot.tensor, grads)?;
            }
        }
        for group in &mut self.groups {
            let (lr, weight_decay) = (group.lr, group.weight_decay);
            for slot in &mut group.slots {
                // Checked above: an f32 tensor of the parameter's shape.
                let Some(grad) = grads.get(&slot.tensor) else { continue };
                // Read in place (a contiguous gradient is not copied). A gradient sharing the
                // parameter's storage is copied first: reading it while writing the parameter
                // would lock one storage twice.
                let grad = if grad.same_storage(&slot.tensor) { grad.deep_clone()? } else { grad.clone() };
                slot.step += 1;
                let (step, buffers, tensor) = (slot.step, &mut slot.buffers, &slot.tensor);
                grad.with_slice::<f32, _>(|g| {
                    tensor.update_::<f32, _>(|w| update(ParamStep { lr, weight_decay, step, w, g, buffers }))
                })??;
            }
        }
        Ok(())
    }

    /// Sets the learning rate without touching group ratios (restoring a saved state).
    pub(crate) fn restore_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

fn slots(params: Vec<(String, Tensor)>, n_buffers: usize) -> Vec<Slot> {
    params
        .into_iter()
        .map(|(name, tensor)| Slot { name, tensor, step: 0, buffers: vec![Vec::new(); n_buffers] })
        .collect()
}

/// Creates a buffer of `n` elements equal to `init` the first time it is used.
#[inline]
pub(crate) fn ensure(buf: &mut Vec<f32>, n: usize, init: f32) {
    if buf.is_empty() {
        buf.resize(n, init);
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns_match_whole_names() {
        assert!(glob_match("*.bias", "0.bias"));
        assert!(glob_match("*.bias", "encoder.layers.3.bias"));
        assert!(!glob_match("*.bias", "0.bias_hh"));
        assert!(glob_match("*norm*", "layer_norm.weight"));
        assert!(glob_match("bias", "bias"));
        assert!(!glob_match("bias", "0.bias"));
        assert!(glob_match("encoder.*.weight", "encoder.0.weight"));
        assert!(!glob_match("encoder.*.weight", "decoder.0.weight"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*a", "aa"));
        assert!(!glob_match("a*a", "a"));
    }
}
