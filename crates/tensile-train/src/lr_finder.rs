//! The learning-rate range test (Leslie Smith, "Cyclical Learning Rates for Training Neural
//! Networks", 2017), as fastai's `lr_find` and Lightning's `Tuner.lr_find` run it: train for a
//! few steps while the learning rate grows exponentially from tiny to huge, record the loss of
//! each batch, and read a good rate off the curve.
//!
//! It uses what a run would use — the trainer config's optimizer (the same parameter groups the
//! trainer builds), batch size, gradient clipping, seed, split, feature scaling and target
//! standardization on the training rows (losses in the target's units), and the task helpers of [`crate::task`] — but not the schedule (the finder sets the rate
//! itself), gradient accumulation or divergence recovery (a diverging loss is what ends the test).
//! Every parameter, buffer and module random stream is copied before and put back afterwards,
//! even when the test fails, so the caller's model is unchanged bit for bit; only the training
//! mode is left on, because [`Module`] has no way to ask which mode it was in (modules start in
//! training mode).
//!
//! The curve and its suggestion can be drawn with [`LrFinderResult::write_plots`]
//! ([`crate::plot::write_lr_finder_plot`]).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tensile_core::{Rng, Tensor};
use tensile_data::{Dataset, Loader, TargetScaler, train_validation_split};
use tensile_nn::optim::{ParamGroup, decay_split};
use tensile_nn::{Module, named_parameters, weights};

use crate::config::TrainerConfig;
use crate::error::{Error, Result};
use crate::metrics::Task;
use crate::task::{batch_loss, batch_tensors, task_of};

/// Settings of the range test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrFinderConfig {
    /// The rate of the first step.
    pub start_lr: f64,
    /// The rate of the last step, if the loss has not diverged by then.
    pub end_lr: f64,
    /// Steps (batches) from `start_lr` to `end_lr`; the rate is multiplied by the same factor
    /// at each step.
    pub num_steps: usize,
    /// Weight of the past in the exponential moving average of the loss (0 = no smoothing). The
    /// average is bias-corrected, as Adam's moments are, so early values are not pulled to 0.
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds this multiple of the best smoothed loss so far.
    pub diverge_factor: f64,
}

impl Default for LrFinderConfig {
    fn default() -> Self {
        LrFinderConfig { start_lr: 1e-7, end_lr: 10.0, num_steps: 100, smoothing: 0.98, diverge_factor: 4.0 }
    }
}

impl LrFinderConfig {
    /// Refuses settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, msg: String| Err(Error::Config { key, msg });
        if !(self.start_lr > 0.0 && self.start_lr.is_finite()) {
            return bad("lr_finder.start_lr", format!("must be a positive number, found {}", self.start_lr));
        }
        if !(self.end_lr > self.start_lr && self.end_lr.is_finite()) {
            return bad(
                "lr_finder.end_lr",
                format!("must be above start_lr ({}), found {}", self.start_lr, self.end_lr),
            );
        }
        if self.num_steps < 2 {
            return bad("lr_finder.num_steps", format!("must be at least 2, found {}", self.num_steps));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad("lr_finder.smoothing", format!("must be in [0, 1), found {}", self.smoothing));
        }
        if self.diverge_factor.is_nan() || self.diverge_factor <= 1.0 {
            return bad("lr_finder.diverge_factor", format!("must be above 1, found {}", self.diverge_factor));
        }
        Ok(())
    }

    /// The rate of step `i` (0-based): `start_lr * (end_lr / start_lr)^(i / (num_steps - 1))`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let t = i as f64 / (self.num_steps.max(2) - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// What the range test measured. `lrs[i]` is the rate of step `i` and `losses[i]` /
/// `raw_losses[i]` the loss of that step's batch, measured before the step with `lrs[i]` is
/// taken (as fastai and Lightning record it). When the test stopped early, the last point is
/// the one that diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFinderResult {
    pub lrs: Vec<f64>,
    /// The smoothed (bias-corrected moving average) loss.
    pub losses: Vec<f64>,
    /// The loss of each batch as computed.
    pub raw_losses: Vec<f64>,
    /// [`suggest`] applied to `lrs` and `losses`.
    pub suggestion: Option<f64>,
    /// The loss diverged (or was not finite) before `end_lr` was reached.
    pub stopped_early: bool,
}

