//! Dealing a [`TableStream`]'s training rows out epoch by epoch, one window of blocks in memory
//! at a time (see the parent module for the scheme).

use tensile_core::Rng;

use crate::error::{Error, Result};
use crate::loader::LoaderState;

use super::{SourceReader, StreamSplit, TableStream, TargetBuf};

/// Deals the training rows of a [`TableStream`] out in seeded batches, a window of blocks at a
/// time. Its position is a [`LoaderState`], like [`crate::Loader`]'s.
#[derive(Debug, Clone)]
pub struct StreamLoader<'a> {
    stream: &'a TableStream,
    split: StreamSplit,
    batch_size: usize,
    window_blocks: usize,
    /// Training rows of each block.
    block_train: Vec<u32>,
    train_rows: usize,
    rng: Rng,
    epochs_drawn: u64,
}

impl<'a> StreamLoader<'a> {
    /// A loader over the training rows of `stream` under `split`, in batches of `batch_size`,
    /// shuffling `window_blocks` blocks at a time. Errors if either is 0 or no row trains.
    pub fn new(
        stream: &'a TableStream,
        split: StreamSplit,
        batch_size: usize,
        window_blocks: usize,
        rng: Rng,
    ) -> Result<StreamLoader<'a>> {
        if batch_size == 0 || window_blocks == 0 {
            return Err(Error::InvalidArgument {
                what: format!("batch size {batch_size} and window of {window_blocks} blocks; expected at least 1 each"),
            });
        }
        let block_train: Vec<u32> = stream.block_counts(&split).iter().map(|&(t, _)| t).collect();
        let train_rows = block_train.iter().map(|&t| t as usize).sum();
        if train_rows == 0 {
            return Err(Error::InvalidArgument { what: format!("{}: no training rows to stream", stream.name) });
        }
        Ok(StreamLoader { stream, split, batch_size, window_blocks, block_train, train_rows, rng, epochs_drawn: 0 })
    }

    /// Training rows per epoch.
    pub fn len(&self) -> usize {
        self.train_rows
    }

    /// `true` when there are no training rows (never for a loader that was built).
    pub fn is_empty(&self) -> bool {
        self.train_rows == 0
    }

    /// Batches per epoch, `ceil(rows / batch_size)` (the last may be short).
    pub fn batches_per_epoch(&self) -> usize {
        self.train_rows.div_ceil(self.batch_size)
    }

    /// Blocks shuffled together.
    pub fn window_blocks(&self) -> usize {
        self.window_blocks
    }

    /// The most rows one window can hold: `window_blocks * block_rows`.
    pub fn max_window_rows(&self) -> usize {
        self.window_blocks * self.stream.block_rows
    }

    /// The current position, to store in a checkpoint.
    pub fn state(&self) -> LoaderState {
        LoaderState { rng: self.rng.state(), epochs_drawn: self.epochs_drawn }
    }

    /// Moves to a position from [`StreamLoader::state`] or [`StreamEpoch::start_state`].
    pub fn restore(&mut self, state: &LoaderState) {
        self.rng = Rng::from_state(state.rng);
        self.epochs_drawn = state.epochs_drawn;
    }

    /// Draws the next epoch: a permutation of the blocks and the seed of its window shuffles.
    /// Nothing is read until a batch is asked for.
    pub fn epoch(&mut self) -> StreamEpoch<'a> {
        let start_state = self.state();
        let perm: Vec<u32> = self.rng.permutation(self.stream.n_blocks()).into_iter().map(|b| b as u32).collect();
        let window_seed = self.rng.next_u64();
        self.epochs_drawn += 1;
        let mut ends = Vec::with_capacity(perm.len().div_ceil(self.window_blocks));
        let mut total = 0usize;
        for window in perm.chunks(self.window_blocks) {
            total += window.iter().map(|&b| self.block_train[b as usize] as usize).sum::<usize>();
            ends.push(total);
        }
        StreamEpoch {
            stream: self.stream,
            split: self.split,
            batch_size: self.batch_size,
            window_blocks: self.window_blocks,
            number: start_state.epochs_drawn,
            start_state,
            n_batches: self.batches_per_epoch(),
            train_rows: self.train_rows,
            perm,
            window_seed,
            ends,
            loaded: None,
            features: Vec::new(),
            targets: TargetBuf::new(&self.stream.classes),
            order: Vec::new(),
            reader: None,
            row_buf: Vec::new(),
            record: ::csv::StringRecord::new(),
            peak_rows: 0,
            windows_read: 0,
        }
    }
}

/// One epoch of a [`StreamLoader`]: batch `j` holds rows `j*B..(j+1)*B` of the epoch's order,
/// which is the concatenation of its windows, each shuffled.
pub struct StreamEpoch<'a> {
    stream: &'a TableStream,
    split: StreamSplit,
    batch_size: usize,
    window_blocks: usize,
    number: u64,
    start_state: LoaderState,
    n_batches: usize,
    train_rows: usize,
    perm: Vec<u32>,
    window_seed: u64,
    /// Training rows in windows `0..=w`, for each window `w`.
    ends: Vec<usize>,
    /// The window whose rows are in `features`/`targets`.
    loaded: Option<usize>,
    features: Vec<f32>,
    targets: TargetBuf,
    /// The loaded window's rows in shuffled order (indices into `features`).
    order: Vec<u32>,
    reader: Option<SourceReader>,
    row_buf: Vec<f32>,
    record: ::csv::StringRecord,
    peak_rows: usize,
    windows_read: usize,
}

