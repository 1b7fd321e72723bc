//! An optimizer's state as plain data, for checkpoints: what [`super::Optimizer::state`] exports
//! and [`super::Optimizer::load_state`] restores.
//!
//! Buffers are serialized as the bit patterns of their f32 values (`u32`s), so every serde
//! format round-trips them exactly; a decimal text form would not survive every parser (plain
//! serde_json reads numbers through f64 and only approximately). Scalars (rates,
//! hyperparameters) stay readable numbers: they are checked against the optimizer's own config
//! on load with a tolerance far above parser round-off and far below any real difference, and
//! the learning rate is set again by the schedule before each step anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::group::Groups;
use crate::error::{Result, invalid};

/// Everything an optimizer needs to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// `sgd`, `adam`, `adamw`, `rmsprop`, `adagrad` or `lion`.
    pub kind: String,
    /// The optimizer's learning rate.
    pub lr: f64,
    /// The config's other hyperparameters (booleans as 0 or 1); checked, not restored.
    pub hyperparameters: BTreeMap<String, f64>,
    pub groups: Vec<GroupState>,
    /// Per-parameter state, keyed by parameter name.
    pub params: BTreeMap<String, ParamState>,
}

/// One parameter group: its parameters' names (in order), its rate (restored) and its weight
/// decay (checked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub params: Vec<String>,
    pub lr: f64,
    /// `lr / optimizer lr` for a group built with its own rate (checked, not restored).
    pub lr_ratio: Option<f64>,
    pub weight_decay: f64,
}

/// One parameter's state: steps taken and named buffers (PyTorch's names: `exp_avg`,
/// `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `square_avg`, `grad_avg`, `sum`), each with
/// as many elements as the parameter. Buffers not yet created are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamState {
    pub step: u64,
    #[serde(with = "f32_bits")]
    pub buffers: BTreeMap<String, Vec<f32>>,
}

/// Relative tolerance for comparing saved scalars with the optimizer's: above the round-off of
/// a text round trip, far below any intended change.
const SCALAR_TOLERANCE: f64 = 1e-12;

fn same_scalar(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= SCALAR_TOLERANCE * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
}

impl Groups {
    pub(crate) fn state(&self, kind: &str, hyperparameters: BTreeMap<String, f64>) -> OptimizerState {
        let mut params = BTreeMap::new();
        let groups = self
            .groups
            .iter()
            .map(|g| {
                for slot in &g.slots {
                    let buffers = self
                        .buffer_names
                        .iter()
                        .zip(&slot.buffers)
                        .filter(|(_, b)| !b.is_empty())
                        .map(|(n, b)| (n.to_string(), b.clone()))
                        .collect();
                    params.insert(slot.name.clone(), ParamState { step: slot.step, buffers });
                }
                GroupState {
                    params: g.slots.iter().map(|s| s.name.clone()).collect(),
                    lr: g.lr,
                    lr_ratio: g.lr_ratio,
                    weight_decay: g.weight_decay,
                }
            })
            .collect();
        OptimizerState { kind: kind.to_string(), lr: self.lr(), hyperparameters, groups, params }
    }

    pub(crate) fn load_state(
        &mut self,
        kind: &str,
        hyperparameters: &BTreeMap<String, f64>,
        state: &OptimizerState,
    ) -> Result<()> {
        let what = format!("load_state({kind})");
        if state.kind != kind {
            return invalid(what, format!("the state is from a '{}' optimizer", state.kind));
        }
        for (key, mine) in hyperparameters {
            match state.hyperparameters.get(key) {
                Some(&saved) if same_scalar(saved, *mine) => {}
                Some(saved) => return invalid(what, format!("the state has {key} = {saved}, this optimizer {mine}")),
                None => return invalid(what, format!("the state has no hyperparameter {key}")),
            }
        }
        if let Some(key) = state.hyperparameters.keys().find(|k| !hyperparameters.contains_key(*k)) {
            return invalid(what, format!("the state has an unknown hyperparameter {key}"));
        }
        if state.groups.len() != self.groups.len() {
            return invalid(
                what,
                format!("the state has {} parameter groups, this optimizer {}", state.groups.len(), self.groups.len()),
            );
        }
        for (i, (saved, group)) in state.groups.iter().zip(&self.groups).enumerate() {
            let names: Vec<&str> = group.slots.iter().map(|s| s.name.as_str()).collect();
            if saved.params != names {
                return invalid(what, format!("group {i} holds {:?} in the state, {names:?} here", saved.params));
            }
            let same_ratio = match (saved.lr_ratio, group.lr_ratio) {
                (None, None) => true,
                (Some(a), Some(b)) => same_scalar(a, b),
                _ => false,
            };
            if !same_ratio {
                return invalid(
                    what,
                    format!("group {i} lr ratio is {:?} in the state, {:?} here", saved.lr_ratio, group.lr_ratio),
                );
            }
            if !same_scalar(saved.weight_decay, group.weight_decay) {
                return invalid(
                    what,
                    format!(
                        "group {i} weight_decay is {} in the state, {} here",
                        saved.weight_decay, group.weight_decay
                    ),
                );
            }
            for slot in &group.slots {
                let Some(p) = state.params.get(&slot.name) else {
                    return invalid(what, format!("the state has no entry for parameter '{}'", slot.name));
                };
                for (name, buf) in &p.buffers {
                    if !self.buffer_names.contains(&name.as_str()) {
                        return invalid(what, format!("parameter '{}' has an unknown buffer '{name}'", slot.name));
                    }
                    if buf.len() != slot.tensor.elem_count() {
                        return invalid(
                            what,
                            format!(
                                "buffer '{name}' of parameter '{}' has {} elements, the parameter {}",
                                slot.name,
                                buf.len(),
                                slot.tensor.elem_count()
                            ),
                        );
                    }
                }
            }
        }
        if state.params.len() != self.groups.iter().map(|g| g.slots.len()).sum::<usize>() {
            return invalid(what, "the state has entries for parameters this optimizer does not hold");
        }

        self.restore_lr(state.lr);
        for (saved, group) in state.groups.iter().zip(&mut self.groups) {
            group.lr = saved.lr;
            for slot in &mut group.slots {
                let p = &state.params[&slot.name];
                slot.step = p.step;
                for (name, buf) in self.buffer_names.iter().zip(&mut slot.buffers) {
                    *buf = p.buffers.get(*name).cloned().unwrap_or_default();
                }
            }
        }
        Ok(())
    }
}

/// Serde for f32 buffers as their bit patterns, exact in every format.
mod f32_bits {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, Vec<f32>>, s: S) -> Result<S::Ok, S::Error> {
        let bits: BTreeMap<&str, Vec<u32>> =
            m.iter().map(|(k, v)| (k.as_str(), v.iter().map(|x| x.to_bits()).collect())).collect();
        bits.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<f32>>, D::Error> {
        let bits = BTreeMap::<String, Vec<u32>>::deserialize(d)?;
        Ok(bits.into_iter().map(|(k, v)| (k, v.into_iter().map(f32::from_bits).collect())).collect())
    }
}
