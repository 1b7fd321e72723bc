//! The loop state a checkpoint carries, and the means to save it, restore it, and roll back to
//! a good state in memory. Kept apart from the loop so `trainer.rs` reads as the loop alone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tensile_core::{Rng, Tensor};
use tensile_data::LoaderState;
use tensile_nn::{Module, Optimizer, weights};

use crate::callback::Callback;
use crate::checkpoint;
use crate::divergence::Divergence;
use crate::error::{Error, Result};
use crate::history::{Event, EventKind, History};
use crate::source::{BatchSource, StreamFingerprint};
use crate::trainer::StopReason;

/// Position and loop state stored in checkpoints (besides tensors and callback states).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoopState {
    /// Epochs fully finished.
    pub(crate) epochs_done: usize,
    /// Batches of the current epoch already consumed.
    pub(crate) batch_in_epoch: usize,
    pub(crate) step: u64,
    pub(crate) loader_epoch_start: Option<LoaderStateJson>,
    pub(crate) loader: LoaderStateJson,
    /// The stream a streamed run reads (`None` for a table in memory). With the loader state
    /// and the batch number it fixes the position: the epoch's block order, window and offset
    /// within it all follow from them (see `tensile_data::StreamLoader`).
    #[serde(default)]
    pub(crate) stream: Option<StreamFingerprint>,
    pub(crate) best: Option<(usize, f64)>,
    pub(crate) divergence: Divergence,
    pub(crate) module_rngs: Vec<(String, [u64; 4])>,
    pub(crate) pending_events: Vec<Event>,
    /// Sum of batch losses times rows, and rows, over the current epoch so far.
    pub(crate) epoch_loss: (f64, usize),
    pub(crate) history: History,
    pub(crate) callbacks: std::collections::BTreeMap<String, serde_json::Value>,
    pub(crate) optimizer: serde_json::Value,
    pub(crate) stopped: Option<StopReason>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoaderStateJson {
    pub(crate) rng: [u64; 4],
    pub(crate) epochs_drawn: u64,
}

impl From<LoaderState> for LoaderStateJson {
    fn from(s: LoaderState) -> Self {
        LoaderStateJson { rng: s.rng, epochs_drawn: s.epochs_drawn }
    }
}
impl From<&LoaderStateJson> for LoaderState {
    fn from(s: &LoaderStateJson) -> Self {
        LoaderState { rng: s.rng, epochs_drawn: s.epochs_drawn }
    }
}

/// A snapshot of weights and optimizer state to roll back to.
pub(crate) struct Snapshot {
    pub(crate) weights: Vec<Tensor>,
    pub(crate) optimizer: tensile_nn::optim::OptimizerState,
    pub(crate) callbacks: Vec<serde_json::Value>,
}

pub(crate) fn json_error(e: serde_json::Error) -> Error {
    Error::Config { key: "checkpoint state", msg: e.to_string() }
}

/// Runs `f` with a [`Context`] over the loop's state.
pub(crate) fn save_checkpoint(
    dir: Option<&Path>,
    keep: usize,
    model: &dyn Module,
    opt: &dyn Optimizer,
    callbacks: &[Box<dyn Callback>],
    st: &mut LoopState,
    best: &Option<Vec<Tensor>>,
) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    st.optimizer = serde_json::to_value(opt.state()).map_err(json_error)?;
    st.callbacks = callbacks.iter().map(|c| (c.name().to_string(), c.state())).collect();
    st.module_rngs.clear();
    model.visit_rngs("", &mut |name, rng| {
        let state = rng.lock().unwrap_or_else(|e| e.into_inner()).state();
        st.module_rngs.push((name.to_string(), state));
    });
    let mut tensors: Vec<(String, Tensor)> =
        weights::named_tensors(model).into_iter().map(|(n, t)| (format!("model.{n}"), t)).collect();
    if let Some(best) = best {
        for ((n, _), t) in weights::named_tensors(model).iter().zip(best) {
            tensors.push((format!("best.{n}"), t.clone()));
        }
    }
    let state = serde_json::to_value(&*st).map_err(json_error)?;
    checkpoint::save(dir, st.step, &tensors, &state, keep)?;
    Ok(())
}

pub(crate) fn copy_weights(model: &dyn Module) -> Result<Vec<Tensor>> {
    weights::named_tensors(model).iter().map(|(_, t)| Ok(t.deep_clone()?)).collect()
}

