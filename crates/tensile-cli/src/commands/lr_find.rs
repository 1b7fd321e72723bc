//! `tensile lr-find`: the learning-rate range test ([`tensile_train::lr_find`]) for the model,
//! data and training settings a config (or `--data`) gives. It prints the suggested rate and a
//! short table of the curve, and writes the whole curve as `lr_finder.csv` with its plot
//! (`lr_finder.png`, `lr_finder.svg`, drawn by [`tensile_train::plot`]) into the run directory
//! `tensile train` would use, or `--out`.
//!
//! The model is built exactly as `train` builds it (same spec, same initialization seed) and the
//! test uses the config's optimizer, batch size, clipping, split and scaling, so the suggestion
//! is for that run. Nothing is trained for keeps: the finder restores the weights it changed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tensile_nn::ModelSpec;
use tensile_train::{LrFinderConfig, LrFinderResult, lr_find};

use crate::config;
use crate::data::{self, TrainTable};
use crate::stdout::outln;

pub const EXAMPLES: &str = "\
Examples:
  tensile lr-find run.toml                                  # suggest a rate for this run
  tensile lr-find --data iris.csv --target species --out runs/iris
  tensile lr-find run.toml --set training.batch_size=64     # the rate depends on the batch size
  tensile lr-find run.toml --start-lr 1e-5 --end-lr 1 --steps 200

Writes lr_finder.csv (step, lr, smoothed and raw loss), lr_finder.png and lr_finder.svg into
the run directory (output.dir, runs/NAME, or --out); then train with the suggestion:
  tensile train run.toml --set training.optimizer.lr=3.0e-3";

#[derive(clap::Args)]
pub struct Args {
    /// A TOML config file, as for `tensile train`.
    config: Option<PathBuf>,
    /// Use this CSV file as the training data (overrides data.train).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// The target column of --data (overrides data.target; default `target`).
    #[arg(long, value_name = "COLUMN")]
    target: Option<String>,
    /// Override any config key: dotted path, value in TOML (e.g. training.batch_size=64).
    /// Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write the curve and its plot here (default: the run directory `tensile train` would use).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The learning rate of the first step.
    #[arg(long, value_name = "LR", default_value = "1e-7")]
    start_lr: f64,
    /// The learning rate of the last step, unless the loss diverges first.
    #[arg(long, value_name = "LR", default_value = "10")]
    end_lr: f64,
    /// Steps (batches) from --start-lr to --end-lr.
    #[arg(long, value_name = "N", default_value = "100")]
    steps: usize,
}

/// Rows of the curve shown in the printed table (the whole curve is in the CSV).
const TABLE_ROWS: usize = 10;

