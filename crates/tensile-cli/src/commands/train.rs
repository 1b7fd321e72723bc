//! `tensile train`: config (or command-line shortcuts) -> data -> model -> `tensile_train::Trainer`,
//! then the run directory gets the resolved `config.toml`, `model.safetensors` (best weights) and
//! `model.json` beside what the trainer writes (checkpoints, history, curves, provenance).
//!
//! With `--json` the output is for programs: no progress bars or lines, and one JSON object per
//! line on standard output for each event, each with an `"event"` field: `start` (data and
//! model), `epoch` (one per evaluation: epoch, step, every value, lr, seconds, events), `finding`
//! (one per diagnosis finding), then `end` (best epoch, why training stopped, test scores, run
//! directory). Errors still go to standard error as `error: …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde_json::json;
use tensile_data::FeatureScaler;
use tensile_nn::{ModelSpec, parameter_count};
use tensile_train::{Callback, EpochRecord, ProgressMode, StopReason, StreamingData, Trainer, TrainingData};

use crate::artifacts::{MinMaxParts, ModelInfo, StandardizerParts, TargetScalerParts};
use crate::config::{self, TaskName};
use crate::data::{self, TrainTable};
use crate::stdout::outln;

pub const EXAMPLES: &str = "\
Examples:
  tensile train                                        # MLP on the built-in digits dataset
  tensile train --epochs 30 --optimizer sgd --lr 0.05  # the same, other settings
  tensile train run.toml                               # everything from a config file
  tensile train run.toml --set training.epochs=5 --set 'training.optimizer={type=\"sgd\",lr=0.1}'
  tensile train --data iris.csv --target species --out runs/iris
  tensile train --data photos/ --set 'data.image_size=[28, 28]'  # one sub-folder per class
  tensile train run.toml --resume                      # continue the run in its directory
  tensile train run.toml --json | jq -c 'select(.event == \"epoch\")'  # one JSON object per event

