//! Reading a CSV table into a [`Dataset`].
//!
//! The file must have a header row; one named column is the target and every other column is a
//! numeric feature. Anything else (a text cell in a feature column, an empty or non-finite cell,
//! a row with the wrong number of fields) stops the read with an [`Error::Csv`] naming the file,
//! line, column, what was found and what was expected: silently dropping or imputing cells would
//! train on data the user never checked. Parsing is the `csv` crate's (quoting, CRLF, BOM);
//! records are read with `flexible(true)` so this module, not the crate, reports ragged rows and
//! can say which line and how many fields.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::dataset::{Dataset, Targets};
use crate::error::{Error, Result, quote_cell};

/// What the target column is to be predicted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Class labels: integers `0..k` keep their value as the label; any other values (text or
    /// numbers) are sorted (numerically if all are numbers) and numbered `0..k` in that order.
    Classification,
    /// Real values; every target cell must be a finite number.
    Regression,
    /// Decide from the target column: any cell that is not a number makes it classification
    /// (text can only be a label); otherwise it is classification when every value is an
    /// integer and there are at most [`MAX_INFERRED_CLASSES`] distinct values, and regression
    /// when not. Set the task explicitly for, say, 100 classes numbered 0..99.
    #[default]
    Infer,
}

/// The most distinct integer target values [`Task::Infer`] still reads as classes. 20 covers
/// common label sets (digits, sentiment scales, small taxonomies) while an integer-valued
/// quantity such as an age or a count usually has more distinct values and is meant as regression.
pub const MAX_INFERRED_CLASSES: usize = 20;

/// Reads the CSV file at `path`; `target` names the target column. See [`read_csv_from`].
pub fn read_csv(path: &Path, target: &str, task: Task) -> Result<Dataset> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io { path: name.clone(), source })?;
    read_csv_from(file, &name, target, task)
}

/// Reads CSV text from `reader`; `source_name` is the file name used in error messages.
/// Returns N rows x D features, where D is the number of columns other than `target`, in
/// header order. Cells are trimmed of surrounding whitespace.
pub fn read_csv_from(reader: impl Read, source_name: &str, target: &str, task: Task) -> Result<Dataset> {
    let mut rdr =
        ::csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(::csv::Trim::All).from_reader(reader);
    let path = source_name;
    let mut record = ::csv::StringRecord::new();

    if !read_record(&mut rdr, &mut record, path, &[])? {
        return Err(Error::Empty { path: path.into(), line: 1, expected: "a header row naming the columns".into() });
    }
    let header_line = line_of(&record);
    let names: Vec<String> = record.iter().map(str::to_owned).collect();
    check_header(&names, path, header_line)?;
    let target_col = names.iter().position(|n| n == target).ok_or_else(|| Error::MissingColumn {
        path: path.into(),
        column: target.into(),
        available: names.clone(),
    })?;
    if names.len() == 1 {
        return Err(csv_error(
            path,
            header_line,
            None,
            format!("only the target column '{target}'"),
            "at least one feature column besides the target",
        ));
    }
    let feature_names: Vec<String> =
        names.iter().enumerate().filter(|&(j, _)| j != target_col).map(|(_, n)| n.clone()).collect();

    let mut features = Vec::new();
    let mut raw_targets = Vec::new();
    while read_record(&mut rdr, &mut record, path, &names)? {
        let line = line_of(&record);
        if record.len() != names.len() {
            return Err(csv_error(
                path,
                line,
                None,
                format!("{} fields", record.len()),
                &format!("{} fields, as in the header", names.len()),
            ));
        }
        for (j, cell) in record.iter().enumerate() {
            let column = || Some(names[j].clone());
            if j == target_col {
                check_target_cell(cell, task)
                    .map_err(|(found, expected)| csv_error(path, line, column(), found, expected))?;
                raw_targets.push(cell.to_owned());
            } else {
                let value = parse_feature(cell)
                    .map_err(|(found, expected)| csv_error(path, line, column(), found, expected))?;
                features.push(value);
            }
        }
    }
    if raw_targets.is_empty() {
        return Err(Error::Empty {
            path: path.into(),
            line: rdr.position().line().max(header_line + 1),
            expected: "at least one data row after the header".into(),
        });
    }
    Dataset::new(features, feature_names, build_targets(&raw_targets, task))
}

/// Reads the next record into `record`; `false` at the end of the input.
fn read_record<R: Read>(
    rdr: &mut ::csv::Reader<R>,
    record: &mut ::csv::StringRecord,
    path: &str,
    names: &[String],
) -> Result<bool> {
    rdr.read_record(record).map_err(|e| from_csv_crate(e, path, names))
}

fn line_of(record: &::csv::StringRecord) -> u64 {
    // Every record the reader returns has a position; 0 would only show up in a message.
    record.position().map_or(0, ::csv::Position::line)
}

fn check_header(names: &[String], path: &str, line: u64) -> Result<()> {
    for (j, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(csv_error(
                path,
                line,
                None,
                format!("an empty name for column {}", j + 1),
                "a name for every column",
            ));
        }
        if names[..j].contains(name) {
            return Err(csv_error(
                path,
                line,
                Some(name.clone()),
                format!("a second column named '{name}'"),
                "unique column names",
            ));
        }
    }
    Ok(())
}

