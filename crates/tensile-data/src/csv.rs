//! Reading a CSV table into a [`Dataset`].
//!
//! The file must have a header row; one named column is the target and every other column is a
//! feature: numeric, or categorical (one-hot, see [`crate::ColumnEncoding`]) when declared so or
//! when no cell of it is a number. The delimiter is detected from the header line and a UTF-8
//! byte order mark is stripped. Anything else (a text cell in a numeric column, a missing or
//! non-finite cell, a row with the wrong number of fields, an unclosed quote, bad UTF-8) stops
//! the read with an [`Error::Csv`] naming the file, line, column, what was found and what was
//! expected: silently dropping cells would train on data the user never checked, and missing
//! cells are only filled when [`CsvOptions::impute`] opts in. Parsing is the `csv` crate's
//! (quoting, CRLF); records are read with `flexible(true)` so this module, not the crate,
//! reports ragged rows and can say which line and how many fields. The whole table is held as
//! text until every row is read, because a column's kind and its categories depend on all rows.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::columns::{ColumnEncoding, FeatureColumn, Impute, is_missing, most_frequent, numeric_fill};
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

/// Options of [`read_csv_with`]. The default reads like [`read_csv`] with [`Task::Infer`].
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// The field delimiter; `None` detects it from the header line: whichever of `,` `;` tab
    /// `|` occurs most often outside quotes (comma when none does, or on a tie).
    pub delimiter: Option<u8>,
    /// Fill missing feature cells; `None` (the default) makes them errors.
    pub impute: Option<Impute>,
    /// What the target column is to be predicted as.
    pub task: Task,
    /// Columns to one-hot encode even if their cells look numeric (zip codes, numeric ids).
    pub categorical: Vec<String>,
    /// The encoding fitted on training data (for evaluation and prediction files): the feature
    /// columns are looked up by name, one-hot with exactly these categories, and a category not
    /// in the list is an error naming row, column and value. `None` infers it from this file.
    pub columns: Option<ColumnEncoding>,
}

/// Reads the CSV file at `path`; `target` names the target column. See [`read_csv_from`].
pub fn read_csv(path: &Path, target: &str, task: Task) -> Result<Dataset> {
    read_csv_with(path, target, &CsvOptions { task, ..CsvOptions::default() })
}

/// Reads the CSV file at `path` with `options`; `target` names the target column. See
/// [`read_csv_from_with`].
pub fn read_csv_with(path: &Path, target: &str, options: &CsvOptions) -> Result<Dataset> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io { path: name.clone(), source })?;
    read_csv_from_with(file, &name, target, options)
}

/// Reads CSV text from `reader` with the default options and `task`; `source_name` is the file
/// name used in error messages. See [`read_csv_from_with`].
pub fn read_csv_from(reader: impl Read, source_name: &str, target: &str, task: Task) -> Result<Dataset> {
    read_csv_from_with(reader, source_name, target, &CsvOptions { task, ..CsvOptions::default() })
}

