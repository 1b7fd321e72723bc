//! Seeded train/validation splits, as row indices into a [`Dataset`].
//!
//! Indices rather than two new datasets, so callers can fit preprocessing on the training rows
//! and build loaders without copying the table. The caller passes the split's own
//! [`tensile_core::Rng`] (forked from the run seed), so the split depends on the seed alone and
//! not on how many random numbers other parts of a run drew before it.

use tensile_core::Rng;

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Splits the rows of `ds` into `(train, validation)` index lists, each sorted ascending, with
/// `round(N * validation_fraction)` validation rows.
///
/// With `stratify` on a classification dataset, each class is split separately so every class
/// has its share of validation rows to within one row; the per-class counts are rounded by
/// largest remainder so the total still matches. `stratify` is ignored for regression (there are
/// no classes to balance). The result is a function of the dataset's labels and the rng state.
///
/// Errors if `validation_fraction` is not strictly between 0 and 1, or if either side would be
/// empty.
pub fn train_validation_split(
    ds: &Dataset,
    validation_fraction: f64,
    stratify: bool,
    rng: &mut Rng,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let n = ds.len();
    if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
        return Err(invalid(format!(
            "validation fraction {validation_fraction}; expected a number strictly between 0 and 1"
        )));
    }
    let n_val = (n as f64 * validation_fraction).round() as usize;
    if n_val == 0 || n_val >= n {
        return Err(invalid(format!(
            "validation fraction {validation_fraction} of {n} rows gives {n_val} validation and \
             {} training rows; expected at least one of each",
            n.saturating_sub(n_val)
        )));
    }

    let mut is_val = vec![false; n];
    match (stratify, ds.labels(), ds.n_classes()) {
        (true, Some(labels), Some(k)) => {
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
            for (i, &l) in labels.iter().enumerate() {
                by_class[l as usize].push(i);
            }
            let sizes: Vec<usize> = by_class.iter().map(Vec::len).collect();
            let counts = largest_remainder(&sizes, validation_fraction, n_val);
            for (rows, take) in by_class.iter_mut().zip(counts) {
                rng.shuffle(rows);
                for &i in &rows[..take] {
                    is_val[i] = true;
                }
            }
        }
        _ => {
            for i in rng.permutation(n).into_iter().take(n_val) {
                is_val[i] = true;
            }
        }
    }
    let (val, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| is_val[i]);
    Ok((train, val))
}

/// Apportions `total` among groups of the given sizes in proportion `fraction`: each group gets
/// the floor of its exact share, and the rows still owed go to the largest fractional parts
/// (ties to the lower group index, for determinism). Each count is the floor or ceiling of the
/// exact share, hence within one row of it. `total` must be `round(sum(sizes) * fraction)`.
fn largest_remainder(sizes: &[usize], fraction: f64, total: usize) -> Vec<usize> {
    let exact: Vec<f64> = sizes.iter().map(|&s| s as f64 * fraction).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut owed = total.saturating_sub(counts.iter().sum());
    for g in order {
        if owed == 0 {
            break;
        }
        if counts[g] < sizes[g] {
            counts[g] += 1;
            owed -= 1;
        }
    }
    counts
}

fn invalid(what: String) -> Error {
    Error::InvalidArgument { what }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Targets;

    fn classes(labels: Vec<u32>, k: usize) -> Dataset {
        let n = labels.len();
        Dataset::new(
            vec![0.0; n],
            vec!["x".into()],
            Targets::Classes { labels, class_names: (0..k).map(|c| c.to_string()).collect() },
        )
        .expect("valid")
    }

    #[test]
    fn stratified_split_keeps_class_proportions_within_one_row() {
        // Unbalanced classes: 50, 31, 13, 6 rows.
        let mut labels = Vec::new();
        for (c, size) in [50, 31, 13, 6].into_iter().enumerate() {
            labels.extend(std::iter::repeat_n(c as u32, size));
        }
        let ds = classes(labels.clone(), 4);
        let (train, val) = train_validation_split(&ds, 0.3, true, &mut Rng::seed(1)).expect("ok");
        assert_eq!(val.len(), 30);
        assert_eq!(train.len() + val.len(), 100);
        for (c, size) in [50usize, 31, 13, 6].into_iter().enumerate() {
            let in_val = val.iter().filter(|&&i| labels[i] == c as u32).count();
            let exact = size as f64 * 0.3;
            assert!((in_val as f64 - exact).abs() < 1.0, "class {c}: {in_val} vs {exact}");
        }
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn split_is_deterministic_per_seed() {
        let ds = classes((0..200).map(|i| (i % 3) as u32).collect(), 3);
        let split = |seed, stratify| train_validation_split(&ds, 0.2, stratify, &mut Rng::seed(seed)).expect("ok");
        for stratify in [true, false] {
            assert_eq!(split(7, stratify), split(7, stratify));
            assert_ne!(split(7, stratify), split(8, stratify));
        }
    }

    #[test]
    fn bad_fractions_and_empty_sides_are_errors() {
        let ds = classes(vec![0, 1, 0, 1], 2);
        let mut rng = Rng::seed(0);
        for f in [0.0, 1.0, -0.5, 1.5, f64::NAN, 0.01, 0.99] {
            let e = train_validation_split(&ds, f, true, &mut rng).expect_err("invalid");
            assert!(matches!(e, Error::InvalidArgument { .. }), "{f}: {e}");
        }
    }

    #[test]
    fn largest_remainder_hits_the_total() {
        assert_eq!(largest_remainder(&[3, 3, 3], 0.5, 5), vec![2, 2, 1]);
        assert_eq!(largest_remainder(&[1, 1, 1, 1], 0.5, 2), vec![1, 1, 0, 0]);
    }
}
