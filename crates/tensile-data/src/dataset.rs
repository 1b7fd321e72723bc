//! [`Dataset`]: a table of numeric features with one target per row, held in memory.
//!
//! Readers ([`crate::read_csv`], [`crate::digits`]) build it; splits and the
//! [`crate::Standardizer`] read it by row index; a training loop copies batches out of it with
//! [`Dataset::gather`] / [`Dataset::gather_values`] into buffers it reuses, then turns those into
//! tensors. Features are one flat row-major `Vec<f32>` (N x D) rather than a `Vec` per row, so a
//! batch is a few `memcpy`s and the whole table is one allocation. Each row also has a sample
//! shape whose product is D (`[D]` for a table, `[C, H, W]` for an image), so a model can be
//! built for the shape the values really have. [`Features`] is the same without targets: what
//! prediction reads.

use crate::columns::ColumnEncoding;
use crate::error::{Error, Result};

/// What each row is to be predicted as.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class indices in `0..class_names.len()`, one per row (length N).
    Classes { labels: Vec<u32>, class_names: Vec<String> },
    /// One real value per row (length N), for regression.
    Values(Vec<f32>),
}

impl Targets {
    /// Number of rows N.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        }
    }

    /// `true` when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// N rows of D `f32` features, with their targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    n_features: usize,
    feature_names: Vec<String>,
    targets: Targets,
    columns: ColumnEncoding,
    sample_shape: Vec<usize>,
}

impl Dataset {
    /// Builds a dataset from row-major `features` (N x D), D `feature_names` and N `targets`.
    /// Errors if the lengths disagree, D is 0, or a class label has no name.
    pub fn new(features: Vec<f32>, feature_names: Vec<String>, targets: Targets) -> Result<Self> {
        let n_features = feature_names.len();
        let n_rows = targets.len();
        if n_features == 0 {
            return Err(invalid("a dataset needs at least one feature column".into()));
        }
        if features.len() != n_rows * n_features {
            return Err(invalid(format!(
                "{} feature values for {n_rows} rows x {n_features} features; expected {}",
                features.len(),
                n_rows * n_features
            )));
        }
        if let Targets::Classes { labels, class_names } = &targets
            && let Some(&bad) = labels.iter().find(|&&l| l as usize >= class_names.len())
        {
            return Err(invalid(format!("class label {bad} with only {} class names", class_names.len())));
        }
        let columns = ColumnEncoding::numeric(&feature_names);
        Ok(Dataset { features, n_features, feature_names, targets, columns, sample_shape: vec![n_features] })
    }

    /// Gives each row the shape `shape` (`[C, H, W]` for images; `[D]` after [`Dataset::new`]).
    /// Errors unless the product of `shape` is D.
    pub fn with_sample_shape(mut self, shape: Vec<usize>) -> Result<Self> {
        check_shape(&shape, self.n_features)?;
        self.sample_shape = shape;
        Ok(self)
    }

    /// The shape of one row's D values (without the batch dimension), row-major: `[D]` for a
    /// table, `[C, H, W]` for an image.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Replaces the description of the original columns (every column numeric after
    /// [`Dataset::new`]). Errors unless `columns` encodes to exactly this dataset's feature names.
    pub fn with_columns(mut self, columns: ColumnEncoding) -> Result<Self> {
        if columns.feature_names() != self.feature_names {
            return Err(invalid(format!(
                "a column encoding of {} features for a dataset with feature names {:?}",
                columns.width(),
                self.feature_names
            )));
        }
        self.columns = columns;
        Ok(self)
    }

    /// The original columns and how each became features (categories of one-hot columns), to
    /// encode prediction data the same way.
    pub fn columns(&self) -> &ColumnEncoding {
        &self.columns
    }

    /// The features that hold a category's index rather than a value (see
    /// [`crate::FeatureColumn::Indexed`]): each one's position among the D features and its
    /// number of categories, in order. Empty for a dataset without such columns.
    pub fn index_columns(&self) -> Vec<(usize, usize)> {
        self.columns.index_columns()
    }