impl StreamEpoch<'_> {
    /// 0 for the first epoch a loader drew, then 1, 2, …
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The loader state this epoch was drawn from; restoring it redraws this same epoch.
    pub fn start_state(&self) -> &LoaderState {
        &self.start_state
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.n_batches
    }

    /// `true` when there are no batches (never for an epoch from a valid loader).
    pub fn is_empty(&self) -> bool {
        self.n_batches == 0
    }

    /// The most rows this epoch has held in memory at once (one window's).
    pub fn peak_rows_held(&self) -> usize {
        self.peak_rows
    }

    /// How many windows were read from the file so far.
    pub fn windows_read(&self) -> usize {
        self.windows_read
    }

    /// Copies classification batch `j` into `features_out` (B x D, unscaled) and `labels_out`,
    /// reusing both. Errors on a regression stream, past the last batch, or on a read error.
    pub fn gather(&mut self, j: usize, features_out: &mut Vec<f32>, labels_out: &mut Vec<u32>) -> Result<()> {
        labels_out.clear();
        self.fill(j, features_out, |targets, i| match targets {
            TargetBuf::Labels(l) => {
                labels_out.push(l[i]);
                Ok(())
            }
            TargetBuf::Values(_) => Err(Error::InvalidArgument {
                what: "class labels requested from a regression stream; use gather_values".into(),
            }),
        })
    }

    /// Copies regression batch `j` into `features_out` (B x D, unscaled) and `values_out`.
    /// Errors on a classification stream, past the last batch, or on a read error.
    pub fn gather_values(&mut self, j: usize, features_out: &mut Vec<f32>, values_out: &mut Vec<f32>) -> Result<()> {
        values_out.clear();
        self.fill(j, features_out, |targets, i| match targets {
            TargetBuf::Values(v) => {
                values_out.push(v[i]);
                Ok(())
            }
            TargetBuf::Labels(_) => Err(Error::InvalidArgument {
                what: "target values requested from a classification stream; use gather".into(),
            }),
        })
    }

    fn fill(
        &mut self,
        j: usize,
        features_out: &mut Vec<f32>,
        mut push_target: impl FnMut(&TargetBuf, usize) -> Result<()>,
    ) -> Result<()> {
        if j >= self.n_batches {
            return Err(Error::InvalidArgument {
                what: format!("batch {j} of an epoch of {} batches", self.n_batches),
            });
        }
        let d = self.stream.n_features();
        let start = j * self.batch_size;
        let end = (start + self.batch_size).min(self.train_rows);
        features_out.clear();
        let mut r = start;
        while r < end {
            let w = self.ends.partition_point(|&e| e <= r);
            self.load(w)?;
            let window_start = if w == 0 { 0 } else { self.ends[w - 1] };
            let take = end.min(self.ends[w]) - r;
            for &i in &self.order[r - window_start..r - window_start + take] {
                let i = i as usize;
                features_out.extend_from_slice(&self.features[i * d..(i + 1) * d]);
                push_target(&self.targets, i)?;
            }
            r += take;
        }
        Ok(())
    }

    /// Reads window `w` (its blocks in file order, training rows only) and shuffles it, unless
    /// it is the one already held.
    fn load(&mut self, w: usize) -> Result<()> {
        if self.loaded == Some(w) {
            return Ok(());
        }
        self.loaded = None;
        let stream = self.stream;
        let first = w * self.window_blocks;
        let mut blocks: Vec<u32> = self.perm[first..(first + self.window_blocks).min(self.perm.len())].to_vec();
        // In file order, so a window reads forward through the file.
        blocks.sort_unstable();
        if self.reader.is_none() {
            self.reader = Some(stream.open()?);
        }
        let rdr = self.reader.as_mut().expect("internal: reader opened");
        self.features.clear();
        self.targets.clear();
        let (features, targets, split) = (&mut self.features, &mut self.targets, self.split);
        for &b in &blocks {
            let b = b as usize;
            stream.read_rows(
                rdr,
                b,
                stream.rows_in_block(b) as u64,
                &mut self.row_buf,
                &mut self.record,
                |row, x, t| {
                    if !split.is_validation(row) {
                        features.extend_from_slice(x);
                        targets.push(t);
                    }
                    Ok(())
                },
            )?;
        }
        let rows = self.features.len() / stream.n_features().max(1);
        let expected = self.ends[w] - if w == 0 { 0 } else { self.ends[w - 1] };
        if rows != expected {
            return Err(Error::Format {
                path: stream.name.clone(),
                within: None,
                found: format!("{rows} training rows in a window that had {expected} (the file changed)"),
                expected: "the rows it had when training started".into(),
            });
        }
        self.order.clear();
        self.order.extend(0..rows as u32);
        Rng::seed(self.window_seed).fork(w as u64).shuffle(&mut self.order);
        self.peak_rows = self.peak_rows.max(rows);
        self.windows_read += 1;
        self.loaded = Some(w);
        Ok(())
    }
}
