//! The training loop.
//!
//! ```text
//! setup: split (seeded, stratified) -> scale features (and a regression target) on training
//!        rows -> optimizer -> callbacks
//!        -> resume from the newest valid checkpoint, if asked
//! each epoch: batches in a seeded order -> forward -> loss -> backward -> (accumulate k)
//!             -> divergence check -> clip -> optimizer step -> callbacks
//!             -> evaluate on the whole validation set -> best weights -> callbacks -> checkpoint
//! end: restore the best weights -> test set -> diagnosis
//! ```
//!
//! The batches come from a table in memory ([`Trainer::fit`]) or from a CSV or Parquet file streamed a
//! window of blocks at a time ([`Trainer::fit_stream`]); `source.rs` holds what differs, so the
//! loop below, its checkpoints and resume are one code path for both.
//!
//! Everything that decides what happens next — the position in the data order, optimizer and
//! schedule state, every random stream, early-stopping state, the best weights, divergence state
//! and the history — is in each checkpoint, so a run resumed after a crash at any moment ends
//! with the same bits as one never interrupted.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tensile_core::{GradStore, Rng, Tensor, no_grad};
use tensile_data::{Dataset, FeatureScaler, Loader, TargetScaler, train_validation_split};
use tensile_nn::optim::{ParamGroup, decay_split, grad_norm};
use tensile_nn::{Module, Optimizer, Scheduler, named_parameters};

use crate::callback::{Callback, CheckpointTiming, Context, EarlyStoppingCallback, LrSchedulerCallback};
use crate::config::TrainerConfig;
use crate::diagnosis::diagnose;
use crate::divergence::{Divergence, Outcome};
use crate::early_stopping::EarlyStopping;
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Event, EventKind, History, Mode, StepRecord};
use crate::metrics::Task;
use crate::metrics::{Metric, Outputs, default_metrics};
use crate::plot::write_curves;
use crate::progress::{Progress, ProgressMode};
use crate::provenance::Provenance;
pub use crate::source::StreamingData;
use crate::source::{BatchSource, Setup, setup_stream, stream_provenance};
use crate::state::{
    LoopState, Snapshot, copy_weights, restore, restore_snapshot, save_checkpoint, set_weights, take_snapshot,
};
use crate::task::{batch_loss, batch_tensors, check_compatible, outputs, task_of};

/// The data of a run. Without `validation`, `TrainerConfig::validation_split` of `train` is held
/// out.
pub struct TrainingData<'a> {
    pub train: &'a Dataset,
    pub validation: Option<&'a Dataset>,
    pub test: Option<&'a Dataset>,
}

/// Where a run's training rows come from.
#[derive(Clone, Copy)]
enum Input<'d, 'a> {
    Memory(&'d TrainingData<'a>),
    Stream(&'d StreamingData<'a>),
}

/// Why training ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StopReason {
    Completed,
    MaxSteps,
    /// A callback (early stopping) asked to stop; the reason in words.
    Callback(String),
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainResult {
    pub history: History,
    /// Epoch (1-based) and value of the best monitored value.
    pub best: Option<(usize, f64)>,
    pub stop: StopReason,
    /// Values on the test set with the final (best) weights.
    pub test: Option<std::collections::BTreeMap<String, f64>>,
    /// The feature scaler fitted on the training rows (none with `scaling = "none"`).
    pub scaler: Option<FeatureScaler>,
    /// The regression target's scaler fitted on the training rows, when `standardize_target`
    /// is on: the model's raw outputs are in its scaled units (map them back with
    /// [`TargetScaler::inverse`]); every loss and metric reported is already in the target's
    /// own units.
    pub target_scaler: Option<TargetScaler>,
    /// What the curves say, in plain words, each backed by its numbers.
    pub diagnosis: Vec<crate::diagnosis::Finding>,
}

/// The validation data an evaluation reads.
struct EvalSet<'a> {
    ds: &'a Dataset,
    rows: &'a [usize],
    task: Task,
    metrics: &'a [Box<dyn Metric>],
    target: Option<&'a TargetScaler>,
}

