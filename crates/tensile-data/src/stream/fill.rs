//! Imputation values of a streamed file's numeric columns, equal to [`crate::columns`]'
//! `numeric_fill` over the same values (every finite cell of the column, all rows) without
//! holding them.
//!
//! The mean is a running sum. The most frequent value counts distinct values, which is memory
//! per distinct value, so it stops at a cap and says so. The median is an exact selection in two
//! more passes over the file: each finite cell is an `f32` (the readers parse cells as `f32`), so
//! its order-preserving 32-bit key ([`key`]) is split into a high and a low half of 16 bits; the
//! first pass counts the high halves (65,536 counts per column), which places each of the one or
//! two middle ranks in one bucket, and the second counts the low halves of the values in that
//! bucket. Memory is per column, never per row. Sampling or a streaming quantile sketch would
//! take one pass but give an approximate median, and a streamed run must impute exactly as the
//! same file read whole does.

use std::collections::HashMap;

use crate::columns::Impute;

/// The most distinct values a numeric column's most-frequent imputation counts before giving up.
pub(crate) const MAX_DISTINCT_VALUES: usize = 1_000_000;

/// Median columns whose histograms share one pair of passes: 64 x 512 KiB = 32 MiB at most.
pub(super) const MEDIAN_COLUMNS_PER_PASS: usize = 64;

const BUCKETS: usize = 1 << 16;

/// The order-preserving key of a finite `f32`: `key(a) < key(b)` exactly when `a` sorts before
/// `b` under `total_cmp` (so -0.0 before 0.0, as the in-memory sort puts them).
pub(super) fn key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | 1 << 31 }
}

/// The value of a [`key`].
pub(super) fn value(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 { key & !(1 << 31) } else { !key })
}

/// What the scan keeps of a numeric column's finite values for its imputation.
#[derive(Debug)]
pub(super) struct ValueScan {
    /// Sum (in f64, in row order, as the in-memory mean adds) and count of the finite values.
    pub sum: f64,
    pub count: u64,
    /// Most-frequent imputation: how often each value (by [`key`]) occurs; `None` once the
    /// column has more than the cap of distinct values.
    counts: Option<HashMap<u32, u64>>,
    cap: usize,
}

impl ValueScan {
    pub(super) fn new(how: Option<Impute>, cap: usize) -> ValueScan {
        let counts = (how == Some(Impute::MostFrequent)).then(HashMap::new);
        ValueScan { sum: 0.0, count: 0, counts, cap }
    }

    pub(super) fn add(&mut self, v: f32) {
        self.sum += f64::from(v);
        self.count += 1;
        if let Some(counts) = &mut self.counts {
            *counts.entry(key(v)).or_insert(0) += 1;
            if counts.len() > self.cap {
                self.counts = None;
            }
        }
    }

    /// The most distinct values counted.
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// The most frequent value, as `numeric_fill` picks it: values are sorted, equal values
    /// (-0.0 and 0.0 among them) form one run named by its first, and the first of the longest
    /// runs wins. `None` when there are no values or they were not all counted.
    pub(super) fn most_frequent(&self) -> Option<f32> {
        let mut entries: Vec<(u32, u64)> = self.counts.as_ref()?.iter().map(|(&k, &c)| (k, c)).collect();
        entries.sort_unstable();
        let mut best: Option<(f32, u64)> = None;
        let mut run: Option<(f32, u64)> = None;
        for (k, c) in entries {
            let v = value(k);
            run = match run {
                Some((first, n)) if first == v => Some((first, n + c)),
                Some(done) => {
                    if best.is_none_or(|(_, m)| done.1 > m) {
                        best = Some(done);
                    }
                    Some((v, c))
                }
                None => Some((v, c)),
            };
        }
        if let Some(done) = run
            && best.is_none_or(|(_, m)| done.1 > m)
        {
            best = Some(done);
        }
        best.map(|(v, _)| v)
    }
}

/// The exact medians of several columns, found in two passes over their values: feed every
/// finite value to [`MedianSelect::first`], call [`MedianSelect::between`], feed them all again
/// to [`MedianSelect::second`], then read [`MedianSelect::medians`].
pub(super) struct MedianSelect {
    /// Values per column.
    counts: Vec<u64>,
    /// One histogram of 65,536 counts per column, reused by both passes.
    hist: Vec<u64>,
    /// Per column, after the first pass: the high halves holding the lower and upper middle
    /// ranks, and each rank's position within its bucket.
    targets: Vec<Middle>,
    /// Per column: the smallest key in the upper middle's bucket, when it differs from the lower.
    upper_min: Vec<u32>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Middle {
    low_bucket: u32,
    low_rank: u64,
    high_bucket: u32,
    high_rank: u64,
}

impl MedianSelect {
    /// For columns with `counts[c]` finite values each (every count at least 1).
    pub(super) fn new(counts: Vec<u64>) -> MedianSelect {
        let n = counts.len();
        MedianSelect {
            counts,
            hist: vec![0; n * BUCKETS],
            targets: vec![Middle::default(); n],
            upper_min: vec![u32::MAX; n],
        }
    }

    pub(super) fn first(&mut self, column: usize, v: f32) {
        self.hist[column * BUCKETS + (key(v) >> 16) as usize] += 1;
    }

