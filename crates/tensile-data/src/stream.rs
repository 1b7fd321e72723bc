//! Training on a CSV file larger than memory: the table is read in passes and blocks instead of
//! being held whole.
//!
//! [`CsvStream::scan`] makes one streaming pass that decides everything the in-memory reader
//! decides from all rows — each column numeric or categorical with its sorted categories, the
//! task and the class names, imputation values — by the same rules and with the same
//! structural errors (it shares [`crate::read_csv`]'s cell rules and helpers), and records where
//! every block of `block_rows` data rows starts in the file (byte, line). It keeps per column only
//! what the decision needs: a numeric column stops collecting distinct values at its first
//! number, so memory depends on the number of categories, not rows.
//!
//! Rows are divided by a [`StreamSplit`], a seeded hash of the row number: a row's side never
//! changes between epochs or runs and needs no stored index list. [`CsvStream::prepare`] then
//! makes one pass that checks every cell (in row order, as the in-memory reader does), collects
//! the validation rows and sums the training rows, and one more for squared deviations, so the
//! statistics equal [`crate::Standardizer::fit`]'s (and the other scalers') over the same rows.
//!
//! A [`StreamLoader`] deals the training rows out epoch by epoch: each epoch draws a seeded
//! permutation of the blocks, groups it into windows of `window_blocks` blocks, and shuffles the
//! rows of one window at a time, so at most one window of rows is in memory
//! ([`StreamEpoch::peak_rows_held`] counts it). The epoch's order is a function of the loader
//! state at its start alone, and which rows batch `j` holds can be computed from per-block row
//! counts without reading anything, so resuming at any batch reads only the window that batch
//! lies in: a checkpoint stores the same [`LoaderState`] and batch number as for a [`crate::Loader`].
//! A window of a few blocks only approximates a full shuffle (rows of one block stay in the same
//! window); a full permutation of N row indices was rejected because N words of memory is what
//! streaming exists to avoid.
//!
//! Shapes: N rows in the file, D features, B rows in a batch.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use tensile_core::Rng;

use crate::columns::{ColumnEncoding, FeatureColumn, Impute, is_missing, most_frequent};
use crate::csv::{
    CsvOptions, Fill, MAX_INFERRED_CLASSES, Origin, Task, TextHeader, build_targets, check_target_cell, csv_error,
    encode_cell, from_csv_crate, line_of, open_input, read_record,
};
use crate::dataset::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::loader::LoaderState;
use crate::preprocess::{MinMaxScaler, Standardizer, TargetScaler};

/// Rows per block when the caller has no reason to choose: large enough that seeking costs
/// little next to parsing, small enough that a window of several blocks stays small.
pub const DEFAULT_BLOCK_ROWS: usize = 1024;

/// Where a block's first row starts: the file byte offset and the line, for seeking and messages.
#[derive(Debug, Clone, Copy)]
struct BlockStart {
    byte: u64,
    line: u64,
    record: u64,
}

/// How a target cell becomes a label.
#[derive(Debug, Clone)]
enum ClassMap {
    /// Text labels: the index in the sorted class names.
    Text(Vec<String>),
    /// Numeric labels: the index of the value among the distinct sorted values.
    Numeric(Vec<f64>),
    /// Regression: the value itself.
    Values,
}

/// One row's target, encoded.
#[derive(Debug, Clone, Copy)]
enum RowTarget {
    Label(u32),
    Value(f32),
}

/// The targets of a set of rows, in the task's type.
#[derive(Debug, Clone)]
enum TargetBuf {
    Labels(Vec<u32>),
    Values(Vec<f32>),
}

impl TargetBuf {
    fn new(classes: &ClassMap) -> TargetBuf {
        match classes {
            ClassMap::Values => TargetBuf::Values(Vec::new()),
            _ => TargetBuf::Labels(Vec::new()),
        }
    }

    fn clear(&mut self) {
        match self {
            TargetBuf::Labels(v) => v.clear(),
            TargetBuf::Values(v) => v.clear(),
        }
    }

    fn push(&mut self, t: RowTarget) {
        match (self, t) {
            (TargetBuf::Labels(v), RowTarget::Label(l)) => v.push(l),
            (TargetBuf::Values(v), RowTarget::Value(x)) => v.push(x),
            _ => unreachable!("internal: a target of the other task"),
        }
    }
}

