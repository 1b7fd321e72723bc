//! A plain-words diagnosis of a finished (or interrupted) run, read from its [`History`]: where
//! the best epoch was, whether and when the model began to overfit, whether it underfits, has
//! plateaued, trains with too high a learning rate or diverged, and whether it stopped early.
//!
//! [`diagnose`] returns [`Finding`]s, each one sentence with the numbers it rests on (also kept
//! as `evidence` for the report). The rules are fixed thresholds on the recorded values, so the
//! same history always gives the same findings. Non-finite values are skipped by every rule
//! except the divergence rule, which exists to report them.
//!
//! The rules (constants below; `n` is the number of epochs with the values in question):
//!
//! - **BestEpoch**: the epoch with the best finite value of the monitored metric (the earliest on
//!   ties, as early stopping counts it).
//! - **EarlyStopped**: the run recorded an `EarlyStop` event.
//! - **Divergence**: the run recorded non-finite losses or gradients or rollbacks, or an epoch's
//!   training or validation loss is not finite.
//! - **LearningRateTooHigh**, any of: (a) the last epoch's training loss is more than
//!   [`RISE`] (relative) above the first epoch's; (b) with at least 4 epochs, training loss rose
//!   by more than [`RISE`] from one epoch to the next in at least a third of the transitions (and
//!   at least twice); (c) with at least 40 recorded steps, the step losses averaged over 20
//!   equal blocks rose by more than [`STEP_RISE`] between consecutive blocks in at least a third
//!   of the transitions. Block averages are used because single mini-batch losses are noisy in
//!   healthy training too.
//! - **Overfitting**: let `b` be the first epoch with the lowest validation loss. At least
//!   [`OVERFIT_EPOCHS`] epochs follow `b`, the validation loss of each of the last
//!   [`OVERFIT_EPOCHS`] epochs exceeds the minimum by more than [`MARGIN`] (relative), and the
//!   training loss at the last epoch is more than [`MARGIN`] below its value at `b`. Overfitting
//!   began at the epoch after `b`. Requiring the rise to last to the end of the run (not a blip)
//!   and training loss to fall meanwhile separates overfitting from noise and from instability.
//! - **Underfitting**: at least 3 epochs, no learning-rate finding, and the training loss (and
//!   validation loss, when recorded) of the last epoch is within [`UNDERFIT_CHANGE`] (relative)
//!   of the first epoch's: both stayed where they started.
//! - **Plateau**: more than [`PLATEAU_WINDOW`] epochs, and the best monitored value of the last
//!   [`PLATEAU_WINDOW`] epochs improves on the best before them by at most [`PLATEAU_MIN_REL`]
//!   (relative). Reported only when no other problem (divergence, learning rate, overfitting,
//!   underfitting, early stop) already explains the lack of progress.
//! - **Healthy**: at least 3 epochs and none of the problems above.
//!
//! Findings come in this order: BestEpoch, EarlyStopped, Divergence, LearningRateTooHigh,
//! Overfitting, Underfitting, Plateau, Healthy.

use serde::{Deserialize, Serialize};

use crate::history::{EventKind, History, Mode};

/// Relative margin by which validation loss must stay above its minimum, and training loss must
/// fall, for overfitting.
pub const MARGIN: f64 = 0.02;
/// Epochs after the best one that overfitting needs to be called, and over which the raised
/// validation loss must persist.
pub const OVERFIT_EPOCHS: usize = 3;
/// Largest relative change of both losses from the first epoch to the last that still counts as
/// "stayed where they started" (underfitting).
pub const UNDERFIT_CHANGE: f64 = 0.10;
/// Epochs over which a plateau is judged.
pub const PLATEAU_WINDOW: usize = 5;
/// Smallest relative improvement over [`PLATEAU_WINDOW`] epochs that is not a plateau.
pub const PLATEAU_MIN_REL: f64 = 1e-3;
/// Relative epoch-to-epoch rise of the training loss that counts as a rise.
pub const RISE: f64 = 0.02;
/// Relative rise between consecutive block averages of step losses that counts as a rise.
pub const STEP_RISE: f64 = 0.10;
/// Number of blocks the step losses are averaged over.
const STEP_BLOCKS: usize = 20;

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FindingKind {
    BestEpoch { epoch: usize },
    Overfitting { began_at_epoch: usize },
    Underfitting,
    Plateau { since_epoch: usize },
    LearningRateTooHigh,
    Divergence { first_epoch: usize },
    EarlyStopped { at_epoch: usize },
    Healthy,
}

/// One observation about a run: one plain-English sentence and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub message: String,
    /// `(name, value)` of each number the message cites.
    pub evidence: Vec<(String, f64)>,
}

impl Finding {
    fn new(kind: FindingKind, message: String, evidence: &[(&str, f64)]) -> Finding {
        Finding { kind, message, evidence: evidence.iter().map(|&(k, v)| (k.to_string(), v)).collect() }
    }