type CellError = (String, &'static str);

fn parse_feature(cell: &str) -> std::result::Result<f32, CellError> {
    if cell.is_empty() {
        return Err(("an empty cell".into(), "a number"));
    }
    // Parsed straight to f32 (not via f64) so the value is the correctly rounded one.
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err((quote_cell(cell), "a finite number within the f32 range (about ±3.4e38)")),
        Err(_) => Err((quote_cell(cell), "a number (feature columns must be numeric)")),
    }
}

fn check_target_cell(cell: &str, task: Task) -> std::result::Result<(), CellError> {
    if cell.is_empty() {
        return Err(("an empty cell".into(), "a target value"));
    }
    match (cell.parse::<f32>(), task) {
        (Ok(v), _) if !v.is_finite() => {
            Err((quote_cell(cell), "a finite target value (or a class name that is not a number)"))
        }
        (Err(_), Task::Regression) => Err((quote_cell(cell), "a number, because the task is regression")),
        _ => Ok(()),
    }
}

/// Turns the validated target cells into targets. Every cell is non-empty, and any cell that
/// parses as a number parses as a finite one.
fn build_targets(raw: &[String], task: Task) -> Targets {
    let numbers: Option<Vec<f64>> = raw.iter().map(|c| c.parse::<f64>().ok()).collect();
    let as_values = || Targets::Values(raw.iter().map(|c| c.parse().unwrap_or(f32::NAN)).collect());
    match (task, numbers) {
        (Task::Regression, _) => as_values(),
        (_, None) => text_classes(raw),
        (Task::Classification, Some(nums)) => numeric_classes(&nums),
        (Task::Infer, Some(nums)) => {
            let all_integers = nums.iter().all(|v| v.fract() == 0.0);
            if all_integers && distinct_sorted(&nums).len() <= MAX_INFERRED_CLASSES {
                numeric_classes(&nums)
            } else {
                as_values()
            }
        }
    }
}

fn text_classes(raw: &[String]) -> Targets {
    let mut names: Vec<String> = raw.to_vec();
    names.sort_unstable();
    names.dedup();
    let labels = raw.iter().map(|c| names.binary_search(c).unwrap_or(0) as u32).collect();
    Targets::Classes { labels, class_names: names }
}

/// Numeric labels are ordered by value, so integers `0..k` keep their value as the label and
/// `1, 2, 10` is not reordered as text would be (`1, 10, 2`).
fn numeric_classes(nums: &[f64]) -> Targets {
    let distinct = distinct_sorted(nums);
    let labels =
        nums.iter().map(|v| distinct.binary_search_by(|d| d.total_cmp(&(v + 0.0))).unwrap_or(0) as u32).collect();
    let class_names = distinct.iter().map(|&v| number_name(v)).collect();
    Targets::Classes { labels, class_names }
}

fn distinct_sorted(nums: &[f64]) -> Vec<f64> {
    // `+ 0.0` turns -0.0 into 0.0 so that "-0" and "0" are one class.
    let mut d: Vec<f64> = nums.iter().map(|v| v + 0.0).collect();
    d.sort_unstable_by(f64::total_cmp);
    d.dedup();
    d
}

fn number_name(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

fn csv_error(path: &str, line: u64, column: Option<String>, found: String, expected: &str) -> Error {
    Error::Csv { path: path.into(), line, column, found, expected: expected.into() }
}

fn from_csv_crate(e: ::csv::Error, path: &str, names: &[String]) -> Error {
    let line = e.position().map_or(0, ::csv::Position::line);
    match e.into_kind() {
        ::csv::ErrorKind::Io(source) => Error::Io { path: path.into(), source },
        ::csv::ErrorKind::Utf8 { err, .. } => csv_error(
            path,
            line,
            names.get(err.field()).cloned(),
            "bytes that are not valid UTF-8".into(),
            "UTF-8 text",
        ),
        other => csv_error(path, line, None, format!("malformed CSV ({other:?})"), "comma-separated fields"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_labels_sort_by_value_and_name_integers_plainly() {
        let t = numeric_classes(&[10.0, 2.0, 1.0, -0.0, 0.0]);
        assert_eq!(
            t,
            Targets::Classes {
                labels: vec![3, 2, 1, 0, 0],
                class_names: vec!["0".into(), "1".into(), "2".into(), "10".into()],
            }
        );
    }

    #[test]
    fn infer_reads_many_distinct_integers_or_fractions_as_regression() {
        let many: Vec<String> = (0..=MAX_INFERRED_CLASSES).map(|i| i.to_string()).collect();
        assert!(matches!(build_targets(&many, Task::Infer), Targets::Values(_)));
        let few: Vec<String> = ["1", "0", "1"].map(String::from).to_vec();
        assert!(matches!(build_targets(&few, Task::Infer), Targets::Classes { .. }));
        let fractions: Vec<String> = ["0.5", "1"].map(String::from).to_vec();
        assert!(matches!(build_targets(&fractions, Task::Infer), Targets::Values(_)));
    }
}