/// A CSV training file scanned for streaming: its schema (the same the in-memory reader would
/// infer) and where each block of rows starts. Holds no rows.
#[derive(Debug, Clone)]
pub struct CsvStream {
    path: PathBuf,
    name: String,
    delimiter: u8,
    file_len: u64,
    names: Vec<String>,
    target_col: usize,
    plan: Vec<(usize, FeatureColumn)>,
    fills: Vec<Fill>,
    encoding: ColumnEncoding,
    feature_names: Vec<String>,
    declared_task: Task,
    classes: ClassMap,
    class_names: Option<Vec<String>>,
    rows: u64,
    block_rows: usize,
    blocks: Vec<BlockStart>,
}

/// What the scan keeps of one feature column.
#[derive(Debug, Default)]
struct ColumnScan {
    declared: bool,
    /// A non-missing cell parsed as a number (so the column is numeric unless declared).
    numeric: bool,
    /// A non-missing cell was seen.
    any: bool,
    /// Distinct non-missing cells and their counts, while the column may still be categorical.
    categories: BTreeMap<String, usize>,
    /// Sum and count of the finite values, for mean imputation.
    sum: f64,
    count: usize,
}

impl CsvStream {
    /// Scans the CSV file at `path` once, with the target column `target`, recording the start of
    /// every block of `block_rows` rows. Column kinds, categories, class names and imputation
    /// values follow [`crate::read_csv_with`]'s rules exactly, and structural errors (header,
    /// ragged rows, quotes, UTF-8) are reported as it reports them; cell errors are found by
    /// [`CsvStream::prepare`]. Imputing by median or most frequent numeric value needs every
    /// value at once and is refused (mean works); so is a fixed [`CsvOptions::columns`], which is
    /// for prediction files.
    pub fn scan(path: &Path, target: &str, options: &CsvOptions, block_rows: usize) -> Result<CsvStream> {
        if block_rows == 0 {
            return Err(Error::InvalidArgument { what: "a stream block of 0 rows; expected at least 1".into() });
        }
        if options.columns.is_some() {
            return Err(Error::InvalidArgument {
                what: "a fixed column encoding is for prediction files; a streamed training file infers its own".into(),
            });
        }
        let name = path.display().to_string();
        let io = |source| Error::Io { path: name.clone(), source };
        let mut head = [0u8; 3];
        let mut probe = File::open(path).map_err(io)?;
        let got = read_up_to(&mut probe, &mut head).map_err(io)?;
        let bom = if got == 3 && head == [0xEF, 0xBB, 0xBF] { 3 } else { 0 };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let (input, delimiter) = open_input(file, &name, options.delimiter)?;
        let mut rdr = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::All)
            .delimiter(delimiter)
            .buffer_capacity(1 << 16)
            .from_reader(input);
        let mut record = ::csv::StringRecord::new();
        if !read_record(&mut rdr, &mut record, &name, &[])? {
            return Err(Error::Empty {
                path: name.clone(),
                line: 1,
                expected: "a header row naming the columns".into(),
            });
        }
        let header_line = line_of(&record);
        let header = TextHeader {
            path: name.clone(),
            origin: Origin::Csv { header_line },
            names: record.iter().map(str::to_owned).collect(),
            text_columns: Vec::new(),
        };
        header.check(Some(target), options)?;
        let names = header.names;
        let target_col = names.iter().position(|n| n == target).expect("internal: checked target column");

        let mut cols: Vec<ColumnScan> = names
            .iter()
            .map(|n| ColumnScan { declared: options.categorical.contains(n), ..Default::default() })
            .collect();
        let mean_impute = options.impute == Some(Impute::Mean);
        let mut targets = TargetScan::new(options.task);
        let mut blocks = Vec::new();
        let mut rows: u64 = 0;
        while read_record(&mut rdr, &mut record, &name, &names)? {
            let line = line_of(&record);
            if record.len() != names.len() {
                return Err(csv_error(
                    &name,
                    line,
                    None,
                    format!("{} fields", record.len()),
                    &format!("{} fields, as in the header", names.len()),
                ));
            }
            if rows % block_rows as u64 == 0 {
                let pos = record.position().expect("internal: a read record has a position");
                blocks.push(BlockStart { byte: pos.byte() + bom, line: pos.line(), record: pos.record() });
            }
            for (j, col) in cols.iter_mut().enumerate() {
                if j == target_col || (col.numeric && !col.declared && !mean_impute) {
                    continue;
                }
                let cell = &record[j];
                if is_missing(cell) {
                    continue;
                }
                col.any = true;
                if mean_impute
                    && let Ok(v) = cell.parse::<f32>()
                    && v.is_finite()
                {
                    col.sum += f64::from(v);
                    col.count += 1;
                }
                if !col.declared && !col.numeric && cell.parse::<f64>().is_ok() {
                    col.numeric = true;
                    col.categories = BTreeMap::new();
                }
                if col.declared || !col.numeric {
                    match col.categories.get_mut(cell) {
                        Some(c) => *c += 1,
                        None => {
                            col.categories.insert(cell.to_owned(), 1);
                        }
                    }
                }
            }
            targets.observe(&record[target_col]).map_err(|(found, expected)| {
                csv_error(&name, line, Some(names[target_col].clone()), found, expected)
            })?;
            rows += 1;
        }
        if rows == 0 {
            return Err(Error::Empty {
                path: name.clone(),
                line: rdr.position().line().max(header_line + 1),
                expected: "at least one data row after the header".into(),
            });
        }

