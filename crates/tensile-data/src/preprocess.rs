//! Preprocessing fitted on training rows only: feature scaling ([`Standardizer`], or
//! [`MinMaxScaler`], behind [`FeatureScaler`]) and the regression target's scaling
//! ([`TargetScaler`]).
//!
//! Every `fit` takes the training row indices from [`crate::train_validation_split`], never the
//! whole dataset, so validation and test rows cannot leak into the statistics. The fitted values
//! are plain numbers (see [`Standardizer::mean`], [`Standardizer::from_parts`] and their
//! counterparts) so the run directory can store them and `predict` can apply the very same
//! transform.
//!
//! Index features (a category's number, [`Dataset::index_columns`]) are fitted as the identity
//! (mean 0 and std 1, or min 0 and max 1), so every scaler leaves them exact for the embedding
//! that looks them up; the scalers' stored form stays one plain number per feature.

use crate::dataset::{Dataset, Targets};
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
    /// rounding noise. Index features get mean 0 and std 1, so they pass unchanged. Errors if
    /// `rows` is empty; panics if an index is `>= ds.len()`.
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
        let mut mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let mut sq = vec![0.0f64; f];
        for &i in rows {
            for ((q, &x), &m) in sq.iter_mut().zip(ds.row(i)).zip(&mean) {
                let d = f64::from(x) - f64::from(m);
                *q += d * d;
            }
        }
        let mut std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(q, &m)| {
                let s = (q / n).sqrt();
                let tiny = (f64::from(m.abs()) * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
                if s <= tiny { 1.0 } else { s.min(f64::from(f32::MAX)) as f32 }
            })
            .collect();
        for (j, _) in ds.index_columns() {
            (mean[j], std[j]) = (0.0, 1.0);
        }
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
        if f == 0 || !features.len().is_multiple_of(f) {
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

/// Per-feature min-max scaling `(x - min) / (max - min)`: the training rows' range of each
/// feature maps onto `[0, 1]` (D values each). Values outside the training range map outside
/// `[0, 1]`, as scikit-learn's `MinMaxScaler` does by default: clipping would hide a shift in
/// the data.
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxScaler {
    min: Vec<f32>,
    max: Vec<f32>,
}

impl MinMaxScaler {
    /// Fits each feature's minimum and maximum over `rows` of `ds`. A constant column gets a
    /// range of 1 at transform time, so it maps to 0. Index features get min 0 and max 1, so
    /// they pass unchanged. Errors if `rows` is empty; panics if an index is `>= ds.len()`.
    pub fn fit(ds: &Dataset, rows: &[usize]) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::InvalidArgument { what: "cannot fit a min-max scaler on zero rows".into() });
        }
        let f = ds.n_features();
        let (mut min, mut max) = (vec![f32::INFINITY; f], vec![f32::NEG_INFINITY; f]);
        for &i in rows {
            for ((lo, hi), &x) in min.iter_mut().zip(max.iter_mut()).zip(ds.row(i)) {
                *lo = lo.min(x);
                *hi = hi.max(x);
            }
        }
        for (j, _) in ds.index_columns() {
            (min[j], max[j]) = (0.0, 1.0);
        }
        Ok(MinMaxScaler { min, max })
    }

    /// Rebuilds a fitted scaler, for example from a saved run. Errors if the lengths differ, a
    /// value is non-finite, or a minimum is above its maximum.
    pub fn from_parts(min: Vec<f32>, max: Vec<f32>) -> Result<Self> {
        if min.len() != max.len() {
            return Err(Error::InvalidArgument { what: format!("{} minimums but {} maximums", min.len(), max.len()) });
        }
        if min.iter().chain(&max).any(|v| !v.is_finite()) || min.iter().zip(&max).any(|(lo, hi)| lo > hi) {
            return Err(Error::InvalidArgument {
                what: "min-max scaler needs finite values with each minimum at most its maximum".into(),
            });
        }
        Ok(MinMaxScaler { min, max })
    }

    /// Number of features D it was fitted on.
    pub fn n_features(&self) -> usize {
        self.min.len()
    }

    /// The D per-feature minimums of the training rows.
    pub fn min(&self) -> &[f32] {
        &self.min
    }

    /// The D per-feature maximums of the training rows.
    pub fn max(&self) -> &[f32] {
        &self.max
    }

    /// Scales row-major features (R x D) in place. Errors if the length is not a multiple of D.
    pub fn transform_in_place(&self, features: &mut [f32]) -> Result<()> {
        let f = whole_rows(features.len(), self.n_features())?;
        for row in features.chunks_exact_mut(f) {
            for ((x, &lo), &hi) in row.iter_mut().zip(&self.min).zip(&self.max) {
                // In f64: `hi - lo` of two large f32 values of opposite sign can overflow f32.
                let range = f64::from(hi) - f64::from(lo);
                let range = if range > 0.0 { range } else { 1.0 };
                *x = ((f64::from(*x) - f64::from(lo)) / range) as f32;
            }
        }
        Ok(())
    }
}

