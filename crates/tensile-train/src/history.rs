//! What a run measured: one [`EpochRecord`] per epoch (every value the loop computed, the
//! learning rate, the time, and the [`Event`]s that happened), one [`StepRecord`] per optimizer
//! step, and the files `history.csv` / `steps.csv` written from them.
//!
//! The trainer fills a [`History`] as it goes and stores it, as JSON, in every checkpoint, so a
//! resumed run continues the same history. The plots ([`crate::plot`]), the diagnosis
//! ([`crate::diagnosis`]) and the progress lines ([`crate::progress`]) only read it.
//!
//! The floats serialize so that JSON keeps non-finite values: `NaN`, `inf` and `-inf` become
//! the strings `"NaN"`, `"inf"`, `"-inf"` (serde_json alone would write `null` and then refuse
//! to read it back, so a checkpoint taken after a diverged epoch could not be resumed).
//!
//! Values are keyed by name (`train_loss`, `val_loss`, `val_accuracy`, …) rather than being
//! fixed fields, so a new metric needs no change here; [`Mode::for_metric`] says whether a name
//! is better high or low.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Whether smaller or larger values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

/// Name fragments of metrics where larger is better. Anything else (losses, errors, `mae`,
/// `rmse`, unknown names) is minimized: a wrongly inferred `Min` on an unknown score is easier to
/// spot in a config than the reverse, and every loss is a `Min`.
const MAX_FRAGMENTS: [&str; 7] = ["accuracy", "acc", "f1", "precision", "recall", "r2", "auc"];

impl Mode {
    /// Infers the mode from a metric name: `Max` for accuracy, top-k accuracy, F1, precision,
    /// recall, R² and AUC (with or without a `train_`/`val_` prefix), `Min` otherwise. A name
    /// containing `loss` or `error` is always `Min`.
    ///
    /// The name is split on `_`, `-`, `@` and spaces and each part compared, so `val_f1`,
    /// `top5_accuracy` and `top-3-acc` are `Max` while `val_loss` and `mae` are `Min`.
    pub fn for_metric(name: &str) -> Mode {
        let lower = name.to_ascii_lowercase();
        if lower.contains("loss") || lower.contains("error") {
            return Mode::Min;
        }
        let is_max_part = |part: &str| {
            MAX_FRAGMENTS.contains(&part)
                || part
                    .strip_prefix("top")
                    .is_some_and(|rest| rest.is_empty() || rest.bytes().all(|b| b.is_ascii_digit()))
        };
        if lower.split(['_', '-', '@', ' ']).any(is_max_part) { Mode::Max } else { Mode::Min }
    }

    /// Whether `candidate` is strictly better than `best`. Non-finite candidates never are.
    pub fn is_better(self, candidate: f64, best: f64) -> bool {
        candidate.is_finite()
            && match self {
                Mode::Min => candidate < best,
                Mode::Max => candidate > best,
            }
    }
}

/// What happened during a run, beyond the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    NonFiniteLoss,
    NonFiniteGradient,
    SkippedStep,
    Rollback,
    LearningRateChanged,
    EarlyStop,
    BestRestored,
    Resumed,
    CheckpointSaved,
}

/// One event, at the step and epoch it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub step: u64,
    pub epoch: usize,
    pub kind: EventKind,
    /// One plain-English sentence, shown in `history.csv` and the report.
    pub message: String,
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Optimizer steps taken so far, this epoch's included.
    pub step: u64,
    /// The learning rate at the end of the epoch.
    #[serde(with = "json_f64")]
    pub lr: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    #[serde(with = "json_f64")]
    pub seconds: f64,
    /// `train_loss`, `val_loss`, `val_accuracy`, `val_f1`, `val_rmse`, … Values computed on the
    /// whole validation set, not averaged over batches.
    #[serde(with = "json_f64_map")]
    pub values: BTreeMap<String, f64>,
    /// Events of this epoch, in order.
    pub events: Vec<Event>,
}

impl EpochRecord {
    /// The value named `key`, if the epoch has one.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }
}

/// The training loss of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: usize,
    #[serde(with = "json_f64")]
    pub loss: f64,
    #[serde(with = "json_f64")]
    pub lr: f64,
}

/// Everything a run measured, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    pub steps: Vec<StepRecord>,
}

impl History {
    /// `(epoch, value)` for every epoch that has `key`, in epoch order; non-finite values
    /// included (a NaN loss is part of the story; callers that plot or compare skip them).
    pub fn values(&self, key: &str) -> Vec<(usize, f64)> {
        self.epochs.iter().filter_map(|e| e.get(key).map(|v| (e.epoch, v))).collect()
    }

