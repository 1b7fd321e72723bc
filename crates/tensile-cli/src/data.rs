//! Reading the data a config names, in every format tensile reads: CSV, Parquet, NumPy arrays
//! (`.npy` features with a `.npy` targets file, or an `.npz` archive) and folders of images (one
//! sub-folder per class). The training file decides the task, the class names, the column
//! encoding (one-hot categories) and, for images, the size; the validation and test files, and
//! later the files given to `eval` and `predict`, are read the same way ([`InputFormat`], saved
//! in `model.json`) and mapped onto the training classes.
//!
//! Shapes: N rows, D features per row; a row's sample shape is `[D]` for tables and arrays of
//! rows x features, `[C, H, W]` for images (and arrays with more dimensions).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tensile_core::{Rng, Tensor};
use tensile_data::{
    ColumnEncoding, CsvOptions, DEFAULT_BLOCK_ROWS, Dataset, FeatureColumn, Features, ImageOptions, ImageSize, Impute,
    TableStream, Task, read_csv_features, read_csv_with, read_image_files, read_image_folder_with, read_npy,
    read_npy_features, read_npz, read_npz_features,
};
use tensile_nn::Module;

use crate::artifacts::align;
use crate::config::{DataConfig, Loaded, TaskName, resolve};

/// The color mode of image inputs (`data.color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// One channel.
    Grayscale,
    /// Three channels.
    #[default]
    Rgb,
}

/// How missing table cells are filled (`data.impute`); unset, a missing cell is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputeName {
    Mean,
    Median,
    MostFrequent,
}

impl From<ImputeName> for Impute {
    fn from(i: ImputeName) -> Impute {
        match i {
            ImputeName::Mean => Impute::Mean,
            ImputeName::Median => Impute::Median,
            ImputeName::MostFrequent => Impute::MostFrequent,
        }
    }
}

/// How the training data was read, saved in `model.json` so that `eval` and `predict` read
/// their files the same way. Every field has a default, so a `model.json` written before a
/// field existed still loads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InputFormat {
    /// A table's feature columns as trained, each numeric or with its categories (one-hot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<SavedColumn>>,
    /// How missing table cells were filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impute: Option<ImputeName>,
    /// Images: the `[height, width]` every image was resized to (none: used as they were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[u32; 2]>,
    /// Images: the color mode.
    pub color: Color,
    /// `.npz` archives: the names of the features and targets arrays.
    pub features: String,
    pub targets: String,
    /// Training tables: the most categories a column is one-hot encoded with (`data.one_hot_max`).
    /// Not saved: the saved `columns` already say how each column is encoded.
    #[serde(skip)]
    pub one_hot_max: Option<usize>,
}

impl Default for InputFormat {
    fn default() -> Self {
        InputFormat {
            columns: None,
            impute: None,
            image_size: None,
            color: Color::Rgb,
            features: tensile_data::NPZ_FEATURES_KEY.into(),
            targets: tensile_data::NPZ_TARGETS_KEY.into(),
            one_hot_max: None,
        }
    }
}

/// One table column of [`InputFormat::columns`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedColumn {
    pub name: String,
    /// The one-hot categories, in order; none for a numeric column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// The column is one feature holding its category's index (for a learned embedding)
    /// instead of one-hot features. Absent (false) in older files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indexed: bool,
}

impl InputFormat {
    fn from_config(data: &DataConfig) -> InputFormat {
        InputFormat {
            columns: None,
            impute: data.impute,
            image_size: data.image_size,
            color: data.color,
            features: data.features.clone(),
            targets: data.targets.clone(),
            one_hot_max: Some(data.one_hot_max),
        }
    }

    fn encoding(&self) -> Option<ColumnEncoding> {
        let columns = self.columns.as_ref()?;
        Some(ColumnEncoding::new(
            columns
                .iter()
                .map(|c| match &c.categories {
                    None => FeatureColumn::Numeric { name: c.name.clone() },
                    Some(categories) if c.indexed => {
                        FeatureColumn::Indexed { name: c.name.clone(), categories: categories.clone() }
                    }
                    Some(categories) => {
                        FeatureColumn::Categorical { name: c.name.clone(), categories: categories.clone() }
                    }
                })
                .collect(),
        ))
    }