impl LrFinderResult {
    /// Draws `lr_finder.png` and `lr_finder.svg` (smoothed loss against rate, the suggestion
    /// marked) into `dir`, creating it if needed.
    pub fn write_plots(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        crate::plot::write_lr_finder_plot(&self.lrs, &self.losses, self.suggestion, dir)
    }
}

/// The fraction of the first points [`suggest`] ignores.
pub const SKIP_FRACTION: f64 = 0.1;
/// The fewest points [`suggest`] reads a slope from.
pub const MIN_POINTS: usize = 10;

/// Suggests a learning rate from a range test's curve: the rate where the loss falls fastest
/// against `ln(lr)`.
///
/// The rule, in order:
/// 1. Keep the leading run of points with a positive, finite rate and a finite loss (a NaN ends
///    the usable curve).
/// 2. Drop the first [`SKIP_FRACTION`] of them (rounded up): at the smallest rates the weights
///    barely move and the moving average has seen only a few batches, so slopes there are
///    noise.
/// 3. Keep the remaining points up to the lowest loss: past it the loss rises towards
///    divergence, and a noisy dip there is no place to train. (This also drops the point that
///    stopped a diverging test, so `suggest(&r.lrs, &r.losses) == r.suggestion`.)
/// 4. With fewer than [`MIN_POINTS`] points left, there is no slope worth reading: `None`.
/// 5. Slopes by central differences (one-sided at the two ends) of the loss against `ln(lr)`;
///    the suggestion is the rate of the most negative one (the first, on ties), or `None` if no
///    slope is negative.
///
/// The steepest descent rather than the minimum was chosen, as fastai's `steep` and
/// Lightning's suggestion do: the minimum sits at the edge of divergence, while the steepest
/// point is where a step still helps most. Rates are expected to increase.
pub fn suggest(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let n = lrs.len().min(losses.len());
    let usable = (0..n).position(|i| !(lrs[i] > 0.0 && lrs[i].is_finite() && losses[i].is_finite())).unwrap_or(n);
    let skip = (usable as f64 * SKIP_FRACTION).ceil() as usize;
    if usable <= skip {
        return None;
    }
    let lowest = (skip..usable).fold(skip, |best, i| if losses[i] < losses[best] { i } else { best });
    let (lo, hi) = (skip, lowest);
    if hi + 1 - lo < MIN_POINTS {
        return None;
    }
    let mut steepest: Option<(usize, f64)> = None;
    for i in lo..=hi {
        let (a, b) = (i.saturating_sub(1).max(lo), (i + 1).min(hi));
        let dx = lrs[b].ln() - lrs[a].ln();
        if dx <= 0.0 {
            continue;
        }
        let slope = (losses[b] - losses[a]) / dx;
        if slope < 0.0 && steepest.is_none_or(|(_, s)| slope < s) {
            steepest = Some((i, slope));
        }
    }
    steepest.map(|(i, _)| lrs[i])
}

/// Runs the range test on `model` over the training rows of `data` (the rows the trainer keeps
/// for training when it splits `data` with `trainer_config`), then restores the model.
///
/// Batches are dealt by a loader seeded like the trainer's and cycled through as many epochs
/// as `cfg.num_steps` needs; every batch has `batch_size` rows (a short tail batch is dropped,
/// so batch size does not add noise to the curve) unless there are fewer training rows than
/// that. The test stops after `num_steps` steps, at a non-finite loss, or once the smoothed
/// loss passes `diverge_factor` times the best one.
pub fn lr_find(
    model: &mut dyn Module,
    data: &Dataset,
    trainer_config: &TrainerConfig,
    cfg: &LrFinderConfig,
) -> Result<LrFinderResult> {
    cfg.validate()?;
    trainer_config.validate()?;
    let saved = Saved::take(model)?;
    let result = run(model, data, trainer_config, cfg);
    // Restore even when the run failed; the run's error is the one worth reporting.
    let restored = saved.restore(model);
    let result = result?;
    restored?;
    Ok(result)
}