/// Trains models. Build with [`Trainer::new`], optionally give it a run directory (checkpoints,
/// history, curves) and callbacks, then call [`Trainer::fit`].
pub struct Trainer {
    config: TrainerConfig,
    run_dir: Option<PathBuf>,
    resume: bool,
    progress: ProgressMode,
    user_callbacks: Vec<Box<dyn Callback>>,
    extra_metrics: Vec<Box<dyn Metric>>,
}

impl Trainer {
    pub fn new(config: TrainerConfig) -> Result<Trainer> {
        config.validate()?;
        Ok(Trainer {
            config,
            run_dir: None,
            resume: false,
            progress: ProgressMode::Quiet,
            user_callbacks: Vec::new(),
            extra_metrics: Vec::new(),
        })
    }

    /// Writes checkpoints (in `dir/checkpoints`) and the history under `dir`.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Continue from the newest valid checkpoint in the run directory, if there is one.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// How progress is shown: nothing (the default for library use), a bar on a terminal, or one
    /// line per epoch.
    pub fn progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// Adds a metric, computed on the whole validation (and test) set after the task's defaults
    /// and recorded as `val_<name>`; it can be monitored like any other.
    pub fn metric(mut self, metric: impl Metric + 'static) -> Self {
        self.extra_metrics.push(Box::new(metric));
        self
    }