pub fn run(args: &Args) -> Result<()> {
    tensile_core::threads::init();
    if args.config.is_none() && args.data.is_none() && args.target.is_some() {
        bail!("--target names a column of --data; give --data FILE as well");
    }
    let mut overrides = Vec::new();
    if let Some(d) = &args.data {
        let abs = std::path::absolute(d).with_context(|| format!("cannot resolve the path {}", d.display()))?;
        overrides.push(format!("data.train={}", toml::Value::String(abs.display().to_string())));
    }
    if let Some(t) = &args.target {
        overrides.push(format!("data.target={}", toml::Value::String(t.clone())));
    }
    overrides.extend(args.set.iter().cloned());
    let loaded = config::load(args.config.as_deref(), &overrides)?;
    let run_data = data::read(&loaded)?;
    let cfg = &loaded.config;
    let TrainTable::Memory(train) = &run_data.train else {
        bail!(
            "lr-find reads the training rows into memory; set data.stream = false (the range test needs only \
             a few hundred batches, so a sample of the file is enough)"
        );
    };
    // The model `train` builds: the same layers (flattened first for images), seed and shape.
    let input_shape = train.sample_shape().to_vec();
    let embedding = crate::artifacts::index_columns(&train.index_columns(), cfg.model.embedding_dim);
    let model_shape = crate::artifacts::model_input_shape(&input_shape, embedding.as_deref());
    let layers = cfg.model.layers_for(&model_shape, train.n_classes().unwrap_or(1))?;
    let mut model = crate::artifacts::build_model(
        &ModelSpec { layers },
        &input_shape,
        embedding.as_deref(),
        &mut cfg.training.init_rng(),
    )
    .context("cannot build the model")?;
    let finder =
        LrFinderConfig { start_lr: args.start_lr, end_lr: args.end_lr, num_steps: args.steps, ..Default::default() };
    let result = lr_find(&mut model, train, &cfg.training, &finder)?;

    let dir = args.out.clone().or_else(|| cfg.output.dir.clone()).or_else(|| {
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        let name = args.config.as_deref().and_then(stem).or_else(|| cfg.data.train.as_deref().and_then(stem))?;
        Some(Path::new("runs").join(name))
    });
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the directory {}", dir.display()))?;
        let path = dir.join("lr_finder.csv");
        tensile_nn::weights::write_atomic(&path, curve_csv(&result).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        result.write_plots(dir)?;
    }

    let what = match train.n_classes() {
        Some(c) => format!("{c} classes"),
        None => "regression".to_string(),
    };
    outln!(
        "{}: {} rows, {} features, {what}; {} steps of batch {} with {}, lr {:.2e} to {:.2e}",
        run_data.name,
        train.len(),
        train.n_features(),
        result.lrs.len(),
        cfg.training.batch_size,
        optimizer_name(&cfg.training.optimizer),
        finder.start_lr,
        finder.end_lr,
    );
    if result.stopped_early {
        let last = result.lrs.last().copied().unwrap_or(f64::NAN);
        outln!("stopped early at lr {last:.2e}: the loss diverged");
    }
    outln!("{}", table(&result));
    match result.suggestion {
        Some(lr) => {
            outln!("suggested learning rate: {lr:.2e} (where the smoothed loss falls fastest)");
            outln!("  use it with: --set training.optimizer.lr={lr:.2e}");
        }
        None => outln!(
            "no suggestion: the loss did not fall over enough steps; try a wider range (--start-lr, --end-lr) \
             or more --steps"
        ),
    }
    match &dir {
        Some(dir) => outln!("saved lr_finder.csv, lr_finder.png and lr_finder.svg to {}", dir.display()),
        None => outln!("(pass --out DIR to save the curve and its plot)"),
    }
    Ok(())
}

fn optimizer_name(o: &tensile_train::OptimizerConfig) -> String {
    let v = serde_json::to_value(o).unwrap_or_default();
    v["type"].as_str().unwrap_or("the optimizer").to_string()
}

/// `step,lr,loss,raw_loss`, one row per step; floats written so they read back exactly.
fn curve_csv(r: &LrFinderResult) -> String {
    let mut text = String::from("step,lr,loss,raw_loss\n");
    for (i, ((lr, loss), raw)) in r.lrs.iter().zip(&r.losses).zip(&r.raw_losses).enumerate() {
        let _ = writeln!(text, "{},{lr:?},{loss:?},{raw:?}", i + 1);
    }
    text
}

/// About [`TABLE_ROWS`] points spread evenly over the curve, the suggested one included and
/// marked.
fn table(r: &LrFinderResult) -> String {
    let n = r.lrs.len();
    let suggested = r.suggestion.and_then(|s| r.lrs.iter().position(|&lr| lr == s));
    let mut rows: Vec<usize> = (0..TABLE_ROWS).map(|k| k * n.saturating_sub(1) / (TABLE_ROWS - 1).max(1)).collect();
    rows.extend(suggested);
    rows.sort_unstable();
    rows.dedup();
    let mut text = format!("{:>6}  {:>9}  {:>10}  {:>10}", "step", "lr", "loss", "raw loss");
    for i in rows.into_iter().filter(|&i| i < n) {
        let mark = if Some(i) == suggested { "  <- suggested" } else { "" };
        let _ = write!(
            text,
            "\n{:>6}  {:>9.2e}  {:>10}  {:>10}{mark}",
            i + 1,
            r.lrs[i],
            format!("{:.4}", r.losses[i]),
            format!("{:.4}", r.raw_losses[i])
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// The flags' defaults are the range test's own.
    #[test]
    fn flag_defaults_are_the_finder_defaults() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: super::Args,
        }
        let cli = Cli::try_parse_from(["lr-find"]).expect("no arguments needed");
        let d = super::LrFinderConfig::default();
        assert_eq!((cli.args.start_lr, cli.args.end_lr, cli.args.steps), (d.start_lr, d.end_lr, d.num_steps));
    }
}
