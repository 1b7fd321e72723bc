//! `tensile summary`: the model a config builds, shown without training — the layer table from
//! `tensile_nn::summary` for the input shape of the data, the parameter count, and a memory
//! estimate for training.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tensile_nn::ModelSpec;

use crate::config;
use crate::data;

pub const EXAMPLES: &str = "\
Examples:
  tensile summary run.toml
  tensile summary run.toml --set 'model.hidden=[256, 128]'";

#[derive(clap::Args)]
pub struct Args {
    /// A TOML config file (without one: the default MLP on the built-in digits).
    config: Option<PathBuf>,
    /// Override any config key: dotted path, value in TOML. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Bytes per parameter while training with Adam: the weight, its gradient and Adam's two
/// moment buffers, each an f32. Activations are not counted: they depend on the batch size.
const TRAINING_BYTES_PER_PARAM: usize = 4 * 4;

pub fn run(args: &Args) -> Result<()> {
    let loaded = config::load(args.config.as_deref(), &args.set)?;
    let run_data = data::read(&loaded)?;
    let train = &run_data.train;
    let layers = loaded.config.model.layers_for(train.n_classes().unwrap_or(1))?;
    let input_shape = [train.n_features()];
    let (model, _) = ModelSpec { layers }
        .build(&input_shape, &mut loaded.config.training.init_rng())
        .context("cannot build the model")?;
    let table = tensile_nn::summary(&model, &input_shape).context("cannot run the model on one sample")?;
    println!("data: {} ({} features, {} rows)", run_data.name, train.n_features(), train.len());
    println!("{table}");
    let params = tensile_nn::parameter_count(&model);
    println!("parameters: {params}");
    println!(
        "training memory estimate: {} (weights, gradients and Adam state; activations not included)",
        human_bytes(params * TRAINING_BYTES_PER_PARAM)
    );
    Ok(())
}

fn human_bytes(n: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
}
