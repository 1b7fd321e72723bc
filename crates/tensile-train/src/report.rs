//! `report.html`: one self-contained page that tells how a run went — the loss and metric curves,
//! the best epoch with its validation and test scores, the evaluation of the best weights on the
//! held-out rows (a confusion matrix and per-class precision, recall, F1 and support for
//! classifiers; MAE, RMSE and R² for regressors), the diagnosis, the resolved config and the
//! provenance.
//!
//! The page is built from plain data ([`Report`]), so it needs neither a model nor the training
//! data: the CLI writes it after training and rebuilds it later from the run directory alone.
//! What the run directory does not otherwise hold — the held-out evaluation and the diagnosis,
//! whose findings rest on event kinds that `history.csv` keeps only as text — is saved as
//! [`RunEvaluation`] in `evaluation.json`.
//!
//! The page loads nothing: CSS is inline, the curves are inline SVG drawn here (rather than
//! plotters' fixed-size `curves.svg` pasted in, so they scale with the page, use its fonts and
//! colours, mark the best epoch and carry tooltips), and a short inline script measures the drawn curves and records the result on `<body>` as
//! `data-curves-rendered="drawn/total"`, which the end-to-end test reads back from a headless
//! browser. Every string that comes from a file (class and metric names, messages, the config,
//! the provenance, the title) is HTML-escaped; nothing from a file goes into the script.
//!
//! `evaluation.json` keeps non-finite numbers as the strings `"NaN"`, `"inf"` and `"-inf"`, as
//! the history does in checkpoints, so a diverged run's report can be rebuilt.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tensile_core::Rng;
use tensile_data::{Dataset, train_validation_split};

use crate::config::TrainerConfig;
use crate::diagnosis::{Finding, FindingKind};
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Mode};
use crate::metrics::{ClassScores, ConfusionMatrix, Outputs, Task};
use crate::trainer::{StopReason, TrainResult, TrainingData};

mod chart;
mod json;
#[cfg(test)]
mod tests;

use chart::chart;
use json::{json_f64, json_f64_map, json_f64_map_opt, json_f64_opt, json_f64_pairs};

/// The page's file name in a run directory.
pub const FILE_NAME: &str = "report.html";
/// The file [`RunEvaluation`] is saved to in a run directory.
pub const EVALUATION_FILE: &str = "evaluation.json";

// ---------------------------------------------------------------------------------------------
// The data

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The page title, usually the run directory's name.
    pub title: String,
    /// One row per epoch, in order.
    pub history: Vec<EpochRow>,
    pub evaluation: RunEvaluation,
    /// The resolved `config.toml`, shown as written.
    pub config_toml: String,
    /// `provenance.json`, shown as a table.
    pub provenance: serde_json::Value,
}

/// One epoch of the history: the columns of `history.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    pub step: u64,
    pub lr: f64,
    pub seconds: f64,
    /// `train_loss`, `val_loss`, `val_accuracy`, … as recorded.
    pub values: BTreeMap<String, f64>,
    /// The epoch's event messages.
    pub events: Vec<String>,
}

impl From<&EpochRecord> for EpochRow {
    fn from(r: &EpochRecord) -> EpochRow {
        EpochRow {
            epoch: r.epoch,
            step: r.step,
            lr: r.lr,
            seconds: r.seconds,
            values: r.values.clone(),
            events: r.events.iter().map(|e| e.message.clone()).collect(),
        }
    }
}

/// What a finished run concluded: `evaluation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvaluation {
    /// The value best weights were chosen by (`val_loss`, `val_accuracy`, …).
    pub monitor: String,
    /// The best epoch (1-based) and its monitored value.
    pub best_epoch: Option<usize>,
    #[serde(with = "json_f64_opt")]
    pub best_value: Option<f64>,
    /// Whether the best weights were restored at the end (else the last epoch's weights are
    /// the ones evaluated).
    pub best_restored: bool,
    /// Why training ended, in words.
    pub stopped: String,
    /// The recorded values (`val_…`, `train_loss`) of the best epoch, or of the last epoch when
    /// there is no best.
    #[serde(with = "json_f64_map")]
    pub validation: BTreeMap<String, f64>,
    /// `test_…` values, when there was a test set.
    #[serde(with = "json_f64_map_opt")]
    pub test: Option<BTreeMap<String, f64>>,
    pub held_out: HeldOut,
    pub diagnosis: Vec<FindingRow>,
}

