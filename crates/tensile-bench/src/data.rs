//! The workloads' data: which files each one reads, their shapes, and the tensors built from them.
//!
//! The files are the ones the peer frameworks read (`../shared/peers/gen_data.py` writes them):
//! raw little-endian `f32` inputs and `i32` labels or token ids, no header, row-major. Every
//! size is checked against the workload's definition, and every label and token id against its
//! range, before a tensor is made. Batches are views (`narrow` along the rows) of one tensor
//! holding the whole set, as the peers slice theirs, so a step copies no input data.
//!
//! Shapes: N rows; a sample is `[784]` (W1), `[1, 28, 28]` (W2), `[16]` (W3), `[64, 32]`
//! (w5gru, time x features) or `[64]` (w5tf, token ids).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tensile_core::{DType, Rng, Tensor};

use crate::error::{Error, Result};

/// One of the training workloads (W4, the matrix product, has no data and lives in `gemm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// MLP 784-512-256-10, softmax cross-entropy, batch 128, 60,000 rows.
    W1,
    /// CNN on 1x28x28, softmax cross-entropy, batch 64, 10,000 rows.
    W2,
    /// MLP 16-64-64-1, mean squared error, batch 32, 20,000 rows.
    W3,
    /// GRU 32->128 over 64 steps, then linear 10 on the last state; batch 32, 8,192 sequences.
    W5Gru,
    /// Two pre-norm transformer encoder layers over 64 tokens; batch 32, 8,192 sequences.
    W5Tf,
}

/// What the input file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `f32` features.
    Features,
    /// `i32` token ids in `0..vocab`, kept as `u32`.
    Tokens { vocab: usize },
}

/// What the target file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `i32` class indices in `0..classes`, kept as `u32` `[N]`.
    Classes(usize),
    /// `f32` regression targets, kept as `[N, 1]`.
    Values,
}

/// A workload's data as the peers define it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub x_file: &'static str,
    pub y_file: &'static str,
    /// Rows in the files.
    pub rows: usize,
    /// The shape of one sample.
    pub sample: &'static [usize],
    pub input: Input,
    pub target: Target,
    pub batch: usize,
}

impl Work {
    /// Every training workload, in the order the peers run them.
    pub const ALL: [Work; 5] = [Work::W1, Work::W2, Work::W3, Work::W5Gru, Work::W5Tf];

    /// The name used in result lines and on the command line (`w1`, `w5gru`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Work::W1 => "w1",
            Work::W2 => "w2",
            Work::W3 => "w3",
            Work::W5Gru => "w5gru",
            Work::W5Tf => "w5tf",
        }
    }

    /// The workload called `name`, if any.
    pub fn parse(name: &str) -> Option<Work> {
        Work::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Floating-point operations in one sample's matrix products per training step, 2 per
    /// multiply-add: each layer's forward product, its weight gradient and its input gradient,
    /// except the first layer's input gradient, which nothing needs (the data has no gradient).
    /// Bias additions, activations, the loss and the optimizer are left out. `None` for W5,
    /// whose recurrent steps and attention are not counted here.
    pub fn flop_per_sample(self) -> Option<f64> {
        // Each layer's forward multiply-adds for one sample: in x out for a linear layer,
        // out channels x in channels x kernel x output positions for a convolution.
        let layers: &[usize] = match self {
            Work::W1 => &[784 * 512, 512 * 256, 256 * 10],
            // conv 1->32 3x3 on 28x28 (26x26 out), pool to 13x13; conv 32->64 3x3 (11x11 out),
            // pool to 5x5; linear 64·5·5 -> 128; linear 128 -> 10.
            Work::W2 => &[32 * 9 * 26 * 26, 64 * 32 * 9 * 11 * 11, 1600 * 128, 128 * 10],
            Work::W3 => &[16 * 64, 64 * 64, 64],
            Work::W5Gru | Work::W5Tf => return None,
        };
        let forward: usize = layers.iter().sum();
        Some(2.0 * (3 * forward - layers[0]) as f64)
    }

    /// Files, sizes and batch, as in the peers' `common.py`.
    pub fn spec(self) -> Spec {
        const CLASSES: Target = Target::Classes(10);
        let (x_file, y_file, rows, sample, input, target, batch): (_, _, _, &'static [usize], _, _, _) = match self {
            Work::W1 => ("w1_x.f32", "w1_y.i32", 60_000, &[784], Input::Features, CLASSES, 128),
            Work::W2 => ("w2_x.f32", "w2_y.i32", 10_000, &[1, 28, 28], Input::Features, CLASSES, 64),
            Work::W3 => ("w3_x.f32", "w3_y.f32", 20_000, &[16], Input::Features, Target::Values, 32),
            Work::W5Gru => ("w5gru_x.f32", "w5gru_y.i32", 8_192, &[64, 32], Input::Features, CLASSES, 32),
            Work::W5Tf => ("w5tf_x.i32", "w5tf_y.i32", 8_192, &[64], Input::Tokens { vocab: 1000 }, CLASSES, 32),
        };
        Spec { x_file, y_file, rows, sample, input, target, batch }
    }
}

