//! Where the training loop's batches come from, and the setup that differs with it.
//!
//! [`BatchSource::Memory`] is a [`Dataset`] held whole (already scaled) dealt out by a seeded
//! [`Loader`]; [`BatchSource::Stream`] is a [`TableStream`] read a window of blocks at a time by a
//! [`StreamLoader`], each batch scaled as it is copied out. Both keep their position as a
//! [`LoaderState`] plus the batch number, so the loop, its checkpoints and exact resume are the
//! same code for both. A trait object was considered and rejected: two variants, both known
//! here, read more plainly as an enum.
//!
//! A streamed run holds the validation rows (evaluated whole every time, as in memory), one
//! window of training rows and the model. [`StreamingData::memory_budget`] is split so that the
//! window takes at most a quarter and the validation rows at most half of it; the rest is left
//! for the model, its gradients and optimizer state, and parsing.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tensile_core::{Rng, Tensor};
use tensile_data::{
    Dataset, Epoch, FeatureScaler, Loader, LoaderState, StreamEpoch, StreamFit, StreamLoader, StreamSplit, TableStream,
    TargetScaler,
};

use crate::config::{Scaling, TrainerConfig};
use crate::error::{Error, Result};
use crate::metrics::Task;
use crate::provenance::{Machine, Provenance, rfc3339_utc};
use crate::task::{batch_tensors, check_compatible};

/// A CSV or Parquet training file too large to hold, streamed (see [`crate::Trainer::fit_stream`]).
/// Without `validation`, `TrainerConfig::validation_split` of the stream's rows is held out by a
/// seeded hash of the row number (see [`StreamSplit`]; not stratified).
pub struct StreamingData<'a> {
    pub train: &'a TableStream,
    pub validation: Option<&'a Dataset>,
    pub test: Option<&'a Dataset>,
    /// Bytes the streamed data may occupy: a quarter for the shuffle window of training rows,
    /// up to half for the validation rows (an error says so when they need more).
    pub memory_budget: u64,
}

/// What a checkpoint of a streamed run records about its stream, so that resuming against
/// another file or another window size (a different order of rows) is refused, not silently
/// different.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamFingerprint {
    pub(crate) file_bytes: u64,
    pub(crate) rows: u64,
    pub(crate) block_rows: usize,
    pub(crate) window_blocks: usize,
}

impl std::fmt::Display for StreamFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a stream of {} bytes, {} rows, blocks of {} rows, windows of {} blocks",
            self.file_bytes, self.rows, self.block_rows, self.window_blocks
        )
    }
}

/// The training batches of a run.
pub(crate) enum BatchSource<'a> {
    Memory {
        /// The training table, features (and a regression target) already scaled.
        ds: Dataset,
        loader: Loader,
        epoch: Option<Epoch>,
    },
    Stream {
        loader: StreamLoader<'a>,
        /// Boxed: it holds a file reader with its buffers, many times the other variant's size.
        epoch: Option<Box<StreamEpoch<'a>>>,
        scaler: Option<FeatureScaler>,
        target: Option<TargetScaler>,
        labels: Vec<u32>,
    },
}