        let mut plan = Vec::new();
        let mut fills = Vec::new();
        for (j, col) in cols.into_iter().enumerate() {
            if j == target_col {
                continue;
            }
            let numeric = !col.declared && (!col.any || col.numeric);
            let column = if numeric {
                FeatureColumn::Numeric { name: names[j].clone() }
            } else {
                FeatureColumn::Categorical {
                    name: names[j].clone(),
                    categories: col.categories.keys().cloned().collect(),
                }
            };
            let fill = match (options.impute, numeric) {
                (None, _) => Fill::Off,
                (Some(Impute::Mean), true) if col.count == 0 => Fill::NoValues,
                (Some(Impute::Mean), true) => Fill::Value((col.sum / col.count as f64) as f32),
                (Some(how), true) => {
                    return Err(Error::InvalidArgument {
                        what: format!(
                            "{name}: imputing column '{}' by {how:?} needs all of its values in memory; a streamed \
                             file can impute by Mean",
                            names[j]
                        ),
                    });
                }
                (Some(_), false) => {
                    let counts: Vec<usize> = col.categories.values().copied().collect();
                    most_frequent(&counts).map_or(Fill::NoValues, Fill::Category)
                }
            };
            plan.push((j, column));
            fills.push(fill);
        }
        let encoding = ColumnEncoding::new(plan.iter().map(|(_, c)| c.clone()).collect());
        let (classes, class_names) = targets.finish(options.task);
        drop(rdr);
        Ok(CsvStream {
            path: path.to_path_buf(),
            name,
            delimiter,
            file_len,
            feature_names: encoding.feature_names(),
            names,
            target_col,
            plan,
            fills,
            encoding,
            declared_task: options.task,
            classes,
            class_names,
            rows,
            block_rows,
            blocks,
        })
    }

    /// The file it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of data rows N in the file.
    pub fn len(&self) -> usize {
        self.rows as usize
    }

    /// `true` when there are no rows (never for a scanned file: scanning refuses it).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of features D.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The D feature names, as [`Dataset::feature_names`] would give them.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The original columns and how each becomes features.
    pub fn columns(&self) -> &ColumnEncoding {
        &self.encoding
    }

    /// Class names, indexed by label; `None` for regression.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// Number of classes for classification, `None` for regression.
    pub fn n_classes(&self) -> Option<usize> {
        self.class_names.as_ref().map(Vec::len)
    }

    /// Rows per block.
    pub fn block_rows(&self) -> usize {
        self.block_rows
    }

    /// Number of blocks, `ceil(N / block_rows)`.
    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The file's length in bytes when it was scanned; reading refuses a file whose length has
    /// changed since, because the block offsets would no longer point at rows.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Rows of block `b`.
    fn rows_in_block(&self, b: usize) -> usize {
        let start = b as u64 * self.block_rows as u64;
        (self.rows - start).min(self.block_rows as u64) as usize
    }

    /// A reader over the file, after checking that it is the file that was scanned.
    fn open(&self) -> Result<::csv::Reader<File>> {
        let io = |source| Error::Io { path: self.name.clone(), source };
        let file = File::open(&self.path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != self.file_len {
            return Err(Error::Format {
                path: self.name.clone(),
                within: None,
                found: format!("{len} bytes, a file changed since it was scanned"),
                expected: format!("the {} bytes it had when training started", self.file_len),
            });
        }
        Ok(::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::All)
            .delimiter(self.delimiter)
            .buffer_capacity(1 << 16)
            .from_reader(file))
    }

    /// Reads `count` rows from block `b` on, calling `f(row number, features, target)` for each
    /// with the row's features encoded (D values, unscaled). Cells are checked as the in-memory
    /// reader checks them: target first, then features, errors naming line and column.
    fn read_rows(
        &self,
        rdr: &mut ::csv::Reader<File>,
        b: usize,
        count: u64,
        row_buf: &mut Vec<f32>,
        record: &mut ::csv::StringRecord,
        mut f: impl FnMut(u64, &[f32], RowTarget) -> Result<()>,
    ) -> Result<()> {
        let start = self.blocks[b];
        let mut pos = ::csv::Position::new();
        pos.set_byte(start.byte).set_line(start.line).set_record(start.record);
        rdr.seek(pos).map_err(|e| from_csv_crate(e, &self.name, &self.names))?;
        let first_row = b as u64 * self.block_rows as u64;
        for row in first_row..first_row + count {
            let more = rdr.read_record(record).map_err(|e| from_csv_crate(e, &self.name, &self.names))?;
            if !more || record.len() != self.names.len() {
                return Err(Error::Format {
                    path: self.name.clone(),
                    within: Some(format!("line {}", rdr.position().line())),
                    found: "a row that differs from the scan (the file changed while training)".into(),
                    expected: format!("data row {} as first read", row + 1),
                });
            }
            let line = line_of(record);
            let target = self.encode_row(record, line, row_buf)?;
            f(row, row_buf, target)?;
        }
        Ok(())
    }

    /// Encodes one record into `out` (replacing it) and returns its target.
    fn encode_row(&self, record: &::csv::StringRecord, line: u64, out: &mut Vec<f32>) -> Result<RowTarget> {
        let error = |j: usize, found: String, expected: &str| {
            csv_error(&self.name, line, Some(self.names[j].clone()), found, expected)
        };
        let t = self.target_col;
        let cell = &record[t];
        check_target_cell(cell, self.declared_task).map_err(|(f, e)| error(t, f, e))?;
        let target = match &self.classes {
            ClassMap::Values => RowTarget::Value(cell.parse().unwrap_or(f32::NAN)),
            ClassMap::Text(names) => RowTarget::Label(
                names
                    .binary_search_by(|n| n.as_str().cmp(cell))
                    .map_err(|_| error(t, format!("'{cell}'"), "a class seen when the file was scanned"))?
                    as u32,
            ),
            ClassMap::Numeric(values) => {
                let v = cell.parse::<f64>().map(|v| v + 0.0).unwrap_or(f64::NAN);
                RowTarget::Label(
                    values
                        .binary_search_by(|d| d.total_cmp(&v))
                        .map_err(|_| error(t, format!("'{cell}'"), "a class seen when the file was scanned"))?
                        as u32,
                )
            }
        };
        out.clear();
        for ((j, col), fill) in self.plan.iter().zip(&self.fills) {
            encode_cell(&record[*j], col, *fill, out).map_err(|(f, e)| error(*j, f, &e))?;
        }
        Ok(target)
    }

    /// Training and validation rows per block under `split`.
    fn block_counts(&self, split: &StreamSplit) -> Vec<(u32, u32)> {
        (0..self.n_blocks())
            .map(|b| {
                let first = b as u64 * self.block_rows as u64;
                let n = self.rows_in_block(b) as u64;
                let val = (first..first + n).filter(|&r| split.is_validation(r)).count() as u32;
                (n as u32 - val, val)
            })
            .collect()
    }

    /// Training and validation rows under `split`, counted without reading the file.
    pub fn split_counts(&self, split: &StreamSplit) -> (usize, usize) {
        self.block_counts(split).iter().fold((0, 0), |(t, v), &(bt, bv)| (t + bt as usize, v + bv as usize))
    }

    /// Reads the whole file once more: checks every cell (in row order, as the in-memory reader
    /// does, so a bad cell stops training before it starts), collects the validation rows of
    /// `split` into a [`Dataset`] (unscaled), and fits on the training rows what `fit` asks for.
    /// Means and deviations take a second pass (sums, then squared deviations from the mean),
    /// in the same order and arithmetic as [`Standardizer::fit`] and [`TargetScaler::fit`], so
    /// the statistics equal theirs over the same rows bit for bit.
    pub fn prepare(&self, split: &StreamSplit, fit: StreamFit) -> Result<StreamPrepared> {
        let (n_train, n_val) = self.split_counts(split);
        let target_fit = fit.target_scaler && matches!(self.classes, ClassMap::Values);
        if (fit.standardizer || fit.min_max || target_fit) && n_train == 0 {
            return Err(Error::InvalidArgument {
                what: format!("{}: no training rows of {} to fit feature statistics on", self.name, self.rows),
            });
        }
        let d = self.n_features();
        let mut rdr = self.open()?;
        let (mut row_buf, mut record) = (Vec::with_capacity(d), ::csv::StringRecord::new());
        let mut val_features = Vec::with_capacity(n_val * d);
        let mut val_targets = TargetBuf::new(&self.classes);
        let (mut sum, mut target_sum) = (vec![0.0f64; d], 0.0f64);
        let (mut min, mut max) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
        self.read_rows(&mut rdr, 0, self.rows, &mut row_buf, &mut record, |row, x, t| {
            if split.is_validation(row) {
                val_features.extend_from_slice(x);
                val_targets.push(t);
                return Ok(());
            }
            for (((s, lo), hi), &v) in sum.iter_mut().zip(min.iter_mut()).zip(max.iter_mut()).zip(x) {
                *s += f64::from(v);
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
            if let RowTarget::Value(y) = t {
                target_sum += f64::from(y);
            }
            Ok(())
        })?;
        let n = n_train as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let target_mean = target_sum / n;
        let (mut sq, mut target_sq) = (vec![0.0f64; d], 0.0f64);
        if fit.standardizer || target_fit {
            self.read_rows(&mut rdr, 0, self.rows, &mut row_buf, &mut record, |row, x, t| {
                if split.is_validation(row) {
                    return Ok(());
                }
                for ((q, &v), &m) in sq.iter_mut().zip(x).zip(&mean) {
                    let dv = f64::from(v) - f64::from(m);
                    *q += dv * dv;
                }
                if let RowTarget::Value(y) = t {
                    target_sq += (f64::from(y) - target_mean).powi(2);
                }
                Ok(())
            })?;
        }
        let standardizer = if fit.standardizer {
            // `Standardizer::fit`'s rule for the std of a column that is constant in practice.
            let std = sq
                .iter()
                .zip(&mean)
                .map(|(q, &m)| {
                    let s = (q / n).sqrt();
                    let tiny = (f64::from(m.abs()) * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
                    if s <= tiny { 1.0 } else { s.min(f64::from(f32::MAX)) as f32 }
                })
                .collect();
            Some(Standardizer::from_parts(mean, std)?)
        } else {
            None
        };
        let min_max = if fit.min_max { Some(MinMaxScaler::from_parts(min, max)?) } else { None };
        let target_scaler = if target_fit {
            // `TargetScaler::fit`'s rule for a target that is constant on the training rows.
            let std = (target_sq / n).sqrt();
            let tiny = (target_mean.abs() * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
            Some(TargetScaler::from_parts(target_mean, if std <= tiny { 1.0 } else { std })?)
        } else {
            None
        };
        let validation = if n_val == 0 {
            None
        } else {
            let targets = match (val_targets, &self.class_names) {
                (TargetBuf::Labels(labels), Some(names)) => Targets::Classes { labels, class_names: names.clone() },
                (TargetBuf::Values(v), _) => Targets::Values(v),
                (TargetBuf::Labels(_), None) => unreachable!("internal: labels without class names"),
            };
            Some(Dataset::new(val_features, self.feature_names.clone(), targets)?.with_columns(self.encoding.clone())?)
        };
        Ok(StreamPrepared { train_rows: n_train, validation, standardizer, min_max, target_scaler })
    }
}

/// What [`CsvStream::prepare`] fits on the training rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFit {
    pub standardizer: bool,
    pub min_max: bool,
    /// A [`TargetScaler`]; ignored for classification.
    pub target_scaler: bool,
}

/// What [`CsvStream::prepare`] found.
#[derive(Debug, Clone)]
pub struct StreamPrepared {
    /// Rows on the training side of the split.
    pub train_rows: usize,
    /// The validation rows, unscaled, in file order; `None` when the split holds none out.
    pub validation: Option<Dataset>,
    pub standardizer: Option<Standardizer>,
    pub min_max: Option<MinMaxScaler>,
    pub target_scaler: Option<TargetScaler>,
}

/// What the scan keeps of the target column: the distinct cells while they can still be
/// classes, and for [`Task::Infer`] whether the values already decide regression.
struct TargetScan {
    task: Task,
    distinct: BTreeSet<String>,
    numbers: BTreeSet<u64>,
    all_integers: bool,
    text_seen: bool,
    /// [`Task::Infer`] with more than [`MAX_INFERRED_CLASSES`] numbers, or a fraction, and no
    /// text so far: regression, so distinct values are no longer kept.
    regression_so_far: bool,
}

impl TargetScan {
    fn new(task: Task) -> TargetScan {
        TargetScan {
            task,
            distinct: BTreeSet::new(),
            numbers: BTreeSet::new(),
            all_integers: true,
            text_seen: false,
            regression_so_far: false,
        }
    }

    fn observe(&mut self, cell: &str) -> std::result::Result<(), (String, &'static str)> {
        // Cells that can be no target at all are left to `prepare`, which reports them in row
        // order; here they would only distort the decision.
        if is_missing(cell) || cell.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
            return Ok(());
        }
        match self.task {
            Task::Regression => return Ok(()),
            Task::Classification => {}
            Task::Infer => match cell.parse::<f64>() {
                Ok(v) if !self.text_seen => {
                    if self.regression_so_far {
                        return Ok(());
                    }
                    self.all_integers &= v.fract() == 0.0;
                    self.numbers.insert((v + 0.0).to_bits());
                    if !self.all_integers || self.numbers.len() > MAX_INFERRED_CLASSES {
                        self.regression_so_far = true;
                        self.distinct = BTreeSet::new();
                        self.numbers = BTreeSet::new();
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    if self.regression_so_far && !is_missing(cell) {
                        return Err((
                            format!("the text target '{cell}' after more than {MAX_INFERRED_CLASSES} distinct numbers"),
                            "task = classification to read every target value as a class (a streamed file \
                             keeps no list of the numbers it has passed)",
                        ));
                    }
                    self.text_seen = true;
                }
            },
        }
        if !self.regression_so_far && !self.distinct.contains(cell) {
            self.distinct.insert(cell.to_owned());
        }
        Ok(())
    }

    /// How target cells become labels, and the class names (`None` for regression).
    fn finish(self, task: Task) -> (ClassMap, Option<Vec<String>>) {
        if task == Task::Regression || self.regression_so_far {
            return (ClassMap::Values, None);
        }
        // The decision depends only on the distinct cells, so `build_targets` of the distinct
        // cells is the decision `read_csv` makes over all of them.
        let distinct: Vec<String> = self.distinct.into_iter().collect();
        match build_targets(&distinct, task) {
            Targets::Values(_) => (ClassMap::Values, None),
            Targets::Classes { class_names, .. } => {
                let numbers: Option<Vec<f64>> = distinct.iter().map(|c| c.parse::<f64>().ok()).collect();
                let map = match numbers {
                    Some(mut nums) => {
                        for v in &mut nums {
                            *v += 0.0;
                        }
                        nums.sort_unstable_by(f64::total_cmp);
                        nums.dedup();
                        ClassMap::Numeric(nums)
                    }
                    None => ClassMap::Text(class_names.clone()),
                };
                (map, Some(class_names))
            }
        }
    }
}

/// Which rows of a stream are held out for validation: a seeded hash of the row number compared
/// with the fraction, so a row's side is fixed for the run (every epoch, every resume) without
/// a stored list. The held-out count is close to, not exactly, the fraction of N, and classes
/// are not stratified: both would need the whole file's labels in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSplit {
    key: u64,
    /// Rows whose hash is below this are validation rows; 0 holds none out.
    threshold: u64,
}