    /// Number of rows N.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// `true` when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of features D.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The D feature (column) names, in column order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// All features, row-major (N x D).
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All features, row-major (N x D), for transforming in place (for example with
    /// [`crate::Standardizer::transform_in_place`] once it is fitted).
    pub fn features_mut(&mut self) -> &mut [f32] {
        &mut self.features
    }

    /// Row `i` (D values). Panics if `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Number of classes for classification, `None` for regression.
    pub fn n_classes(&self) -> Option<usize> {
        self.class_names().map(<[String]>::len)
    }

    /// Class names, indexed by label; `None` for regression.
    pub fn class_names(&self) -> Option<&[String]> {
        match &self.targets {
            Targets::Classes { class_names, .. } => Some(class_names),
            Targets::Values(_) => None,
        }
    }

    /// Class labels (length N); `None` for regression.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// Regression targets (length N); `None` for classification.
    pub fn values(&self) -> Option<&[f32]> {
        match &self.targets {
            Targets::Values(v) => Some(v),
            Targets::Classes { .. } => None,
        }
    }

    /// A new dataset holding the given rows, in the given order. Class names are kept whole,
    /// so a subset that happens to miss a class still numbers classes like its parent.
    /// Panics if an index is `>= len()`, like slice indexing.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.n_features);
        self.gather_features(indices, &mut features);
        let targets = match &self.targets {
            Targets::Classes { labels, class_names } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                class_names: class_names.clone(),
            },
            Targets::Values(v) => Targets::Values(indices.iter().map(|&i| v[i]).collect()),
        };
        Dataset {
            features,
            n_features: self.n_features,
            feature_names: self.feature_names.clone(),
            targets,
            columns: self.columns.clone(),
            sample_shape: self.sample_shape.clone(),
        }
    }

    /// Copies the features of `indices` (B rows) into `out` as B x D row-major, replacing its
    /// contents but keeping its allocation. Panics if an index is `>= len()`.
    pub fn gather_features(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(indices.len() * self.n_features);
        for &i in indices {
            out.extend_from_slice(self.row(i));
        }
    }

    /// Copies a classification batch: B x D features into `features_out` and B labels into
    /// `labels_out`, reusing both buffers. Errors on a regression dataset.
    pub fn gather(&self, indices: &[usize], features_out: &mut Vec<f32>, labels_out: &mut Vec<u32>) -> Result<()> {
        let Some(labels) = self.labels() else {
            return Err(invalid("class labels requested from a regression dataset; use gather_values".into()));
        };
        self.gather_features(indices, features_out);
        labels_out.clear();
        labels_out.extend(indices.iter().map(|&i| labels[i]));
        Ok(())
    }

    /// Copies a regression batch: B x D features into `features_out` and B target values into
    /// `values_out`, reusing both buffers. Errors on a classification dataset.
    pub fn gather_values(
        &self,
        indices: &[usize],
        features_out: &mut Vec<f32>,
        values_out: &mut Vec<f32>,
    ) -> Result<()> {
        let Some(values) = self.values() else {
            return Err(invalid("target values requested from a classification dataset; use gather".into()));
        };
        self.gather_features(indices, features_out);
        values_out.clear();
        values_out.extend(indices.iter().map(|&i| values[i]));
        Ok(())
    }
}

/// N rows of D `f32` features without targets: what prediction reads. `row_names` name the
/// rows where the input has names for them (image files); tables and arrays have none.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    values: Vec<f32>,
    feature_names: Vec<String>,
    sample_shape: Vec<usize>,
    row_names: Option<Vec<String>>,
}

impl Features {
    /// Row-major `values` (N x D) with D `feature_names`. Errors if D is 0 or the length is not
    /// a multiple of D.
    pub fn new(values: Vec<f32>, feature_names: Vec<String>) -> Result<Self> {
        let d = feature_names.len();
        if d == 0 || !values.len().is_multiple_of(d) {
            return Err(invalid(format!("{} feature values for {d} features per row", values.len())));
        }
        Ok(Features { values, sample_shape: vec![d], feature_names, row_names: None })
    }