fn run(model: &mut dyn Module, data: &Dataset, tc: &TrainerConfig, cfg: &LrFinderConfig) -> Result<LrFinderResult> {
    let task = task_of(data)?;
    // The same streams as the trainer: fork 2 splits, fork 3 orders the batches.
    let root = Rng::seed(tc.seed);
    let stratify = tc.stratify && matches!(task, Task::Classification { .. });
    let (train_rows, _) = train_validation_split(data, tc.validation_split, stratify, &mut root.fork(2))?;
    let mut ds = data.clone();
    if let Some(s) = tc.scaling.fit(data, &train_rows)? {
        s.transform_in_place(ds.features_mut())?;
    }
    // The trainer's scaled regression target, with losses reported in the target's units.
    let mut loss_factor = 1.0;
    if tc.standardize_target && task == Task::Regression {
        let t = TargetScaler::fit(&ds, &train_rows)?;
        ds = t.transform_dataset(&ds)?;
        loss_factor = t.loss_factor();
    }

    let params = named_parameters(model);
    let groups = if tc.no_decay_on_bias_and_norm {
        decay_split(params.clone(), tc.optimizer.weight_decay())
    } else {
        vec![ParamGroup::new(params.clone())]
    };
    let mut opt = tc.optimizer.build(groups)?;
    let drop_last = train_rows.len() >= tc.batch_size;
    let mut loader = Loader::new(train_rows, tc.batch_size, true, drop_last, root.fork(3))?;
    model.set_training(true);

    let mut out = LrFinderResult {
        lrs: Vec::with_capacity(cfg.num_steps),
        losses: Vec::with_capacity(cfg.num_steps),
        raw_losses: Vec::with_capacity(cfg.num_steps),
        suggestion: None,
        stopped_early: false,
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut epoch = loader.epoch();
    let mut next_batch = 0;
    let mut average = 0.0;
    let mut best = f64::INFINITY;
    for i in 0..cfg.num_steps {
        if next_batch == epoch.len() {
            epoch = loader.epoch();
            next_batch = 0;
        }
        let rows = epoch.batch(next_batch).expect("internal: a loader epoch has at least one batch");
        next_batch += 1;
        let lr = cfg.lr_at(i);
        let (xt, yt) = batch_tensors(&ds, &task, rows, &mut x, &mut y)?;
        let loss = batch_loss(&task, &model.forward(&xt)?, &yt)?;
        let raw = loss.item()? * loss_factor;
        average = cfg.smoothing * average + (1.0 - cfg.smoothing) * raw;
        let smoothed = average / (1.0 - cfg.smoothing.powi(i as i32 + 1));
        out.lrs.push(lr);
        out.raw_losses.push(raw);
        out.losses.push(smoothed);
        if !smoothed.is_finite() || (i > 0 && smoothed > cfg.diverge_factor * best) {
            out.stopped_early = true;
            break;
        }
        best = best.min(smoothed);
        let mut grads = loss.backward()?;
        if let Some(clip) = &tc.clip {
            clip.apply(&params, &mut grads)?;
        }
        opt.set_learning_rate(lr);
        opt.step(&grads)?;
    }
    out.suggestion = suggest(&out.lrs, &out.losses);
    Ok(out)
}

/// Copies of everything training changes in a model: parameters, buffers and random streams.
struct Saved {
    tensors: Vec<Tensor>,
    rngs: Vec<(String, [u64; 4])>,
}

impl Saved {
    fn take(model: &dyn Module) -> Result<Saved> {
        let tensors =
            weights::named_tensors(model).iter().map(|(_, t)| t.deep_clone()).collect::<std::result::Result<_, _>>()?;
        let mut rngs = Vec::new();
        model.visit_rngs("", &mut |name, rng| {
            rngs.push((name.to_string(), rng.lock().unwrap_or_else(|e| e.into_inner()).state()));
        });
        Ok(Saved { tensors, rngs })
    }

    fn restore(&self, model: &dyn Module) -> Result<()> {
        for ((_, t), saved) in weights::named_tensors(model).iter().zip(&self.tensors) {
            t.assign_(saved)?;
        }
        model.visit_rngs("", &mut |name, rng| {
            if let Some((_, s)) = self.rngs.iter().find(|(n, _)| n == name) {
                *rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(*s);
            }
        });
        Ok(())
    }
}