impl StreamSplit {
    /// Every row trains (validation data comes from elsewhere).
    pub fn none() -> StreamSplit {
        StreamSplit { key: 0, threshold: 0 }
    }

    /// About `fraction` of the rows held out, chosen by a key drawn from `rng`. Errors unless
    /// `fraction` is strictly between 0 and 1.
    pub fn hashed(fraction: f64, rng: &mut Rng) -> Result<StreamSplit> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::InvalidArgument {
                what: format!("validation fraction {fraction}; expected a number strictly between 0 and 1"),
            });
        }
        // `as` saturates, and fraction < 1 keeps it below 2^64.
        let threshold = (fraction * 18_446_744_073_709_551_616.0) as u64;
        Ok(StreamSplit { key: rng.next_u64(), threshold: threshold.max(1) })
    }

    /// Whether row `row` (0-based, in file order) is a validation row.
    pub fn is_validation(&self, row: u64) -> bool {
        self.threshold != 0 && mix(self.key ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15)) < self.threshold
    }
}

/// SplitMix64's finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deals the training rows of a [`CsvStream`] out in seeded batches, a window of blocks at a
/// time. Its position is a [`LoaderState`], like [`crate::Loader`]'s.
#[derive(Debug, Clone)]
pub struct StreamLoader<'a> {
    stream: &'a CsvStream,
    split: StreamSplit,
    batch_size: usize,
    window_blocks: usize,
    /// Training rows of each block.
    block_train: Vec<u32>,
    train_rows: usize,
    rng: Rng,
    epochs_drawn: u64,
}

