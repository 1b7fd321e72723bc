//! How the original columns of a table become the D numeric features of a [`crate::Dataset`].
//!
//! [`ColumnEncoding`] lists each original feature column as numeric (one feature), categorical
//! (one-hot: one feature per category, in sorted order) or indexed (one feature holding the
//! category's number in sorted order, for a model to look up in an embedding table; chosen for
//! columns with more categories than [`crate::CsvOptions::one_hot_max`]). The CSV reader infers it from the
//! training file; the run directory stores it and `predict` hands it back through
//! [`crate::CsvOptions::columns`], so a category unseen in training is an error instead of a
//! silently different feature layout. [`Impute`] is the opt-in for filling missing cells.

/// How a missing feature cell (empty, `NA`, or `NaN`) is filled when the user opts in. Without
/// it a missing cell is an error naming its row and column.
///
/// The fill values are computed from the rows being read. A trainer that wants no leakage from
/// validation rows should read the training file on its own (or refit on training rows); keeping
/// this reader simple was preferred over a fitted imputer object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impute {
    /// Mean of the column's values. Categorical columns use the most frequent category.
    Mean,
    /// Median (mean of the two middle values for an even count). Categorical columns use the
    /// most frequent category.
    Median,
    /// Most frequent value (the smallest one on a tie; for categories, the first in sorted order).
    MostFrequent,
}

/// One original feature column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureColumn {
    /// One `f32` feature.
    Numeric { name: String },
    /// One-hot: `categories.len()` features named `name=category`, categories sorted as text.
    Categorical { name: String, categories: Vec<String> },
    /// One feature named `name` holding the category's index in `categories` (sorted as
    /// text) as an `f32`: too many categories for one-hot, so a model embeds the index
    /// instead. Feature scaling leaves it as it is.
    Indexed { name: String, categories: Vec<String> },
}

impl FeatureColumn {
    /// The column's name in the header.
    pub fn name(&self) -> &str {
        match self {
            FeatureColumn::Numeric { name }
            | FeatureColumn::Categorical { name, .. }
            | FeatureColumn::Indexed { name, .. } => name,
        }
    }

    /// How many features the column becomes.
    pub fn width(&self) -> usize {
        match self {
            FeatureColumn::Numeric { .. } | FeatureColumn::Indexed { .. } => 1,
            FeatureColumn::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// The original feature columns, in header order (the target excluded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnEncoding {
    columns: Vec<FeatureColumn>,
}

impl ColumnEncoding {
    /// An encoding from its columns.
    pub fn new(columns: Vec<FeatureColumn>) -> Self {
        ColumnEncoding { columns }
    }

    /// Every column numeric, one feature each (NPY arrays, images, built-in data).
    pub fn numeric(names: &[String]) -> Self {
        ColumnEncoding { columns: names.iter().map(|n| FeatureColumn::Numeric { name: n.clone() }).collect() }
    }

    /// The original columns.
    pub fn columns(&self) -> &[FeatureColumn] {
        &self.columns
    }

    /// The index features: for each [`FeatureColumn::Indexed`] column, in order, its feature
    /// position (0-based, among the D features) and its number of categories.
    pub fn index_columns(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut position = 0;
        for col in &self.columns {
            if let FeatureColumn::Indexed { categories, .. } = col {
                out.push((position, categories.len()));
            }
            position += col.width();
        }
        out
    }

    /// D, the number of features after one-hot encoding.
    pub fn width(&self) -> usize {
        self.columns.iter().map(FeatureColumn::width).sum()
    }

    /// The D feature names: a numeric column's name, or `name=category` for each one-hot feature.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for col in &self.columns {
            match col {
                FeatureColumn::Numeric { name } | FeatureColumn::Indexed { name, .. } => names.push(name.clone()),
                FeatureColumn::Categorical { name, categories } => {
                    names.extend(categories.iter().map(|c| format!("{name}={c}")));
                }
            }
        }
        names
    }
}

/// A cell is missing when it is empty, `NA`, or parses as NaN (`NaN`, `nan`…).
pub(crate) fn is_missing(cell: &str) -> bool {
    cell.is_empty() || cell == "NA" || cell.parse::<f64>().is_ok_and(f64::is_nan)
}

/// The fill value of a numeric column from its parsed finite values; `None` when there are none.
pub(crate) fn numeric_fill(values: &mut [f64], how: Impute) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let fill = match how {
        Impute::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Impute::Median => {
            values.sort_unstable_by(f64::total_cmp);
            let mid = values.len() / 2;
            if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
        }
        Impute::MostFrequent => {
            values.sort_unstable_by(f64::total_cmp);
            let mut best = (values[0], 0usize);
            let mut start = 0;
            for i in 1..=values.len() {
                if i == values.len() || values[i] != values[start] {
                    if i - start > best.1 {
                        best = (values[start], i - start);
                    }
                    start = i;
                }
            }
            best.0
        }
    };
    Some(fill as f32)
}

/// The index of the most frequent category (the first on a tie); `None` when there are none.
pub(crate) fn most_frequent(counts: &[usize]) -> Option<usize> {
    let max = *counts.iter().max()?;
    if max == 0 { None } else { counts.iter().position(|&c| c == max) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_follow_their_definitions() {
        assert_eq!(numeric_fill(&mut [1.0, 2.0, 6.0], Impute::Mean), Some(3.0));
        assert_eq!(numeric_fill(&mut [4.0, 1.0, 2.0, 3.0], Impute::Median), Some(2.5));
        assert_eq!(numeric_fill(&mut [5.0, 1.0, 5.0, 1.0, 2.0], Impute::MostFrequent), Some(1.0));
        assert_eq!(numeric_fill(&mut [], Impute::Mean), None);
        assert_eq!(most_frequent(&[1, 3, 3]), Some(1));
        assert_eq!(most_frequent(&[]), None);
    }

    #[test]
    fn index_columns_give_feature_positions_and_category_counts() {
        let cats = |n: usize| (0..n).map(|i| format!("c{i:02}")).collect::<Vec<_>>();
        let enc = ColumnEncoding::new(vec![
            FeatureColumn::Categorical { name: "a".into(), categories: cats(3) },
            FeatureColumn::Indexed { name: "id".into(), categories: cats(40) },
            FeatureColumn::Numeric { name: "x".into() },
            FeatureColumn::Indexed { name: "zip".into(), categories: cats(20) },
        ]);
        assert_eq!(enc.width(), 6);
        assert_eq!(enc.index_columns(), vec![(3, 40), (5, 20)]);
        assert_eq!(enc.feature_names()[3..], ["id", "x", "zip"]);
    }

    #[test]
    fn missing_cells() {
        for cell in ["", "NA", "NaN", "nan", "-nan"] {
            assert!(is_missing(cell), "{cell}");
        }
        for cell in ["na", "0", "inf", "N"] {
            assert!(!is_missing(cell), "{cell}");
        }
    }
}
