//! What a trained run leaves for `eval` and `predict`: `model.json` (how to rebuild the model and
//! prepare its input) beside `model.safetensors` (the best weights), and the code that reads
//! them back and runs the model over a table.
//!
//! Shapes: N rows, D features, C outputs (classes, or 1 for regression).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tensile_core::Rng;
use tensile_core::{Tensor, no_grad};
use tensile_data::{Dataset, FeatureScaler, MinMaxScaler, Standardizer, TargetScaler, Targets};
use tensile_nn::{Embedded, IndexColumn, ModelSpec, Module, TabularEmbedding, embedding_dim_for};

use crate::config::TaskName;
use crate::data::InputFormat;

/// `model.json`: everything besides the weights that using the model needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub tensile_version: String,
    pub task: TaskName,
    pub spec: ModelSpec,
    /// The per-sample input shape: `[D]` for tables, `[C, H, W]` for images.
    pub input_shape: Vec<usize>,
    /// The feature columns, in the order the model reads them.
    pub feature_names: Vec<String>,
    pub target: String,
    /// Class names by label (classification only).
    pub class_names: Option<Vec<String>>,
    /// How the training data was read (table columns and categories, image size and color,
    /// array names), so evaluation and prediction files are read the same way.
    #[serde(default)]
    pub input: InputFormat,
    /// Per-feature mean and standard deviation fitted on the training rows, when standardized.
    pub standardizer: Option<StandardizerParts>,
    /// Per-feature minimum and maximum of the training rows, with `scaling = "minmax"`. Absent
    /// from files of older versions, which only standardized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_max: Option<MinMaxParts>,
    /// The learned embeddings of the table's index columns (position among the input features,
    /// categories, width), in front of the spec's model, which is then built for the widened
    /// rows. Absent when the table has none, and from older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<IndexColumn>>,
    /// The regression target's training mean and std when it was standardized for training:
    /// the model's outputs are `(y - mean) / std`, mapped back by [`LoadedModel::forward`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scaler: Option<TargetScalerParts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StandardizerParts {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MinMaxParts {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TargetScalerParts {
    pub mean: f64,
    pub std: f64,
}

