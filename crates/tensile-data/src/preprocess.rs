//! Feature preprocessing fitted on training rows only.
//!
//! [`Standardizer::fit`] takes the training row indices from [`crate::train_validation_split`],
//! never the whole dataset, so validation and test rows cannot leak into the statistics. The
//! fitted mean and std are plain vectors (see [`Standardizer::mean`], [`Standardizer::from_parts`])
//! so the run directory can store them and `predict` can apply the very same transform.

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Per-feature standardization `(x - mean) / std` (D values each).
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardizer {
    /// Fits mean and population standard deviation (divisor n, as scikit-learn's
    /// `StandardScaler`) of each feature over `rows` of `ds`. Sums run in f64 with two passes so
    /// large offsets do not swallow small spreads. A column whose spread is below f32 resolution
    /// (constant in practice) gets std 1, so it maps to 0 instead of to 0/0 or to amplified
    /// rounding noise. Errors if `rows` is empty; panics if an index is `>= ds.len()`.
    pub fn fit(ds: &Dataset, rows: &[usize]) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::InvalidArgument { what: "cannot fit a standardizer on zero rows".into() });
        }
        let f = ds.n_features();
        let n = rows.len() as f64;
        let mut sum = vec![0.0f64; f];
        for &i in rows {
            for (s, &x) in sum.iter_mut().zip(ds.row(i)) {
                *s += f64::from(x);
            }
        }
        // Rounded to f32 before the second pass so that for a constant column the stored mean
        // equals the column's value exactly and the transform gives exactly 0.
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let mut sq = vec![0.0f64; f];
        for &i in rows {
            for ((q, &x), &m) in sq.iter_mut().zip(ds.row(i)).zip(&mean) {
                let d = f64::from(x) - f64::from(m);
                *q += d * d;
            }
        }
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, &m)| {
                let s = (q / n).sqrt();
                let tiny = (f64::from(m.abs()) * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
                if s <= tiny { 1.0 } else { s.min(f64::from(f32::MAX)) as f32 }
            })
            .collect();
        Ok(Standardizer { mean, std })
    }

    /// Rebuilds a fitted standardizer, for example from a saved run. Errors if the lengths
    /// differ or a value is non-finite or a std is not positive.
    pub fn from_parts(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.len() != std.len() {
            return Err(Error::InvalidArgument { what: format!("{} means but {} stds", mean.len(), std.len()) });
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidArgument {
                what: "standardizer needs finite means and finite positive stds".into(),
            });
        }
        Ok(Standardizer { mean, std })
    }

    /// Number of features D it was fitted on.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The D per-feature means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The D per-feature standard deviations (1 for constant columns).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Standardizes row-major features (R x D, any number of rows R) in place. Errors if the
    /// length is not a multiple of D.
    pub fn transform_in_place(&self, features: &mut [f32]) -> Result<()> {
        let f = self.n_features();
        if f == 0 || features.len() % f != 0 {
            return Err(Error::InvalidArgument {
                what: format!("{} feature values is not a whole number of rows of {f} features", features.len()),
            });
        }
        for row in features.chunks_exact_mut(f) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                // In f64 so that extreme inputs cannot overflow in the subtraction.
                *x = ((f64::from(*x) - f64::from(m)) / f64::from(s)) as f32;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Targets;

    #[test]
    fn training_columns_get_mean_zero_std_one_and_constants_stay_finite() {
        // Column 0 varies with a large offset; column 1 is constant 0.1; rows 4.. are held out.
        let xs = [1e4 + 1.0, 1e4 + 2.0, 1e4 + 3.0, 1e4 + 6.0, 9e9, -9e9];
        let features: Vec<f32> = xs.iter().flat_map(|&x| [x as f32, 0.1]).collect();
        let ds =
            Dataset::new(features, vec!["a".into(), "c".into()], Targets::Values(vec![0.0; xs.len()])).expect("valid");
        let train = [0, 1, 2, 3];
        let st = Standardizer::fit(&ds, &train).expect("fit");
        assert_eq!(st.mean()[0], 1e4 + 3.0, "held-out rows must not move the mean");
        assert_eq!(st.std()[1], 1.0);

        let mut x = ds.subset(&train).features().to_vec();
        st.transform_in_place(&mut x).expect("shape");
        let col0: Vec<f64> = x.iter().step_by(2).map(|&v| f64::from(v)).collect();
        let mean = col0.iter().sum::<f64>() / 4.0;
        let var = col0.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{mean} {var}");
        assert!(x.iter().skip(1).step_by(2).all(|&v| v == 0.0));

        let mut odd = vec![0.0; 3];
        assert!(st.transform_in_place(&mut odd).is_err());
    }

    #[test]
    fn from_parts_round_trips_and_validates() {
        let st = Standardizer::from_parts(vec![1.0, 2.0], vec![3.0, 4.0]).expect("valid");
        let again = Standardizer::from_parts(st.mean().to_vec(), st.std().to_vec());
        assert_eq!(again.expect("valid"), st);
        assert!(Standardizer::from_parts(vec![1.0], vec![0.0]).is_err());
        assert!(Standardizer::from_parts(vec![1.0], vec![]).is_err());
    }
}