impl<'a> StreamLoader<'a> {
    /// A loader over the training rows of `stream` under `split`, in batches of `batch_size`,
    /// shuffling `window_blocks` blocks at a time. Errors if either is 0 or no row trains.
    pub fn new(
        stream: &'a CsvStream,
        split: StreamSplit,
        batch_size: usize,
        window_blocks: usize,
        rng: Rng,
    ) -> Result<StreamLoader<'a>> {
        if batch_size == 0 || window_blocks == 0 {
            return Err(Error::InvalidArgument {
                what: format!("batch size {batch_size} and window of {window_blocks} blocks; expected at least 1 each"),
            });
        }
        let block_train: Vec<u32> = stream.block_counts(&split).iter().map(|&(t, _)| t).collect();
        let train_rows = block_train.iter().map(|&t| t as usize).sum();
        if train_rows == 0 {
            return Err(Error::InvalidArgument { what: format!("{}: no training rows to stream", stream.name) });
        }
        Ok(StreamLoader { stream, split, batch_size, window_blocks, block_train, train_rows, rng, epochs_drawn: 0 })
    }

    /// Training rows per epoch.
    pub fn len(&self) -> usize {
        self.train_rows
    }

    /// `true` when there are no training rows (never for a loader that was built).
    pub fn is_empty(&self) -> bool {
        self.train_rows == 0
    }

    /// Batches per epoch, `ceil(rows / batch_size)` (the last may be short).
    pub fn batches_per_epoch(&self) -> usize {
        self.train_rows.div_ceil(self.batch_size)
    }

    /// Blocks shuffled together.
    pub fn window_blocks(&self) -> usize {
        self.window_blocks
    }

    /// The most rows one window can hold: `window_blocks * block_rows`.
    pub fn max_window_rows(&self) -> usize {
        self.window_blocks * self.stream.block_rows
    }

    /// The current position, to store in a checkpoint.
    pub fn state(&self) -> LoaderState {
        LoaderState { rng: self.rng.state(), epochs_drawn: self.epochs_drawn }
    }

    /// Moves to a position from [`StreamLoader::state`] or [`StreamEpoch::start_state`].
    pub fn restore(&mut self, state: &LoaderState) {
        self.rng = Rng::from_state(state.rng);
        self.epochs_drawn = state.epochs_drawn;
    }

    /// Draws the next epoch: a permutation of the blocks and the seed of its window shuffles.
    /// Nothing is read until a batch is asked for.
    pub fn epoch(&mut self) -> StreamEpoch<'a> {
        let start_state = self.state();
        let perm: Vec<u32> = self.rng.permutation(self.stream.n_blocks()).into_iter().map(|b| b as u32).collect();
        let window_seed = self.rng.next_u64();
        self.epochs_drawn += 1;
        let mut ends = Vec::with_capacity(perm.len().div_ceil(self.window_blocks));
        let mut total = 0usize;
        for window in perm.chunks(self.window_blocks) {
            total += window.iter().map(|&b| self.block_train[b as usize] as usize).sum::<usize>();
            ends.push(total);
        }
        StreamEpoch {
            stream: self.stream,
            split: self.split,
            batch_size: self.batch_size,
            window_blocks: self.window_blocks,
            number: start_state.epochs_drawn,
            start_state,
            n_batches: self.batches_per_epoch(),
            train_rows: self.train_rows,
            perm,
            window_seed,
            ends,
            loaded: None,
            features: Vec::new(),
            targets: TargetBuf::new(&self.stream.classes),
            order: Vec::new(),
            reader: None,
            row_buf: Vec::new(),
            record: ::csv::StringRecord::new(),
            peak_rows: 0,
            windows_read: 0,
        }
    }
}