    fn set_encoding(&mut self, encoding: &ColumnEncoding) {
        self.columns = Some(
            encoding
                .columns()
                .iter()
                .map(|c| match c {
                    FeatureColumn::Numeric { name } => {
                        SavedColumn { name: name.clone(), categories: None, indexed: false }
                    }
                    FeatureColumn::Categorical { name, categories } => {
                        SavedColumn { name: name.clone(), categories: Some(categories.clone()), indexed: false }
                    }
                    FeatureColumn::Indexed { name, categories } => {
                        SavedColumn { name: name.clone(), categories: Some(categories.clone()), indexed: true }
                    }
                })
                .collect(),
        );
    }

    /// `true` when a CSV file can be read cell by cell as plain numbers (no categories, no
    /// imputation), which `predict` does in bounded memory.
    pub fn plain_numeric(&self) -> bool {
        self.impute.is_none() && self.columns.iter().flatten().all(|c| c.categories.is_none())
    }

    fn csv_options(&self, task: Task, categorical: &[String]) -> CsvOptions {
        CsvOptions {
            delimiter: None,
            impute: self.impute.map(Impute::from),
            task,
            categorical: categorical.to_vec(),
            columns: self.encoding(),
            one_hot_max: self.one_hot_max,
        }
    }

    /// How images are read: resized to the configured size, or else (`sample_shape` known from
    /// training, `[C, H, W]`) required to have the training size.
    fn image_options(&self, sample_shape: Option<&[usize]>) -> ImageOptions {
        let size = match (self.image_size, sample_shape) {
            (Some([h, w]), _) => ImageSize::Resize(w, h),
            (None, Some(&[_, h, w])) => ImageSize::Exactly(w as u32, h as u32),
            (None, _) => ImageSize::First,
        };
        ImageOptions { size, grayscale: self.color == Color::Grayscale }
    }
}

/// The file formats tensile reads, told apart by extension (a folder is images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Npy,
    Npz,
    Images,
}

/// The format of `path`.
pub fn format_of(path: &Path) -> Result<Format> {
    if path.is_dir() {
        return Ok(Format::Images);
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    Ok(match ext.as_str() {
        "csv" | "tsv" | "txt" | "" => Format::Csv,
        "parquet" | "pq" => Format::Parquet,
        "npy" => Format::Npy,
        "npz" => Format::Npz,
        "png" | "jpg" | "jpeg" => Format::Images,
        _ => bail!(
            "{}: found a .{ext} file, expected CSV (.csv, .tsv, .txt), Parquet (.parquet), NumPy (.npy, .npz) \
             or a folder of images",
            path.display()
        ),
    })
}

/// The training data of a run: a table read whole, or a CSV or Parquet file scanned for streaming.
pub enum TrainTable {
    Memory(Dataset),
    Stream {
        stream: Box<TableStream>,
        /// Bytes the streamed data may occupy (`data.memory_budget`).
        budget: u64,
        /// `[D]`.
        sample_shape: [usize; 1],
    },
}

impl TrainTable {
    /// Number of rows N.
    pub fn len(&self) -> usize {
        match self {
            TrainTable::Memory(ds) => ds.len(),
            TrainTable::Stream { stream, .. } => stream.len(),
        }
    }

    /// Number of features D.
    pub fn n_features(&self) -> usize {
        match self {
            TrainTable::Memory(ds) => ds.n_features(),
            TrainTable::Stream { stream, .. } => stream.n_features(),
        }
    }

    /// The shape of one sample: `[D]`, or `[C, H, W]` for images.
    pub fn sample_shape(&self) -> &[usize] {
        match self {
            TrainTable::Memory(ds) => ds.sample_shape(),
            TrainTable::Stream { sample_shape, .. } => sample_shape,
        }
    }

    pub fn feature_names(&self) -> &[String] {
        match self {
            TrainTable::Memory(ds) => ds.feature_names(),
            TrainTable::Stream { stream, .. } => stream.feature_names(),
        }
    }

    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            TrainTable::Memory(ds) => ds.class_names(),
            TrainTable::Stream { stream, .. } => stream.class_names(),
        }
    }

    pub fn n_classes(&self) -> Option<usize> {
        self.class_names().map(<[String]>::len)
    }

    /// The index features (position, category count): the columns with more categories than
    /// `data.one_hot_max`, the same whether the table is read whole or streamed.
    pub fn index_columns(&self) -> Vec<(usize, usize)> {
        self.columns().index_columns()
    }

    fn columns(&self) -> &ColumnEncoding {
        match self {
            TrainTable::Memory(ds) => ds.columns(),
            TrainTable::Stream { stream, .. } => stream.columns(),
        }
    }
}

