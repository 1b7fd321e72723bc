//! Reading a CSV table into a [`Dataset`].
//!
//! The file must have a header row; one named column is the target and every other column is a
//! feature: numeric, or categorical (one-hot, see [`crate::ColumnEncoding`]; or one index feature
//! above [`CsvOptions::one_hot_max`] categories) when declared so or when no cell of it is a number. The delimiter is detected from the header line and a UTF-8
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
use crate::dataset::{Dataset, Features, Targets};
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
    /// The most categories a column is one-hot encoded with; a categorical column with more
    /// distinct values becomes one [`FeatureColumn::Indexed`] feature (the category's index,
    /// for an embedding). `None` (the default) one-hot encodes every categorical column.
    /// Ignored when [`CsvOptions::columns`] fixes the encoding.
    pub one_hot_max: Option<usize>,
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
    let (header, rows) = read_text(reader, source_name, Some(target), options)?;
    let target_col = header.column_index(target)?;
    header.dataset(target_col, &rows, options)
}

/// Reads only features from the CSV file at `path`, for prediction: the columns of
/// [`CsvOptions::columns`] by name, encoded the same way (any other column, the target
/// included, is ignored), or every column as a feature when it is `None`. Errors as
/// [`read_csv_from_with`].
pub fn read_csv_features(path: &Path, options: &CsvOptions) -> Result<Features> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io { path: name.clone(), source })?;
    let (header, rows) = read_text(file, &name, None, options)?;
    header.features(&rows, options)
}

/// Reads a CSV header and every row as text. The header is checked before any row is read
/// (names, and that `target` and the declared categorical columns exist); rows must have as
/// many fields as the header.
fn read_text(
    reader: impl Read,
    path: &str,
    target: Option<&str>,
    options: &CsvOptions,
) -> Result<(TextHeader, Vec<TextRow>)> {
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
    let header = TextHeader {
        path: path.into(),
        origin: Origin::Csv { header_line },
        names: record.iter().map(str::to_owned).collect(),
        text_columns: Vec::new(),
    };
    header.check(target, options)?;

    let names = &header.names;
    let mut rows: Vec<TextRow> = Vec::new();
    while read_record(&mut rdr, &mut record, path, names)? {
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
    Ok((header, rows))
}

/// One data row as text cells, with the number messages give it: the line for CSV, the
/// 1-based row for Parquet.
pub(crate) type TextRow = (u64, ::csv::StringRecord);

/// Where a table came from, which decides how messages point into it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// A text file: rows are found by line.
    Csv { header_line: u64 },
    /// A columnar file: rows are found by their 1-based number, column names in the schema.
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    Parquet,
}

/// The column names of a table read as text, with what the CSV and Parquet readers share from
/// there on: checking the header, typing the columns, imputing, and encoding every cell. Both
/// readers turn their rows into text cells first so that they share one set of rules (what is
/// missing, what is a category, what is a valid target) instead of two that drift apart.
pub(crate) struct TextHeader {
    pub path: String,
    pub origin: Origin,
    pub names: Vec<String>,
    /// Columns stored as text (Parquet strings and booleans): categorical however their cells
    /// look, because the file says what they are.
    pub text_columns: Vec<String>,
}

impl TextHeader {
    /// An error about one cell (`n` is the line or row).
    pub(crate) fn cell_error(&self, n: u64, column: Option<String>, found: String, expected: &str) -> Error {
        match self.origin {
            Origin::Csv { .. } => csv_error(&self.path, n, column, found, expected),
            Origin::Parquet => {
                Error::Cell { path: self.path.clone(), row: n, column, found, expected: expected.into() }
            }
        }
    }

    /// An error about the header (CSV) or the schema (Parquet).
    fn header_error(&self, column: Option<String>, found: String, expected: &str) -> Error {
        match self.origin {
            Origin::Csv { header_line } => csv_error(&self.path, header_line, column, found, expected),
            Origin::Parquet => Error::Format {
                path: self.path.clone(),
                within: Some(match column {
                    Some(c) => format!("schema, column '{c}'"),
                    None => "schema".into(),
                }),
                found,
                expected: expected.into(),
            },
        }
    }

    fn column_index(&self, column: &str) -> Result<usize> {
        self.names.iter().position(|n| n == column).ok_or_else(|| match self.origin {
            Origin::Csv { .. } => {
                Error::MissingColumn { path: self.path.clone(), column: column.into(), available: self.names.clone() }
            }
            Origin::Parquet => self.header_error(
                None,
                format!("no column named '{column}'"),
                &format!("one of: {}", self.names.join(", ")),
            ),
        })
    }