/// One epoch of a [`StreamLoader`]: batch `j` holds rows `j*B..(j+1)*B` of the epoch's order,
/// which is the concatenation of its windows, each shuffled.
pub struct StreamEpoch<'a> {
    stream: &'a CsvStream,
    split: StreamSplit,
    batch_size: usize,
    window_blocks: usize,
    number: u64,
    start_state: LoaderState,
    n_batches: usize,
    train_rows: usize,
    perm: Vec<u32>,
    window_seed: u64,
    /// Training rows in windows `0..=w`, for each window `w`.
    ends: Vec<usize>,
    /// The window whose rows are in `features`/`targets`.
    loaded: Option<usize>,
    features: Vec<f32>,
    targets: TargetBuf,
    /// The loaded window's rows in shuffled order (indices into `features`).
    order: Vec<u32>,
    reader: Option<::csv::Reader<File>>,
    row_buf: Vec<f32>,
    record: ::csv::StringRecord,
    peak_rows: usize,
    windows_read: usize,
}

impl StreamEpoch<'_> {
    /// 0 for the first epoch a loader drew, then 1, 2, …
    pub fn number(&self) -> u64 {
        self.number
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

    /// The most rows this epoch has held in memory at once (one window's).
    pub fn peak_rows_held(&self) -> usize {
        self.peak_rows
    }

    /// How many windows were read from the file so far.
    pub fn windows_read(&self) -> usize {
        self.windows_read
    }

    /// Copies classification batch `j` into `features_out` (B x D, unscaled) and `labels_out`,
    /// reusing both. Errors on a regression stream, past the last batch, or on a read error.
    pub fn gather(&mut self, j: usize, features_out: &mut Vec<f32>, labels_out: &mut Vec<u32>) -> Result<()> {
        labels_out.clear();
        self.fill(j, features_out, |targets, i| match targets {
            TargetBuf::Labels(l) => {
                labels_out.push(l[i]);
                Ok(())
            }
            TargetBuf::Values(_) => Err(Error::InvalidArgument {
                what: "class labels requested from a regression stream; use gather_values".into(),
            }),
        })
    }

    /// Copies regression batch `j` into `features_out` (B x D, unscaled) and `values_out`.
    /// Errors on a classification stream, past the last batch, or on a read error.
    pub fn gather_values(&mut self, j: usize, features_out: &mut Vec<f32>, values_out: &mut Vec<f32>) -> Result<()> {
        values_out.clear();
        self.fill(j, features_out, |targets, i| match targets {
            TargetBuf::Values(v) => {
                values_out.push(v[i]);
                Ok(())
            }
            TargetBuf::Labels(_) => Err(Error::InvalidArgument {
                what: "target values requested from a classification stream; use gather".into(),
            }),
        })
    }

    fn fill(
        &mut self,
        j: usize,
        features_out: &mut Vec<f32>,
        mut push_target: impl FnMut(&TargetBuf, usize) -> Result<()>,
    ) -> Result<()> {
        if j >= self.n_batches {
            return Err(Error::InvalidArgument {
                what: format!("batch {j} of an epoch of {} batches", self.n_batches),
            });
        }
        let d = self.stream.n_features();
        let start = j * self.batch_size;
        let end = (start + self.batch_size).min(self.train_rows);
        features_out.clear();
        let mut r = start;
        while r < end {
            let w = self.ends.partition_point(|&e| e <= r);
            self.load(w)?;
            let window_start = if w == 0 { 0 } else { self.ends[w - 1] };
            let take = end.min(self.ends[w]) - r;
            for &i in &self.order[r - window_start..r - window_start + take] {
                let i = i as usize;
                features_out.extend_from_slice(&self.features[i * d..(i + 1) * d]);
                push_target(&self.targets, i)?;
            }
            r += take;
        }
        Ok(())
    }

    /// Reads window `w` (its blocks in file order, training rows only) and shuffles it, unless
    /// it is the one already held.
    fn load(&mut self, w: usize) -> Result<()> {
        if self.loaded == Some(w) {
            return Ok(());
        }
        self.loaded = None;
        let stream = self.stream;
        let first = w * self.window_blocks;
        let mut blocks: Vec<u32> = self.perm[first..(first + self.window_blocks).min(self.perm.len())].to_vec();
        // In file order, so a window reads forward through the file.
        blocks.sort_unstable();
        if self.reader.is_none() {
            self.reader = Some(stream.open()?);
        }
        let rdr = self.reader.as_mut().expect("internal: reader opened");
        self.features.clear();
        self.targets.clear();
        let (features, targets, split) = (&mut self.features, &mut self.targets, self.split);
        for &b in &blocks {
            let b = b as usize;
            stream.read_rows(
                rdr,
                b,
                stream.rows_in_block(b) as u64,
                &mut self.row_buf,
                &mut self.record,
                |row, x, t| {
                    if !split.is_validation(row) {
                        features.extend_from_slice(x);
                        targets.push(t);
                    }
                    Ok(())
                },
            )?;
        }
        let rows = self.features.len() / stream.n_features().max(1);
        let expected = self.ends[w] - if w == 0 { 0 } else { self.ends[w - 1] };
        if rows != expected {
            return Err(Error::Format {
                path: stream.name.clone(),
                within: None,
                found: format!("{rows} training rows in a window that had {expected} (the file changed)"),
                expected: "the rows it had when training started".into(),
            });
        }
        self.order.clear();
        self.order.extend(0..rows as u32);
        Rng::seed(self.window_seed).fork(w as u64).shuffle(&mut self.order);
        self.peak_rows = self.peak_rows.max(rows);
        self.windows_read += 1;
        self.loaded = Some(w);
        Ok(())
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
