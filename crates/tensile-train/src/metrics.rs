//! Evaluation metrics, computed once over the whole validation (or test) set from the model's
//! outputs gathered there, never averaged over batches: the mean of per-batch F1 scores or R²
//! values is not the F1 or R² of the set, and even per-batch accuracy is biased when the last
//! batch is short.
//!
//! Everything works on plain slices, so metrics are pure functions that need no tensors:
//!
//! - classification: `logits` is `[N, C]` row-major (N samples, C classes), `labels` is `[N]`
//!   with values in `0..C`;
//! - regression: `predictions` and `targets` are `[N, T]` row-major (T outputs per sample).
//!
//! The [`Metric`] trait makes metrics pluggable; the trainer asks [`default_metrics`] for the
//! usual set of a task and stores each result in the epoch record as `val_<name>`.
//!
//! Conventions where a metric is undefined (all match scikit-learn's defaults, so numbers can be
//! checked against it):
//!
//! - An empty set gives `NaN` for every metric: there is nothing to score, and `NaN` cannot be
//!   mistaken for a real score (the history and plots skip non-finite values).
//! - Precision of a class that is never predicted, and recall of a class with no samples, are 0
//!   (scikit-learn's `zero_division=0`); F1 is 0 when precision and recall both are. Macro
//!   averages run over the classes that occur in the labels or the predictions, as
//!   scikit-learn's do when not given an explicit label list; a class absent from both says
//!   nothing about the model and is left out.
//! - R² of constant targets (total sum of squares 0) is 1 when the predictions are exact and 0
//!   otherwise (scikit-learn's `force_finite=True`), instead of ±∞ or `NaN`.
//! - Ranking ties go to the lower class index, as `argmax` does; a `NaN` score ranks below every
//!   number. So top-1 accuracy always equals accuracy.
//! - Labels outside `0..C` never count as correct and are left out of the confusion matrix;
//!   [`Outputs::classification`] rejects them up front.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::history::Mode;

/// A model's outputs over a whole evaluation set, with the true values.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// `logits`: `[N, C]`, `labels`: `[N]` in `0..C`.
    Classification { logits: Vec<f32>, n_classes: usize, labels: Vec<u32> },
    /// `predictions`, `targets`: `[N, T]` with `T = n_outputs`.
    Regression { predictions: Vec<f32>, targets: Vec<f32>, n_outputs: usize },
}

impl Outputs {
    /// Classification outputs, checked: `n_classes ≥ 1`, `logits.len() == labels.len() *
    /// n_classes`, every label in `0..n_classes`.
    pub fn classification(logits: Vec<f32>, n_classes: usize, labels: Vec<u32>) -> Result<Outputs> {
        if n_classes == 0 {
            return Err(invalid("n_classes", "must be at least 1".into()));
        }
        if logits.len() != labels.len() * n_classes {
            return Err(invalid(
                "logits",
                format!(
                    "expected {} values ({} samples x {n_classes} classes), found {}",
                    labels.len() * n_classes,
                    labels.len(),
                    logits.len()
                ),
            ));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= n_classes) {
            return Err(invalid("labels", format!("label {l} of sample {i} is not a class in 0..{n_classes}")));
        }
        Ok(Outputs::Classification { logits, n_classes, labels })
    }