A config file (data paths are relative to the config's folder):
  [data]
  train = \"iris.csv\"          # or .parquet, .npz, .npy (with train_targets), or an image folder
  target = \"species\"          # images: image_size = [28, 28], color = \"grayscale\"
  [training]
  epochs = 50
  optimizer = { type = \"adam\", lr = 1e-3 }
  early_stopping = { monitor = \"val_loss\", patience = 5 }
  [output]
  dir = \"runs/iris\"";

#[derive(Clone, Copy, ValueEnum)]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

#[derive(clap::Args)]
pub struct Args {
    /// A TOML config file (sections `[data]`, `[model]`, `[training]`, `[output]`).
    config: Option<PathBuf>,
    /// Train on this file (overrides data.train): CSV, Parquet, .npz, or a folder of images
    /// with one sub-folder per class.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The target column of --data (overrides data.target; default `target`).
    #[arg(long, value_name = "COLUMN")]
    target: Option<String>,
    /// Override any config key: dotted path, value in TOML (e.g. training.epochs=5). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The run directory (overrides output.dir; default runs/NAME, after the config or data file).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in the run directory from its newest valid checkpoint.
    #[arg(long)]
    resume: bool,
    /// Print nothing but errors.
    #[arg(long, short, conflicts_with = "json")]
    quiet: bool,
    /// For programs: no progress output; one JSON object per line on standard output for each
    /// event (`start`, `epoch`, `finding`, `end`).
    #[arg(long)]
    json: bool,
    /// Passes over the training data (training.epochs).
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per mini-batch (training.batch_size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (default: 0.001 for Adam, 0.05 for SGD).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer (training.optimizer; SGD uses momentum 0.9).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Units in each hidden layer of the default MLP, comma-separated (model.hidden).
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Fraction of the rows held out for validation (training.validation_split).
    #[arg(long)]
    validation_split: Option<f64>,
    /// Seed of every random stream (training.seed).
    #[arg(long)]
    seed: Option<u64>,
}

impl Args {
    /// The shortcut flags and --data/--target as `KEY=VALUE` overrides, before the --set ones.
    fn overrides(&self) -> Result<Vec<String>> {
        let mut o = Vec::new();
        if let Some(d) = &self.data {
            let abs = std::path::absolute(d).with_context(|| format!("cannot resolve the path {}", d.display()))?;
            o.push(format!("data.train={}", toml_string(&abs.display().to_string())));
        }
        if let Some(t) = &self.target {
            o.push(format!("data.target={}", toml_string(t)));
        }
        if let Some(v) = self.epochs {
            o.push(format!("training.epochs={v}"));
        }
        if let Some(v) = self.batch_size {
            o.push(format!("training.batch_size={v}"));
        }
        match (self.optimizer, self.lr) {
            (Some(OptimizerKind::Sgd), lr) => {
                o.push(format!("training.optimizer={{type=\"sgd\",lr={:?},momentum=0.9}}", lr.unwrap_or(0.05)))
            }
            (Some(OptimizerKind::Adam), lr) => {
                o.push(format!("training.optimizer={{type=\"adam\",lr={:?}}}", lr.unwrap_or(1e-3)))
            }
            (None, Some(lr)) => o.push(format!("training.optimizer.lr={lr:?}")),
            (None, None) => {}
        }
        if let Some(h) = &self.hidden {
            o.push(format!("model.hidden={h:?}"));
        }
        if let Some(v) = self.validation_split {
            o.push(format!("training.validation_split={v:?}"));
        }
        if let Some(v) = self.seed {
            o.push(format!("training.seed={v}"));
        }
        o.extend(self.set.iter().cloned());
        Ok(o)
    }

    /// The run directory: --out, else output.dir, else `runs/<name>`; none for the digits demo.
    fn run_dir(&self, cfg: &config::RunConfig) -> Option<PathBuf> {
        if let Some(out) = self.out.clone().or_else(|| cfg.output.dir.clone()) {
            return Some(out);
        }
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        let name = self.config.as_deref().and_then(stem).or_else(|| cfg.data.train.as_deref().and_then(stem))?;
        Some(Path::new("runs").join(name))
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn run(args: &Args) -> Result<()> {
    tensile_core::threads::init();
    if args.config.is_none() && args.data.is_none() && args.target.is_some() {
        bail!("--target names a column of --data; give --data FILE as well");
    }
    let mut loaded = config::load(args.config.as_deref(), &args.overrides()?)?;
    let run_data = data::read(&loaded)?;
    let out = args.run_dir(&loaded.config);
    if let Some(dir) = &out
        && !args.resume
        && dir.join("checkpoints").exists()
    {
        bail!(
            "the run directory {} already holds a run; pass --resume to continue it, or choose another --out",
            dir.display()
        );
    }

    let cfg = &mut loaded.config;
    let train = &run_data.train;
    let outputs = train.n_classes().unwrap_or(1);
    let embedding = crate::artifacts::index_columns(&train.index_columns(), cfg.model.embedding_dim);
    let model_shape = crate::artifacts::model_input_shape(train.sample_shape(), embedding.as_deref());
    let layers = cfg.model.layers_for(&model_shape, outputs)?;
    cfg.model.layers = Some(layers.clone());
    cfg.data.task = Some(run_data.task);
    // The resolved config lives in the run directory, so its data paths must not depend on
    // where the original config was.
    let d = &mut cfg.data;
    let paths = [&mut d.train, &mut d.validation, &mut d.test, &mut d.train_targets, &mut d.validation_targets];
    for p in paths.into_iter().chain([&mut d.test_targets]).flatten() {
        let full = config::resolve(&loaded.base, p);
        *p = std::path::absolute(&full).unwrap_or(full);
    }
    cfg.output.dir = out.clone();
    let spec = ModelSpec { layers };
    // The model is built for the shape one sample really has (`[C, H, W]` for images) and fed
    // the trainer's `[B, D]` rows reshaped to it; a table's index columns go through learned
    // embeddings first.
    let input_shape = train.sample_shape().to_vec();
    let mut model =
        crate::artifacts::build_model(&spec, &input_shape, embedding.as_deref(), &mut cfg.training.init_rng())
            .context("cannot build the model")?;
    let fresh_dir = out.as_ref().filter(|dir| !dir.exists()).cloned();
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the run directory {}", dir.display()))?;
        let text = toml::to_string(&*cfg).context("internal: the resolved config serializes")?;
        write(&dir.join("config.toml"), text.as_bytes())?;
    }

    // Best effort until training ends, as the trainer's own output is: a reader that has gone
    // must not stop the run (see `crate::stdout`); the lines after it end the command quietly.
    if args.json {
        let _ = json_line(&json!({
            "event": "start",
            "data": run_data.name,
            "rows": train.len(),
            "features": train.n_features(),
            "task": run_data.task,
            "classes": train.class_names(),
            "layers": spec.layers.len(),
            "parameters": parameter_count(&model),
            "threads": tensile_core::threads::current(),
            "epochs": cfg.training.epochs,
            "monitor": cfg.training.monitor,
            "run_dir": out,
            "resume": args.resume,
        }));
    } else if !args.quiet {
        let what = match train.n_classes() {
            Some(c) => format!("{c} classes"),
            None => "regression".to_string(),
        };
        let _ = crate::stdout::line(format_args!(
            "{}: {} rows, {} features, {what}; {} layers, {} parameters; {} threads",
            run_data.name,
            train.len(),
            train.n_features(),
            spec.layers.len(),
            parameter_count(&model),
            tensile_core::threads::current(),
        ));
    }
    let progress = if args.quiet || args.json { ProgressMode::Quiet } else { ProgressMode::Auto };
    let mut trainer = Trainer::new(cfg.training.clone())?.progress(progress).resume(args.resume);
    if let Some(dir) = &out {
        trainer = trainer.run_dir(dir);
    }
    if args.json {
        trainer = trainer.callback(JsonLines);
    }
    let (validation, test) = (run_data.validation.as_ref(), run_data.test.as_ref());
    let fitted = match train {
        TrainTable::Memory(train) => trainer.fit(&mut model, &TrainingData { train, validation, test }),
        TrainTable::Stream { stream, budget, .. } => {
            let data = StreamingData { train: stream, validation, test, memory_budget: *budget };
            trainer.fit_stream(&mut model, &data)
        }
    };
    let result = match fitted {
        Ok(result) => result,
        Err(e) => {
            // A streamed file's cells are only checked once training starts, after the run
            // directory was made: a run that wrote nothing but its config leaves no directory
            // behind, as one refused before it would.
            if let Some(dir) = &fresh_dir
                && std::fs::read_dir(dir)
                    .is_ok_and(|mut es| es.all(|e| e.is_ok_and(|e| e.file_name() == "config.toml")))
            {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e.into());
        }
    };

    if let Some(dir) = &out {
        tensile_nn::save_weights(&model, &dir.join("model.safetensors"))?;
        let info = ModelInfo {
            tensile_version: env!("CARGO_PKG_VERSION").to_string(),
            task: run_data.task,
            spec,
            input_shape,
            feature_names: train.feature_names().to_vec(),
            target: cfg.data.target.clone(),
            class_names: train.class_names().map(<[String]>::to_vec),
            input: run_data.input.clone(),
            standardizer: match &result.scaler {
                Some(FeatureScaler::Standard(s)) => {
                    Some(StandardizerParts { mean: s.mean().to_vec(), std: s.std().to_vec() })
                }
                _ => None,
            },
            min_max: match &result.scaler {
                Some(FeatureScaler::MinMax(s)) => Some(MinMaxParts { min: s.min().to_vec(), max: s.max().to_vec() }),
                _ => None,
            },
            target_scaler: result.target_scaler.map(|t| TargetScalerParts { mean: t.mean(), std: t.std() }),
            embedding,
        };
        let json = serde_json::to_string_pretty(&info).context("internal: model.json serializes")?;
        write(&dir.join("model.json"), json.as_bytes())?;
        let held_out;
        let data = match train {
            TrainTable::Memory(train) => TrainingData { train, validation, test },
            TrainTable::Stream { stream, .. } => {
                // The report scores held-out rows: the test or validation file, else the rows
                // the stream held out, read back from it.
                let held = match test.or(validation) {
                    Some(ds) => ds,
                    None => {
                        held_out = tensile_train::streamed_validation(&cfg.training, stream)?;
                        &held_out
                    }
                };
                TrainingData { train: held, validation: Some(held), test }
            }
        };
        super::report::after_training(dir, &cfg.training, &data, &result)?;
    }
    if args.json {
        for f in &result.diagnosis {
            let (kind, details) = match serde_json::to_value(&f.kind).unwrap_or_default() {
                serde_json::Value::Object(m) if m.len() == 1 => {
                    let (k, v) = m.into_iter().next().expect("internal: one entry");
                    (k, v)
                }
                other => (other.as_str().unwrap_or_default().to_string(), json!({})),
            };
            let evidence: serde_json::Map<String, serde_json::Value> =
                f.evidence.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json_line(&json!({
                "event": "finding",
                "kind": kind,
                "details": details,
                "problem": f.is_problem(),
                "message": f.message,
                "evidence": evidence,
            }))?;
        }
        let (stop, why) = match &result.stop {
            StopReason::Completed => ("completed", None),
            StopReason::MaxSteps => ("max_steps", None),
            StopReason::Callback(why) => ("callback", Some(why.as_str())),
        };
        return json_line(&json!({
            "event": "end",
            "best_epoch": result.best.map(|b| b.0),
            "best_value": result.best.map(|b| b.1),
            "monitor": cfg.training.monitor,
            "stop_reason": stop,
            "stop_message": why,
            "epochs_run": result.history.epochs.last().map(|r| r.epoch),
            "steps": result.history.epochs.last().map(|r| r.step),
            "seconds": result.history.epochs.iter().map(|r| r.seconds).sum::<f64>(),
            "test": result.test,
            "run_dir": out,
        }));
    }
    if args.quiet {
        return Ok(());
    }
    let total: f64 = result.history.epochs.iter().map(|r| r.seconds).sum();
    if let Some((epoch, value)) = result.best {
        let record = result.history.epochs.iter().find(|r| r.epoch == epoch);
        let shown = match (run_data.task, record.and_then(|r| r.values.get("val_accuracy"))) {
            (TaskName::Classification, Some(acc)) => format!("validation accuracy {:.2}%", acc * 100.0),
            _ => format!("{} {value:.4}", cfg.training.monitor),
        };
        outln!("best epoch {epoch} (weights restored): {shown}; {total:.2} s in all");
    }
    if let Some(test) = &result.test {
        let parts: Vec<String> = test.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        outln!("test: {}", parts.join(", "));
    }
    for finding in &result.diagnosis {
        outln!("- {}", finding.message);
    }
    if let Some(dir) = &out {
        outln!("saved to {}", dir.display());
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    tensile_nn::weights::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// One JSON object on its own line of standard output.
fn json_line(value: &serde_json::Value) -> Result<()> {
    crate::stdout::line(format_args!("{value}"))?;
    Ok(())
}

/// `train --json`'s per-evaluation lines, from the trainer's callback hooks. Printing is best
/// effort, as the trainer's own progress output is: a reader that has gone must not stop the
/// run (see [`crate::stdout`]).
struct JsonLines;

impl Callback for JsonLines {
    fn name(&self) -> &str {
        "json_lines"
    }
    fn on_evaluation(
        &mut self,
        ctx: &mut tensile_train::Context,
        record: &mut EpochRecord,
    ) -> tensile_train::Result<()> {
        // Events raised in this evaluation by the callbacks before this one (a plateau's lower
        // rate) join the record after the hooks; show them with it.
        let events: Vec<_> = record
            .events
            .iter()
            .chain(ctx.events.iter())
            .map(|e| json!({ "kind": e.kind, "step": e.step, "message": e.message }))
            .collect();
        let line = json!({
            "event": "epoch",
            "epoch": record.epoch,
            "step": record.step,
            "values": record.values,
            "lr": record.lr,
            "seconds": record.seconds,
            "events": events,
        });
        let _ = json_line(&line);
        Ok(())
    }
}