/// The final weights scored on the held-out rows: the test set when there is one, else the
/// validation rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// `test` or `validation`.
    pub set: String,
    pub rows: usize,
    /// Mean cross-entropy (classification) or mean squared error (regression).
    #[serde(with = "json_f64")]
    pub loss: f64,
    pub scores: Scores,
}

/// The task-specific part of [`HeldOut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Scores {
    Classification {
        /// Class names by label: `[C]`.
        class_names: Vec<String>,
        /// Rows true classes, columns predicted: `[C, C]`.
        confusion: ConfusionMatrix,
        /// `[C]`, by label (precision, recall and F1 are never `NaN`: see `metrics`).
        per_class: Vec<ClassScores>,
        #[serde(with = "json_f64")]
        accuracy: f64,
    },
    Regression {
        #[serde(with = "json_f64")]
        mae: f64,
        #[serde(with = "json_f64")]
        rmse: f64,
        #[serde(with = "json_f64")]
        r2: f64,
    },
}

/// A diagnosis finding as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    /// A short label: `Best epoch`, `Overfitting`, …
    pub title: String,
    /// Whether it is a problem (drawn as a warning).
    pub problem: bool,
    pub message: String,
    #[serde(with = "json_f64_pairs")]
    pub evidence: Vec<(String, f64)>,
}

impl From<&Finding> for FindingRow {
    fn from(f: &Finding) -> FindingRow {
        let title = match f.kind {
            FindingKind::BestEpoch { .. } => "Best epoch",
            FindingKind::Overfitting { .. } => "Overfitting",
            FindingKind::Underfitting => "Underfitting",
            FindingKind::Plateau { .. } => "Plateau",
            FindingKind::LearningRateTooHigh => "Learning rate too high",
            FindingKind::Divergence { .. } => "Divergence",
            FindingKind::EarlyStopped { .. } => "Early stop",
            FindingKind::Healthy => "Healthy",
        };
        FindingRow {
            title: title.into(),
            problem: f.is_problem(),
            message: f.message.clone(),
            evidence: f.evidence.clone(),
        }
    }
}

impl HeldOut {
    /// Scores `out`, a model's outputs over the set named `set` (`test` or `validation`).
    /// `class_names` names the labels of a classifier (`[C]`); labels without a name are shown
    /// as their number.
    pub fn from_outputs(set: &str, out: &Outputs, class_names: Option<&[String]>) -> HeldOut {
        let scores = match out {
            Outputs::Classification { logits, n_classes, labels } => {
                let confusion = crate::metrics::confusion_matrix(logits, *n_classes, labels);
                let names = (0..*n_classes)
                    .map(|c| class_names.and_then(|n| n.get(c)).cloned().unwrap_or_else(|| c.to_string()))
                    .collect();
                Scores::Classification {
                    class_names: names,
                    per_class: confusion.per_class(),
                    confusion,
                    accuracy: crate::metrics::accuracy(logits, *n_classes, labels),
                }
            }
            Outputs::Regression { predictions, targets, n_outputs } => Scores::Regression {
                mae: crate::metrics::mae(predictions, targets),
                rmse: crate::metrics::rmse(predictions, targets),
                r2: crate::metrics::r2(predictions, targets, *n_outputs),
            },
        };
        HeldOut { set: set.to_string(), rows: out.len(), loss: mean_loss(out), scores }
    }
}

impl RunEvaluation {
    /// What `result` (a finished `fit` with `config`) concluded, with `held_out` scored on the
    /// [`HeldOutRows`].
    pub fn new(result: &TrainResult, config: &TrainerConfig, held_out: HeldOut) -> RunEvaluation {
        let epochs = &result.history.epochs;
        let record = result.best.and_then(|(e, _)| epochs.iter().find(|r| r.epoch == e)).or(epochs.last());
        let stopped = match &result.stop {
            StopReason::Completed => format!("completed all {} epochs", config.epochs),
            StopReason::MaxSteps => format!("reached max_steps ({} steps)", config.max_steps.unwrap_or(0)),
            StopReason::Callback(why) => why.clone(),
        };
        RunEvaluation {
            monitor: config.monitor.clone(),
            best_epoch: result.best.map(|b| b.0),
            best_value: result.best.map(|b| b.1),
            best_restored: config.restore_best && result.best.is_some(),
            stopped,
            validation: record.map(|r| r.values.clone()).unwrap_or_default(),
            test: result.test.clone(),
            held_out,
            diagnosis: result.diagnosis.iter().map(FindingRow::from).collect(),
        }
    }