    /// Regression outputs, checked: `n_outputs ≥ 1`, equal lengths, a whole number of samples.
    pub fn regression(predictions: Vec<f32>, targets: Vec<f32>, n_outputs: usize) -> Result<Outputs> {
        if n_outputs == 0 {
            return Err(invalid("n_outputs", "must be at least 1".into()));
        }
        if predictions.len() != targets.len() || !targets.len().is_multiple_of(n_outputs) {
            return Err(invalid(
                "predictions",
                format!(
                    "expected as many values as targets ({}, a multiple of {n_outputs} outputs), found {}",
                    targets.len(),
                    predictions.len()
                ),
            ));
        }
        Ok(Outputs::Regression { predictions, targets, n_outputs })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Outputs::Classification { labels, .. } => labels.len(),
            Outputs::Regression { targets, n_outputs, .. } => targets.len() / (*n_outputs).max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn invalid(key: &'static str, msg: String) -> Error {
    Error::Config { key, msg }
}

/// What kind of outputs a model produces, which decides the default metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    Classification { n_classes: usize },
    Regression,
}

/// A metric computed over a whole evaluation set.
pub trait Metric: Send {
    /// Short name without a split prefix (`accuracy`, `f1`, `rmse`); the trainer records it as
    /// `val_<name>`.
    fn name(&self) -> String;
    /// Whether larger or smaller is better.
    fn mode(&self) -> Mode;
    /// The value over `out`. `NaN` when `out` is empty or of the other task (a classification
    /// metric given regression outputs), so a misconfigured metric shows up as a gap rather than
    /// a plausible number.
    fn compute(&self, out: &Outputs) -> f64;
}

/// The usual metrics of a task: accuracy, macro F1, macro precision, macro recall (and top-5
/// accuracy when there are more than 5 classes, where it says something top-1 does not) for
/// classification; RMSE, MAE and R² for regression.
pub fn default_metrics(task: Task) -> Vec<Box<dyn Metric>> {
    match task {
        Task::Classification { n_classes } => {
            let mut m: Vec<Box<dyn Metric>> =
                vec![Box::new(Accuracy), Box::new(MacroF1), Box::new(MacroPrecision), Box::new(MacroRecall)];
            if n_classes > 5 {
                m.push(Box::new(TopKAccuracy { k: 5 }));
            }
            m
        }
        Task::Regression => vec![Box::new(Rmse), Box::new(Mae), Box::new(R2)],
    }
}

/// Computes every metric in `metrics` over `out`: `(name, value)` in order.
pub fn compute_all(metrics: &[Box<dyn Metric>], out: &Outputs) -> Vec<(String, f64)> {
    metrics.iter().map(|m| (m.name(), m.compute(out))).collect()
}

// ---------------------------------------------------------------------------------------------
// Classification

/// The rank key of a score: `NaN` below every number, so a model that outputs `NaN` is never
/// credited with a correct prediction by accident.
fn score(v: f32) -> f32 {
    if v.is_nan() { f32::NEG_INFINITY } else { v }
}

/// The predicted class of each row of `logits` `[N, C]`: the index of the largest score, the
/// first one on ties (as `Tensor::argmax`). Returns `[N]`.
pub fn predictions(logits: &[f32], n_classes: usize) -> Vec<u32> {
    if n_classes == 0 {
        return Vec::new();
    }
    logits
        .chunks_exact(n_classes)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate().skip(1) {
                if score(v) > score(row[best]) {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// Fraction of samples whose largest logit is at the true class. `logits` `[N, C]`, `labels`
/// `[N]`. `NaN` when `N = 0`.
pub fn accuracy(logits: &[f32], n_classes: usize, labels: &[u32]) -> f64 {
    top_k_accuracy(logits, n_classes, labels, 1)
}

/// Fraction of samples whose true class is among the `k` highest-scoring classes. A class with
/// the same score as the true class ranks before it when its index is lower (ties go to the
/// lower index, as in `argmax`), so ties are never counted in the model's favour twice and
/// `k = 1` equals [`accuracy`]. `logits` `[N, C]`, `labels` `[N]`. `NaN` when `N = 0`.
pub fn top_k_accuracy(logits: &[f32], n_classes: usize, labels: &[u32], k: usize) -> f64 {
    if labels.is_empty() || n_classes == 0 {
        return f64::NAN;
    }
    let hits = logits
        .chunks_exact(n_classes)
        .zip(labels)
        .filter(|&(row, &y)| {
            let y = y as usize;
            let Some(&sy) = row.get(y) else { return false };
            let sy = score(sy);
            let ahead = row.iter().enumerate().filter(|&(j, &v)| score(v) > sy || (score(v) == sy && j < y)).count();
            ahead < k
        })
        .count();
    hits as f64 / labels.len() as f64
}

/// Counts of (true class, predicted class) pairs: `C x C`, rows are true classes, columns
/// predicted classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub n_classes: usize,
    /// `[C, C]` row-major: `counts[t * C + p]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Samples of true class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.n_classes + p]
    }
    /// The row of true class `t`: `[C]`.
    pub fn row(&self, t: usize) -> &[u64] {
        &self.counts[t * self.n_classes..(t + 1) * self.n_classes]
    }
    /// Samples whose true class is `c`.
    pub fn support(&self, c: usize) -> u64 {
        self.row(c).iter().sum()
    }
    /// Samples predicted as `c`.
    pub fn predicted(&self, c: usize) -> u64 {
        (0..self.n_classes).map(|t| self.get(t, c)).sum()
    }
    /// Total number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Precision, recall, F1 and support of every class, with the conventions in the module doc.
    pub fn per_class(&self) -> Vec<ClassScores> {
        (0..self.n_classes)
            .map(|c| {
                let tp = self.get(c, c) as f64;
                let (predicted, support) = (self.predicted(c), self.support(c));
                let ratio = |den: u64| if den == 0 { 0.0 } else { tp / den as f64 };
                let (precision, recall) = (ratio(predicted), ratio(support));
                // 2·TP / (2·TP + FP + FN), which equals 2PR/(P+R) and is 0 (not NaN) when both are.
                let f1 = ratio(predicted + support) * 2.0;
                ClassScores { precision, recall, f1, support }
            })
            .collect()
    }
    /// Unweighted means of precision, recall and F1 over the classes that occur in the labels or
    /// the predictions. `NaN` for all three when there are no samples.
    pub fn macro_scores(&self) -> MacroScores {
        let present: Vec<ClassScores> = self
            .per_class()
            .into_iter()
            .enumerate()
            .filter(|&(c, ref s)| s.support > 0 || self.predicted(c) > 0)
            .map(|(_, s)| s)
            .collect();
        let mean = |f: fn(&ClassScores) -> f64| {
            if present.is_empty() { f64::NAN } else { present.iter().map(f).sum::<f64>() / present.len() as f64 }
        };
        MacroScores { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1) }
    }
}

/// The scores of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Samples whose true class this is.
    pub support: u64,
}

