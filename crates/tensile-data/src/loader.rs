//! Seeded mini-batch order: which rows go in which batch, epoch after epoch.
//!
//! A [`Loader`] deals only in row indices; the training loop copies each batch's rows out with
//! [`crate::Dataset::gather`] into buffers it reuses. Each epoch shuffles the loader's base
//! index list afresh (not the previous epoch's order) with the loader's own
//! [`tensile_core::Rng`], so an epoch's order is a function of the rng state at its start
//! alone. That state is [`LoaderState`]: a checkpoint stores the state an [`Epoch`] started from
//! (see [`Epoch::start_state`]) plus how many of its batches were done; resuming restores the
//! state, draws the same epoch again and skips those batches, and continues bit-identically.
//! Storing the state (a few words) was chosen over storing the permutation (N words).

use tensile_core::Rng;

use crate::error::{Error, Result};

/// Where a loader is in its sequence of epochs: enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderState {
    /// [`Rng::state`] of the loader's generator.
    pub rng: [u64; 4],
    /// Number of epochs drawn so far.
    pub epochs_drawn: u64,
}

/// Deals row indices out in batches of `batch_size`, optionally reshuffled every epoch.
#[derive(Debug, Clone)]
pub struct Loader {
    indices: Vec<usize>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    rng: Rng,
    epochs_drawn: u64,
}

impl Loader {
    /// A loader over `indices` (for example the training rows of a split). With `drop_last`,
    /// a final batch smaller than `batch_size` is skipped, which keeps every step's batch the
    /// same size. Errors if `batch_size` is 0, `indices` is empty, or `drop_last` would leave
    /// no batch at all.
    pub fn new(indices: Vec<usize>, batch_size: usize, shuffle: bool, drop_last: bool, rng: Rng) -> Result<Self> {
        let problem = if batch_size == 0 {
            Some("batch size 0; expected at least 1".to_string())
        } else if indices.is_empty() {
            Some("a loader over zero rows".to_string())
        } else if drop_last && indices.len() < batch_size {
            Some(format!("batch size {batch_size} with drop_last over only {} rows leaves no batch", indices.len()))
        } else {
            None
        };
        if let Some(what) = problem {
            return Err(Error::InvalidArgument { what });
        }
        Ok(Loader { indices, batch_size, shuffle, drop_last, rng, epochs_drawn: 0 })
    }

    /// Number of rows one epoch covers (all indices, unless `drop_last` skips a tail).
    pub fn len(&self) -> usize {
        if self.drop_last { self.batches_per_epoch() * self.batch_size } else { self.indices.len() }
    }

    /// Always `false`: a loader has at least one row (checked by [`Loader::new`]).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Batches in each epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.indices.len();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
    }

    /// The batch size B.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The base index list, in the order given to [`Loader::new`].
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Draws the next epoch's order: a fresh permutation of the indices when shuffling, the
    /// given order otherwise (and then the rng is not touched).
    pub fn epoch(&mut self) -> Epoch {
        let start_state = self.state();
        let mut order = self.indices.clone();
        if self.shuffle {
            self.rng.shuffle(&mut order);
        }
        self.epochs_drawn += 1;
        let n_batches = self.batches_per_epoch();
        Epoch { number: start_state.epochs_drawn, order, batch_size: self.batch_size, n_batches, start_state }
    }

    /// The current position, to store in a checkpoint.
    pub fn state(&self) -> LoaderState {
        LoaderState { rng: self.rng.state(), epochs_drawn: self.epochs_drawn }
    }

    /// Moves to a position from [`Loader::state`] or [`Epoch::start_state`]; the next
    /// [`Loader::epoch`] then repeats the order drawn from that position.
    pub fn restore(&mut self, state: &LoaderState) {
        self.rng = Rng::from_state(state.rng);
        self.epochs_drawn = state.epochs_drawn;
    }
}

/// One epoch's order, split into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    number: u64,
    order: Vec<usize>,
    batch_size: usize,
    n_batches: usize,
    start_state: LoaderState,
}

impl Epoch {
    /// 0 for the first epoch a loader drew, then 1, 2, …
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Every index of the loader in this epoch's order (including any tail `drop_last` skips).
    pub fn order(&self) -> &[usize] {
        &self.order
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

    /// Batch `i` (B indices, or fewer for a short last batch), `None` past the end.
    pub fn batch(&self, i: usize) -> Option<&[usize]> {
        self.batches().nth(i)
    }

    /// The batches in order.
    pub fn batches(&self) -> std::iter::Take<std::slice::Chunks<'_, usize>> {
        self.order.chunks(self.batch_size).take(self.n_batches)
    }
}

impl<'a> IntoIterator for &'a Epoch {
    type Item = &'a [usize];
    type IntoIter = std::iter::Take<std::slice::Chunks<'a, usize>>;

    fn into_iter(self) -> Self::IntoIter {
        self.batches()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader(n: usize, batch: usize, shuffle: bool, drop_last: bool, seed: u64) -> Loader {
        Loader::new((0..n).collect(), batch, shuffle, drop_last, Rng::seed(seed)).expect("valid")
    }

    fn flat(e: &Epoch) -> Vec<usize> {
        e.batches().flatten().copied().collect()
    }

    #[test]
    fn every_index_once_per_epoch_in_a_new_order_each_epoch() {
        let mut l = loader(103, 10, true, false, 1);
        assert_eq!(l.batches_per_epoch(), 11);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = l.epoch();
            assert_eq!(e.len(), 11);
            assert_eq!(e.batch(10).map(<[usize]>::len), Some(3));
            let mut all = flat(&e);
            seen.push(all.clone());
            all.sort_unstable();
            assert_eq!(all, (0..103).collect::<Vec<_>>());
        }
        assert_ne!(seen[0], seen[1]);
        assert_ne!(seen[1], seen[2]);
    }

    #[test]
    fn same_seed_same_orders_other_seed_other_orders() {
        let orders = |seed| {
            let mut l = loader(50, 8, true, false, seed);
            (0..3).map(|_| flat(&l.epoch())).collect::<Vec<_>>()
        };
        assert_eq!(orders(5), orders(5));
        assert_ne!(orders(5), orders(6));
    }

    #[test]
    fn drop_last_skips_the_short_tail() {
        let mut l = loader(103, 10, true, true, 2);
        assert_eq!((l.batches_per_epoch(), l.len()), (10, 100));
        let e = l.epoch();
        assert!(e.batches().all(|b| b.len() == 10));
        assert_eq!(e.batch(10), None);
        assert!(Loader::new(vec![1, 2], 3, false, true, Rng::seed(0)).is_err());
        assert!(Loader::new(vec![1, 2], 0, false, false, Rng::seed(0)).is_err());
        assert!(Loader::new(vec![], 1, false, false, Rng::seed(0)).is_err());
    }

    #[test]
    fn without_shuffle_the_order_is_the_given_one() {
        let mut l = Loader::new(vec![4, 2, 9], 2, false, false, Rng::seed(0)).expect("valid");
        let e = l.epoch();
        let batches: Vec<&[usize]> = e.into_iter().collect();
        assert_eq!(batches, vec![&[4, 2][..], &[9][..]]);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn restoring_an_epoch_start_state_redraws_that_epoch_and_what_follows() {
        let mut l = loader(40, 7, true, false, 3);
        l.epoch();
        let second = l.epoch();
        let third = l.epoch();
        let mut resumed = loader(40, 7, true, false, 99);
        resumed.restore(second.start_state());
        assert_eq!(resumed.epoch(), second);
        assert_eq!(resumed.epoch(), third);
    }
}