/// A model loaded from a run directory, ready for inference.
pub struct LoadedModel {
    pub info: ModelInfo,
    pub model: Box<dyn Module>,
    scaler: Option<FeatureScaler>,
    target_scaler: Option<TargetScaler>,
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
        let mut model = build_model(&info.spec, &info.input_shape, info.embedding.as_deref(), &mut Rng::seed(0))
            .with_context(|| format!("cannot rebuild the model described in {}", json_path.display()))?;
        tensile_nn::load_weights(&model, &run_dir.join("model.safetensors"))?;
        model.set_training(false);
        let scaler = match (&info.standardizer, &info.min_max) {
            (Some(_), Some(_)) => {
                bail!("{}: has both `standardizer` and `min_max`; a model has one", json_path.display())
            }
            (Some(s), None) => Some(
                Standardizer::from_parts(s.mean.clone(), s.std.clone())
                    .map(FeatureScaler::Standard)
                    .with_context(|| format!("invalid standardizer in {}", json_path.display()))?,
            ),
            (None, Some(s)) => Some(
                MinMaxScaler::from_parts(s.min.clone(), s.max.clone())
                    .map(FeatureScaler::MinMax)
                    .with_context(|| format!("invalid min_max in {}", json_path.display()))?,
            ),
            (None, None) => None,
        };
        if let Some(s) = &scaler
            && s.n_features() != info.feature_names.len()
        {
            bail!(
                "{}: the feature scaling has {} features, the model reads {}",
                json_path.display(),
                s.n_features(),
                info.feature_names.len()
            );
        }
        let target_scaler = info
            .target_scaler
            .map(|t| TargetScaler::from_parts(t.mean, t.std))
            .transpose()
            .with_context(|| format!("invalid target_scaler in {}", json_path.display()))?;
        if target_scaler.is_some() && info.task != TaskName::Regression {
            bail!("{}: a target_scaler is only valid for a regressor", json_path.display());
        }
        Ok(LoadedModel { info, model, scaler, target_scaler })
    }

    /// Applies the saved preprocessing to row-major features `[N, D]` in place.
    pub fn prepare(&self, features: &mut [f32]) -> Result<()> {
        if let Some(s) = &self.scaler {
            s.transform_in_place(features)?;
        }
        Ok(())
    }

    /// The model's outputs `[N, C]` for prepared features `[N, D]`, in batches, with no graph;
    /// a regressor's in the target's units (its scaled target mapped back).
    pub fn forward(&self, features: &[f32]) -> Result<Vec<f32>> {
        let _guard = no_grad();
        let d = self.info.input_shape.iter().product::<usize>().max(1);
        let mut out = Vec::new();
        for chunk in features.chunks(256 * d) {
            let mut shape = vec![chunk.len() / d];
            shape.extend_from_slice(&self.info.input_shape);
            let x = Tensor::from_slice(chunk, shape)?;
            out.extend(self.model.forward(&x)?.to_vec::<f32>()?);
        }
        if let Some(t) = &self.target_scaler {
            t.inverse_in_place(&mut out);
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

/// The embeddings of a table's index columns (`(position, categories)` each, as
/// `Dataset::index_columns` gives them), each `dim` wide or else by fast.ai's rule; `None`
/// when there are none.
pub fn index_columns(index: &[(usize, usize)], dim: Option<usize>) -> Option<Vec<IndexColumn>> {
    (!index.is_empty()).then(|| {
        index
            .iter()
            .map(|&(position, categories)| IndexColumn {
                position,
                categories,
                dim: dim.unwrap_or_else(|| embedding_dim_for(categories)),
            })
            .collect()
    })
}

/// The per-sample shape the spec's model is built for: `sample_shape`, or `[F']` behind
/// embeddings (each index column widened to its embedding).
pub fn model_input_shape(sample_shape: &[usize], embedding: Option<&[IndexColumn]>) -> Vec<usize> {
    match embedding {
        Some(cols) => {
            let widened: usize = cols.iter().map(|c| c.dim).sum();
            vec![sample_shape.iter().product::<usize>() + widened - cols.len()]
        }
        None => sample_shape.to_vec(),
    }
}

/// The model of a run: `spec` built for `sample_shape` and fed the trainer's `[B, D]` rows
/// reshaped to it, or, with `embedding`, built for the widened rows behind a
/// [`TabularEmbedding`] (model weights first from `rng`, then the embedding tables, so a run
/// without index columns initializes as it always has).
pub fn build_model(
    spec: &ModelSpec,
    sample_shape: &[usize],
    embedding: Option<&[IndexColumn]>,
    rng: &mut Rng,
) -> Result<Box<dyn Module>> {
    let shape = model_input_shape(sample_shape, embedding);
    let (model, _) = spec.build(&shape, rng)?;
    Ok(match embedding {
        Some(cols) => {
            let n_features = sample_shape.iter().product();
            let embedding = TabularEmbedding::with_columns(n_features, cols.to_vec(), rng)?;
            Box::new(Embedded { embedding, model })
        }
        None => Box::new(crate::data::Shaped::new(model, sample_shape.to_vec())),
    })
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
            "{source}: the features are [{}], the model's are [{}]",
            shorten(ds.feature_names()),
            shorten(feature_names)
        );
    }
    let shape = ds.sample_shape().to_vec();
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
    let columns = ds.columns().clone();
    Ok(Dataset::new(
        ds.features().to_vec(),
        feature_names.to_vec(),
        Targets::Classes { labels, class_names: names.to_vec() },
    )?
    .with_columns(columns)?
    .with_sample_shape(shape)?)
}

/// Names for a message, at most 12 of them (an image has thousands of features).
fn shorten(names: &[String]) -> String {
    const MAX: usize = 12;
    if names.len() <= MAX {
        names.join(", ")
    } else {
        format!("{}, … ({} in all)", names[..MAX].join(", "), names.len())
    }
}