/// Macro-averaged precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MacroScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The confusion matrix of `logits` `[N, C]` against `labels` `[N]` (rows true, columns
/// predicted). Samples with a label outside `0..C` are left out.
pub fn confusion_matrix(logits: &[f32], n_classes: usize, labels: &[u32]) -> ConfusionMatrix {
    let mut counts = vec![0u64; n_classes * n_classes];
    for (p, &t) in predictions(logits, n_classes).into_iter().zip(labels) {
        if (t as usize) < n_classes {
            counts[t as usize * n_classes + p as usize] += 1;
        }
    }
    ConfusionMatrix { n_classes, counts }
}

/// Macro precision, recall and F1 of `logits` `[N, C]` against `labels` `[N]`; equal to
/// scikit-learn's `precision_recall_fscore_support(y, argmax, average="macro", zero_division=0)`.
pub fn macro_scores(logits: &[f32], n_classes: usize, labels: &[u32]) -> MacroScores {
    confusion_matrix(logits, n_classes, labels).macro_scores()
}

// ---------------------------------------------------------------------------------------------
// Regression

/// Mean absolute error over all `N·T` values. `NaN` when empty.
pub fn mae(predictions: &[f32], targets: &[f32]) -> f64 {
    mean(predictions.iter().zip(targets).map(|(&p, &t)| (p as f64 - t as f64).abs()))
}

/// Root of the mean squared error over all `N·T` values. `NaN` when empty.
pub fn rmse(predictions: &[f32], targets: &[f32]) -> f64 {
    mean(predictions.iter().zip(targets).map(|(&p, &t)| (p as f64 - t as f64).powi(2))).sqrt()
}