/// Where the data files are by default: `$PEERS_DATA`, else `$PEERS_ROOT/data`, else
/// `~/.cache/tensile-peers/data` — the folder the peers' `run_all.sh` uses.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEERS_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let root = std::env::var_os("PEERS_ROOT").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache").join("tensile-peers")
    });
    root.join("data")
}

/// A workload's whole data set as two tensors, cut into batches on demand.
#[derive(Debug, Clone)]
pub struct Data {
    work: Work,
    /// `[N, sample...]`, `f32`, or `u32` token ids.
    x: Tensor,
    /// `[N]` `u32` classes or `[N, 1]` `f32` values.
    y: Tensor,
}

impl Data {
    /// Reads the workload's two files from `dir`, checking sizes and ranges.
    pub fn load(work: Work, dir: &Path) -> Result<Data> {
        let spec = work.spec();
        let sample_len: usize = spec.sample.iter().product();
        let x_path = dir.join(spec.x_file);
        let y_path = dir.join(spec.y_file);
        let x_count = spec.rows * sample_len;
        let x_shape = [&[spec.rows][..], spec.sample].concat();
        let x_what = format!("{} rows of {:?}, 4 bytes each", spec.rows, spec.sample);
        let x = match spec.input {
            Input::Features => Tensor::from_vec(read_f32(work, dir, &x_path, x_count, &x_what)?, x_shape)?,
            Input::Tokens { vocab } => {
                let ids = read_indices(work, dir, &x_path, x_count, &x_what, vocab, "token id")?;
                Tensor::from_vec(ids, x_shape)?
            }
        };
        let y_what = format!("{} values, 4 bytes each", spec.rows);
        let y = match spec.target {
            Target::Classes(classes) => {
                Tensor::from_vec(read_indices(work, dir, &y_path, spec.rows, &y_what, classes, "class")?, spec.rows)?
            }
            Target::Values => Tensor::from_vec(read_f32(work, dir, &y_path, spec.rows, &y_what)?, (spec.rows, 1))?,
        };
        Data::new(work, x, y)
    }

    /// `rows` random rows with the workload's shapes and ranges (standard normal features,
    /// uniform labels and token ids) from `seed`: for tests that must not depend on the files.
    pub fn synthetic(work: Work, rows: usize, seed: u64) -> Result<Data> {
        let spec = work.spec();
        let mut rng = Rng::seed(seed);
        let x_shape = [&[rows][..], spec.sample].concat();
        let x = match spec.input {
            Input::Features => Tensor::randn(x_shape, 0.0, 1.0, DType::F32, &mut rng),
            Input::Tokens { vocab } => {
                let n = x_shape.iter().product();
                Tensor::from_vec((0..n).map(|_| rng.below(vocab as u64) as u32).collect::<Vec<u32>>(), x_shape)?
            }
        };
        let y = match spec.target {
            Target::Classes(c) => Tensor::from_vec((0..rows).map(|_| rng.below(c as u64) as u32).collect(), rows)?,
            Target::Values => Tensor::randn((rows, 1), 0.0, 1.0, DType::F32, &mut rng),
        };
        Data::new(work, x, y)
    }