    /// Whether this finding is a problem (not BestEpoch, EarlyStopped or Healthy).
    pub fn is_problem(&self) -> bool {
        !matches!(self.kind, FindingKind::BestEpoch { .. } | FindingKind::EarlyStopped { .. } | FindingKind::Healthy)
    }
}

/// A number in a sentence: three decimals for ordinary magnitudes, three significant digits in
/// exponent form for very small or large ones.
fn num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if (0.01..1e5).contains(&a) {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `(epoch, value)` of the finite values of `key`.
fn finite(history: &History, key: &str) -> Vec<(usize, f64)> {
    history.values(key).into_iter().filter(|p| p.1.is_finite()).collect()
}

/// The finite value of `key` at `epoch`.
fn at(history: &History, key: &str, epoch: usize) -> Option<f64> {
    history.epochs.iter().find(|e| e.epoch == epoch).and_then(|e| e.get(key)).filter(|v| v.is_finite())
}

/// Reads the history and says, in plain words, how training went. `monitor` is the value early
/// stopping and best-weight selection watched (e.g. `val_loss`, `val_accuracy`). See the module
/// doc for the rules. An empty history gives no findings.
pub fn diagnose(history: &History, monitor: &str) -> Vec<Finding> {
    if history.epochs.is_empty() {
        return Vec::new();
    }
    let mode = Mode::for_metric(monitor);
    let restored = history.events().any(|e| e.kind == EventKind::BestRestored);
    let best = history.best(monitor, mode);
    let mut out = Vec::new();

    if let Some((epoch, value)) = best {
        let last = history.epochs.last().map_or(epoch, |e| e.epoch);
        let tail = if restored { ", and its weights were restored at the end" } else { "" };
        out.push(Finding::new(
            FindingKind::BestEpoch { epoch },
            format!("The best {monitor}, {}, was reached at epoch {epoch} of {last}{tail}.", num(value)),
            &[("epoch", epoch as f64), (monitor, value)],
        ));
    }
    let early = early_stopped(history);
    out.extend(early.clone());
    out.extend(divergence(history));
    let lr = lr_too_high(history);
    out.extend(lr.clone());
    let overfit = overfitting(history, best.filter(|_| restored).map(|b| b.0));
    out.extend(overfit.clone());
    let underfit = if lr.is_none() { underfitting(history) } else { None };
    out.extend(underfit);
    if !out.iter().any(Finding::is_problem) && early.is_none() {
        out.extend(plateau(history, monitor, mode));
    }
    let epochs = history.epochs.len();
    if epochs >= 3 && !out.iter().any(Finding::is_problem) {
        out.push(healthy(history));
    }
    out
}

fn early_stopped(history: &History) -> Option<Finding> {
    let e = history.events().find(|e| e.kind == EventKind::EarlyStop)?;
    let reason = e.message.trim_end_matches('.');
    Some(Finding::new(
        FindingKind::EarlyStopped { at_epoch: e.epoch },
        format!("Training stopped early after epoch {}: {reason}.", e.epoch),
        &[("epoch", e.epoch as f64)],
    ))
}

fn divergence(history: &History) -> Option<Finding> {
    let count = |k: EventKind| history.events().filter(|e| e.kind == k).count();
    let (losses, grads, rollbacks, skipped, lowered) = (
        count(EventKind::NonFiniteLoss),
        count(EventKind::NonFiniteGradient),
        count(EventKind::Rollback),
        count(EventKind::SkippedStep),
        count(EventKind::LearningRateChanged),
    );
    let bad_epochs: Vec<usize> = history
        .epochs
        .iter()
        .filter(|e| ["train_loss", "val_loss"].iter().any(|k| e.get(k).is_some_and(|v| !v.is_finite())))
        .map(|e| e.epoch)
        .collect();
    let first_event = history
        .events()
        .find(|e| matches!(e.kind, EventKind::NonFiniteLoss | EventKind::NonFiniteGradient | EventKind::Rollback));
    let first_epoch = match (first_event.map(|e| e.epoch), bad_epochs.first()) {
        (Some(a), Some(&b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(&b)) => b,
        (None, None) => return None,
    };
    let mut parts = Vec::new();
    if losses > 0 {
        parts.push(plural(losses, "non-finite loss", "non-finite losses"));
    }
    if grads > 0 {
        parts.push(plural(grads, "non-finite gradient", "non-finite gradients"));
    }
    if rollbacks > 0 {
        parts.push(plural(rollbacks, "rollback", "rollbacks"));
    }
    if skipped > 0 {
        parts.push(plural(skipped, "skipped step", "skipped steps"));
    }
    let mut message = String::from("Training diverged: ");
    if let Some(last) = parts.pop() {
        let list = if parts.is_empty() { last } else { format!("{} and {last}", parts.join(", ")) };
        message.push_str(&list);
        if let Some(e) = first_event {
            message.push_str(&format!(", the first at step {} (epoch {})", e.step, e.epoch));
        }
        if !bad_epochs.is_empty() {
            let n = plural(bad_epochs.len(), "epoch", "epochs");
            message.push_str(&format!("; {n} ended with a non-finite loss"));
        }
    } else {
        let n = plural(bad_epochs.len(), "epoch", "epochs");
        message.push_str(&format!("the loss was not finite in {n}, the first being epoch {first_epoch}"));
    }
    if rollbacks > 0 && lowered > 0 {
        let times = if lowered == 1 { "once".to_string() } else { format!("{lowered} times") };
        message.push_str(&format!(", and the learning rate was lowered {times}"));
    }
    message.push('.');
    Some(Finding::new(
        FindingKind::Divergence { first_epoch },
        message,
        &[
            ("first_epoch", first_epoch as f64),
            ("non_finite_losses", losses as f64),
            ("non_finite_gradients", grads as f64),
            ("rollbacks", rollbacks as f64),
            ("skipped_steps", skipped as f64),
            ("non_finite_epochs", bad_epochs.len() as f64),
        ],
    ))
}

fn lr_too_high(history: &History) -> Option<Finding> {
    let train = finite(history, "train_loss");
    let mut reasons = Vec::new();
    let mut evidence: Vec<(&str, f64)> = Vec::new();
    if let (Some(&(e0, first)), Some(&(e1, last))) = (train.first(), train.last())
        && e1 > e0
        && last - first > RISE * first.abs()
    {
        reasons.push(format!(
            "training loss ended at {} in epoch {e1}, above its {} in epoch {e0}",
            num(last),
            num(first)
        ));
        evidence.extend([("train_loss_first", first), ("train_loss_last", last)]);
    }
    if train.len() >= 4 {
        let rises: Vec<(usize, f64, f64)> = train
            .windows(2)
            .filter(|w| w[1].1 - w[0].1 > RISE * w[0].1.abs())
            .map(|w| (w[1].0, w[0].1, w[1].1))
            .collect();
        let transitions = train.len() - 1;
        if rises.len() >= 2 && rises.len() * 3 >= transitions {
            let (e, a, b) = rises
                .iter()
                .copied()
                .max_by(|x, y| (x.2 - x.1).total_cmp(&(y.2 - y.1)).then(y.0.cmp(&x.0)))
                .expect("internal: rises is not empty");
            reasons.push(format!(
                "training loss rose in {} of {transitions} epochs (the largest rise, into epoch {e}, from {} to {})",
                rises.len(),
                num(a),
                num(b)
            ));
            evidence.extend([
                ("epochs_with_rising_train_loss", rises.len() as f64),
                ("epoch_transitions", transitions as f64),
            ]);
        }
    }
    let steps: Vec<f64> = history.steps.iter().map(|s| s.loss).filter(|l| l.is_finite()).collect();
    if steps.len() >= 2 * STEP_BLOCKS {
        let block = steps.len() / STEP_BLOCKS;
        let means: Vec<f64> = steps.chunks_exact(block).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
        let rises = means.windows(2).filter(|w| w[1] - w[0] > STEP_RISE * w[0].abs()).count();
        let transitions = means.len() - 1;
        if rises >= 2 && rises * 3 >= transitions {
            reasons.push(format!(
                "the step losses, averaged over blocks of {block} steps, rose by more than {}% between {rises} of {transitions} consecutive blocks",
                STEP_RISE * 100.0
            ));
            evidence.extend([("step_blocks_rising", rises as f64), ("step_block_transitions", transitions as f64)]);
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Finding::new(
        FindingKind::LearningRateTooHigh,
        format!("The learning rate looks too high: {}; try one 3 to 10 times lower.", reasons.join("; ")),
        &evidence,
    ))
}

fn overfitting(history: &History, restored_epoch: Option<usize>) -> Option<Finding> {
    let val = finite(history, "val_loss");
    let (b, &(best_epoch, v_best)) =
        val.iter().enumerate().min_by(|x, y| x.1.1.total_cmp(&y.1.1).then(x.0.cmp(&y.0)))?;
    let after = &val[b + 1..];
    if after.len() < OVERFIT_EPOCHS {
        return None;
    }
    let threshold = v_best + MARGIN * v_best.abs();
    if !after[after.len() - OVERFIT_EPOCHS..].iter().all(|p| p.1 > threshold) {
        return None;
    }
    let &(last_epoch, v_last) = after.last().expect("internal: after is not empty");
    let t_best = at(history, "train_loss", best_epoch)?;
    let t_last = at(history, "train_loss", last_epoch)?;
    if t_best - t_last <= MARGIN * t_best.abs() {
        return None;
    }
    let began = after[0].0;
    let tail = match restored_epoch {
        Some(e) => format!("; the best weights, from epoch {e}, were restored"),
        None => String::new(),
    };
    Some(Finding::new(
        FindingKind::Overfitting { began_at_epoch: began },
        format!(
            "Overfitting began at epoch {began}: validation loss rose from {} to {} over the next {} while training loss kept falling ({} to {}){tail}.",
            num(v_best),
            num(v_last),
            plural(last_epoch - best_epoch, "epoch", "epochs"),
            num(t_best),
            num(t_last),
        ),
        &[
            ("began_at_epoch", began as f64),
            ("val_loss_best", v_best),
            ("val_loss_last", v_last),
            ("train_loss_at_best", t_best),
            ("train_loss_last", t_last),
        ],
    ))
}

/// Relative change from `first` to `last` (positive when it fell).
fn fall(first: f64, last: f64) -> f64 {
    if first == 0.0 { 0.0 } else { (first - last) / first.abs() }
}

fn underfitting(history: &History) -> Option<Finding> {
    let train = finite(history, "train_loss");
    let val = finite(history, "val_loss");
    if history.epochs.len() < 3 || train.len() < 3 {
        return None;
    }
    let (t0, t1) = (train[0].1, train[train.len() - 1].1);
    let flat = |a: f64, b: f64| fall(a, b).abs() < UNDERFIT_CHANGE;
    if !flat(t0, t1) {
        return None;
    }
    let mut evidence = vec![("train_loss_first", t0), ("train_loss_last", t1)];
    let val_part = match (val.first(), val.last()) {
        (Some(&(_, v0)), Some(&(_, v1))) if val.len() >= 2 => {
            if !flat(v0, v1) {
                return None;
            }
            evidence.extend([("val_loss_first", v0), ("val_loss_last", v1)]);
            format!(" and validation loss at {} (from {})", num(v1), num(v0))
        }
        _ => String::new(),
    };
    Some(Finding::new(
        FindingKind::Underfitting,
        format!(
            "Underfitting: after {} epochs training loss is still {} (it started at {}){val_part}, both within {}% of where they began; a larger model, a higher learning rate or more epochs may help.",
            history.epochs.len(),
            num(t1),
            num(t0),
            UNDERFIT_CHANGE * 100.0
        ),
        &evidence,
    ))
}

fn plateau(history: &History, monitor: &str, mode: Mode) -> Option<Finding> {
    let values = finite(history, monitor);
    if values.len() <= PLATEAU_WINDOW {
        return None;
    }
    let (before, recent) = values.split_at(values.len() - PLATEAU_WINDOW);
    let best_of = |s: &[(usize, f64)]| -> (usize, f64) {
        let mut best = s[0];
        for &p in &s[1..] {
            if mode.is_better(p.1, best.1) {
                best = p;
            }
        }
        best
    };
    let (e_before, v_before) = best_of(before);
    let (_, v_recent) = best_of(recent);
    let gain = match mode {
        Mode::Min => v_before - v_recent,
        Mode::Max => v_recent - v_before,
    };
    if gain > PLATEAU_MIN_REL * v_before.abs() {
        return None;
    }
    Some(Finding::new(
        FindingKind::Plateau { since_epoch: e_before },
        format!(
            "The monitored {monitor} has plateaued: its best over the last {PLATEAU_WINDOW} epochs ({}) is no more than {}% better than its best before them ({}, at epoch {e_before}); lowering the learning rate or stopping earlier would save time.",
            num(v_recent),
            PLATEAU_MIN_REL * 100.0,
            num(v_before)
        ),
        &[("since_epoch", e_before as f64), ("best_before", v_before), ("best_recent", v_recent)],
    ))
}

fn healthy(history: &History) -> Finding {
    let train = finite(history, "train_loss");
    let val = finite(history, "val_loss");
    let n = history.epochs.len();
    let mut evidence = Vec::new();
    let mut parts = Vec::new();
    if let (Some(a), Some(b)) = (train.first(), train.last()) {
        parts.push(format!("training loss went from {} to {}", num(a.1), num(b.1)));
        evidence.extend([("train_loss_first", a.1), ("train_loss_last", b.1)]);
    }
    if let (Some(a), Some(b)) = (val.first(), val.last()) {
        parts.push(format!("validation loss from {} to {}", num(a.1), num(b.1)));
        evidence.extend([("val_loss_first", a.1), ("val_loss_last", b.1)]);
    }
    let what = if parts.is_empty() { String::new() } else { format!("{} over {n} epochs, ", parts.join(" and ")) };
    Finding::new(
        FindingKind::Healthy,
        format!("Training looks healthy: {what}with no sign of overfitting, underfitting, a plateau or instability."),
        &evidence,
    )
}