/// Coefficient of determination, `1 - SS_res / SS_tot`, computed per output and averaged over
/// the `T = n_outputs` outputs (scikit-learn's `uniform_average`). 1 is perfect, 0 is no better
/// than predicting the mean, negative is worse than that. An output whose targets are constant
/// scores 1 if predicted exactly and 0 otherwise. `NaN` when empty.
pub fn r2(predictions: &[f32], targets: &[f32], n_outputs: usize) -> f64 {
    let t = n_outputs;
    let n = targets.len().min(predictions.len()).checked_div(t).unwrap_or(0);
    if n == 0 {
        return f64::NAN;
    }
    let per_output = (0..t).map(|o| {
        let column = |v: &[f32]| (0..n).map(|i| v[i * t + o] as f64).collect::<Vec<f64>>();
        let (y, p) = (column(targets), column(predictions));
        let mean_y = y.iter().sum::<f64>() / n as f64;
        let ss_tot: f64 = y.iter().map(|v| (v - mean_y).powi(2)).sum();
        let ss_res: f64 = y.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum();
        if ss_tot == 0.0 { if ss_res == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / ss_tot }
    });
    per_output.sum::<f64>() / t as f64
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

// ---------------------------------------------------------------------------------------------
// The built-in metrics as `Metric`s

/// [`accuracy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Accuracy;
/// [`top_k_accuracy`], named `top<k>_accuracy`.
#[derive(Debug, Clone, Copy)]
pub struct TopKAccuracy {
    pub k: usize,
}
/// Macro precision ([`macro_scores`]), named `precision`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacroPrecision;
/// Macro recall ([`macro_scores`]), named `recall`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacroRecall;
/// Macro F1 ([`macro_scores`]), named `f1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacroF1;
/// [`mae`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Mae;
/// [`rmse`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Rmse;
/// [`r2`], named `r2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct R2;

fn classification(out: &Outputs, f: impl FnOnce(&[f32], usize, &[u32]) -> f64) -> f64 {
    match out {
        Outputs::Classification { logits, n_classes, labels } if !labels.is_empty() => f(logits, *n_classes, labels),
        _ => f64::NAN,
    }
}

fn regression(out: &Outputs, f: impl FnOnce(&[f32], &[f32], usize) -> f64) -> f64 {
    match out {
        Outputs::Regression { predictions, targets, n_outputs } => f(predictions, targets, *n_outputs),
        _ => f64::NAN,
    }
}

impl Metric for Accuracy {
    fn name(&self) -> String {
        "accuracy".into()
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        classification(out, accuracy)
    }
}

impl Metric for TopKAccuracy {
    fn name(&self) -> String {
        format!("top{}_accuracy", self.k)
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        classification(out, |l, c, y| top_k_accuracy(l, c, y, self.k))
    }
}

impl Metric for MacroPrecision {
    fn name(&self) -> String {
        "precision".into()
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        classification(out, |l, c, y| macro_scores(l, c, y).precision)
    }
}

impl Metric for MacroRecall {
    fn name(&self) -> String {
        "recall".into()
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        classification(out, |l, c, y| macro_scores(l, c, y).recall)
    }
}

impl Metric for MacroF1 {
    fn name(&self) -> String {
        "f1".into()
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        classification(out, |l, c, y| macro_scores(l, c, y).f1)
    }
}

impl Metric for Mae {
    fn name(&self) -> String {
        "mae".into()
    }
    fn mode(&self) -> Mode {
        Mode::Min
    }
    fn compute(&self, out: &Outputs) -> f64 {
        regression(out, |p, t, _| mae(p, t))
    }
}

impl Metric for Rmse {
    fn name(&self) -> String {
        "rmse".into()
    }
    fn mode(&self) -> Mode {
        Mode::Min
    }
    fn compute(&self, out: &Outputs) -> f64 {
        regression(out, |p, t, _| rmse(p, t))
    }
}

impl Metric for R2 {
    fn name(&self) -> String {
        "r2".into()
    }
    fn mode(&self) -> Mode {
        Mode::Max
    }
    fn compute(&self, out: &Outputs) -> f64 {
        regression(out, r2)
    }
}
