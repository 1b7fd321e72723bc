//! `tensile eval`: a trained run scored on a table — loss, accuracy and macro scores with a
//! confusion matrix for classifiers, MAE/RMSE/R² for regressors — as text or JSON.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;
use tensile_data::Task;
use tensile_train::metrics;

use crate::artifacts::LoadedModel;
use crate::config::TaskName;
use crate::data::read_labelled;
use crate::stdout::outln;

pub const EXAMPLES: &str = "\
Examples:
  tensile eval runs/iris --data iris-test.csv
  tensile eval runs/iris --data iris-test.csv --json
  tensile eval runs/digits --data test.npy --targets test-labels.npy";

#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `tensile train` (holds model.json and model.safetensors).
    run_dir: PathBuf,
    /// Labelled data in a format `train` reads: a CSV or Parquet table with the model's feature
    /// columns and its target column, an .npz archive, a .npy features file (with --targets),
    /// or a folder of images with one sub-folder per class.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// The .npy file of the targets of a .npy --data file.
    #[arg(long, value_name = "FILE")]
    targets: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let loaded = LoadedModel::load(&args.run_dir)?;
    let info = &loaded.info;
    let task = match info.task {
        TaskName::Classification => Task::Classification,
        TaskName::Regression => Task::Regression,
    };
    let source = args.data.display().to_string();
    let ds = read_labelled(&args.data, args.targets.as_deref(), &info.target, task, &info.input, &info.input_shape)?;
    let ds = loaded.align(ds, &source)?;
    let mut features = ds.features().to_vec();
    loaded.prepare(&mut features)?;
    let out = loaded.forward(&features)?;
    let c = loaded.n_outputs();
    if out.len() != ds.len() * c {
        bail!("the model gives {} outputs for {} rows, expected {c} per row", out.len(), ds.len());
    }
    let report = match (ds.labels(), ds.values(), &info.class_names) {
        (Some(labels), _, Some(names)) => classification(&out, labels, names),
        (_, Some(values), None) => regression(&out, values),
        _ => bail!("internal: targets do not match the model's task"),
    };
    if args.json {
        let mut report = report;
        report["data"] = json!(source);
        report["rows"] = json!(ds.len());
        outln!("{report}");
    } else {
        outln!("{}: {} rows", source, ds.len());
        print_text(&report)?;
    }
    Ok(())
}

/// Mean softmax cross-entropy, accuracy, macro scores and the confusion matrix. `logits` `[N, C]`.
fn classification(logits: &[f32], labels: &[u32], names: &[String]) -> serde_json::Value {
    let c = names.len();
    let mut loss = 0.0;
    for (row, &l) in logits.chunks(c).zip(labels) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - row[l as usize] as f64;
    }
    let macro_scores = metrics::macro_scores(logits, c, labels);
    let cm = metrics::confusion_matrix(logits, c, labels);
    let matrix: Vec<&[u64]> = (0..c).map(|t| cm.row(t)).collect();
    json!({
        "task": "classification",
        "loss": loss / labels.len().max(1) as f64,
        "accuracy": metrics::accuracy(logits, c, labels),
        "macro_precision": macro_scores.precision,
        "macro_recall": macro_scores.recall,
        "macro_f1": macro_scores.f1,
        "class_names": names,
        "confusion_matrix": matrix,
    })
}

/// Mean squared error, MAE, RMSE and R². `predictions`, `targets` `[N, 1]`.
fn regression(predictions: &[f32], targets: &[f32]) -> serde_json::Value {
    let mse = predictions.iter().zip(targets).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum::<f64>()
        / targets.len().max(1) as f64;
    json!({
        "task": "regression",
        "loss": mse,
        "mae": metrics::mae(predictions, targets),
        "rmse": metrics::rmse(predictions, targets),
        "r2": metrics::r2(predictions, targets, 1),
    })
}

fn print_text(report: &serde_json::Value) -> Result<()> {
    for key in ["loss", "accuracy", "macro_precision", "macro_recall", "macro_f1", "mae", "rmse", "r2"] {
        if let Some(v) = report[key].as_f64() {
            outln!("{key:<16} {v:.4}");
        }
    }
    let (Some(names), Some(matrix)) = (report["class_names"].as_array(), report["confusion_matrix"].as_array()) else {
        return Ok(());
    };
    let names: Vec<&str> = names.iter().map(|n| n.as_str().unwrap_or("?")).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(1).max(5);
    outln!("confusion matrix (rows: true class, columns: predicted):");
    let header: String = names.iter().map(|n| format!(" {n:>width$}")).collect();
    outln!("{:>width$}{header}", "");
    for (name, row) in names.iter().zip(matrix) {
        let cells: String =
            row.as_array().into_iter().flatten().map(|v| format!(" {:>width$}", v.as_u64().unwrap_or(0))).collect();
        outln!("{name:>width$}{cells}");
    }
    Ok(())
}