pub(crate) fn set_weights(model: &dyn Module, values: &[Tensor]) -> Result<()> {
    for ((_, t), v) in weights::named_tensors(model).iter().zip(values) {
        t.assign_(v)?;
    }
    Ok(())
}

pub(crate) fn take_snapshot(
    model: &dyn Module,
    opt: &dyn Optimizer,
    callbacks: &[Box<dyn Callback>],
) -> Result<Snapshot> {
    Ok(Snapshot {
        weights: copy_weights(model)?,
        optimizer: opt.state(),
        callbacks: callbacks.iter().map(|c| c.state()).collect(),
    })
}

pub(crate) fn restore_snapshot(
    model: &dyn Module,
    opt: &mut dyn Optimizer,
    callbacks: &mut [Box<dyn Callback>],
    s: &Snapshot,
) -> Result<()> {
    set_weights(model, &s.weights)?;
    opt.load_state(&s.optimizer)?;
    for (cb, state) in callbacks.iter_mut().zip(&s.callbacks) {
        // Early stopping keeps counting across a rollback; the schedule goes back with the weights.
        if cb.name() == "lr_scheduler" {
            cb.load_state(state)?;
        }
    }
    Ok(())
}

pub(crate) type Restored = (LoopState, Option<Vec<Tensor>>, PathBuf);

/// Loads the newest valid checkpoint into the model, optimizer, callbacks and batch source.
/// Refuses a checkpoint written for other data than `stream` describes (another file, another
/// window size, or a table in memory where this run streams, or the reverse).
pub(crate) fn restore(
    dir: &Path,
    model: &dyn Module,
    opt: &mut dyn Optimizer,
    callbacks: &mut [Box<dyn Callback>],
    source: &mut BatchSource,
    stream: &Option<StreamFingerprint>,
) -> Result<Option<Restored>> {
    let (found, skipped) = checkpoint::newest_valid(dir)?;
    let Some((path, ckpt)) = found else {
        if skipped.is_empty() {
            return Ok(None);
        }
        return Err(Error::Checkpoint {
            path: dir.display().to_string(),
            msg: format!("no usable checkpoint: {}", skipped.join("; ")),
        });
    };
    let mut st: LoopState = serde_json::from_value(ckpt.state).map_err(|e| Error::Checkpoint {
        path: path.display().to_string(),
        msg: format!("state does not match this version of tensile: {e}"),
    })?;
    if st.stream != *stream {
        let describe = |s: &Option<StreamFingerprint>| match s {
            Some(s) => s.to_string(),
            None => "a table held in memory".to_string(),
        };
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!(
                "was written while training on {}, but this run trains on {}; resume with the same data file and \
                 memory budget",
                describe(&st.stream),
                describe(stream)
            ),
        });
    }
    let named = weights::named_tensors(model);
    let mut best = Vec::new();
    for (name, t) in &named {
        let saved = ckpt.tensors.get(&format!("model.{name}")).ok_or_else(|| Error::Checkpoint {
            path: path.display().to_string(),
            msg: format!("has no tensor for '{name}': it belongs to another model"),
        })?;
        if saved.shape() != t.shape() {
            return Err(Error::Checkpoint {
                path: path.display().to_string(),
                msg: format!("'{name}' has shape {} but the model has {}", saved.shape(), t.shape()),
            });
        }
        t.assign_(&saved.to_dtype(t.dtype())?)?;
        if let Some(b) = ckpt.tensors.get(&format!("best.{name}")) {
            best.push(b.to_dtype(t.dtype())?);
        }
    }
    let best = (best.len() == named.len() && !named.is_empty()).then_some(best);
    let opt_state = serde_json::from_value(st.optimizer.clone()).map_err(json_error)?;
    opt.load_state(&opt_state)?;
    for cb in callbacks.iter_mut() {
        if let Some(s) = st.callbacks.get(cb.name()) {
            cb.load_state(s)?;
        }
    }
    source.restore(&(&st.loader).into());
    let rngs = std::mem::take(&mut st.module_rngs);
    model.visit_rngs("", &mut |name, rng| {
        if let Some((_, s)) = rngs.iter().find(|(n, _)| n == name) {
            *rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(*s);
        }
    });
    st.module_rngs = rngs;
    for s in skipped {
        st.pending_events.push(Event {
            step: st.step,
            epoch: st.epochs_done + 1,
            kind: EventKind::Resumed,
            message: format!("skipped a damaged checkpoint: {s}"),
        });
    }
    Ok(Some((st, best, path)))
}