/// The budget when `stream = true` names none: enough for a window of about a million rows of
/// a few dozen features, and small next to any machine that trains.
const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// Reads a size such as `256MiB`, `2GiB`, `500MB` or `1048576` (bytes): binary units (KiB, MiB,
/// GiB, TiB) or decimal ones (KB, MB, GB, TB), in any case, with an optional fraction.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let value: f64 = number.parse().ok()?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = value * scale as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The memory budget when the training file at `path` is to be streamed: `data.stream`, or a
/// file larger than `data.memory_budget`. CSV and Parquet files stream; arrays and images are
/// always read whole.
fn stream_budget(data: &DataConfig, path: &Path) -> Result<Option<u64>> {
    let budget = match &data.memory_budget {
        None => None,
        Some(text) => Some(parse_size(text).ok_or_else(|| {
            anyhow!("data.memory_budget: found {text:?}, expected a size such as \"256MiB\", \"2GiB\" or \"500MB\"")
        })?),
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let too_big = budget.is_some_and(|b| size > b);
    if !(data.stream || too_big) {
        return Ok(None);
    }
    let format = format_of(path)?;
    if !matches!(format, Format::Csv | Format::Parquet) {
        let why = if data.stream {
            "data.stream is on".to_string()
        } else {
            format!(
                "it is larger ({size} bytes) than data.memory_budget ({})",
                data.memory_budget.as_deref().unwrap_or("")
            )
        };
        bail!(
            "{}: {why}, but only CSV and Parquet files are streamed; convert it to one of them, or raise the \
             budget to read it whole",
            path.display()
        );
    }
    Ok(Some(budget.unwrap_or(DEFAULT_MEMORY_BUDGET)))
}

/// The data of a run.
pub struct RunData {
    pub train: TrainTable,
    pub validation: Option<Dataset>,
    pub test: Option<Dataset>,
    /// A short name for messages (`iris.csv`, `digits`).
    pub name: String,
    pub task: TaskName,
    /// How the files were read, for `model.json`.
    pub input: InputFormat,
}

/// Reads the files in `[data]`, or the built-in digits when no training file is named. A CSV or
/// Parquet training file is only scanned, not read, when it is to be streamed (`data.stream`, or larger
/// than `data.memory_budget`); validation and test files are always read whole.
pub fn read(loaded: &Loaded) -> Result<RunData> {
    let data = &loaded.config.data;
    let mut input = InputFormat::from_config(data);
    let Some(train_path) = &data.train else {
        let train = TrainTable::Memory(tensile_data::digits());
        return Ok(RunData {
            train,
            validation: None,
            test: None,
            name: "digits".into(),
            task: TaskName::Classification,
            input,
        });
    };
    if let Some([h, w]) = data.image_size
        && (h == 0 || w == 0)
    {
        bail!("data.image_size: found [{h}, {w}], expected [height, width] of at least 1 pixel each");
    }
    let task = match data.task {
        None => Task::Infer,
        Some(TaskName::Classification) => Task::Classification,
        Some(TaskName::Regression) => Task::Regression,
    };
    let full = |p: &Option<PathBuf>| p.as_ref().map(|p| resolve(&loaded.base, p));
    let path = resolve(&loaded.base, train_path);
    let labelled = Labelled {
        target: &data.target,
        task,
        input: &input,
        categorical: &data.categorical,
        sample_shape: None,
        targets_key: "data.train_targets",
    };
    let train = match stream_budget(data, &path)? {
        Some(budget) => {
            let options = input.csv_options(task, &data.categorical);
            let stream = match format_of(&path)? {
                Format::Parquet => scan_parquet(&path, &data.target, &options)?,
                _ => TableStream::scan(&path, &data.target, &options, DEFAULT_BLOCK_ROWS)?,
            };
            let sample_shape = [stream.n_features()];
            TrainTable::Stream { stream: Box::new(stream), budget, sample_shape }
        }
        None => TrainTable::Memory(labelled.read(&path, full(&data.train_targets).as_deref())?),
    };
    if let Some(encoding) = table_encoding(&path, &train)? {
        input.set_encoding(&encoding);
    }
    let (task, fixed) = match train.class_names() {
        Some(_) => (TaskName::Classification, Task::Classification),
        None => (TaskName::Regression, Task::Regression),
    };
    let class_names = train.class_names().map(<[String]>::to_vec);
    let other =
        |p: &Option<PathBuf>, targets: &Option<PathBuf>, targets_key: &'static str| -> Result<Option<Dataset>> {
            let Some(path) = full(p) else { return Ok(None) };
            let reader = Labelled {
                target: &data.target,
                task: fixed,
                input: &input,
                categorical: &[],
                sample_shape: Some(train.sample_shape()),
                targets_key,
            };
            let ds = reader.read(&path, full(targets).as_deref())?;
            let ds =
                align(ds, train.feature_names(), class_names.as_deref(), &data.target, &path.display().to_string())?;
            Ok(Some(ds))
        };
    let validation = other(&data.validation, &data.validation_targets, "data.validation_targets")?;
    let test = other(&data.test, &data.test_targets, "data.test_targets")?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(RunData { train, validation, test, name, task, input })
}

