//! `tensile summary`: the model a config builds, shown without training — the layer table from
//! `tensile_nn::summary` for the input shape of the data, the parameter count, and a memory
//! estimate for training.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tensile_nn::ModelSpec;

use crate::config;
use crate::data;
use crate::stdout::outln;

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
    let input_shape = train.sample_shape().to_vec();
    // A table's index columns go through learned embeddings in front of the model, as in `train`.
    let embedding = crate::artifacts::index_columns(&train.index_columns(), loaded.config.model.embedding_dim);
    let model_shape = crate::artifacts::model_input_shape(&input_shape, embedding.as_deref());
    let layers = loaded.config.model.layers_for(&model_shape, train.n_classes().unwrap_or(1))?;
    let spec = ModelSpec { layers };
    let mut model = crate::artifacts::build_model(
        &spec,
        &input_shape,
        embedding.as_deref(),
        &mut loaded.config.training.init_rng(),
    )
    .context("cannot build the model")?;
    // One sample in evaluation mode (batch norm then needs no batch statistics); the shapes in
    // the table start with that batch of 1.
    model.set_training(false);
    let batch: Vec<usize> = std::iter::once(1).chain(input_shape.iter().copied()).collect();
    let table = tensile_nn::summary(&model, &batch).context("cannot run the model on one sample")?;
    outln!("data: {} ({} features, {} rows)", run_data.name, train.n_features(), train.len());
    outln!("{table}");
    let params = tensile_nn::parameter_count(&model);
    outln!("parameters: {params}");
    outln!(
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