impl BatchSource<'_> {
    pub(crate) fn batches_per_epoch(&self) -> usize {
        match self {
            BatchSource::Memory { loader, .. } => loader.batches_per_epoch(),
            BatchSource::Stream { loader, .. } => loader.batches_per_epoch(),
        }
    }

    /// The position to store in a checkpoint.
    pub(crate) fn state(&self) -> LoaderState {
        match self {
            BatchSource::Memory { loader, .. } => loader.state(),
            BatchSource::Stream { loader, .. } => loader.state(),
        }
    }

    pub(crate) fn restore(&mut self, state: &LoaderState) {
        match self {
            BatchSource::Memory { loader, .. } => loader.restore(state),
            BatchSource::Stream { loader, .. } => loader.restore(state),
        }
    }

    /// Draws the next epoch; returns its number of batches.
    pub(crate) fn start_epoch(&mut self) -> usize {
        match self {
            BatchSource::Memory { loader, epoch, .. } => epoch.insert(loader.epoch()).len(),
            BatchSource::Stream { loader, epoch, .. } => epoch.insert(Box::new(loader.epoch())).len(),
        }
    }

    /// Batch `bi` of the current epoch as tensors `(x [B, D], targets)`, and B.
    pub(crate) fn batch(
        &mut self,
        bi: usize,
        task: &Task,
        x: &mut Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<(Tensor, Tensor, usize)> {
        match self {
            BatchSource::Memory { ds, epoch, .. } => {
                let rows = epoch.as_ref().and_then(|e| e.batch(bi)).expect("internal: a batch of the drawn epoch");
                let (xt, yt) = batch_tensors(ds, task, rows, x, y)?;
                Ok((xt, yt, rows.len()))
            }
            BatchSource::Stream { epoch, scaler, target, labels, .. } => {
                let epoch = epoch.as_mut().expect("internal: an epoch was drawn");
                let b = match task {
                    Task::Classification { .. } => {
                        epoch.gather(bi, x, labels)?;
                        labels.len()
                    }
                    Task::Regression => {
                        epoch.gather_values(bi, x, y)?;
                        if let Some(t) = target {
                            // `TargetScaler::transform_dataset`'s arithmetic, applied per batch.
                            let (std, mean) = t.inverse();
                            for v in y.iter_mut() {
                                *v = ((f64::from(*v) - mean) / std) as f32;
                            }
                        }
                        y.len()
                    }
                };
                if let Some(s) = scaler {
                    s.transform_in_place(x)?;
                }
                let xt = Tensor::from_slice(x, (b, x.len() / b.max(1)))?;
                let yt = match task {
                    Task::Classification { .. } => Tensor::from_slice(labels, b)?,
                    Task::Regression => Tensor::from_slice(y, (b, 1))?,
                };
                Ok((xt, yt, b))
            }
        }
    }
}

/// Everything the loop needs that depends on where the data comes from.
pub(crate) struct Setup<'a> {
    pub(crate) task: Task,
    pub(crate) source: BatchSource<'a>,
    /// The validation table, features scaled (targets in their own units).
    pub(crate) val_ds: Dataset,
    pub(crate) val_rows: Vec<usize>,
    pub(crate) scalers: (Option<FeatureScaler>, Option<TargetScaler>),
    pub(crate) test: Option<&'a Dataset>,
    pub(crate) n_features: usize,
    pub(crate) stream: Option<StreamFingerprint>,
}