/// The column encoding to save for a table (CSV or Parquet); none for arrays and images.
fn table_encoding(path: &Path, train: &TrainTable) -> Result<Option<ColumnEncoding>> {
    Ok(match format_of(path)? {
        Format::Csv | Format::Parquet => Some(train.columns().clone()),
        Format::Npy | Format::Npz | Format::Images => None,
    })
}

/// Reads a labelled file (features and targets) for `eval`, the way the model's training data
/// was read. `targets` is the targets file of a `.npy` features file.
pub fn read_labelled(
    path: &Path,
    targets: Option<&Path>,
    target: &str,
    task: Task,
    input: &InputFormat,
    sample_shape: &[usize],
) -> Result<Dataset> {
    let reader =
        Labelled { target, task, input, categorical: &[], sample_shape: Some(sample_shape), targets_key: "--targets" };
    reader.read(path, targets)
}

/// What reading one labelled file needs.
struct Labelled<'a> {
    target: &'a str,
    task: Task,
    input: &'a InputFormat,
    /// Columns to one-hot encode though they look numeric (training only).
    categorical: &'a [String],
    /// The training data's sample shape, once known.
    sample_shape: Option<&'a [usize]>,
    /// Where a `.npy` file's targets file is named, for the message when it is missing.
    targets_key: &'static str,
}