/// Reads CSV text from `reader`; `source_name` is the file name used in error messages.
/// Returns N rows x D features: each column other than `target`, in header order, as one
/// feature if numeric or as one-hot features if categorical (see [`Dataset::columns`]). Cells
/// are trimmed of surrounding whitespace.
///
/// A column is categorical when it is listed in [`CsvOptions::categorical`], or when no
/// non-missing cell in it parses as a number. A mostly numeric column with one text cell is a
/// typo far more often than a category, so that cell is an error. Structural problems (bad
/// UTF-8, an unclosed quote, a ragged row) are found while reading; cell problems afterwards,
/// in row order, because a column's kind is only known once every row has been seen.
pub fn read_csv_from_with(reader: impl Read, source_name: &str, target: &str, options: &CsvOptions) -> Result<Dataset> {
    let path = source_name;
    let (input, delimiter) = open_input(reader, path, options.delimiter)?;
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(input);
    let mut record = ::csv::StringRecord::new();

    if !read_record(&mut rdr, &mut record, path, &[])? {
        return Err(Error::Empty { path: path.into(), line: 1, expected: "a header row naming the columns".into() });
    }
    let header_line = line_of(&record);
    let names: Vec<String> = record.iter().map(str::to_owned).collect();
    check_header(&names, path, header_line)?;
    let column_index = |column: &str| {
        names.iter().position(|n| n == column).ok_or_else(|| Error::MissingColumn {
            path: path.into(),
            column: column.into(),
            available: names.clone(),
        })
    };
    let target_col = column_index(target)?;
    if names.len() == 1 {
        return Err(csv_error(
            path,
            header_line,
            None,
            format!("only the target column '{target}'"),
            "at least one feature column besides the target",
        ));
    }
    for name in &options.categorical {
        column_index(name)?;
    }

    let mut rows: Vec<(u64, ::csv::StringRecord)> = Vec::new();
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
        rows.push((line, record.clone()));
    }
    if rows.is_empty() {
        return Err(Error::Empty {
            path: path.into(),
            line: rdr.position().line().max(header_line + 1),
            expected: "at least one data row after the header".into(),
        });
    }

    // (original column index, how it is encoded), in header order.
    let plan: Vec<(usize, FeatureColumn)> = match &options.columns {
        Some(encoding) => {
            let mut plan = Vec::with_capacity(encoding.columns().len());
            for col in encoding.columns() {
                plan.push((column_index(col.name())?, col.clone()));
            }
            if let Some(extra) = (0..names.len()).find(|&j| j != target_col && !plan.iter().any(|(k, _)| *k == j)) {
                return Err(csv_error(
                    path,
                    header_line,
                    Some(names[extra].clone()),
                    format!("a column '{}' that training did not have", names[extra]),
                    "only the columns the model was trained on (and the target)",
                ));
            }
            plan
        }
        None => (0..names.len())
            .filter(|&j| j != target_col)
            .map(|j| (j, infer_column(&names[j], j, &rows, options.categorical.contains(&names[j]))))
            .collect(),
    };
    let fills: Vec<Fill> = match options.impute {
        Some(how) => plan.iter().map(|(j, col)| fill_value(col, *j, &rows, how)).collect(),
        None => vec![Fill::Off; plan.len()],
    };
    let encoding = ColumnEncoding::new(plan.iter().map(|(_, c)| c.clone()).collect());

    let width = encoding.width();
    let mut features = Vec::with_capacity(rows.len() * width);
    let mut raw_targets = Vec::with_capacity(rows.len());
    for (line, record) in &rows {
        let line = *line;
        let error = |j: usize, (found, expected): (String, String)| {
            csv_error(path, line, Some(names[j].clone()), found, &expected)
        };
        let cell = &record[target_col];
        check_target_cell(cell, options.task).map_err(|(f, e)| error(target_col, (f, e.into())))?;
        raw_targets.push(cell.to_owned());
        for ((j, col), fill) in plan.iter().zip(&fills) {
            encode_cell(&record[*j], col, *fill, &mut features).map_err(|e| error(*j, e))?;
        }
    }
    let feature_names = encoding.feature_names();
    Dataset::new(features, feature_names, build_targets(&raw_targets, options.task))?.with_columns(encoding)
}

/// Numeric unless declared categorical or no non-missing cell parses as a number.
fn infer_column(name: &str, j: usize, rows: &[(u64, ::csv::StringRecord)], declared: bool) -> FeatureColumn {
    let cells = || rows.iter().map(|(_, r)| &r[j]).filter(|c| !is_missing(c));
    if !declared && (cells().next().is_none() || cells().any(|c| c.parse::<f64>().is_ok())) {
        return FeatureColumn::Numeric { name: name.into() };
    }
    let mut categories: Vec<String> = cells().map(str::to_owned).collect();
    categories.sort_unstable();
    categories.dedup();
    FeatureColumn::Categorical { name: name.into(), categories }
}

/// What a missing cell of one column becomes.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Not imputing: a missing cell is an error.
    Off,
    Value(f32),
    Category(usize),
    /// Imputing, but the column has no value to impute from.
    NoValues,
}

fn fill_value(col: &FeatureColumn, j: usize, rows: &[(u64, ::csv::StringRecord)], how: Impute) -> Fill {
    match col {
        FeatureColumn::Numeric { .. } => {
            let mut values: Vec<f64> = rows
                .iter()
                .filter_map(|(_, r)| r[j].parse::<f32>().ok())
                .filter(|v| v.is_finite())
                .map(f64::from)
                .collect();
            numeric_fill(&mut values, how).map_or(Fill::NoValues, Fill::Value)
        }
        FeatureColumn::Categorical { categories, .. } => {
            let mut counts = vec![0usize; categories.len()];
            for (_, r) in rows {
                if let Ok(k) = categories.binary_search_by(|c| c.as_str().cmp(&r[j])) {
                    counts[k] += 1;
                }
            }
            most_frequent(&counts).map_or(Fill::NoValues, Fill::Category)
        }
    }
}

/// Appends the feature(s) of one cell to `out`, or says what was found and expected.
fn encode_cell(
    cell: &str,
    col: &FeatureColumn,
    fill: Fill,
    out: &mut Vec<f32>,
) -> std::result::Result<(), (String, String)> {
    let missing = is_missing(cell);
    let no_values =
        || ("a missing value in a column with no values".to_owned(), "at least one value to impute from".to_owned());
    match col {
        FeatureColumn::Numeric { .. } => {
            let value = match (missing, fill) {
                (true, Fill::Value(v)) => v,
                (true, Fill::NoValues) => return Err(no_values()),
                (true, _) if cell == "NA" => {
                    return Err((quote_cell(cell), "a number (NA marks a missing value; impute can fill it)".into()));
                }
                _ => parse_feature(cell).map_err(|(f, e)| (f, e.to_owned()))?,
            };
            out.push(value);
        }
        FeatureColumn::Categorical { categories, .. } => {
            let index = match (missing, fill) {
                (true, Fill::Category(k)) => k,
                (true, Fill::NoValues) => return Err(no_values()),
                (true, _) => {
                    let found = if cell.is_empty() { "an empty cell".to_owned() } else { quote_cell(cell) };
                    return Err((
                        found,
                        "a category (an empty, NA or NaN cell is a missing value; impute can fill it)".into(),
                    ));
                }
                (false, _) => categories.binary_search_by(|c| c.as_str().cmp(cell)).map_err(|_| {
                    (quote_cell(cell), format!("one of the categories seen in training: {}", list(categories)))
                })?,
            };
            let start = out.len();
            out.resize(start + categories.len(), 0.0);
            out[start + index] = 1.0;
        }
    }
    Ok(())
}