    /// Writes `evaluation.json` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(EVALUATION_FILE);
        let json = serde_json::to_string_pretty(self).expect("internal: an evaluation serializes");
        write_file(&path, json.as_bytes())
    }

    /// Reads `evaluation.json` from `dir`; errors name the file, and the line and column of bad
    /// JSON.
    pub fn read(dir: &Path) -> Result<RunEvaluation> {
        let path = dir.join(EVALUATION_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: shown(&path), source })?;
        serde_json::from_str(&text).map_err(|e| invalid_file(&path, format!("not a tensile evaluation: {e}")))
    }
}

/// The rows a finished `fit` held out, which the report scores: the test set when `data` has
/// one, else the validation set, else the validation rows `fit` split off the training data —
/// the same rows, drawn from the same seeded stream.
#[derive(Debug, Clone)]
pub struct HeldOutRows<'a> {
    /// `test` or `validation`.
    pub set: &'static str,
    pub dataset: &'a Dataset,
    /// Row indices into `dataset`: `[N]`.
    pub rows: Vec<usize>,
}

impl<'a> HeldOutRows<'a> {
    /// The held-out rows of a run of `config` on `data`.
    pub fn of(config: &TrainerConfig, data: &TrainingData<'a>) -> Result<HeldOutRows<'a>> {
        Ok(match (data.test, data.validation) {
            (Some(t), _) => HeldOutRows { set: "test", dataset: t, rows: (0..t.len()).collect() },
            (None, Some(v)) => HeldOutRows { set: "validation", dataset: v, rows: (0..v.len()).collect() },
            (None, None) => {
                // As in `Trainer::fit`: stream 2 of the seed splits off the validation rows.
                let task = crate::task::task_of(data.train)?;
                let stratify = config.stratify && matches!(task, Task::Classification { .. });
                let mut rng = Rng::seed(config.seed).fork(2);
                let (_, rows) = train_validation_split(data.train, config.validation_split, stratify, &mut rng)?;
                HeldOutRows { set: "validation", dataset: data.train, rows }
            }
        })
    }
}

/// Mean softmax cross-entropy of logits `[N, C]` (classification) or mean squared error of
/// predictions `[N, T]` (regression), as the trainer's losses define them. `NaN` when empty.
pub fn mean_loss(out: &Outputs) -> f64 {
    match out {
        Outputs::Classification { logits, n_classes, labels } => {
            let c = (*n_classes).max(1);
            let total: f64 = logits
                .chunks_exact(c)
                .zip(labels)
                .map(|(row, &l)| {
                    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                    lse - row.get(l as usize).map_or(f64::NAN, |&v| v as f64)
                })
                .sum();
            total / labels.len() as f64
        }
        Outputs::Regression { predictions, targets, .. } => {
            let total: f64 = predictions.iter().zip(targets).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum();
            total / targets.len() as f64
        }
    }
}

// ---------------------------------------------------------------------------------------------
// history.csv

/// Reads the epoch rows of `history.csv` (the format `History::write_csv` writes: `epoch`,
/// `step`, `lr`, `seconds`, one column per value, `events`). Errors name the file, line and
/// column, what was found and what was expected.
pub fn read_history_csv(path: &Path) -> Result<Vec<EpochRow>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: shown(path), source })?;
    parse_history_csv(&text).map_err(|msg| invalid_file(path, msg))
}