    /// Checks names (present, unique), that `target` and the declared categorical columns
    /// exist, and that a column besides the target is left.
    pub(crate) fn check(&self, target: Option<&str>, options: &CsvOptions) -> Result<()> {
        for (j, name) in self.names.iter().enumerate() {
            if name.is_empty() {
                return Err(self.header_error(
                    None,
                    format!("an empty name for column {}", j + 1),
                    "a name for every column",
                ));
            }
            if self.names[..j].contains(name) {
                return Err(self.header_error(
                    Some(name.clone()),
                    format!("a second column named '{name}'"),
                    "unique column names",
                ));
            }
        }
        if let Some(target) = target {
            self.column_index(target)?;
            if self.names.len() == 1 {
                return Err(self.header_error(
                    None,
                    format!("only the target column '{target}'"),
                    "at least one feature column besides the target",
                ));
            }
        }
        for name in &options.categorical {
            self.column_index(name)?;
        }
        Ok(())
    }

    /// The dataset of `rows`, with the target in column `target_col`.
    pub(crate) fn dataset(&self, target_col: usize, rows: &[TextRow], options: &CsvOptions) -> Result<Dataset> {
        let (features, encoding, raw_targets) = self.encode(Some(target_col), rows, options)?;
        Dataset::new(features, encoding.feature_names(), build_targets(&raw_targets, options.task))?
            .with_columns(encoding)
    }

    /// The features of `rows` alone (see [`read_csv_features`]).
    pub(crate) fn features(&self, rows: &[TextRow], options: &CsvOptions) -> Result<Features> {
        let (features, encoding, _) = self.encode(None, rows, options)?;
        Features::new(features, encoding.feature_names())
    }

    /// Encodes every row: N x D features, the encoding, and the N target cells (checked) when
    /// there is a target column. Cells are checked in row order, each row's target first.
    fn encode(
        &self,
        target_col: Option<usize>,
        rows: &[TextRow],
        options: &CsvOptions,
    ) -> Result<(Vec<f32>, ColumnEncoding, Vec<String>)> {
        let names = &self.names;
        let declared = |name: &String| options.categorical.contains(name) || self.text_columns.contains(name);
        // (original column index, how it is encoded), in header order.
        let plan: Vec<(usize, FeatureColumn)> = match &options.columns {
            Some(encoding) => {
                let mut plan = Vec::with_capacity(encoding.columns().len());
                for col in encoding.columns() {
                    plan.push((self.column_index(col.name())?, col.clone()));
                }
                // Prediction ignores other columns; a labelled file must have no surprises.
                let extra = (0..names.len()).find(|&j| Some(j) != target_col && !plan.iter().any(|(k, _)| *k == j));
                if let (Some(_), Some(extra)) = (target_col, extra) {
                    return Err(self.header_error(
                        Some(names[extra].clone()),
                        format!("a column '{}' that training did not have", names[extra]),
                        "only the columns the model was trained on (and the target)",
                    ));
                }
                plan
            }
            None => (0..names.len())
                .filter(|&j| Some(j) != target_col)
                .map(|j| (j, infer_column(&names[j], j, rows, declared(&names[j]), options.one_hot_max)))
                .collect(),
        };
        let fills: Vec<Fill> = match options.impute {
            Some(how) => plan.iter().map(|(j, col)| fill_value(col, *j, rows, how)).collect(),
            None => vec![Fill::Off; plan.len()],
        };
        let encoding = ColumnEncoding::new(plan.iter().map(|(_, c)| c.clone()).collect());

        let mut features = Vec::with_capacity(rows.len() * encoding.width());
        let mut raw_targets = Vec::with_capacity(if target_col.is_some() { rows.len() } else { 0 });
        for (n, record) in rows {
            let error = |j: usize, (found, expected): (String, String)| {
                self.cell_error(*n, Some(names[j].clone()), found, &expected)
            };
            if let Some(t) = target_col {
                let cell = &record[t];
                check_target_cell(cell, options.task).map_err(|(f, e)| error(t, (f, e.into())))?;
                raw_targets.push(cell.to_owned());
            }
            for ((j, col), fill) in plan.iter().zip(&fills) {
                encode_cell(&record[*j], col, *fill, &mut features).map_err(|e| error(*j, e))?;
            }
        }
        Ok((features, encoding, raw_targets))
    }
}