    /// Adds a callback, called after the built-in ones.
    pub fn callback(mut self, cb: impl Callback + 'static) -> Self {
        self.user_callbacks.push(Box::new(cb));
        self
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Trains `model` on `data`.
    pub fn fit(&mut self, model: &mut dyn Module, data: &TrainingData) -> Result<TrainResult> {
        self.fit_input(model, Input::Memory(data))
    }

    /// Trains `model` on a CSV or Parquet file streamed a window of blocks at a time, with memory bounded
    /// by [`StreamingData::memory_budget`] whatever the file's size. Checkpoints and exact
    /// resume work as for [`Trainer::fit`]; the validation split is a seeded hash of the row
    /// number and is not stratified (see [`tensile_data::StreamSplit`]).
    pub fn fit_stream(&mut self, model: &mut dyn Module, data: &StreamingData) -> Result<TrainResult> {
        self.fit_input(model, Input::Stream(data))
    }

    /// The setup of a run on a table held in memory: split, scale, and a loader of row indices.
    fn setup_memory<'a>(cfg: &TrainerConfig, root: &Rng, data: &TrainingData<'a>) -> Result<Setup<'a>> {
        let task = task_of(data.train)?;
        let (train_ds, val_ds, train_rows, val_rows) = match data.validation {
            Some(v) => (data.train.clone(), v.clone(), (0..data.train.len()).collect(), (0..v.len()).collect()),
            None => {
                let stratify = cfg.stratify && matches!(task, Task::Classification { .. });
                let (t, v) = train_validation_split(data.train, cfg.validation_split, stratify, &mut root.fork(2))?;
                (data.train.clone(), data.train.clone(), t, v)
            }
        };
        check_compatible(&task, data.train.n_features(), &val_ds, "validation")?;
        let scaler = cfg.scaling.fit(&train_ds, &train_rows)?;
        let prepare = |ds: &Dataset| -> Result<Dataset> {
            let mut ds = ds.clone();
            if let Some(s) = &scaler {
                s.transform_in_place(ds.features_mut())?;
            }
            Ok(ds)
        };
        let (train_ds, val_ds) = (prepare(&train_ds)?, prepare(&val_ds)?);
        // Only the rows trained on get the scaled target; evaluations map the model's outputs
        // back instead, so validation and test values stay in the target's units.
        let target_scaler = (cfg.standardize_target && task == Task::Regression)
            .then(|| TargetScaler::fit(&train_ds, &train_rows))
            .transpose()?;
        let train_ds = match &target_scaler {
            Some(t) => t.transform_dataset(&train_ds)?,
            None => train_ds,
        };
        let loader = Loader::new(train_rows, cfg.batch_size, true, false, root.fork(3))?;
        Ok(Setup {
            task,
            source: BatchSource::Memory { ds: train_ds, loader, epoch: None },
            val_ds,
            val_rows,
            scalers: (scaler, target_scaler),
            test: data.test,
            n_features: data.train.n_features(),
            stream: None,
        })
    }

    /// Runs the whole training loop on a thread of the kernels' pool (see
    /// [`tensile_core::threads::run`]).
    fn fit_input(&mut self, model: &mut dyn Module, input: Input) -> Result<TrainResult> {
        tensile_core::threads::run(|| self.fit_on_pool(model, input))
    }

    fn fit_on_pool(&mut self, model: &mut dyn Module, input: Input) -> Result<TrainResult> {
        let cfg = self.config.clone();
        let root = Rng::seed(cfg.seed);
        let Setup { task, mut source, val_ds, val_rows, scalers, test, n_features, stream } = match input {
            Input::Memory(data) => Self::setup_memory(&cfg, &root, data)?,
            Input::Stream(data) => setup_stream(&cfg, &root, data)?,
        };
        let mut metric_defs = default_metrics(task);
        metric_defs.append(&mut self.extra_metrics);
        // Training losses in the target's units, like the validation loss.
        let loss_factor = scalers.1.map_or(1.0, |t| t.loss_factor());

        // Optimizer and callbacks.
        let params = named_parameters(model);
        let groups = if cfg.no_decay_on_bias_and_norm {
            decay_split(params.clone(), cfg.optimizer.weight_decay())
        } else {
            vec![ParamGroup::new(params.clone())]
        };
        let mut opt = cfg.optimizer.build(groups)?;
        let mut callbacks = self.builtin_callbacks(&cfg)?;
        callbacks.append(&mut self.user_callbacks);
        let steps_per_epoch = source.batches_per_epoch().div_ceil(cfg.accumulate_batches) as u64;
        callbacks.push(Box::new(Progress::new(self.progress, cfg.epochs, steps_per_epoch).with_monitor(&cfg.monitor)));

        let mut st = LoopState {
            epochs_done: 0,
            batch_in_epoch: 0,
            step: 0,
            loader_epoch_start: None,
            loader: source.state().into(),
            stream: stream.clone(),
            best: None,
            divergence: Divergence::default(),
            module_rngs: Vec::new(),
            pending_events: Vec::new(),
            epoch_loss: (0.0, 0),
            history: History::default(),
            callbacks: Default::default(),
            optimizer: serde_json::Value::Null,
            stopped: None,
        };
        if let Some(dir) = &self.run_dir {
            // Seed, resolved config, data hash, version and machine: what reproducing needs.
            std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
            let provenance = match input {
                Input::Memory(data) => Provenance::collect(&cfg, data.train)?,
                Input::Stream(data) => stream_provenance(&cfg, data.train)?,
            };
            provenance.write(dir)?;
        }
        let mut best_weights: Option<Vec<Tensor>> = None;
        let ckpt_dir = self.run_dir.as_ref().map(|d| d.join("checkpoints"));
        if self.resume {
            let dir = ckpt_dir.as_ref().ok_or(Error::Config { key: "resume", msg: "needs a run directory".into() })?;
            if let Some(restored) = restore(dir, model, opt.as_mut(), &mut callbacks, &mut source, &stream)? {
                st = restored.0;
                best_weights = restored.1;
                st.pending_events.push(Event {
                    step: st.step,
                    epoch: st.epochs_done + 1,
                    kind: EventKind::Resumed,
                    message: format!("resumed from {}", restored.2.display()),
                });
            }
        }
        let total_epochs = cfg.epochs.max(1);
        if let Some(reason) = st.stopped.clone() {
            // A finished run is reported again, unless it is being extended to more epochs.
            let extend = reason == StopReason::Completed && st.epochs_done < total_epochs;
            if !extend {
                return self.finish(model, (test, n_features), &task, &metric_defs, &st, best_weights, reason, scalers);
            }
            st.stopped = None;
        }

        let mut snapshot = take_snapshot(model, opt.as_ref(), &callbacks)?;
        let eval_set =
            EvalSet { ds: &val_ds, rows: &val_rows, task, metrics: &metric_defs, target: scalers.1.as_ref() };
        let mut x = Vec::new();
        let mut y = Vec::new();
        let run_dir = self.run_dir.clone();
        with_ctx(model, opt.as_mut(), &mut st, run_dir.as_deref(), |ctx| {
            for cb in callbacks.iter_mut() {
                cb.on_train_start(ctx)?;
            }
            Ok(())
        })?;

        let mut stop: Option<StopReason> = None;
        'epochs: for epoch in st.epochs_done + 1..=total_epochs {
            let started = Instant::now();
            model.set_training(true);
            // Mid-epoch resume replays the epoch's order from its saved start and skips ahead.
            let skip = st.batch_in_epoch;
            if let (true, Some(start)) = (skip > 0, &st.loader_epoch_start) {
                source.restore(&start.into());
            }
            st.loader_epoch_start = Some(source.state().into());
            let n_batches = source.start_epoch();
            st.loader = source.state().into();
            with_ctx(model, opt.as_mut(), &mut st, run_dir.as_deref(), |ctx| {
                ctx.epoch = epoch;
                for cb in callbacks.iter_mut() {
                    cb.on_epoch_start(ctx)?;
                }
                Ok(())
            })?;

            let mut accumulated: Option<GradStore> = None;
            let mut acc_count = 0usize;
            let mut acc_loss = 0.0;
            let mut acc_bad = false;
            if skip == 0 {
                st.epoch_loss = (0.0, 0);
            }
            for bi in skip..n_batches {
                let (xt, yt, batch_rows) = source.batch(bi, &task, &mut x, &mut y)?;
                let out = model.forward(&xt)?;
                let loss = batch_loss(&task, &out, &yt)?;
                let lv = loss.item()? * loss_factor;
                let scaled = if cfg.accumulate_batches > 1 {
                    loss.mul_scalar(1.0 / cfg.accumulate_batches as f64)?
                } else {
                    loss
                };
                let grads = scaled.backward()?;
                acc_bad |= !lv.is_finite();
                acc_loss += lv * batch_rows as f64;
                acc_count += batch_rows;
                accumulated = Some(match accumulated.take() {
                    None => grads,
                    Some(prev) => add_grads(prev, grads, &params)?,
                });
                let group_done = (bi + 1) % cfg.accumulate_batches == 0 || bi + 1 == n_batches;
                if !group_done {
                    continue;
                }
                let mut grads = accumulated.take().expect("internal: gradients accumulated");
                let step_loss = acc_loss / acc_count.max(1) as f64;
                let norm = grad_norm(&params, &grads, 2.0)?;
                let bad = acc_bad || !norm.is_finite();
                let group_rows = acc_count;
                (acc_count, acc_loss, acc_bad) = (0, 0.0, false);
                let outcome = st.divergence.observe(&cfg.divergence, st.step, bad);
                if bad {
                    let what = if !step_loss.is_finite() { "loss" } else { "gradient norm" };
                    st.pending_events.push(Event {
                        step: st.step,
                        epoch,
                        kind: if what == "loss" { EventKind::NonFiniteLoss } else { EventKind::NonFiniteGradient },
                        message: format!(
                            "non-finite {what} at step {} (loss {step_loss}, gradient norm {norm})",
                            st.step + 1
                        ),
                    });
                }
                match outcome {
                    Outcome::Apply => {}
                    Outcome::Skip => {
                        st.pending_events.push(Event {
                            step: st.step,
                            epoch,
                            kind: EventKind::SkippedStep,
                            message: format!("skipped the update of step {}", st.step + 1),
                        });
                        st.batch_in_epoch = bi + 1;
                        continue;
                    }
                    Outcome::Rollback => {
                        restore_snapshot(model, opt.as_mut(), &mut callbacks, &snapshot)?;
                        st.divergence.lr_scale *= cfg.divergence.lr_factor;
                        let lr = opt.learning_rate() * cfg.divergence.lr_factor;
                        opt.set_learning_rate(lr);
                        st.pending_events.push(Event {
                            step: st.step,
                            epoch,
                            kind: EventKind::Rollback,
                            message: format!(
                                "rolled back to the last good state after {} bad steps; learning rate lowered to {lr:.3e}",
                                cfg.divergence.max_bad_steps
                            ),
                        });
                        st.batch_in_epoch = bi + 1;
                        continue;
                    }
                    Outcome::Stop(why) => {
                        return Err(Error::Diverged { step: st.step + 1, msg: why });
                    }
                }
                if let Some(clip) = &cfg.clip {
                    clip.apply(&params, &mut grads)?;
                }
                opt.step(&grads)?;
                drop(grads);
                st.step += 1;
                st.batch_in_epoch = bi + 1;
                st.epoch_loss.0 += step_loss * group_rows as f64;
                st.epoch_loss.1 += group_rows;
                st.history.steps.push(StepRecord { step: st.step, epoch, loss: step_loss, lr: opt.learning_rate() });
                let (ask_stop, ask_ckpt) = with_ctx(model, opt.as_mut(), &mut st, run_dir.as_deref(), |ctx| {
                    ctx.epoch = epoch;
                    for cb in callbacks.iter_mut() {
                        cb.on_step_end(ctx, step_loss)?;
                    }
                    Ok((ctx.stop.take(), std::mem::take(&mut ctx.checkpoint)))
                })?;
                if cfg.eval_every_steps.is_some_and(|n| st.step.is_multiple_of(n)) {
                    let seconds = started.elapsed().as_secs_f64();
                    let r = self.evaluate_and_record(
                        model,
                        opt.as_mut(),
                        &mut callbacks,
                        &mut st,
                        &mut best_weights,
                        &mut snapshot,
                        &eval_set,
                        epoch,
                        seconds,
                    )?;
                    if let Some(why) = r {
                        stop = Some(StopReason::Callback(why));
                    }
                }
                if ask_ckpt {
                    save_checkpoint(
                        ckpt_dir.as_deref(),
                        self.config.checkpoint.keep,
                        model,
                        opt.as_ref(),
                        &callbacks,
                        &mut st,
                        &best_weights,
                    )?;
                }
                if let Some(why) = ask_stop {
                    stop = Some(StopReason::Callback(why));
                }
                if cfg.max_steps.is_some_and(|m| st.step >= m) && stop.is_none() {
                    stop = Some(StopReason::MaxSteps);
                }
                if stop.is_some() {
                    break;
                }
            }

            if cfg.eval_every_steps.is_none() {
                let seconds = started.elapsed().as_secs_f64();
                let r = self.evaluate_and_record(
                    model,
                    opt.as_mut(),
                    &mut callbacks,
                    &mut st,
                    &mut best_weights,
                    &mut snapshot,
                    &eval_set,
                    epoch,
                    seconds,
                )?;
                if let Some(why) = r
                    && stop.is_none()
                {
                    stop = Some(StopReason::Callback(why));
                }
            }
            let epoch_complete = st.batch_in_epoch >= n_batches;
            if epoch_complete {
                st.epochs_done = epoch;
                st.batch_in_epoch = 0;
                st.loader_epoch_start = None;
            }
            let (ask_stop, ask_ckpt) = with_ctx(model, opt.as_mut(), &mut st, run_dir.as_deref(), |ctx| {
                ctx.epoch = epoch;
                for cb in callbacks.iter_mut() {
                    cb.on_epoch_end(ctx)?;
                }
                Ok((ctx.stop.take(), std::mem::take(&mut ctx.checkpoint)))
            })?;
            if let Some(why) = ask_stop
                && stop.is_none()
            {
                stop = Some(StopReason::Callback(why));
            }
            let last = stop.is_some() || epoch == total_epochs;
            if last {
                st.stopped = Some(stop.clone().unwrap_or(StopReason::Completed));
            }
            if ask_ckpt || last {
                save_checkpoint(
                    ckpt_dir.as_deref(),
                    self.config.checkpoint.keep,
                    model,
                    opt.as_ref(),
                    &callbacks,
                    &mut st,
                    &best_weights,
                )?;
            }
            if stop.is_some() {
                break 'epochs;
            }
        }
        let reason = stop.unwrap_or(StopReason::Completed);
        with_ctx(model, opt.as_mut(), &mut st, run_dir.as_deref(), |ctx| {
            for cb in callbacks.iter_mut() {
                cb.on_train_end(ctx)?;
            }
            Ok(())
        })?;
        self.finish(model, (test, n_features), &task, &metric_defs, &st, best_weights, reason, scalers)
    }

    fn builtin_callbacks(&self, cfg: &TrainerConfig) -> Result<Vec<Box<dyn Callback>>> {
        let mut cbs: Vec<Box<dyn Callback>> = Vec::new();
        let schedule = cfg.schedule.clone().unwrap_or_default();
        let scheduler = Scheduler::new(schedule, cfg.optimizer.lr())?;
        cbs.push(Box::new(LrSchedulerCallback::new(scheduler, cfg.monitor.clone())));
        if let Some(es) = &cfg.early_stopping {
            cbs.push(Box::new(EarlyStoppingCallback::new(EarlyStopping::new(es.clone()))));
        }
        if self.run_dir.is_some() {
            cbs.push(Box::new(CheckpointTiming {
                every_epochs: cfg.checkpoint.every_epochs,
                every_steps: cfg.checkpoint.every_steps,
            }));
        }
        if let Some(dir) = &self.run_dir {
            cbs.push(Box::new(crate::tensorboard::TensorBoardLogger::new(dir)));
        }
        Ok(cbs)
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_and_record(
        &self,
        model: &mut dyn Module,
        opt: &mut dyn Optimizer,
        callbacks: &mut [Box<dyn Callback>],
        st: &mut LoopState,
        best_weights: &mut Option<Vec<Tensor>>,
        snapshot: &mut Snapshot,
        eval: &EvalSet,
        epoch: usize,
        seconds: f64,
    ) -> Result<Option<String>> {
        let train_loss = st.epoch_loss.0 / st.epoch_loss.1.max(1) as f64;
        model.set_training(false);
        let (val_loss, outputs) =
            evaluate_rows(model, eval.ds, eval.rows, &eval.task, self.config.batch_size.max(256), eval.target)?;
        model.set_training(true);
        let mut record = EpochRecord {
            epoch,
            step: st.step,
            lr: opt.learning_rate(),
            seconds,
            values: Default::default(),
            events: std::mem::take(&mut st.pending_events),
        };
        record.values.insert("train_loss".into(), train_loss);
        record.values.insert("val_loss".into(), val_loss);
        for m in eval.metrics {
            record.values.insert(format!("val_{}", m.name()), m.compute(&outputs));
        }
        // Best weights by the monitored value.
        let monitor = &self.config.monitor;
        if let Some(&v) = record.values.get(monitor)
            && v.is_finite()
        {
            let better = match st.best {
                None => true,
                Some((_, b)) => match Mode::for_metric(monitor) {
                    Mode::Min => v < b,
                    Mode::Max => v > b,
                },
            };
            if better {
                st.best = Some((epoch, v));
                *best_weights = Some(copy_weights(model)?);
                // The best weights so far also stand alone, beside the rolling checkpoints.
                if let Some(dir) = &self.run_dir {
                    let ckpt = dir.join("checkpoints");
                    std::fs::create_dir_all(&ckpt)
                        .map_err(|e| Error::Io { path: ckpt.display().to_string(), source: e })?;
                    tensile_nn::save_weights(model, &ckpt.join("best.safetensors"))?;
                }
            }
        }
        // A finite evaluation is a good state to roll back to.
        if train_loss.is_finite() && val_loss.is_finite() {
            *snapshot = take_snapshot(model, opt, callbacks)?;
        }
        let stop = with_ctx(model, opt, st, self.run_dir.as_deref(), |ctx| {
            ctx.epoch = epoch;
            for cb in callbacks.iter_mut() {
                cb.on_evaluation(ctx, &mut record)?;
            }
            record.events.append(ctx.events);
            Ok(ctx.stop.take())
        })?;
        st.history.epochs.push(record);
        if let Some(dir) = &self.run_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
            st.history.write_csv(dir)?;
            // Refreshed every evaluation, so a person can watch the run.
            write_curves(&st.history, monitor, dir)?;
        }
        Ok(stop)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        model: &mut dyn Module,
        (test_data, n_features): (Option<&Dataset>, usize),
        task: &Task,
        metric_defs: &[Box<dyn Metric>],
        st: &LoopState,
        best_weights: Option<Vec<Tensor>>,
        reason: StopReason,
        (scaler, target_scaler): (Option<FeatureScaler>, Option<TargetScaler>),
    ) -> Result<TrainResult> {
        let mut history = st.history.clone();
        if self.config.restore_best
            && let (Some(best), Some((epoch, value))) = (&best_weights, st.best)
        {
            set_weights(model, best)?;
            if let Some(last) = history.epochs.last_mut() {
                last.events.push(Event {
                    step: st.step,
                    epoch: last.epoch,
                    kind: EventKind::BestRestored,
                    message: format!(
                        "restored the best weights, from epoch {epoch} ({} = {value:.6})",
                        self.config.monitor
                    ),
                });
            }
        }
        model.set_training(false);
        let test = match test_data {
            Some(test) => {
                check_compatible(task, n_features, test, "test")?;
                let mut ds = test.clone();
                if let Some(s) = &scaler {
                    s.transform_in_place(ds.features_mut())?;
                }
                let rows: Vec<usize> = (0..ds.len()).collect();
                let batch = self.config.batch_size.max(256);
                let (loss, outputs) = evaluate_rows(model, &ds, &rows, task, batch, target_scaler.as_ref())?;
                let mut values = std::collections::BTreeMap::new();
                values.insert("test_loss".to_string(), loss);
                for m in metric_defs {
                    values.insert(format!("test_{}", m.name()), m.compute(&outputs));
                }
                Some(values)
            }
            None => None,
        };
        if let Some(dir) = &self.run_dir {
            history.write_csv(dir)?;
            write_curves(&history, &self.config.monitor, dir)?;
        }
        let diagnosis = diagnose(&history, &self.config.monitor);
        Ok(TrainResult { history, best: st.best, stop: reason, test, scaler, target_scaler, diagnosis })
    }
}