    /// The epoch with the best finite value of `key` and that value; the earliest epoch wins a
    /// tie, as with early stopping, where only a strict improvement moves the best. `None` when
    /// no epoch has a finite value of `key`.
    pub fn best(&self, key: &str, mode: Mode) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (epoch, v) in self.values(key) {
            if best.is_none_or(|(_, b)| mode.is_better(v, b)) && v.is_finite() {
                best = Some((epoch, v));
            }
        }
        best
    }

    /// Every event of the run, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.epochs.iter().flat_map(|e| e.events.iter())
    }

    /// The sorted union of the value names over all epochs.
    pub fn keys(&self) -> Vec<String> {
        let keys: BTreeSet<&String> = self.epochs.iter().flat_map(|e| e.values.keys()).collect();
        keys.into_iter().cloned().collect()
    }

    /// Writes `history.csv` and `steps.csv` into `dir`, each atomically (temporary file in
    /// `dir`, fsync, rename), so a reader never sees half a file.
    ///
    /// `history.csv` has one row per epoch: `epoch,step,lr,seconds`, then one column per value
    /// name (the sorted union over epochs; an empty cell where an epoch lacks the value), then
    /// `events` (the epoch's event messages joined with `"; "`). `steps.csv` has
    /// `step,epoch,loss,lr`. Numbers are written so that they parse back to the same bits
    /// (shortest round-trip form; `NaN`, `inf`, `-inf` for non-finite values).
    pub fn write_csv(&self, dir: &Path) -> Result<()> {
        let path = dir.join("history.csv");
        write_file(&path, &self.history_csv().map_err(|e| write_error(&path, e))?)?;
        let path = dir.join("steps.csv");
        write_file(&path, &self.steps_csv().map_err(|e| write_error(&path, e))?)
    }

    /// The bytes of `history.csv` (see [`History::write_csv`]).
    pub fn history_csv(&self) -> std::result::Result<Vec<u8>, csv::Error> {
        let keys = self.keys();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["epoch", "step", "lr", "seconds"];
        header.extend(keys.iter().map(String::as_str));
        header.push("events");
        w.write_record(&header)?;
        for e in &self.epochs {
            let mut row = vec![e.epoch.to_string(), e.step.to_string(), number(e.lr), number(e.seconds)];
            row.extend(keys.iter().map(|k| e.get(k).map(number).unwrap_or_default()));
            row.push(e.events.iter().map(|ev| ev.message.as_str()).collect::<Vec<_>>().join("; "));
            w.write_record(&row)?;
        }
        into_bytes(w)
    }

    /// The bytes of `steps.csv` (see [`History::write_csv`]).
    pub fn steps_csv(&self) -> std::result::Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["step", "epoch", "loss", "lr"])?;
        for s in &self.steps {
            w.write_record([s.step.to_string(), s.epoch.to_string(), number(s.loss), number(s.lr)])?;
        }
        into_bytes(w)
    }
}

fn into_bytes(w: csv::Writer<Vec<u8>>) -> std::result::Result<Vec<u8>, csv::Error> {
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// A number as it goes into a CSV cell: Rust's shortest round-trip form, in plain notation for
/// ordinary magnitudes and in exponent notation (`1e-7`) for very small or large ones, where
/// plain notation would print dozens of zeros. Both parse back to the same `f64` everywhere.
pub(crate) fn number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-5..1e15).contains(&a) { format!("{v}") } else { format!("{v:e}") }
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    tensile_nn::weights::write_atomic(path, bytes)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// The error for a file this crate could not produce for a reason other than I/O (a CSV or
/// drawing error), kept as an I/O error of kind `Other` so callers see one kind of write error.
pub(crate) fn write_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) }
}

/// An `f64` that survives JSON when not finite (see the module doc).
#[derive(Debug, Clone, Copy)]
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JsonF64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or \"NaN\", \"inf\" or \"-inf\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v as f64))
            }
            // What serde_json writes for a non-finite float by default.
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(f64::NAN))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<JsonF64, E> {
                match v {
                    "NaN" | "nan" => Ok(JsonF64(f64::NAN)),
                    "inf" | "+inf" | "Infinity" => Ok(JsonF64(f64::INFINITY)),
                    "-inf" | "-Infinity" => Ok(JsonF64(f64::NEG_INFINITY)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

mod json_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        JsonF64(*v).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        JsonF64::deserialize(d).map(|v| v.0)
    }
}

mod json_f64_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, JsonF64(*v))))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        Ok(BTreeMap::<String, JsonF64>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