    /// Finds each middle rank's bucket and clears the histograms for the second pass.
    pub(super) fn between(&mut self) {
        for (c, &n) in self.counts.iter().enumerate() {
            let hist = &self.hist[c * BUCKETS..(c + 1) * BUCKETS];
            // numeric_fill's middles: the one at n / 2 for odd n, those at n/2 - 1 and n/2 for even n.
            let (lo, hi) = ((n - 1) / 2, n / 2);
            let (low_bucket, low_rank) = locate(hist, lo);
            let (high_bucket, high_rank) = locate(hist, hi);
            self.targets[c] = Middle { low_bucket, low_rank, high_bucket, high_rank };
        }
        self.hist.iter_mut().for_each(|h| *h = 0);
    }

    pub(super) fn second(&mut self, column: usize, v: f32) {
        let k = key(v);
        let t = self.targets[column];
        if k >> 16 == t.low_bucket {
            self.hist[column * BUCKETS + (k & 0xFFFF) as usize] += 1;
        } else if k >> 16 == t.high_bucket {
            // The upper middle is then the first of its bucket: every value before the bucket
            // ranks below it.
            self.upper_min[column] = self.upper_min[column].min(k);
        }
    }

    /// Each column's median, rounded to `f32` as `numeric_fill` rounds it.
    pub(super) fn medians(&self) -> Vec<f32> {
        (0..self.counts.len())
            .map(|c| {
                let hist = &self.hist[c * BUCKETS..(c + 1) * BUCKETS];
                let t = self.targets[c];
                let low = value(t.low_bucket << 16 | locate(hist, t.low_rank).0);
                let high = if t.high_bucket == t.low_bucket {
                    value(t.high_bucket << 16 | locate(hist, t.high_rank).0)
                } else {
                    value(self.upper_min[c])
                };
                if self.counts[c] % 2 == 1 { low } else { ((f64::from(low) + f64::from(high)) / 2.0) as f32 }
            })
            .collect()
    }
}

/// The bucket holding rank `rank` (0-based) of a histogram, and the rank within that bucket.
fn locate(hist: &[u64], rank: u64) -> (u32, u64) {
    let mut before = 0;
    for (b, &count) in hist.iter().enumerate() {
        if rank < before + count {
            return (b as u32, rank - before);
        }
        before += count;
    }
    unreachable!("internal: rank {rank} of {before} values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::numeric_fill;
    use tensile_core::Rng;

    #[test]
    fn keys_sort_as_total_cmp_and_map_back() {
        let mut values = [3.5f32, -0.0, 0.0, -1e-30, 1e-30, -7.25, f32::MAX, f32::MIN, 1.0, 1.0000001];
        for v in values {
            assert_eq!(value(key(v)).to_bits(), v.to_bits());
        }
        let mut by_key = values;
        by_key.sort_unstable_by_key(|&v| key(v));
        values.sort_unstable_by(f32::total_cmp);
        assert_eq!(by_key.map(f32::to_bits), values.map(f32::to_bits));
    }

    /// Columns of random values: few distinct ones (ties), wide ranges (middles in different
    /// buckets), signed zeros, odd and even counts.
    fn columns(rng: &mut Rng) -> Vec<Vec<f32>> {
        (0..40)
            .map(|c| {
                let n = 1 + (rng.next_u64() % 60) as usize;
                (0..n)
                    .map(|_| match c % 4 {
                        0 => (rng.next_u64() % 5) as f32 - 2.0,
                        1 => (rng.normal() * 1e3) as f32,
                        2 => [-0.0, 0.0, 1.0, 1.0000001][(rng.next_u64() % 4) as usize],
                        _ => (rng.normal() * 1e-3) as f32 * 2.0f32.powi((rng.next_u64() % 40) as i32 - 20),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn two_pass_medians_equal_the_sorted_median() {
        let cols = columns(&mut Rng::seed(7));
        let mut select = MedianSelect::new(cols.iter().map(|c| c.len() as u64).collect());
        for (c, values) in cols.iter().enumerate() {
            values.iter().for_each(|&v| select.first(c, v));
        }
        select.between();
        for (c, values) in cols.iter().enumerate() {
            values.iter().for_each(|&v| select.second(c, v));
        }
        for (values, got) in cols.iter().zip(select.medians()) {
            let mut wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let want = numeric_fill(&mut wide, Impute::Median).expect("values");
            assert_eq!(got.to_bits(), want.to_bits(), "{values:?}");
        }
    }

    #[test]
    fn counted_most_frequent_equals_the_sorted_one_and_stops_at_the_cap() {
        for values in columns(&mut Rng::seed(8)) {
            let mut scan = ValueScan::new(Some(Impute::MostFrequent), MAX_DISTINCT_VALUES);
            values.iter().for_each(|&v| scan.add(v));
            let mut wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let want = numeric_fill(&mut wide, Impute::MostFrequent).expect("values");
            assert_eq!(scan.most_frequent().map(f32::to_bits), Some(want.to_bits()), "{values:?}");
        }
        let mut scan = ValueScan::new(Some(Impute::MostFrequent), 3);
        [1.0, 2.0, 3.0, 1.0].iter().for_each(|&v| scan.add(v));
        assert_eq!(scan.most_frequent(), Some(1.0));
        scan.add(4.0);
        assert_eq!(scan.most_frequent(), None, "four distinct values, three counted at most");
        assert_eq!((scan.sum, scan.count), (11.0, 5));
    }
}
