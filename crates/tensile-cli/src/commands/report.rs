//! `tensile report`: (re)builds a run's `report.html` from its run directory alone — curves from
//! `history.csv`, the held-out evaluation and the diagnosis from `evaluation.json`, the resolved
//! `config.toml` and `provenance.json`. `tensile train` calls [`after_training`], which scores
//! the held-out rows with the saved model (through the same loading path as `tensile eval`),
//! writes `evaluation.json` and then builds the page the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tensile_train::metrics::Outputs;
use tensile_train::report::{self, EVALUATION_FILE, HeldOut, HeldOutRows, Report, RunEvaluation};
use tensile_train::{TrainResult, TrainerConfig, TrainingData};

use crate::artifacts::LoadedModel;
use crate::stdout::outln;

pub const EXAMPLES: &str = "\
Examples:
  tensile report runs/iris                    # rebuilds runs/iris/report.html
  tensile report runs/iris --out iris.html    # writes the page elsewhere

The page is self-contained (no network): open it in any browser. `tensile train` writes it at
the end of every run with a run directory.";

#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `tensile train`.
    run_dir: PathBuf,
    /// Where to write the page (default RUN_DIR/report.html).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.run_dir.join(report::FILE_NAME));
    build(&args.run_dir, &out)?;
    outln!("wrote {}", out.display());
    Ok(())
}

/// After `tensile train`: scores the rows the run held out (the test set, else the validation
/// rows) with the model just saved in `dir`, writes `evaluation.json` and `report.html`.
pub fn after_training(dir: &Path, config: &TrainerConfig, data: &TrainingData, result: &TrainResult) -> Result<()> {
    evaluate_and_build(dir, config, data, result).with_context(|| {
        format!("training finished and the model is saved in {}, but its report could not be written", dir.display())
    })
}

fn evaluate_and_build(dir: &Path, config: &TrainerConfig, data: &TrainingData, result: &TrainResult) -> Result<()> {
    let loaded = LoadedModel::load(dir)?;
    let held = HeldOutRows::of(config, data)?;
    let ds = held.dataset.subset(&held.rows);
    let mut features = ds.features().to_vec();
    loaded.prepare(&mut features)?;
    let out = loaded.forward(&features)?;
    let outputs = match (ds.labels(), ds.values()) {
        (Some(labels), _) => Outputs::classification(out, loaded.n_outputs(), labels.to_vec())?,
        (None, Some(values)) => Outputs::regression(out, values.to_vec(), 1)?,
        (None, None) => bail!("internal: a dataset has class labels or target values"),
    };
    let held_out = HeldOut::from_outputs(held.set, &outputs, loaded.info.class_names.as_deref());
    RunEvaluation::new(result, config, held_out).write(dir)?;
    build(dir, &dir.join(report::FILE_NAME))
}

/// The files the page is built from, and why each may be missing.
const INPUTS: [(&str, &str); 4] = [
    ("config.toml", "`tensile train` writes it when the run starts"),
    ("provenance.json", "`tensile train` writes it when the run starts"),
    ("history.csv", "`tensile train` writes it after the first epoch"),
    (
        EVALUATION_FILE,
        "`tensile train` writes it when training ends, so an interrupted run has none: finish it with \
         `tensile train CONFIG --resume`",
    ),
];

/// Reads the run directory `dir` and writes the page to `out`.
pub fn build(dir: &Path, out: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a directory; expected a run directory written by `tensile train`", dir.display());
    }
    if INPUTS.iter().all(|(name, _)| !dir.join(name).exists()) {
        let names: Vec<&str> = INPUTS.iter().map(|(n, _)| *n).collect();
        bail!(
            "{} is not a run directory: it holds none of {}, which `tensile train` writes",
            dir.display(),
            names.join(", ")
        );
    }
    for (name, why) in INPUTS {
        let path = dir.join(name);
        if !path.is_file() {
            bail!("{} is missing from the run directory ({why})", path.display());
        }
    }
    let config_path = dir.join("config.toml");
    let config_toml = read(&config_path)?;
    if let Err(e) = toml::from_str::<toml::Table>(&config_toml) {
        bail!("{} is not valid TOML: {}", config_path.display(), e.to_string().trim_end());
    }
    let provenance_path = dir.join("provenance.json");
    let provenance: serde_json::Value = serde_json::from_str(&read(&provenance_path)?)
        .with_context(|| format!("{} is not valid JSON", provenance_path.display()))?;
    if !provenance.is_object() {
        bail!("{}: found {}; expected a JSON object", provenance_path.display(), kind(&provenance));
    }
    let history = report::read_history_csv(&dir.join("history.csv"))?;
    let evaluation = RunEvaluation::read(dir)?;
    let title = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let page = report::render(&Report { title, history, evaluation, config_toml, provenance });
    report::write(out, &page)?;
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
