//! Learning-rate schedules: a [`Schedule`] (plain data, as a run config states it), an optional
//! linear [`Warmup`] in front of it, and the [`Scheduler`] that walks it and sets an optimizer's
//! rate.
//!
//! Each schedule gives the rate PyTorch's scheduler of the same name gives, by its closed form:
//!
//! | schedule | rate at step `t` (base rate `b`) | PyTorch | steps per |
//! | --- | --- | --- | --- |
//! | `Constant` | `b` | — | epoch |
//! | `Step` | `b * gamma^floor(t / step_size)` | `StepLR` | epoch |
//! | `MultiStep` | `b * gamma^(milestones <= t)` | `MultiStepLR` | epoch |
//! | `Exponential` | `b * gamma^t` | `ExponentialLR` | epoch |
//! | `Cosine` | `eta_min + (b - eta_min) * (1 + cos(pi t / t_max)) / 2` | `CosineAnnealingLR` | epoch |
//! | `CosineWarmRestarts` | the same within each cycle of `t_0`, `t_0 * t_mult`, … steps | `CosineAnnealingWarmRestarts` | epoch |
//! | `OneCycle` | up from `max_lr / div_factor` to `max_lr`, down to that `/ final_div_factor` | `OneCycleLR` | batch |
//! | `ReduceOnPlateau` | `b`, times `factor` after `patience` epochs without improvement | `ReduceLROnPlateau` | epoch |
//!
//! The last column is the default [`StepUnit`]; [`ScheduleConfig::unit`] can override it and the
//! trainer decides when to call [`Scheduler::step`]. The rate for the first step (or epoch) is
//! `lr_at(0)`; after `n` calls to `step` it is `lr_at(n)`, as with PyTorch's `scheduler.step()`.
//!
//! Warmup is PyTorch's `SequentialLR([LinearLR(start_factor, 1.0, steps), main], [steps])`:
//! for `t < steps` the rate climbs linearly from `start_factor` times the main schedule's first
//! rate towards it; from then on the main schedule runs from its own step 0.
//!
//! Not supported: `OneCycleLR`'s momentum cycling (equivalent to `cycle_momentum=False`).
//! Deliberate differences: `OneCycle` holds its final rate after `total_steps` (PyTorch raises);
//! `Cosine` continues its cosine beyond `t_max`, as PyTorch does, so set `t_max` to the run
//! length; a non-finite metric counts as a bad epoch for `ReduceOnPlateau` and never becomes its
//! best (PyTorch would keep a `-inf` loss as best forever).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::optim::Optimizer;

/// How the learning rate changes over steps (see the module doc for the formulas).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Constant,
    Step {
        step_size: u64,
        gamma: f64,
    },
    MultiStep {
        milestones: Vec<u64>,
        gamma: f64,
    },
    Exponential {
        gamma: f64,
    },
    Cosine {
        t_max: u64,
        #[serde(default)]
        eta_min: f64,
    },
    CosineWarmRestarts {
        t_0: u64,
        #[serde(default = "one")]
        t_mult: u64,
        #[serde(default)]
        eta_min: f64,
    },
    OneCycle(OneCycleConfig),
    ReduceOnPlateau(PlateauConfig),
}

fn one() -> u64 {
    1
}

/// `OneCycleLR`'s settings. It ignores the optimizer's base rate: `max_lr` sets the scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneCycleConfig {
    pub max_lr: f64,
    pub total_steps: u64,
    /// Fraction of the steps spent going up.
    #[serde(default = "OneCycleConfig::default_pct_start")]
    pub pct_start: f64,
    #[serde(default)]
    pub anneal: Anneal,
    /// The first rate is `max_lr / div_factor`.
    #[serde(default = "OneCycleConfig::default_div_factor")]
    pub div_factor: f64,
    /// The last rate is `max_lr / div_factor / final_div_factor`.
    #[serde(default = "OneCycleConfig::default_final_div_factor")]
    pub final_div_factor: f64,
    /// Up, back down to the first rate, then to the last (fast.ai's original shape).
    #[serde(default)]
    pub three_phase: bool,
}

impl OneCycleConfig {
    /// PyTorch's defaults for everything but the two required settings.
    pub fn new(max_lr: f64, total_steps: u64) -> OneCycleConfig {
        OneCycleConfig {
            max_lr,
            total_steps,
            pct_start: Self::default_pct_start(),
            anneal: Anneal::Cos,
            div_factor: Self::default_div_factor(),
            final_div_factor: Self::default_final_div_factor(),
            three_phase: false,
        }
    }
    fn default_pct_start() -> f64 {
        0.3
    }
    fn default_div_factor() -> f64 {
        25.0
    }
    fn default_final_div_factor() -> f64 {
        1e4
    }

