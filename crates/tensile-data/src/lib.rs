//! tensile-data: tables in, seeded batches of row indices out.
//!
//! The path through this crate follows the data: a reader ([`read_csv`] / [`read_csv_with`],
//! `read_parquet` with the `parquet` feature, [`read_npy`] / [`read_npz`],
//! [`read_image_folder_with`], or the built-in [`digits`]) makes a [`Dataset`], which also keeps
//! how its original columns became features ([`ColumnEncoding`]: one-hot categories) so
//! prediction data can be encoded the same way, and the shape of one row
//! ([`Dataset::sample_shape`]: `[C, H, W]` for images). Each reader has a features-only variant
//! returning [`Features`], for prediction;
//! [`train_validation_split`] divides its rows; a [`Standardizer`] is fitted on the training rows only; a [`Loader`] deals the training rows out
//! in seeded, shuffled batches; [`Dataset::gather`] copies each batch into reusable `Vec`
//! buffers. This crate knows nothing of models, training or the CLI, and makes no tensors: the
//! training crate turns the buffers into tensors. Its only link to tensile-core is
//! [`tensile_core::Rng`], so every random choice here comes from the run's seed.
//!
//! Shape notation in docs, matching tensile-core's: N rows in a dataset, D features per row, B rows
//! in a batch.
//! Feature buffers are always row-major.
//!
//! Module map, in data order: `error` (the [`Error`] type), `dataset`, `columns` (numeric and
//! categorical columns, imputation), the readers `csv`, `parquet` (which reuses the CSV
//! reader's column rules), `npy`, `images`, `builtin`, then
//! `split`, `preprocess`, `loader`.

mod builtin;
mod columns;
mod csv;
mod dataset;
mod error;
mod images;
mod loader;
mod npy;
#[cfg(feature = "parquet")]
mod parquet;
mod preprocess;
mod split;
mod stream;

pub use crate::builtin::digits;
pub use crate::columns::{ColumnEncoding, FeatureColumn, Impute};
pub use crate::csv::{
    CsvOptions, MAX_INFERRED_CLASSES, Task, read_csv, read_csv_features, read_csv_from, read_csv_from_with,
    read_csv_with,
};
pub use crate::dataset::{Dataset, Features, Targets};
pub use crate::error::{Error, Result};
pub use crate::images::{ImageOptions, ImageSize, read_image_files, read_image_folder, read_image_folder_with};
pub use crate::loader::{Epoch, Loader, LoaderState};
pub use crate::npy::{NPZ_FEATURES_KEY, NPZ_TARGETS_KEY, read_npy, read_npy_features, read_npz, read_npz_features};
#[cfg(feature = "parquet")]
pub use crate::parquet::{read_parquet, read_parquet_features};
pub use crate::preprocess::{FeatureScaler, MinMaxScaler, Standardizer, TargetScaler};
pub use crate::split::train_validation_split;
pub use crate::stream::{
    DEFAULT_BLOCK_ROWS, StreamEpoch, StreamFit, StreamLoader, StreamPrepared, StreamSplit, TableStream,
};