/// The feature scaling of a run: which scaler was fitted, with its statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureScaler {
    Standard(Standardizer),
    MinMax(MinMaxScaler),
}

impl FeatureScaler {
    /// Number of features D it was fitted on.
    pub fn n_features(&self) -> usize {
        match self {
            FeatureScaler::Standard(s) => s.n_features(),
            FeatureScaler::MinMax(s) => s.n_features(),
        }
    }

    /// Scales row-major features (R x D) in place. Errors if the length is not a multiple of D.
    pub fn transform_in_place(&self, features: &mut [f32]) -> Result<()> {
        match self {
            FeatureScaler::Standard(s) => s.transform_in_place(features),
            FeatureScaler::MinMax(s) => s.transform_in_place(features),
        }
    }
}

/// Standardization of a regression target, `(y - mean) / std`, fitted on the training rows.
///
/// A network's output layer starts near 0 with unit-scale weights, so a target in the hundreds
/// (or the thousandths) makes early training spend its steps on the output's scale and the
/// loss's gradients hundreds of times too large or small for the learning rate. Training on the
/// standardized target and mapping predictions back with [`TargetScaler::inverse`] removes
/// both. A mean squared error measured on the scaled target is `1 / std^2` times the error in
/// the target's units ([`TargetScaler::loss_factor`] converts back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetScaler {
    mean: f64,
    std: f64,
}