    fn new(work: Work, x: Tensor, y: Tensor) -> Result<Data> {
        let batch = work.spec().batch;
        if x.dims()[0] < batch {
            return Err(Error::Invalid(format!("{}: {} rows make no full batch of {batch}", work.name(), x.dims()[0])));
        }
        Ok(Data { work, x, y })
    }

    /// The rows repeated `times` times (for the linear-scaling check).
    pub fn repeat(&self, times: usize) -> Result<Data> {
        if times == 0 {
            return Err(Error::Invalid("repeat: times must be at least 1, found 0".into()));
        }
        let x = Tensor::cat(&vec![&self.x; times], 0)?;
        let y = Tensor::cat(&vec![&self.y; times], 0)?;
        Data::new(self.work, x, y)
    }

    pub fn work(&self) -> Work {
        self.work
    }
    pub fn rows(&self) -> usize {
        self.x.dims()[0]
    }
    pub fn batch_size(&self) -> usize {
        self.work.spec().batch
    }
    /// Full batches only, as the peers: the last `rows % batch` rows are never used.
    pub fn steps(&self) -> usize {
        self.rows() / self.batch_size()
    }

    /// Batch `i` (`0..steps()`): rows `i*b .. (i+1)*b` of the inputs and targets, as views.
    pub fn batch(&self, i: usize) -> Result<(Tensor, Tensor)> {
        let b = self.batch_size();
        if i >= self.steps() {
            return Err(Error::Invalid(format!("batch {i} does not exist; there are {} batches", self.steps())));
        }
        Ok((self.x.narrow(0, i * b, b)?, self.y.narrow(0, i * b, b)?))
    }
}

/// Opens `path` and checks that it holds exactly `count` 4-byte values.
fn open_checked(work: Work, dir: &Path, path: &Path, count: usize, what: &str) -> Result<File> {
    let read_error = |error| Error::Read { work: work.name(), path: path.to_path_buf(), dir: dir.to_path_buf(), error };
    let file = File::open(path).map_err(read_error)?;
    let found = file.metadata().map_err(read_error)?.len();
    let expected = 4 * count as u64;
    if found != expected {
        return Err(Error::Size { path: path.to_path_buf(), found, expected, what: what.to_string() });
    }
    Ok(file)
}

/// Reads `count` little-endian 4-byte words through a 1 MiB buffer, so the file is never held
/// twice in memory.
fn read_words(
    work: Work,
    dir: &Path,
    path: &Path,
    count: usize,
    what: &str,
    mut sink: impl FnMut([u8; 4]),
) -> Result<()> {
    let mut file = open_checked(work, dir, path, count, what)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = 4 * count;
    while left > 0 {
        let chunk = left.min(buf.len());
        file.read_exact(&mut buf[..chunk]).map_err(|error| Error::Read {
            work: work.name(),
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            error,
        })?;
        for word in buf[..chunk].chunks_exact(4) {
            sink([word[0], word[1], word[2], word[3]]);
        }
        left -= chunk;
    }
    Ok(())
}

fn read_f32(work: Work, dir: &Path, path: &Path, count: usize, what: &str) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(count);
    read_words(work, dir, path, count, what, |w| out.push(f32::from_le_bytes(w)))?;
    Ok(out)
}

/// Reads `i32` values that must lie in `0..limit`, as `u32`.
fn read_indices(
    work: Work,
    dir: &Path,
    path: &Path,
    count: usize,
    what: &str,
    limit: usize,
    kind: &'static str,
) -> Result<Vec<u32>> {
    let mut raw = Vec::with_capacity(count);
    read_words(work, dir, path, count, what, |w| raw.push(i32::from_le_bytes(w)))?;
    if let Some((index, &value)) = raw.iter().enumerate().find(|&(_, &v)| v < 0 || v as usize >= limit) {
        return Err(Error::OutOfRange { path: path.to_path_buf(), index, value: value.into(), limit, what: kind });
    }
    Ok(raw.into_iter().map(|v| v as u32).collect())
}