/// Numeric unless declared categorical or no non-missing cell parses as a number; a categorical
/// column with more than `one_hot_max` categories is indexed.
fn infer_column(name: &str, j: usize, rows: &[TextRow], declared: bool, one_hot_max: Option<usize>) -> FeatureColumn {
    let cells = || rows.iter().map(|(_, r)| &r[j]).filter(|c| !is_missing(c));
    if !declared && (cells().next().is_none() || cells().any(|c| c.parse::<f64>().is_ok())) {
        return FeatureColumn::Numeric { name: name.into() };
    }
    let mut categories: Vec<String> = cells().map(str::to_owned).collect();
    categories.sort_unstable();
    categories.dedup();
    if one_hot_max.is_some_and(|max| categories.len() > max) {
        return FeatureColumn::Indexed { name: name.into(), categories };
    }
    FeatureColumn::Categorical { name: name.into(), categories }
}

/// What a missing cell of one column becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fill {
    /// Not imputing: a missing cell is an error.
    Off,
    Value(f32),
    Category(usize),
    /// Imputing, but the column has no value to impute from.
    NoValues,
}

fn fill_value(col: &FeatureColumn, j: usize, rows: &[TextRow], how: Impute) -> Fill {
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
        FeatureColumn::Categorical { categories, .. } | FeatureColumn::Indexed { categories, .. } => {
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
pub(crate) fn encode_cell(
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
        FeatureColumn::Categorical { categories, .. } | FeatureColumn::Indexed { categories, .. } => {
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
            if let FeatureColumn::Indexed { .. } = col {
                // Exact: an f32 holds every integer below 2^24, far more categories than fit.
                out.push(index as f32);
            } else {
                let start = out.len();
                out.resize(start + categories.len(), 0.0);
                out[start + index] = 1.0;
            }
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
pub(crate) fn open_input<R: Read>(
    reader: R,
    path: &str,
    delimiter: Option<u8>,
) -> Result<(QuoteScanner<impl Read>, u8)> {
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
        } else if !quoted && let Some(k) = CANDIDATES.iter().position(|&c| c == b) {
            counts[k] += 1;
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
///
/// It also keeps the byte offsets of line ends not yet passed, for [`QuoteScanner::line_at`]:
/// the `csv` crate's own line numbers are one short after CRLF line ends (it counts a line when
/// it consumes a `\n`, and for `\r\n` that happens only when the next record is read), while
/// its byte offsets are right.
pub(crate) struct QuoteScanner<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    line: u64,
    open_line: u64,
    at_eof: bool,
    /// Bytes passed through so far.
    offset: u64,
    /// Offsets of the `\n`s not yet passed by a [`QuoteScanner::line_at`] query.
    newlines: std::collections::VecDeque<u64>,
    /// `\n`s already passed by a query.
    lines_passed: u64,
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
        QuoteScanner {
            inner,
            delimiter,
            state: QuoteState::FieldStart,
            line: 1,
            open_line: 0,
            at_eof: false,
            offset: 0,
            newlines: std::collections::VecDeque::new(),
            lines_passed: 0,
        }
    }

    /// The physical line (1-based) of a record or error the `csv` crate places at byte `byte`.
    /// After a CRLF the crate places the next record on the `\n`, which belongs to the line
    /// ending there, so a `\n` at `byte` itself counts as passed. Queries must not go back.
    fn line_at(&mut self, byte: u64) -> u64 {
        while self.newlines.front().is_some_and(|&nl| nl <= byte) {
            self.newlines.pop_front();
            self.lines_passed += 1;
        }
        self.lines_passed + 1
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
                self.newlines.push_back(self.offset);
            }
            self.offset += 1;
        }
        Ok(n)
    }
}

/// Reads the next record into `record`; `false` at the end of the input.
pub(crate) fn read_record<R: Read>(
    rdr: &mut ::csv::Reader<QuoteScanner<R>>,
    record: &mut ::csv::StringRecord,
    path: &str,
    names: &[String],
) -> Result<bool> {
    let more = match rdr.read_record(record) {
        Ok(more) => more,
        Err(e) => {
            let line = e.position().map(|p| rdr.get_mut().line_at(p.byte()));
            return Err(from_csv_crate_at(e, path, names, line));
        }
    };
    if more && let Some(position) = record.position() {
        let mut position = position.clone();
        position.set_line(rdr.get_mut().line_at(position.byte()));
        record.set_position(Some(position));
    }
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

pub(crate) fn line_of(record: &::csv::StringRecord) -> u64 {
    // Every record the reader returns has a position; 0 would only show up in a message.
    record.position().map_or(0, ::csv::Position::line)
}

pub(crate) type CellError = (String, &'static str);

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

pub(crate) fn check_target_cell(cell: &str, task: Task) -> std::result::Result<(), CellError> {
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
pub(crate) fn build_targets(raw: &[String], task: Task) -> Targets {
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

pub(crate) fn csv_error(path: &str, line: u64, column: Option<String>, found: String, expected: &str) -> Error {
    Error::Csv { path: path.into(), line, column, found, expected: expected.into() }
}

pub(crate) fn from_csv_crate(e: ::csv::Error, path: &str, names: &[String]) -> Error {
    from_csv_crate_at(e, path, names, None)
}

/// As [`from_csv_crate`], at `line` when known better than the crate's own count.
fn from_csv_crate_at(e: ::csv::Error, path: &str, names: &[String], line: Option<u64>) -> Error {
    let line = line.unwrap_or_else(|| e.position().map_or(0, ::csv::Position::line));
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

    /// A table whose `id` column has `n` distinct values, each twice.
    fn ids(n: usize) -> String {
        let mut text = String::from("id,x,y\n");
        for r in 0..2 {
            for i in 0..n {
                text.push_str(&format!("u{i:02},{r}.5,{}\n", i % 2));
            }
        }
        text
    }

    #[test]
    fn a_text_column_is_indexed_above_one_hot_max_and_one_hot_up_to_it() {
        let options = |max| CsvOptions { one_hot_max: Some(max), ..CsvOptions::default() };
        let ds = read_csv_from_with(ids(20).as_bytes(), "ids.csv", "y", &options(16)).unwrap();
        assert_eq!(ds.feature_names(), ["id", "x"]);
        assert_eq!(ds.index_columns(), vec![(0, 20)]);
        // Row 3 is `u03`: the fourth category in sorted order.
        assert_eq!(ds.row(3), [3.0, 0.5]);
        assert!(
            matches!(&ds.columns().columns()[0], FeatureColumn::Indexed { categories, .. } if categories.len() == 20)
        );

        let ds = read_csv_from_with(ids(16).as_bytes(), "ids.csv", "y", &options(16)).unwrap();
        assert_eq!(ds.n_features(), 17);
        assert!(ds.index_columns().is_empty());
        let ds = read_csv_from_with(ids(20).as_bytes(), "ids.csv", "y", &CsvOptions::default()).unwrap();
        assert_eq!(ds.n_features(), 21, "without a threshold every category is one-hot");

        // A declared categorical column counts its values the same way.
        let numeric = ids(20).replace('u', "");
        let declared = CsvOptions { categorical: vec!["id".into()], ..options(16) };
        let ds = read_csv_from_with(numeric.as_bytes(), "ids.csv", "y", &declared).unwrap();
        assert_eq!(ds.index_columns(), vec![(0, 20)]);
    }

    #[test]
    fn a_saved_index_encoding_maps_text_to_the_same_index_and_names_an_unseen_category() {
        let train = read_csv_from_with(
            ids(20).as_bytes(),
            "ids.csv",
            "y",
            &CsvOptions { one_hot_max: Some(4), ..CsvOptions::default() },
        )
        .unwrap();
        let saved = CsvOptions { columns: Some(train.columns().clone()), ..CsvOptions::default() };
        let ds = read_csv_from_with("id,x,y\nu07,1,0\n".as_bytes(), "p.csv", "y", &saved).unwrap();
        assert_eq!(ds.row(0), [7.0, 1.0]);
        let err = read_csv_from_with("id,x,y\nu07,1,0\nzz,1,1\n".as_bytes(), "p.csv", "y", &saved).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3") && msg.contains("'zz'") && msg.contains("seen in training"), "{msg}");
    }

    #[test]
    fn scalers_leave_index_features_as_they_are() {
        let ds = read_csv_from_with(
            ids(20).as_bytes(),
            "ids.csv",
            "y",
            &CsvOptions { one_hot_max: Some(4), ..CsvOptions::default() },
        )
        .unwrap();
        let rows: Vec<usize> = (0..ds.len()).collect();
        let s = crate::Standardizer::fit(&ds, &rows).unwrap();
        assert_eq!((s.mean()[0], s.std()[0]), (0.0, 1.0));
        assert_eq!(s.mean()[1], 1.0, "the numeric column is still fitted");
        let m = crate::MinMaxScaler::fit(&ds, &rows).unwrap();
        assert_eq!((m.min()[0], m.max()[0]), (0.0, 1.0));
        let mut row = ds.row(5).to_vec();
        s.transform_in_place(&mut row).unwrap();
        assert_eq!(row[0], 5.0);
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