    fn lr_at(&self, t: u64) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let total = self.total_steps as f64;
        let up_end = self.pct_start * total - 1.0;
        let phases: &[(f64, f64, f64)] = if self.three_phase {
            &[
                (up_end, initial, self.max_lr),
                (2.0 * self.pct_start * total - 2.0, self.max_lr, initial),
                (total - 1.0, initial, min),
            ]
        } else {
            &[(up_end, initial, self.max_lr), (total - 1.0, self.max_lr, min)]
        };
        let t = t.min(self.total_steps.saturating_sub(1)) as f64;
        let mut start = 0.0;
        for (i, &(end, from, to)) in phases.iter().enumerate() {
            if t <= end || i == phases.len() - 1 {
                // A phase of length 0 (PyTorch divides 0 by 0 there) is at its start.
                let pct = if end == start { 0.0 } else { (t - start) / (end - start) };
                return self.anneal.interpolate(from, to, pct);
            }
            start = end;
        }
        unreachable!("internal: the last phase always matches")
    }
}

/// How one-cycle moves between two rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    #[default]
    Cos,
    Linear,
}

impl Anneal {
    /// From `from` (pct 0) to `to` (pct 1), with PyTorch's formulas.
    fn interpolate(self, from: f64, to: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Linear => (to - from) * pct + from,
        }
    }
}

/// `ReduceLROnPlateau`'s settings, PyTorch's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlateauConfig {
    /// Whether a lower (`Min`, a loss) or a higher (`Max`, an accuracy) metric is better.
    pub mode: PlateauMode,
    /// Each reduction multiplies the rate by this (< 1).
    pub factor: f64,
    /// Epochs without improvement tolerated; the next one reduces the rate.
    pub patience: u64,
    /// How much better than the best a metric must be to count as an improvement.
    pub threshold: f64,
    pub threshold_mode: ThresholdMode,
    /// Epochs after a reduction during which bad epochs are not counted.
    pub cooldown: u64,
    /// The rate never goes below this.
    pub min_lr: f64,
    /// A reduction smaller than this is skipped.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

impl PlateauConfig {
    /// PyTorch's `_is_better`; `best == None` stands for the worst value of the mode.
    fn is_better(&self, metric: f64, best: Option<f64>) -> bool {
        if !metric.is_finite() {
            return false;
        }
        let Some(best) = best else { return true };
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (self.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + self.threshold,
        }
    }

    /// The rate after `reductions` effective reductions from `base`, multiplied one at a time
    /// as PyTorch does (so the bits agree with its running value).
    fn lr_after(&self, base: f64, reductions: u32) -> f64 {
        (0..reductions).fold(base, |lr, _| (lr * self.factor).max(self.min_lr))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMode {
    #[default]
    Min,
    Max,
}

/// `Rel`: better means beyond `best * (1 ∓ threshold)`; `Abs`: beyond `best ∓ threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    #[default]
    Rel,
    Abs,
}

/// A linear ramp in front of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    /// Steps (in the schedule's unit) of warmup.
    pub steps: u64,
    /// The first rate as a fraction of the main schedule's first rate, in `[0, 1]`. A config
    /// that leaves it out starts from 0, as Hugging Face's warmups do (PyTorch's `LinearLR`
    /// defaults to 1/3).
    #[serde(default)]
    pub start_factor: f64,
}

/// Whether the trainer steps the schedule after every batch or after every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepUnit {
    Batch,
    Epoch,
}

/// A schedule with its optional warmup and step unit: what a run config holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleConfig {
    pub schedule: Schedule,
    pub warmup: Option<Warmup>,
    /// `None`: the schedule's own unit (batch for one-cycle, epoch for the others).
    pub unit: Option<StepUnit>,
}

impl ScheduleConfig {
    /// The unit the trainer should step in.
    pub fn unit(&self) -> StepUnit {
        self.unit.unwrap_or(match self.schedule {
            Schedule::OneCycle(_) => StepUnit::Batch,
            _ => StepUnit::Epoch,
        })
    }