fn with_ctx<R>(
    model: &dyn Module,
    opt: &mut dyn Optimizer,
    st: &mut LoopState,
    run_dir: Option<&Path>,
    f: impl FnOnce(&mut Context) -> Result<R>,
) -> Result<R> {
    let mut ctx = Context {
        model,
        optimizer: opt,
        history: &st.history,
        events: &mut st.pending_events,
        epoch: st.epochs_done + 1,
        step: st.step,
        lr_scale: st.divergence.lr_scale,
        run_dir,
        stop: None,
        checkpoint: false,
    };
    f(&mut ctx)
}

/// Loss and outputs of `model` over `rows`, in batches, with no graph recorded. With `target`,
/// the model predicts the scaled target: its outputs are mapped back first, so the loss and
/// outputs are in the units of `ds`'s (unscaled) targets.
pub(crate) fn evaluate_rows(
    model: &dyn Module,
    ds: &Dataset,
    rows: &[usize],
    task: &Task,
    batch_size: usize,
    target: Option<&TargetScaler>,
) -> Result<(f64, Outputs)> {
    let _guard = no_grad();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut loss_sum = 0.0;
    let mut collected: Vec<f32> = Vec::new();
    for chunk in rows.chunks(batch_size.max(1)) {
        let (xt, yt) = batch_tensors(ds, task, chunk, &mut x, &mut y)?;
        let mut out = model.forward(&xt)?;
        if let Some(t) = target {
            let (mul, add) = t.inverse();
            out = out.affine(mul, add)?;
        }
        loss_sum += batch_loss(task, &out, &yt)?.item()? * chunk.len() as f64;
        collected.extend(out.to_vec::<f32>()?);
    }
    let outputs = outputs(task, ds, rows, collected)?;
    Ok((loss_sum / rows.len().max(1) as f64, outputs))
}

fn add_grads(mut a: GradStore, b: GradStore, params: &[(String, Tensor)]) -> Result<GradStore> {
    for (_, p) in params {
        match (a.get(p).cloned(), b.get(p)) {
            (Some(x), Some(y)) => a.insert(p, x.add(y)?),
            (None, Some(y)) => a.insert(p, y.clone()),
            _ => {}
        }
    }
    Ok(a)
}

/// A loss and accuracy summary, for callers that only need those.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: Option<f64>,
}

/// Loss (and accuracy for classifiers) of `model` over every row of `ds` (already preprocessed).
pub fn evaluate(model: &dyn Module, ds: &Dataset, batch_size: usize) -> Result<Evaluation> {
    let task = task_of(ds)?;
    let rows: Vec<usize> = (0..ds.len()).collect();
    let (loss, outputs) = evaluate_rows(model, ds, &rows, &task, batch_size, None)?;
    let accuracy = matches!(task, Task::Classification { .. }).then(|| crate::metrics::Accuracy.compute(&outputs));
    Ok(Evaluation { loss, accuracy })
}