impl Labelled<'_> {
    fn read(&self, path: &Path, targets: Option<&Path>) -> Result<Dataset> {
        let format = format_of(path)?;
        let options = self.input.csv_options(self.task, self.categorical);
        // The readers' errors already name the file (and the line, row, column or array).
        let ds = match format {
            Format::Csv => read_csv_with(path, self.target, &options)?,
            Format::Parquet => read_parquet(path, self.target, &options)?,
            Format::Npy => {
                let Some(targets) = targets else {
                    bail!(
                        "{}: a .npy file holds only features; name the .npy file of its targets with {}",
                        path.display(),
                        self.targets_key
                    );
                };
                read_npy(path, targets)?
            }
            Format::Npz => read_npz(path, &self.input.features, &self.input.targets)?,
            Format::Images if path.is_dir() => {
                read_image_folder_with(path, &self.input.image_options(self.sample_shape))?
            }
            Format::Images => bail!(
                "{}: found a single image, expected a folder with one sub-folder of images per class",
                path.display()
            ),
        };
        if matches!(format, Format::Npy | Format::Npz | Format::Images) {
            self.check_task(path, &ds)?;
        }
        Ok(ds)
    }

    /// Arrays and images have their task in their data (integer or float targets, class
    /// folders); a config that asks for the other one is an error rather than a conversion.
    fn check_task(&self, path: &Path, ds: &Dataset) -> Result<()> {
        let found = if ds.class_names().is_some() { "class labels" } else { "real-valued targets" };
        match (self.task, ds.class_names().is_some()) {
            (Task::Regression, true) => {
                bail!("{}: found {found}, expected real-valued targets for regression", path.display())
            }
            (Task::Classification, false) => bail!(
                "{}: found {found} (a float array), expected class labels (an integer array) for classification",
                path.display()
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(feature = "parquet")]
fn read_parquet(path: &Path, target: &str, options: &CsvOptions) -> tensile_data::Result<Dataset> {
    tensile_data::read_parquet(path, target, options)
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(path: &Path, _target: &str, _options: &CsvOptions) -> Result<Dataset> {
    bail!("{}: this tensile was built without Parquet support (cargo feature `parquet`)", path.display())
}

#[cfg(feature = "parquet")]
fn scan_parquet(path: &Path, target: &str, options: &CsvOptions) -> tensile_data::Result<TableStream> {
    TableStream::scan_parquet(path, target, options, DEFAULT_BLOCK_ROWS)
}

#[cfg(not(feature = "parquet"))]
fn scan_parquet(path: &Path, _target: &str, _options: &CsvOptions) -> Result<TableStream> {
    bail!("{}: this tensile was built without Parquet support (cargo feature `parquet`)", path.display())
}

#[cfg(feature = "parquet")]
fn read_parquet_features(path: &Path, options: &CsvOptions) -> tensile_data::Result<Features> {
    tensile_data::read_parquet_features(path, options)
}

#[cfg(not(feature = "parquet"))]
fn read_parquet_features(path: &Path, _options: &CsvOptions) -> Result<Features> {
    bail!("{}: this tensile was built without Parquet support (cargo feature `parquet`)", path.display())
}

/// Reads the features of `path` for `predict`, the way the model's training data was read;
/// `feature_names` and `sample_shape` are the model's, and the file must match them.
pub fn read_features(
    path: &Path,
    input: &InputFormat,
    feature_names: &[String],
    sample_shape: &[usize],
) -> Result<Features> {
    let options = input.csv_options(Task::Infer, &[]);
    let features = match format_of(path)? {
        Format::Csv => read_csv_features(path, &options)?,
        Format::Parquet => read_parquet_features(path, &options)?,
        Format::Npy => read_npy_features(path)?,
        Format::Npz => read_npz_features(path, &input.features)?,
        Format::Images => read_image_files(path, &input.image_options(Some(sample_shape)))?,
    };
    if features.sample_shape() != sample_shape {
        bail!(
            "{}: found rows of shape {:?}, expected {sample_shape:?} as the model was trained on",
            path.display(),
            features.sample_shape()
        );
    }
    if features.feature_names() != feature_names {
        bail!("{}: the features are not the ones the model was trained on", path.display());
    }
    Ok(features)
}

/// A model built for samples of shape `[C, H, W]` (or any shape other than `[D]`) fed rows of
/// D values: the trainer hands every model its batch as `[B, D]` rows, so this reshapes each
/// batch to `[B, sample shape]` first. Parameter names, buffers and children are the inner
/// model's own, so saved weights and summaries look the same as without it.
pub struct Shaped<M> {
    sample_shape: Vec<usize>,
    inner: M,
}

impl<M: Module> Shaped<M> {
    pub fn new(inner: M, sample_shape: Vec<usize>) -> Self {
        Shaped { sample_shape, inner }
    }
}

impl<M: Module> Module for Shaped<M> {
    fn forward(&self, x: &Tensor) -> tensile_nn::Result<Tensor> {
        let mut shape = Vec::with_capacity(self.sample_shape.len() + 1);
        shape.push(x.dims().first().copied().unwrap_or(1));
        shape.extend_from_slice(&self.sample_shape);
        self.inner.forward(&x.reshape(shape)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner.visit_params(prefix, f)
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner.visit_buffers(prefix, f)
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        self.inner.visit_rngs(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training)
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        self.inner.children()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_binary_and_decimal_units_and_refuse_anything_else() {
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size(" 1.5 gib "), Some(3 << 29));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        for bad in ["", "MiB", "12 parsecs", "-1MiB", "0", "1e3MB", "1.2.3KiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