    /// Checks every setting; the message names the schedule and the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |what: &str, field: &str, v: u64| {
            if v == 0 { invalid(what, format!("{field} must be > 0")) } else { Ok(()) }
        };
        let finite = |what: &str, field: &str, v: f64, lo: f64| {
            if v.is_finite() && v >= lo {
                Ok(())
            } else {
                invalid(what, format!("{field} must be finite and >= {lo}, got {v}"))
            }
        };
        match &self.schedule {
            Schedule::Constant => {}
            Schedule::Step { step_size, gamma } => {
                positive("Schedule::Step", "step_size", *step_size)?;
                finite("Schedule::Step", "gamma", *gamma, 0.0)?;
            }
            Schedule::MultiStep { gamma, .. } => finite("Schedule::MultiStep", "gamma", *gamma, 0.0)?,
            Schedule::Exponential { gamma } => finite("Schedule::Exponential", "gamma", *gamma, 0.0)?,
            Schedule::Cosine { t_max, eta_min } => {
                positive("Schedule::Cosine", "t_max", *t_max)?;
                finite("Schedule::Cosine", "eta_min", *eta_min, 0.0)?;
            }
            Schedule::CosineWarmRestarts { t_0, t_mult, eta_min } => {
                positive("Schedule::CosineWarmRestarts", "t_0", *t_0)?;
                positive("Schedule::CosineWarmRestarts", "t_mult", *t_mult)?;
                finite("Schedule::CosineWarmRestarts", "eta_min", *eta_min, 0.0)?;
            }
            Schedule::OneCycle(c) => {
                let what = "Schedule::OneCycle";
                positive(what, "total_steps", c.total_steps)?;
                finite(what, "max_lr", c.max_lr, 0.0)?;
                if !(0.0..=1.0).contains(&c.pct_start) {
                    return invalid(what, format!("pct_start must be in [0, 1], got {}", c.pct_start));
                }
                if !(c.div_factor > 0.0 && c.final_div_factor > 0.0) {
                    return invalid(what, "div_factor and final_div_factor must be > 0");
                }
            }
            Schedule::ReduceOnPlateau(c) => {
                let what = "Schedule::ReduceOnPlateau";
                if !(0.0..1.0).contains(&c.factor) {
                    return invalid(what, format!("factor must be in [0, 1), got {}", c.factor));
                }
                finite(what, "threshold", c.threshold, 0.0)?;
                finite(what, "min_lr", c.min_lr, 0.0)?;
                finite(what, "eps", c.eps, 0.0)?;
            }
        }
        if let Some(w) = &self.warmup
            && !(0.0..=1.0).contains(&w.start_factor)
        {
            return invalid("Warmup", format!("start_factor must be in [0, 1], got {}", w.start_factor));
        }
        Ok(())
    }
}

/// What [`Scheduler::state`] exports for an exact resume: integers, and the best metric so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Calls to `step` / `step_with_metric` so far.
    pub step: u64,
    /// Present exactly for `ReduceOnPlateau`.
    pub plateau: Option<PlateauState>,
}

/// `ReduceLROnPlateau`'s running state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlateauState {
    /// The best metric seen after warmup; `None` before the first finite one.
    pub best: Option<f64>,
    pub num_bad_epochs: u64,
    pub cooldown_counter: u64,
    /// Reductions applied so far; the rate is recomputed from them, so it resumes exactly.
    pub reductions: u32,
}

/// A schedule being walked: call [`Scheduler::apply`] before a step (or epoch) and
/// [`Scheduler::step`] or [`Scheduler::step_with_metric`] after it.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: ScheduleConfig,
    base_lr: f64,
    step: u64,
    plateau: PlateauState,
}