/// Categories for a message, at most 10 of them.
fn list(categories: &[String]) -> String {
    const MAX: usize = 10;
    let shown: Vec<String> = categories.iter().take(MAX).map(|c| quote_cell(c)).collect();
    if categories.len() > MAX {
        format!("{} and {} more", shown.join(", "), categories.len() - MAX)
    } else {
        shown.join(", ")
    }
}

/// Peeks at the first line: rejects UTF-16, strips a UTF-8 byte order mark, and chooses the
/// delimiter. Returns the whole input again, wrapped so that an unclosed quote can be reported.
fn open_input<R: Read>(reader: R, path: &str, delimiter: Option<u8>) -> Result<(QuoteScanner<impl Read>, u8)> {
    let mut rest = BufReader::new(reader);
    let mut first = Vec::new();
    rest.read_until(b'\n', &mut first).map_err(|source| Error::Io { path: path.into(), source })?;
    if first.starts_with(&[0xFF, 0xFE]) || first.starts_with(&[0xFE, 0xFF]) {
        return Err(csv_error(path, 1, None, "a UTF-16 byte order mark".into(), "UTF-8 text"));
    }
    if first.starts_with(&[0xEF, 0xBB, 0xBF]) {
        first.drain(..3);
    }
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&first));
    Ok((QuoteScanner::new(std::io::Cursor::new(first).chain(rest), delimiter), delimiter))
}

/// The candidate occurring most often outside quotes in the header line; comma on a tie or when
/// none occurs (a one-column file).
fn detect_delimiter(header: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(k) = CANDIDATES.iter().position(|&c| c == b) {
                counts[k] += 1;
            }
        }
    }
    let mut best = 0;
    for k in 1..CANDIDATES.len() {
        if counts[k] > counts[best] {
            best = k;
        }
    }
    CANDIDATES[best]
}

/// Passes bytes through while following the quoting rules of the `csv` crate (a quote opens a
/// quoted field only at the start of a field; `""` inside one is an escaped quote), so that a
/// quote still open at the end of the input can be reported at the line that opened it. The
/// `csv` crate itself reads such a quote to the end of the file without complaint, which would
/// surface as a confusing ragged-row error far away.
struct QuoteScanner<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    line: u64,
    open_line: u64,
    at_eof: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl<R: Read> QuoteScanner<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        QuoteScanner { inner, delimiter, state: QuoteState::FieldStart, line: 1, open_line: 0, at_eof: false }
    }

    /// The line of a quote never closed, once the whole input has been read.
    fn unclosed_quote(&self) -> Option<u64> {
        (self.at_eof && self.state == QuoteState::Quoted).then_some(self.open_line)
    }
}

impl<R: Read> Read for QuoteScanner<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use QuoteState::*;
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_eof = true;
        }
        for &b in &buf[..n] {
            let end_of_field = b == self.delimiter || b == b'\n' || b == b'\r';
            self.state = match (self.state, b) {
                (FieldStart, b'"') => {
                    self.open_line = self.line;
                    Quoted
                }
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, _) => Quoted,
                (QuoteInQuoted, b'"') => Quoted,
                (FieldStart | Unquoted | QuoteInQuoted, _) if end_of_field => FieldStart,
                _ => Unquoted,
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
        Ok(n)
    }
}

/// Reads the next record into `record`; `false` at the end of the input.
fn read_record<R: Read>(
    rdr: &mut ::csv::Reader<QuoteScanner<R>>,
    record: &mut ::csv::StringRecord,
    path: &str,
    names: &[String],
) -> Result<bool> {
    let more = rdr.read_record(record).map_err(|e| from_csv_crate(e, path, names))?;
    if let Some(line) = rdr.get_ref().unclosed_quote() {
        return Err(csv_error(
            path,
            line,
            None,
            "a quote (\") that is never closed".into(),
            "a closing quote before the end of the file (write a quote inside a quoted field as \"\")",
        ));
    }
    Ok(more)
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
    if cell == "NA" {
        return Err((quote_cell(cell), "a target value (NA marks a missing value; targets are never imputed)"));
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
pub(crate) fn numeric_classes(nums: &[f64]) -> Targets {
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
        other => csv_error(path, line, None, format!("malformed CSV ({other:?})"), "delimited fields"),
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