/// [`read_history_csv`] of text; the error is the message without the file name.
pub fn parse_history_csv(text: &str) -> std::result::Result<Vec<EpochRow>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(h) => h.map_err(|e| e.to_string())?,
        None => return Err("the file is empty; expected a header line `epoch,step,lr,seconds,…,events`".into()),
    };
    let names: Vec<&str> = header.iter().collect();
    let n = names.len();
    if n < 5 || names[..4] != ["epoch", "step", "lr", "seconds"] || names[n - 1] != "events" {
        return Err(format!(
            "line 1: found the header `{}`; expected `epoch,step,lr,seconds`, the value columns, then `events`",
            names.join(",")
        ));
    }
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|e| e.to_string())?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != n {
            return Err(format!("line {line}: found {} cells; expected {n}, one per header column", record.len()));
        }
        let cell = |i: usize| -> std::result::Result<f64, String> {
            record[i].trim().parse::<f64>().map_err(|_| {
                format!("line {line}, column {} (`{}`): found `{}`; expected a number", i + 1, names[i], &record[i])
            })
        };
        let whole = |i: usize| -> std::result::Result<u64, String> {
            record[i].trim().parse::<u64>().map_err(|_| {
                format!(
                    "line {line}, column {} (`{}`): found `{}`; expected a whole number",
                    i + 1,
                    names[i],
                    &record[i]
                )
            })
        };
        let mut values = BTreeMap::new();
        for i in 4..n - 1 {
            if !record[i].trim().is_empty() {
                values.insert(names[i].to_string(), cell(i)?);
            }
        }
        let events = &record[n - 1];
        rows.push(EpochRow {
            epoch: whole(0)? as usize,
            step: whole(1)?,
            lr: cell(2)?,
            seconds: cell(3)?,
            values,
            events: if events.is_empty() { Vec::new() } else { vec![events.to_string()] },
        });
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// The page

/// Writes `html` to `path` atomically.
pub fn write(path: &Path, html: &str) -> Result<()> {
    write_file(path, html.as_bytes())
}

/// The page, as one HTML document.
pub fn render(r: &Report) -> String {
    let ev = &r.evaluation;
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("{} · tensile report", r.title);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<main>",
        esc(&title)
    );
    let task = match ev.held_out.scores {
        Scores::Classification { ref class_names, .. } => format!("classification, {} classes", class_names.len()),
        Scores::Regression { .. } => "regression".to_string(),
    };
    let p = &r.provenance;
    let mut facts = vec![task];
    if let (Some(rows), Some(features)) = (p["rows"].as_u64(), p["features"].as_u64()) {
        facts.push(format!("{rows} training rows × {features} features"));
    }
    if let Some(t) = p["started_at"].as_str() {
        facts.push(format!("started {t}"));
    }
    if let Some(v) = p["tensile_version"].as_str() {
        facts.push(format!("tensile {v}"));
    }
    let _ = writeln!(
        h,
        "<header><p class=\"kicker\">tensile training report</p><h1>{}</h1><p class=\"facts\">{}</p></header>",
        esc(&r.title),
        esc(&facts.join(" · "))
    );
    h.push_str(
        "<nav><a href=\"#summary\">Summary</a><a href=\"#curves\">Curves</a><a href=\"#diagnosis\">Diagnosis</a>\
         <a href=\"#evaluation\">Evaluation</a><a href=\"#epochs\">Epochs</a><a href=\"#config\">Config</a>\
         <a href=\"#provenance\">Provenance</a></nav>\n",
    );
    summary(&mut h, r);
    curves(&mut h, r);
    diagnosis(&mut h, ev);
    evaluation(&mut h, ev);
    epochs(&mut h, &r.history);
    let _ = writeln!(
        h,
        "<section id=\"config\"><h2>Resolved config</h2><p class=\"note\">config.toml as the run used it, \
         every default written out.</p><pre class=\"code\">{}</pre></section>",
        esc(&r.config_toml)
    );
    provenance(&mut h, &r.provenance);
    let _ = writeln!(h, "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>");
    h
}

