//! What a trained run leaves for `eval` and `predict`: `model.json` (how to rebuild the model and
//! prepare its input) beside `model.safetensors` (the best weights), and the code that reads
//! them back and runs the model over a table.
//!
//! Shapes: N rows, D features, C outputs (classes, or 1 for regression).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tensile_core::{Tensor, no_grad};
use tensile_data::{Dataset, Standardizer, Targets};
use tensile_nn::{ModelSpec, Module, Sequential};

use crate::config::TaskName;

/// `model.json`: everything besides the weights that using the model needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub tensile_version: String,
    pub task: TaskName,
    pub spec: ModelSpec,
    /// The per-sample input shape, `[D]`.
    pub input_shape: Vec<usize>,
    /// The feature columns, in the order the model reads them.
    pub feature_names: Vec<String>,
    pub target: String,
    /// Class names by label (classification only).
    pub class_names: Option<Vec<String>>,
    /// Per-feature mean and standard deviation fitted on the training rows, when standardized.
    pub standardizer: Option<StandardizerParts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StandardizerParts {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// A model loaded from a run directory, ready for inference.
pub struct LoadedModel {
    pub info: ModelInfo,
    pub model: Sequential,
    standardizer: Option<Standardizer>,
}

impl LoadedModel {
    /// Reads `model.json` and `model.safetensors` from `run_dir`.
    pub fn load(run_dir: &Path) -> Result<LoadedModel> {
        let json_path = run_dir.join("model.json");
        let text = std::fs::read_to_string(&json_path).with_context(|| {
            format!("cannot read {} (is {} a run directory?)", json_path.display(), run_dir.display())
        })?;
        let info: ModelInfo = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid model description", json_path.display()))?;
        let (mut model, _) = info
            .spec
            .build(&info.input_shape, &mut tensile_core::Rng::seed(0))
            .with_context(|| format!("cannot rebuild the model described in {}", json_path.display()))?;
        tensile_nn::load_weights(&model, &run_dir.join("model.safetensors"))?;
        model.set_training(false);
        let standardizer = info
            .standardizer
            .as_ref()
            .map(|s| Standardizer::from_parts(s.mean.clone(), s.std.clone()))
            .transpose()
            .with_context(|| format!("invalid standardizer in {}", json_path.display()))?;
        Ok(LoadedModel { info, model, standardizer })
    }

    /// Applies the saved preprocessing to row-major features `[N, D]` in place.
    pub fn prepare(&self, features: &mut [f32]) -> Result<()> {
        if let Some(s) = &self.standardizer {
            s.transform_in_place(features)?;
        }
        Ok(())
    }

    /// The model's outputs `[N, C]` for prepared features `[N, D]`, in batches, with no graph.
    pub fn forward(&self, features: &[f32]) -> Result<Vec<f32>> {
        let _guard = no_grad();
        let d = self.info.input_shape.iter().product::<usize>().max(1);
        let mut out = Vec::new();
        for chunk in features.chunks(256 * d) {
            let x = Tensor::from_slice(chunk, (chunk.len() / d, d))?;
            out.extend(self.model.forward(&x)?.to_vec::<f32>()?);
        }
        Ok(out)
    }

    /// Output units per row: C classes, or 1.
    pub fn n_outputs(&self) -> usize {
        self.info.class_names.as_ref().map_or(1, Vec::len)
    }

    /// `ds` checked against this model's features and classes (see [`align`]).
    pub fn align(&self, ds: Dataset, source: &str) -> Result<Dataset> {
        align(ds, &self.info.feature_names, self.info.class_names.as_deref(), &self.info.target, source)
    }
}

/// Checks that `ds` has `feature_names` in order and, for classification, maps its labels onto
/// `class_names` (a file may hold only some classes, in which case the reader numbers them
/// differently). A class not in `class_names` is an error.
pub fn align(
    ds: Dataset,
    feature_names: &[String],
    class_names: Option<&[String]>,
    target: &str,
    source: &str,
) -> Result<Dataset> {
    if ds.feature_names() != feature_names {
        bail!(
            "{source}: the feature columns are [{}], the model's are [{}]",
            ds.feature_names().join(", "),
            feature_names.join(", ")
        );
    }
    let Some(names) = class_names else {
        if ds.labels().is_some() {
            bail!("{source}: the target column `{target}` holds classes, the model is a regressor");
        }
        return Ok(ds);
    };
    let Targets::Classes { labels, class_names: found } = ds.targets() else {
        bail!("{source}: the target column `{target}` holds numbers, the model is a classifier")
    };
    let mut map = Vec::with_capacity(found.len());
    for c in found {
        match names.iter().position(|n| n == c) {
            Some(i) => map.push(i as u32),
            None => bail!(
                "{source}: class `{c}` of column `{target}` was not seen in training (known: {})",
                names.join(", ")
            ),
        }
    }
    let labels = labels.iter().map(|&l| map[l as usize]).collect();
    Ok(Dataset::new(
        ds.features().to_vec(),
        feature_names.to_vec(),
        Targets::Classes { labels, class_names: names.to_vec() },
    )?)
}