impl Scheduler {
    /// A scheduler at step 0; `base_lr` is the optimizer's configured rate.
    pub fn new(config: ScheduleConfig, base_lr: f64) -> Result<Scheduler> {
        config.validate()?;
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return invalid("Scheduler", format!("base_lr must be finite and >= 0, got {base_lr}"));
        }
        Ok(Scheduler { config, base_lr, step: 0, plateau: PlateauState::default() })
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }
    /// Calls to `step` so far.
    pub fn current_step(&self) -> u64 {
        self.step
    }

    /// The rate for the current step.
    pub fn lr(&self) -> f64 {
        self.lr_at(self.step)
    }

    /// The rate at `step`. For `ReduceOnPlateau`, past warmup, this is the rate its metrics have
    /// led to so far, whatever `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let warmup_steps = self.warmup_steps();
        if step < warmup_steps {
            let w = self.config.warmup.as_ref().expect("internal: warmup steps come from a warmup");
            let frac = w.start_factor + (1.0 - w.start_factor) * step as f64 / warmup_steps as f64;
            return self.main_lr(0) * frac;
        }
        self.main_lr(step - warmup_steps)
    }

    /// Advances one step (a batch or an epoch) and returns the new rate. For
    /// `ReduceOnPlateau` this only moves the warmup along; use [`Scheduler::step_with_metric`].
    pub fn step(&mut self) -> f64 {
        self.step += 1;
        self.lr()
    }

    /// Advances one step after an epoch whose monitored metric was `metric`, and returns the new
    /// rate. Only `ReduceOnPlateau` reads the metric, and only once warmup is over.
    pub fn step_with_metric(&mut self, metric: f64) -> f64 {
        if let Schedule::ReduceOnPlateau(c) = &self.config.schedule
            && self.step >= self.warmup_steps()
        {
            let s = &mut self.plateau;
            if c.is_better(metric, s.best) {
                s.best = Some(metric);
                s.num_bad_epochs = 0;
            } else {
                s.num_bad_epochs += 1;
            }
            if s.cooldown_counter > 0 {
                s.cooldown_counter -= 1;
                s.num_bad_epochs = 0;
            }
            if s.num_bad_epochs > c.patience {
                let old = c.lr_after(self.base_lr, s.reductions);
                let new = (old * c.factor).max(c.min_lr);
                if old - new > c.eps {
                    s.reductions += 1;
                }
                s.cooldown_counter = c.cooldown;
                s.num_bad_epochs = 0;
            }
        }
        self.step += 1;
        self.lr()
    }

    /// Sets `opt`'s learning rate to the current rate (groups follow in proportion).
    pub fn apply(&self, opt: &mut dyn Optimizer) {
        opt.set_learning_rate(self.lr());
    }

    pub fn state(&self) -> SchedulerState {
        let plateau = matches!(self.config.schedule, Schedule::ReduceOnPlateau(_)).then(|| self.plateau.clone());
        SchedulerState { step: self.step, plateau }
    }

    /// Restores a state from [`Scheduler::state`] of a scheduler with the same config.
    pub fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let is_plateau = matches!(self.config.schedule, Schedule::ReduceOnPlateau(_));
        match (&state.plateau, is_plateau) {
            (Some(p), true) => self.plateau = p.clone(),
            (None, false) => {}
            (Some(_), false) => {
                return invalid("Scheduler::load_state", "the state is from a reduce-on-plateau schedule");
            }
            (None, true) => return invalid("Scheduler::load_state", "the state has no reduce-on-plateau part"),
        }
        self.step = state.step;
        Ok(())
    }

    fn warmup_steps(&self) -> u64 {
        self.config.warmup.as_ref().map_or(0, |w| w.steps)
    }

    /// The main schedule's rate `t` steps after warmup.
    fn main_lr(&self, t: u64) -> f64 {
        let b = self.base_lr;
        match &self.config.schedule {
            Schedule::Constant => b,
            Schedule::Step { step_size, gamma } => b * gamma.powf((t / step_size) as f64),
            Schedule::MultiStep { milestones, gamma } => {
                b * gamma.powf(milestones.iter().filter(|&&m| m <= t).count() as f64)
            }
            Schedule::Exponential { gamma } => b * gamma.powf(t as f64),
            Schedule::Cosine { t_max, eta_min } => cosine(b, *eta_min, t as f64, *t_max as f64),
            Schedule::CosineWarmRestarts { t_0, t_mult, eta_min } => {
                let (t_cur, t_i) = restart_position(t, *t_0, *t_mult);
                cosine(b, *eta_min, t_cur as f64, t_i as f64)
            }
            Schedule::OneCycle(c) => c.lr_at(t),
            Schedule::ReduceOnPlateau(c) => c.lr_after(b, self.plateau.reductions),
        }
    }
}

/// `eta_min + (b - eta_min) * (1 + cos(pi * t / period)) / 2`, in PyTorch's operation order.
fn cosine(b: f64, eta_min: f64, t: f64, period: f64) -> f64 {
    eta_min + (b - eta_min) * (1.0 + (PI * t / period).cos()) / 2.0
}

/// `(t_cur, t_i)`: the position within the current cycle and its length. Integer arithmetic, as
/// PyTorch's stepping does (its float-log closed form can land a step off at cycle ends).
fn restart_position(t: u64, t_0: u64, t_mult: u64) -> (u64, u64) {
    if t_mult == 1 {
        return (t % t_0, t_0);
    }
    let (mut t_cur, mut t_i) = (t, t_0);
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i = t_i.saturating_mul(t_mult);
    }
    (t_cur, t_i)
}