fn summary(h: &mut String, r: &Report) {
    let ev = &r.evaluation;
    h.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">\n");
    let last = r.history.last().map_or(0, |e| e.epoch);
    match (ev.best_epoch, ev.best_value) {
        (Some(e), Some(v)) => {
            card(h, "Best epoch", &format!("{e} <small>of {last}</small>"), &format!("{} {}", ev.monitor, num(v)))
        }
        _ => card(h, "Best epoch", "—", &format!("no finite {}", ev.monitor)),
    }
    let ran = if last == 1 { "1 epoch".to_string() } else { format!("{last} epochs") };
    card(h, "Trained", &ran, &ev.stopped);
    let ho = &ev.held_out;
    let (label, value) = match ho.scores {
        Scores::Classification { accuracy, .. } => ("accuracy", pct(accuracy)),
        Scores::Regression { rmse, .. } => ("RMSE", num(rmse)),
    };
    let weights = if ev.best_restored { "best weights" } else { "final weights" };
    card(h, &format!("{} {label}", cap(&ho.set)), &esc(&value), &format!("{} rows, {weights}", ho.rows));
    let problems = ev.diagnosis.iter().filter(|f| f.problem).count();
    let verdict = if problems == 0 { "no problems found".to_string() } else { format!("{problems} to look at") };
    card(h, "Diagnosis", &problems.to_string(), &verdict);
    h.push_str("</div>\n");

    // Final metrics: the best epoch's validation values beside the test values.
    let mut names: Vec<String> =
        ev.validation.keys().filter_map(|k| k.strip_prefix("val_")).map(String::from).collect();
    for k in ev.test.iter().flat_map(|t| t.keys()) {
        if let Some(s) = k.strip_prefix("test_")
            && !names.iter().any(|n| n == s)
        {
            names.push(s.to_string());
        }
    }
    names.sort_by_key(|n| (n != "loss", n.clone()));
    if names.is_empty() {
        h.push_str("</section>\n");
        return;
    }
    let at = match ev.best_epoch {
        Some(e) => format!("validation (epoch {e})"),
        None => "validation (last epoch)".into(),
    };
    let _ = write!(h, "<h3>Final metrics</h3><table class=\"metrics\"><thead><tr><th>metric</th><th>{at}</th>");
    if ev.test.is_some() {
        h.push_str("<th>test</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for n in &names {
        let v = ev.validation.get(&format!("val_{n}")).map_or("—".into(), |&v| num(v));
        let _ = write!(h, "<tr><th>{}</th><td>{}</td>", esc(n), esc(&v));
        if let Some(t) = &ev.test {
            let v = t.get(&format!("test_{n}")).map_or("—".into(), |&v| num(v));
            let _ = write!(h, "<td>{}</td>", esc(&v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></section>\n");
}

fn card(h: &mut String, label: &str, big_html: &str, note: &str) {
    let _ = writeln!(
        h,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"big\">{big_html}</div><div class=\"note\">{}</div></div>",
        esc(label),
        esc(note)
    );
}

/// The curves: losses, then scores (metrics where larger is better), then errors (other
/// metrics), then the learning rate when it changed.
fn curves(h: &mut String, r: &Report) {
    h.push_str("<section id=\"curves\"><h2>Curves</h2>\n");
    if r.history.is_empty() {
        h.push_str("<p class=\"empty\">No epoch was recorded.</p></section>\n");
        return;
    }
    let keys: std::collections::BTreeSet<&String> = r.history.iter().flat_map(|e| e.values.keys()).collect();
    let series = |k: &str| -> Vec<(f64, f64)> {
        r.history.iter().filter_map(|e| e.values.get(k).map(|&v| (e.epoch as f64, v))).collect()
    };
    let best = r.evaluation.best_epoch;
    let losses: Vec<&String> = keys.iter().copied().filter(|k| k.ends_with("loss")).collect();
    let metrics: Vec<&String> = keys.iter().copied().filter(|k| !k.ends_with("loss")).collect();
    let (scores, errors): (Vec<&String>, Vec<&String>) =
        metrics.into_iter().partition(|k| Mode::for_metric(k) == Mode::Max);
    let groups = [
        ("Loss", "smaller is better", losses),
        ("Scores", "larger is better", scores),
        ("Errors", "smaller is better", errors),
    ];
    for (title, what, names) in groups {
        if names.is_empty() {
            continue;
        }
        let lines: Vec<(String, Vec<(f64, f64)>)> = names.iter().map(|k| (k.to_string(), series(k))).collect();
        chart(h, title, what, &lines, best);
    }
    let lrs: Vec<(f64, f64)> = r.history.iter().map(|e| (e.epoch as f64, e.lr)).collect();
    if lrs.iter().any(|p| p.1 != lrs[0].1) {
        chart(h, "Learning rate", "at the end of each epoch", &[("lr".into(), lrs)], best);
    }
    h.push_str("</section>\n");
}

fn diagnosis(h: &mut String, ev: &RunEvaluation) {
    h.push_str("<section id=\"diagnosis\"><h2>Diagnosis</h2>\n");
    if ev.diagnosis.is_empty() {
        h.push_str("<p class=\"empty\">Too few epochs to judge.</p></section>\n");
        return;
    }
    h.push_str("<ul class=\"findings\">\n");
    for f in &ev.diagnosis {
        let class = if f.problem { "problem" } else { "ok" };
        let evidence: Vec<String> =
            f.evidence
                .iter()
                .map(|(k, v)| {
                    if v.fract() == 0.0 && v.abs() < 1e9 { format!("{k} = {v}") } else { format!("{k} = {}", num(*v)) }
                })
                .collect();
        let _ = writeln!(
            h,
            "<li class=\"{class}\"><span class=\"badge\">{}</span><p>{}</p><p class=\"evidence\">{}</p></li>",
            esc(&f.title),
            esc(&f.message),
            esc(&evidence.join(" · "))
        );
    }
    h.push_str("</ul></section>\n");
}

fn evaluation(h: &mut String, ev: &RunEvaluation) {
    let ho = &ev.held_out;
    let weights = match ev.best_epoch {
        Some(e) if ev.best_restored => format!("the best weights (epoch {e})"),
        _ => "the final weights".into(),
    };
    let _ = writeln!(
        h,
        "<section id=\"evaluation\"><h2>Evaluation on the {} set</h2><p class=\"note\">{} rows, scored with {weights}. \
         Loss {}.</p>",
        esc(&ho.set),
        ho.rows,
        esc(&num(ho.loss))
    );
    match &ho.scores {
        Scores::Classification { class_names, confusion, per_class, accuracy } => {
            classification(h, class_names, confusion, per_class, *accuracy)
        }
        Scores::Regression { mae, rmse, r2 } => {
            h.push_str("<table class=\"metrics\"><thead><tr><th>error</th><th>value</th><th>meaning</th></tr></thead><tbody>\n");
            for (name, v, meaning) in [
                ("MAE", *mae, "mean absolute error, in the target's units"),
                ("RMSE", *rmse, "root mean squared error, in the target's units"),
                ("R²", *r2, "1 is perfect, 0 is no better than predicting the mean"),
                ("MSE", ho.loss, "mean squared error (the loss)"),
            ] {
                let _ =
                    writeln!(h, "<tr><th>{name}</th><td>{}</td><td class=\"note\">{meaning}</td></tr>", esc(&num(v)));
            }
            h.push_str("</tbody></table>\n");
        }
    }
    h.push_str("</section>\n");
}

fn classification(h: &mut String, names: &[String], cm: &ConfusionMatrix, per_class: &[ClassScores], accuracy: f64) {
    let c = cm.n_classes.min(names.len());
    if cm.counts.len() != cm.n_classes * cm.n_classes || per_class.len() < c {
        h.push_str("<p class=\"empty\">The confusion matrix does not match the class list.</p>\n");
        return;
    }
    h.push_str("<div class=\"two\"><div><h3>Confusion matrix</h3><p class=\"note\">Rows: true class; columns: predicted. \
                Shading: share of the row.</p><div class=\"scroll\"><table class=\"confusion\"><thead><tr><th class=\"corner\">true \\ predicted</th>");
    for n in &names[..c] {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("<th class=\"total\">support</th></tr></thead><tbody>\n");
    for (t, name) in names.iter().enumerate().take(c) {
        let support = cm.support(t);
        let _ = write!(h, "<tr><th>{}</th>", esc(name));
        for p in 0..c {
            let n = cm.get(t, p);
            let share = if support == 0 { 0.0 } else { n as f64 / support as f64 };
            let hue = if t == p { "37,99,235" } else { "220,38,38" };
            let ink = if share > 0.55 {
                " class=\"dark\""
            } else if n == 0 {
                " class=\"zero\""
            } else {
                ""
            };
            let _ = write!(
                h,
                "<td{ink} style=\"background:rgba({hue},{:.3})\" title=\"{:.1}% of the row\">{n}</td>",
                share * 0.85,
                share * 100.0
            );
        }
        let _ = writeln!(h, "<td class=\"total\">{support}</td></tr>");
    }
    h.push_str(
        "</tbody></table></div></div>\n<div><h3>Per class</h3><table class=\"metrics\"><thead><tr><th>class</th>\
                <th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead><tbody>\n",
    );
    for (name, s) in names.iter().zip(per_class).take(c) {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            num(s.precision),
            num(s.recall),
            num(s.f1),
            s.support
        );
    }
    let m = cm.macro_scores();
    let total: u64 = per_class.iter().map(|s| s.support).sum();
    let weighted = |f: fn(&ClassScores) -> f64| {
        if total == 0 {
            f64::NAN
        } else {
            per_class.iter().map(|s| f(s) * s.support as f64).sum::<f64>() / total as f64
        }
    };
    let _ = writeln!(
        h,
        "</tbody><tfoot><tr><th>macro average</th><td>{}</td><td>{}</td><td>{}</td><td>{total}</td></tr>\
         <tr><th>weighted average</th><td>{}</td><td>{}</td><td>{}</td><td>{total}</td></tr>\
         <tr><th>accuracy</th><td colspan=\"3\">{}</td><td>{total}</td></tr></tfoot></table></div></div>",
        num(m.precision),
        num(m.recall),
        num(m.f1),
        num(weighted(|s| s.precision)),
        num(weighted(|s| s.recall)),
        num(weighted(|s| s.f1)),
        esc(&pct(accuracy))
    );
}

fn epochs(h: &mut String, history: &[EpochRow]) {
    h.push_str("<section id=\"epochs\"><h2>Epochs</h2>\n");
    let events: Vec<(usize, &String)> =
        history.iter().flat_map(|e| e.events.iter().map(move |m| (e.epoch, m))).collect();
    if !events.is_empty() {
        h.push_str("<h3>Events</h3><ul class=\"events\">\n");
        for (epoch, m) in events {
            let _ = writeln!(h, "<li><span class=\"epoch\">epoch {epoch}</span> {}</li>", esc(m));
        }
        h.push_str("</ul>\n");
    }
    let keys: std::collections::BTreeSet<&String> = history.iter().flat_map(|e| e.values.keys()).collect();
    let _ = write!(
        h,
        "<details><summary>Every epoch ({} rows, as in history.csv)</summary><div class=\"scroll\"><table class=\"metrics wide\"><thead><tr>\
         <th>epoch</th><th>step</th><th>lr</th><th>seconds</th>",
        history.len()
    );
    for k in &keys {
        let _ = write!(h, "<th>{}</th>", esc(k));
    }
    h.push_str("</tr></thead><tbody>\n");
    for e in history {
        let _ =
            write!(h, "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td>", e.epoch, e.step, num(e.lr), num(e.seconds));
        for k in &keys {
            let v = e.values.get(*k).map_or(String::new(), |&v| num(v));
            let _ = write!(h, "<td>{}</td>", esc(&v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div></details></section>\n");
}

fn provenance(h: &mut String, p: &serde_json::Value) {
    h.push_str(
        "<section id=\"provenance\"><h2>Provenance</h2><p class=\"note\">provenance.json: what reproducing \
                this run needs.</p>\n",
    );
    let mut rows = Vec::new();
    let mut config_rows = Vec::new();
    match p.as_object() {
        Some(map) => {
            for (k, v) in map {
                if k == "config" {
                    flatten("", v, &mut config_rows);
                } else {
                    flatten(k, v, &mut rows);
                }
            }
        }
        None => flatten("provenance", p, &mut rows),
    }
    table_kv(h, &rows);
    if !config_rows.is_empty() {
        h.push_str("<details><summary>Trainer config as recorded</summary>\n");
        table_kv(h, &config_rows);
        h.push_str("</details>\n");
    }
    h.push_str("</section>\n");
}

/// `(dotted key, value)` of every leaf of `v`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Null => out.push((prefix.to_string(), "—".into())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn table_kv(h: &mut String, rows: &[(String, String)]) {
    h.push_str("<table class=\"kv\"><tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</tbody></table>\n");
}

/// `s` safe in HTML text and in quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value in a table: four decimals for ordinary magnitudes, three significant digits in
/// exponent form for very small or large ones; `NaN`, `inf` as such.
fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() || x == 0.0 {
        format!("{x}")
    } else if (1e-3..1e6).contains(&a) {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.2}%", x * 100.0) } else { format!("{x}") }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn invalid_file(path: &Path, msg: String) -> Error {
    Error::Io { path: shown(path), source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg) }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    tensile_nn::weights::write_atomic(path, bytes).map_err(|source| Error::Io { path: shown(path), source })
}

/// The page's style sheet.
const CSS: &str = include_str!("report/page.css");

/// Measures the drawn curves and records `drawn/total` on `<body>` (read by the end-to-end
/// test through a headless browser).
const SCRIPT: &str = include_str!("report/page.js");