/// The setup of a streamed run: split by hash, one pass to check cells, collect the validation
/// rows and fit the scalers on the training rows, and a loader whose window fits the budget.
pub(crate) fn setup_stream<'a>(cfg: &TrainerConfig, root: &Rng, data: &StreamingData<'a>) -> Result<Setup<'a>> {
    let stream = data.train;
    let task = match stream.n_classes() {
        Some(n_classes) => Task::Classification { n_classes },
        None => Task::Regression,
    };
    let d = stream.n_features();
    let budget = data.memory_budget;
    // Features and target as f32, and the window's shuffled order as u32.
    let row_bytes = (d as u64 + 2) * 4;
    let block_bytes = stream.block_rows() as u64 * row_bytes;
    let window_bytes = budget / 4;
    if block_bytes > window_bytes {
        return Err(Error::Config {
            key: "memory_budget",
            msg: format!(
                "{} leaves {} for the shuffle window, less than one block of {} rows of {d} features ({}); \
                 raise the budget",
                mib(budget),
                mib(window_bytes),
                stream.block_rows(),
                mib(block_bytes)
            ),
        });
    }
    let window_blocks = ((window_bytes / block_bytes) as usize).min(stream.n_blocks()).max(1);
    let split = match data.validation {
        Some(_) => StreamSplit::none(),
        None => StreamSplit::hashed(cfg.validation_split, &mut root.fork(2))?,
    };
    let (n_train, n_val) = stream.split_counts(&split);
    let name = stream.path().display();
    if n_train == 0 || (data.validation.is_none() && n_val == 0) {
        return Err(Error::Config {
            key: "validation_split",
            msg: format!(
                "{} of the {} rows of {name} gives {n_val} validation and {n_train} training rows; expected at \
                 least one of each",
                cfg.validation_split,
                stream.len()
            ),
        });
    }
    let val_bytes = n_val as u64 * row_bytes;
    if val_bytes > budget / 2 {
        return Err(Error::Config {
            key: "validation_split",
            msg: format!(
                "{} of {name} holds out {n_val} rows ({}), more than half the memory budget of {}; the validation \
                 rows are kept in memory, so lower validation_split, give a validation file, or raise the budget",
                cfg.validation_split,
                mib(val_bytes),
                mib(budget)
            ),
        });
    }
    let regression = task == Task::Regression;
    let fit = StreamFit {
        standardizer: cfg.scaling == Scaling::Standard,
        min_max: cfg.scaling == Scaling::MinMax,
        target_scaler: cfg.standardize_target && regression,
    };
    let prepared = stream.prepare(&split, fit)?;
    let scaler = match cfg.scaling {
        Scaling::Standard => prepared.standardizer.map(FeatureScaler::Standard),
        Scaling::MinMax => prepared.min_max.map(FeatureScaler::MinMax),
        Scaling::None => None,
    };
    let mut val_ds = match (data.validation, prepared.validation) {
        (Some(v), _) => v.clone(),
        (None, Some(v)) => v,
        (None, None) => unreachable!("internal: validation rows were counted"),
    };
    check_compatible(&task, d, &val_ds, "validation")?;
    if let Some(s) = &scaler {
        s.transform_in_place(val_ds.features_mut())?;
    }
    let val_rows = (0..val_ds.len()).collect();
    let loader = StreamLoader::new(stream, split, cfg.batch_size, window_blocks, root.fork(3))?;
    let fingerprint = StreamFingerprint {
        file_bytes: stream.file_len(),
        rows: stream.len() as u64,
        block_rows: stream.block_rows(),
        window_blocks,
    };
    Ok(Setup {
        task,
        source: BatchSource::Stream {
            loader,
            epoch: None,
            scaler: scaler.clone(),
            target: prepared.target_scaler,
            labels: Vec::new(),
        },
        val_ds,
        val_rows,
        scalers: (scaler, prepared.target_scaler),
        test: data.test,
        n_features: d,
        stream: Some(fingerprint),
    })
}

/// The validation rows [`crate::Trainer::fit_stream`] holds out of `stream` under `config` when
/// no validation file is given, unscaled, read back from the file (one more pass), for scoring
/// them after training as [`crate::report::HeldOutRows`] does for a table in memory.
pub fn streamed_validation(config: &TrainerConfig, stream: &TableStream) -> Result<Dataset> {
    // As in `setup_stream`: stream 2 of the seed draws the split.
    let split = StreamSplit::hashed(config.validation_split, &mut Rng::seed(config.seed).fork(2))?;
    stream.prepare(&split, StreamFit::default())?.validation.ok_or_else(|| Error::Config {
        key: "validation_split",
        msg: format!("holds out none of the {} rows of {}", stream.len(), stream.path().display()),
    })
}

/// The provenance of a streamed run. Its `data_sha256` is the SHA-256 of the file's bytes: the
/// values-only hash of an in-memory dataset would need the whole table, or two more passes.
pub(crate) fn stream_provenance(cfg: &TrainerConfig, stream: &TableStream) -> Result<Provenance> {
    let path = stream.path().display().to_string();
    let io = |source| Error::Io { path: path.clone(), source };
    let mut file = std::fs::File::open(stream.path()).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let config = serde_json::to_value(cfg)
        .map_err(|e| Error::Config { key: "provenance", msg: format!("the config could not be serialized: {e}") })?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(Provenance {
        seed: cfg.seed,
        tensile_version: env!("CARGO_PKG_VERSION").to_string(),
        config,
        data_sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        rows: stream.len(),
        features: stream.n_features(),
        machine: Machine::current(),
        started_at: rfc3339_utc(now),
    })
}

/// A byte count for messages, in KiB below a MiB and in MiB above.
fn mib(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if kib < 1024.0 { format!("{kib:.1} KiB") } else { format!("{:.1} MiB", kib / 1024.0) }
}