    /// Gives each row the shape `shape`; errors unless its product is D.
    pub fn with_sample_shape(mut self, shape: Vec<usize>) -> Result<Self> {
        check_shape(&shape, self.feature_names.len())?;
        self.sample_shape = shape;
        Ok(self)
    }

    /// Names the N rows; errors unless there are N names.
    pub fn with_row_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.len() {
            return Err(invalid(format!("{} row names for {} rows", names.len(), self.len())));
        }
        self.row_names = Some(names);
        Ok(self)
    }

    /// Number of rows N.
    pub fn len(&self) -> usize {
        self.values.len() / self.feature_names.len()
    }

    /// `true` when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All values, row-major (N x D).
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// All values, row-major (N x D), taken out.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// The D feature names.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The shape of one row (see [`Dataset::sample_shape`]).
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// The N row names, where the input has them.
    pub fn row_names(&self) -> Option<&[String]> {
        self.row_names.as_deref()
    }
}

fn check_shape(shape: &[usize], d: usize) -> Result<()> {
    if shape.is_empty() || shape.iter().product::<usize>() != d {
        return Err(invalid(format!("a sample shape {shape:?} for rows of {d} values")));
    }
    Ok(())
}

fn invalid(what: String) -> Error {
    Error::InvalidArgument { what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Dataset {
        Dataset::new(
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            vec!["a".into(), "b".into()],
            Targets::Classes { labels: vec![1, 0, 1], class_names: vec!["no".into(), "yes".into()] },
        )
        .expect("valid")
    }

    #[test]
    fn accessors_and_subset() {
        let ds = small();
        assert_eq!((ds.len(), ds.n_features(), ds.n_classes()), (3, 2, Some(2)));
        assert_eq!(ds.row(2), &[4.0, 5.0]);
        let sub = ds.subset(&[2, 0]);
        assert_eq!(sub.features(), &[4.0, 5.0, 0.0, 1.0]);
        assert_eq!(sub.labels(), Some(&[1, 1][..]));
        assert_eq!(sub.n_classes(), Some(2));
        assert_eq!(sub.sample_shape(), &[2]);
    }

    #[test]
    fn sample_shapes_must_hold_every_feature() {
        let ds = small().with_sample_shape(vec![1, 2, 1]).expect("2 values");
        assert_eq!(ds.subset(&[0]).sample_shape(), &[1, 2, 1]);
        assert!(small().with_sample_shape(vec![3]).is_err());
        assert!(small().with_sample_shape(vec![]).is_err());
        let f = Features::new(vec![1.0; 6], vec!["a".into(), "b".into()]).expect("3 rows");
        assert_eq!(f.len(), 3);
        assert!(f.clone().with_row_names(vec!["r".into()]).is_err());
        assert!(Features::new(vec![1.0; 5], vec!["a".into(), "b".into()]).is_err());
    }

    #[test]
    fn gather_reuses_buffers_and_checks_the_task() {
        let ds = small();
        let (mut f, mut l) = (vec![9.0; 10], vec![7; 10]);
        ds.gather(&[1], &mut f, &mut l).expect("classification");
        assert_eq!((f.as_slice(), l.as_slice()), (&[2.0, 3.0][..], &[0][..]));
        let mut v = Vec::new();
        assert!(ds.gather_values(&[1], &mut f, &mut v).is_err());
    }

    #[test]
    fn new_rejects_inconsistent_shapes_and_labels() {
        let names = vec!["a".to_string()];
        assert!(Dataset::new(vec![1.0], names.clone(), Targets::Values(vec![1.0, 2.0])).is_err());
        let bad_label = Targets::Classes { labels: vec![3], class_names: vec!["x".into()] };
        assert!(Dataset::new(vec![1.0], names, bad_label).is_err());
        assert!(Dataset::new(vec![], vec![], Targets::Values(vec![])).is_err());
    }
}