impl TargetScaler {
    /// Fits the mean and population standard deviation of the target values over `rows` of
    /// `ds`, in f64 with two passes. A target that is constant on the training rows gets std 1.
    /// Errors if `rows` is empty or `ds` holds classes; panics if an index is `>= ds.len()`.
    pub fn fit(ds: &Dataset, rows: &[usize]) -> Result<Self> {
        let Some(values) = ds.values() else {
            return Err(Error::InvalidArgument { what: "only a regression target can be standardized".into() });
        };
        if rows.is_empty() {
            return Err(Error::InvalidArgument { what: "cannot fit a target scaler on zero rows".into() });
        }
        let n = rows.len() as f64;
        let mean = rows.iter().map(|&i| f64::from(values[i])).sum::<f64>() / n;
        let var = rows.iter().map(|&i| (f64::from(values[i]) - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt();
        let tiny = (mean.abs() * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
        Ok(TargetScaler { mean, std: if std <= tiny { 1.0 } else { std } })
    }

    /// Rebuilds a fitted scaler, for example from a saved run. Errors unless the mean is finite
    /// and the std finite and positive.
    pub fn from_parts(mean: f64, std: f64) -> Result<Self> {
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(Error::InvalidArgument {
                what: format!("a target scaler needs a finite mean and a finite positive std, found {mean} and {std}"),
            });
        }
        Ok(TargetScaler { mean, std })
    }

    /// The training rows' target mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The training rows' target standard deviation (1 for a constant target).
    pub fn std(&self) -> f64 {
        self.std
    }

    /// What a mean squared error on the scaled target is multiplied by to be in the target's
    /// units: `std^2`.
    pub fn loss_factor(&self) -> f64 {
        self.std * self.std
    }

    /// A copy of `ds` with every target value scaled. Errors if `ds` holds classes.
    pub fn transform_dataset(&self, ds: &Dataset) -> Result<Dataset> {
        let Some(values) = ds.values() else {
            return Err(Error::InvalidArgument { what: "only a regression target can be standardized".into() });
        };
        let scaled = values.iter().map(|&y| ((f64::from(y) - self.mean) / self.std) as f32).collect();
        Dataset::new(ds.features().to_vec(), ds.feature_names().to_vec(), Targets::Values(scaled))?
            .with_columns(ds.columns().clone())
    }

    /// Maps scaled predictions back to the target's units in place: `y * std + mean`.
    pub fn inverse_in_place(&self, values: &mut [f32]) {
        for v in values {
            *v = (f64::from(*v) * self.std + self.mean) as f32;
        }
    }

    /// The multiplier and offset of [`TargetScaler::inverse_in_place`], `(std, mean)`, for
    /// callers that apply it to tensors (`affine(std, mean)`).
    pub fn inverse(&self) -> (f64, f64) {
        (self.std, self.mean)
    }
}

/// D when `len` is a whole number of rows of `d` features.
fn whole_rows(len: usize, d: usize) -> Result<usize> {
    if d == 0 || !len.is_multiple_of(d) {
        return Err(Error::InvalidArgument {
            what: format!("{len} feature values is not a whole number of rows of {d} features"),
        });
    }
    Ok(d)
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

    #[test]
    fn min_max_maps_the_training_range_onto_0_1_and_constants_to_0() {
        // Column 0 spans 2..10 on the training rows; row 3 (held out) lies outside that range.
        let features = vec![2.0, 5.0, 10.0, 5.0, 6.0, 5.0, 20.0, 5.0];
        let ds = Dataset::new(features, vec!["a".into(), "c".into()], Targets::Values(vec![0.0; 4])).expect("valid");
        let s = MinMaxScaler::fit(&ds, &[0, 1, 2]).expect("fit");
        assert_eq!((s.min(), s.max()), (&[2.0, 5.0][..], &[10.0, 5.0][..]));
        let mut x = ds.features().to_vec();
        s.transform_in_place(&mut x).expect("shape");
        assert_eq!(x, vec![0.0, 0.0, 1.0, 0.0, 0.5, 0.0, 2.25, 0.0]);
        assert!(s.transform_in_place(&mut [0.0; 3]).is_err());
        assert!(MinMaxScaler::fit(&ds, &[]).is_err());
        assert_eq!(MinMaxScaler::from_parts(s.min().to_vec(), s.max().to_vec()).expect("valid"), s);
        assert!(MinMaxScaler::from_parts(vec![1.0], vec![0.0]).is_err());
        assert!(MinMaxScaler::from_parts(vec![f32::NAN], vec![0.0]).is_err());
    }

    #[test]
    fn target_scaler_standardizes_training_targets_and_inverts_exactly() {
        let ds = Dataset::new(vec![0.0; 5], vec!["x".into()], Targets::Values(vec![100.0, 200.0, 300.0, 400.0, -1e6]))
            .expect("valid");
        let t = TargetScaler::fit(&ds, &[0, 1, 2, 3]).expect("fit");
        assert_eq!(t.mean(), 250.0, "the held-out row must not move the mean");
        assert!((t.std() - 125f64.sqrt() * 10.0).abs() < 1e-9, "{}", t.std());
        assert!((t.loss_factor() - 12500.0).abs() < 1e-6);
        let scaled = t.transform_dataset(&ds).expect("regression");
        let v = scaled.values().expect("values");
        assert!((v[0] as f64 + 1.5 / 1.25f64.sqrt()).abs() < 1e-6, "{v:?}");
        let mut back = v.to_vec();
        t.inverse_in_place(&mut back);
        for (b, o) in back.iter().zip(ds.values().expect("values")) {
            assert!((b - o).abs() <= o.abs() * 1e-6, "{b} {o}");
        }
        let constant = Dataset::new(vec![0.0; 2], vec!["x".into()], Targets::Values(vec![7.0, 7.0])).expect("valid");
        assert_eq!(TargetScaler::fit(&constant, &[0, 1]).expect("fit").std(), 1.0);
        let classes = Dataset::new(
            vec![0.0],
            vec!["x".into()],
            Targets::Classes { labels: vec![0], class_names: vec!["a".into()] },
        )
        .expect("valid");
        assert!(TargetScaler::fit(&classes, &[0]).is_err());
        assert!(TargetScaler::from_parts(1.0, 0.0).is_err());
        assert_eq!(TargetScaler::from_parts(t.mean(), t.std()).expect("valid"), t);
    }
}
