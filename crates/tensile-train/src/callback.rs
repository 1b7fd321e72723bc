//! Callbacks: hooks into the training loop. Early stopping, the learning-rate schedule (reduce on
//! plateau included), checkpoint timing and progress output are themselves callbacks, and users
//! add their own the same way.
//!
//! A callback sees a [`Context`] (the model, the optimizer, the history so far, the position in
//! the run) and may ask the loop to stop or to write a checkpoint. Its own state, if any, is
//! plain JSON from [`Callback::state`], stored in every checkpoint and handed back through
//! [`Callback::load_state`] on resume, which is what makes resumed runs continue exactly.

use std::path::Path;

use tensile_nn::{Module, Optimizer, Schedule, Scheduler, StepUnit};

use crate::early_stopping::{EarlyStopping, Verdict};
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Event, EventKind, History};

fn is_plateau(s: &Scheduler) -> bool {
    matches!(s.config().schedule, Schedule::ReduceOnPlateau(_))
}

/// What a callback can see and ask for.
pub struct Context<'a> {
    pub model: &'a dyn Module,
    pub optimizer: &'a mut dyn Optimizer,
    pub history: &'a History,
    /// Events since the last evaluation; they join the next epoch record.
    pub events: &'a mut Vec<Event>,
    /// The current epoch (1-based).
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// Multiplier the divergence handling has applied to the learning rate (1 until a rollback).
    pub lr_scale: f64,
    pub run_dir: Option<&'a Path>,
    /// Set to stop training after this hook, with the reason.
    pub stop: Option<String>,
    /// Set to have a checkpoint written after this hook.
    pub checkpoint: bool,
}

impl Context<'_> {
    /// Records an event in the history.
    pub fn event(&mut self, kind: EventKind, message: String) {
        self.events.push(Event { step: self.step, epoch: self.epoch, kind, message });
    }
}

/// Hooks called by the loop, in the order the methods are listed. Every method has a default
/// that does nothing.
pub trait Callback: Send {
    /// A unique name: the key of this callback's state in checkpoints.
    fn name(&self) -> &str;
    fn on_train_start(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
    fn on_epoch_start(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
    /// After each optimizer step, with the step's training loss.
    fn on_step_end(&mut self, _ctx: &mut Context, _loss: f64) -> Result<()> {
        Ok(())
    }
    /// After each evaluation, with its record (values may be added to it).
    fn on_evaluation(&mut self, _ctx: &mut Context, _record: &mut EpochRecord) -> Result<()> {
        Ok(())
    }
    fn on_epoch_end(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
    fn on_train_end(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
    /// State to store in checkpoints.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores what [`Callback::state`] returned.
    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

fn state_error(name: &str, e: serde_json::Error) -> Error {
    Error::Config { key: "checkpoint state", msg: format!("{name}: {e}") }
}

/// Stops training when the monitored values stop improving.
pub struct EarlyStoppingCallback {
    inner: EarlyStopping,
}

impl EarlyStoppingCallback {
    pub fn new(inner: EarlyStopping) -> Self {
        EarlyStoppingCallback { inner }
    }
}

impl Callback for EarlyStoppingCallback {
    fn name(&self) -> &str {
        "early_stopping"
    }
    fn on_evaluation(&mut self, ctx: &mut Context, record: &mut EpochRecord) -> Result<()> {
        if let Verdict::Stop(why) = self.inner.update(record.epoch, |k| record.values.get(k).copied()) {
            ctx.stop = Some(format!("early stopping: {why}"));
        }
        Ok(())
    }
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(&self.inner.states).unwrap_or_default()
    }
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.inner.states = serde_json::from_value(state.clone()).map_err(|e| state_error("early_stopping", e))?;
        Ok(())
    }
}

/// Drives the learning-rate schedule: per step or per epoch as the schedule requires, and from
/// the monitored value for reduce-on-plateau.
pub struct LrSchedulerCallback {
    scheduler: Scheduler,
    monitor: String,
}

impl LrSchedulerCallback {
    pub fn new(scheduler: Scheduler, monitor: String) -> Self {
        LrSchedulerCallback { scheduler, monitor }
    }
    fn apply(&self, ctx: &mut Context) {
        let before = ctx.optimizer.learning_rate();
        let lr = self.scheduler.lr() * ctx.lr_scale;
        ctx.optimizer.set_learning_rate(lr);
        if is_plateau(&self.scheduler) && (lr - before).abs() > 1e-12 * before.abs().max(1e-30) {
            ctx.event(EventKind::LearningRateChanged, format!("learning rate {before:.3e} -> {lr:.3e} (plateau)"));
        }
    }
}

impl Callback for LrSchedulerCallback {
    fn name(&self) -> &str {
        "lr_scheduler"
    }
    fn on_train_start(&mut self, ctx: &mut Context) -> Result<()> {
        self.apply(ctx);
        Ok(())
    }
    fn on_step_end(&mut self, ctx: &mut Context, _loss: f64) -> Result<()> {
        if self.scheduler.config().unit() == StepUnit::Batch {
            self.scheduler.step();
            self.apply(ctx);
        }
        Ok(())
    }
    fn on_evaluation(&mut self, ctx: &mut Context, record: &mut EpochRecord) -> Result<()> {
        if is_plateau(&self.scheduler)
            && let Some(&v) = record.values.get(&self.monitor)
        {
            self.scheduler.step_with_metric(v);
            self.apply(ctx);
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut Context) -> Result<()> {
        if self.scheduler.config().unit() == StepUnit::Epoch && !is_plateau(&self.scheduler) {
            self.scheduler.step();
            self.apply(ctx);
        }
        Ok(())
    }
    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.scheduler.state()).unwrap_or_default()
    }
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let s = serde_json::from_value(state.clone()).map_err(|e| state_error("lr_scheduler", e))?;
        self.scheduler.load_state(&s)?;
        Ok(())
    }
}

/// Asks for a checkpoint every N epochs and/or every N steps.
pub struct CheckpointTiming {
    pub every_epochs: usize,
    pub every_steps: Option<u64>,
}

impl Callback for CheckpointTiming {
    fn name(&self) -> &str {
        "checkpoint_timing"
    }
    fn on_step_end(&mut self, ctx: &mut Context, _loss: f64) -> Result<()> {
        if self.every_steps.is_some_and(|n| ctx.step.is_multiple_of(n)) {
            ctx.checkpoint = true;
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, ctx: &mut Context) -> Result<()> {
        if self.every_epochs > 0 && ctx.epoch.is_multiple_of(self.every_epochs) {
            ctx.checkpoint = true;
        }
        Ok(())
    }
}
