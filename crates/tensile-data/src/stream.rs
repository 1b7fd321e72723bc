//! Training on a table larger than memory, CSV or Parquet: the table is read in passes and
//! blocks instead of being held whole.
//!
//! [`TableStream::scan`] (CSV) and [`TableStream::scan_parquet`] make one streaming pass that
//! decides everything the in-memory readers decide from all rows — each column numeric,
//! one-hot or indexed with its sorted categories, the task and the class names, imputation
//! values — by the same rules and with the same structural errors (they share
//! [`crate::read_csv`]'s cell rules and helpers, and Parquet cells become text by
//! [`crate::read_parquet`]'s), and records where every block of `block_rows` data rows starts.
//! It keeps per column only what the decision needs: a numeric column stops collecting distinct
//! values at its first number, so memory depends on the number of categories, not rows. A median
//! imputation takes two more passes (an exact selection, see `fill`). The record sources
//! (`csv_source`, `parquet_source`) are an enum, not a trait: two formats, both known here.
//!
//! Rows are divided by a [`StreamSplit`], a seeded hash of the row number: a row's side never
//! changes between epochs or runs and needs no stored index list. [`TableStream::prepare`] then
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
//! lies in: a checkpoint stores the same [`crate::LoaderState`] and batch number as for a [`crate::Loader`].
//! A window of a few blocks only approximates a full shuffle (rows of one block stay in the same
//! window); a full permutation of N row indices was rejected because N words of memory is what
//! streaming exists to avoid.
//!
//! Shapes: N rows in the file, D features, B rows in a batch.

mod csv_source;
mod fill;
mod loader;
#[cfg(feature = "parquet")]
mod parquet_source;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use tensile_core::Rng;

use crate::columns::{ColumnEncoding, FeatureColumn, Impute, is_missing, most_frequent};
use crate::csv::{
    CsvOptions, Fill, MAX_INFERRED_CLASSES, Task, TextHeader, build_targets, check_target_cell, csv_error, encode_cell,
};
use crate::dataset::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::preprocess::{MinMaxScaler, Standardizer, TargetScaler};

use fill::{MAX_DISTINCT_VALUES, MEDIAN_COLUMNS_PER_PASS, MedianSelect, ValueScan};
pub use loader::{StreamEpoch, StreamLoader};

/// Rows per block when the caller has no reason to choose: large enough that seeking costs
/// little next to parsing, small enough that a window of several blocks stays small.
pub const DEFAULT_BLOCK_ROWS: usize = 1024;

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

/// Where a stream's rows come from.
#[derive(Debug, Clone)]
enum Source {
    Csv(csv_source::CsvSource),
    #[cfg(feature = "parquet")]
    Parquet(parquet_source::ParquetSource),
}

/// An open file of a [`Source`].
enum SourceReader {
    Csv(::csv::Reader<File>),
    #[cfg(feature = "parquet")]
    Parquet(File),
}

/// A table scanned for streaming: its schema (the same the in-memory reader would infer) and
/// where each block of rows starts. Holds no rows.
#[derive(Debug, Clone)]
pub struct TableStream {
    path: PathBuf,
    name: String,
    source: Source,
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
    n_blocks: usize,
}

/// Limits the scan keeps to, changeable for tests.
#[derive(Debug, Clone, Copy)]
struct ScanLimits {
    /// The most distinct values a numeric column's most-frequent imputation counts.
    distinct_values: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits { distinct_values: MAX_DISTINCT_VALUES }
    }
}

/// What the scan keeps of one feature column.
#[derive(Debug)]
struct ColumnScan {
    declared: bool,
    /// A non-missing cell parsed as a number (so the column is numeric unless declared).
    numeric: bool,
    /// A non-missing cell was seen.
    any: bool,
    /// A missing cell was seen (so imputing it needs a fill value).
    missing: bool,
    /// Distinct non-missing cells and their counts, while the column may still be categorical.
    categories: BTreeMap<String, usize>,
    /// The finite values, as far as the imputation needs them.
    values: ValueScan,
}

/// The state of a scan: every column's [`ColumnScan`] and the target's [`TargetScan`], fed one
/// record at a time by a record source.
struct Scanner {
    target_col: usize,
    impute: Option<Impute>,
    cols: Vec<ColumnScan>,
    targets: TargetScan,
    rows: u64,
}

impl Scanner {
    fn new(header: &TextHeader, target: &str, options: &CsvOptions, limits: ScanLimits) -> Scanner {
        let names = &header.names;
        Scanner {
            target_col: names.iter().position(|n| n == target).expect("internal: checked target column"),
            impute: options.impute,
            cols: names
                .iter()
                .map(|n| ColumnScan {
                    declared: options.categorical.contains(n) || header.text_columns.contains(n),
                    numeric: false,
                    any: false,
                    missing: false,
                    categories: BTreeMap::new(),
                    values: ValueScan::new(options.impute, limits.distinct_values),
                })
                .collect(),
            targets: TargetScan::new(options.task),
            rows: 0,
        }
    }

    /// Takes in one data record (`n`: its line or 1-based row, for messages).
    fn observe(&mut self, header: &TextHeader, record: &::csv::StringRecord, n: u64) -> Result<()> {
        let imputing = self.impute.is_some();
        for (j, col) in self.cols.iter_mut().enumerate() {
            if j == self.target_col || (col.numeric && !col.declared && !imputing) {
                continue;
            }
            let cell = &record[j];
            if is_missing(cell) {
                col.missing = true;
                continue;
            }
            col.any = true;
            if imputing
                && !col.declared
                && let Ok(v) = cell.parse::<f32>()
                && v.is_finite()
            {
                col.values.add(v);
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
        let t = self.target_col;
        self.targets
            .observe(&record[t])
            .map_err(|(found, expected)| header.cell_error(n, Some(header.names[t].clone()), found, expected))?;
        self.rows += 1;
        Ok(())
    }
}

impl TableStream {
    /// Scans the CSV file at `path` once, with the target column `target`, recording the start of
    /// every block of `block_rows` rows. Column kinds, categories (one-hot, or indexed above
    /// [`CsvOptions::one_hot_max`]), class names and imputation values follow
    /// [`crate::read_csv_with`]'s rules exactly, and structural errors (header, ragged rows,
    /// quotes, UTF-8) are reported as it reports them; cell errors are found by
    /// [`TableStream::prepare`]. A fixed [`CsvOptions::columns`] is refused: it is for
    /// prediction files. Most-frequent imputation of a numeric column with more than a million
    /// distinct values is refused too (it would count them all); median and mean are exact in
    /// bounded memory.
    pub fn scan(path: &Path, target: &str, options: &CsvOptions, block_rows: usize) -> Result<TableStream> {
        Self::scan_csv_with(path, target, options, block_rows, ScanLimits::default())
    }

    fn scan_csv_with(
        path: &Path,
        target: &str,
        options: &CsvOptions,
        block_rows: usize,
        limits: ScanLimits,
    ) -> Result<TableStream> {
        check_scan_arguments(options, block_rows)?;
        let file_len = file_len(path)?;
        let (header, source, scanner) = csv_source::scan(path, target, options, block_rows, limits)?;
        Self::finish(path, file_len, header, Source::Csv(source), scanner, options, block_rows)
    }

    /// Scans the Parquet file at `path` as [`TableStream::scan`] scans a CSV file, with
    /// [`crate::read_parquet`]'s rules (string and boolean columns are categorical, errors name
    /// the 1-based row and the column).
    #[cfg(feature = "parquet")]
    pub fn scan_parquet(path: &Path, target: &str, options: &CsvOptions, block_rows: usize) -> Result<TableStream> {
        Self::scan_parquet_with(path, target, options, block_rows, ScanLimits::default())
    }

    #[cfg(feature = "parquet")]
    fn scan_parquet_with(
        path: &Path,
        target: &str,
        options: &CsvOptions,
        block_rows: usize,
        limits: ScanLimits,
    ) -> Result<TableStream> {
        check_scan_arguments(options, block_rows)?;
        let file_len = file_len(path)?;
        let (header, source, scanner) = parquet_source::scan(path, target, options, limits)?;
        Self::finish(path, file_len, header, Source::Parquet(source), scanner, options, block_rows)
    }

    /// Decides every column's encoding and fill value from the scan, running the median passes
    /// when a median is needed.
    fn finish(
        path: &Path,
        file_len: u64,
        header: TextHeader,
        source: Source,
        scanner: Scanner,
        options: &CsvOptions,
        block_rows: usize,
    ) -> Result<TableStream> {
        let names = header.names;
        let name = header.path;
        let mut plan = Vec::new();
        let mut fills = Vec::new();
        // (plan index, column, number of values) of the columns that need a median.
        let mut medians: Vec<(usize, usize, u64)> = Vec::new();
        for (j, col) in scanner.cols.into_iter().enumerate() {
            if j == scanner.target_col {
                continue;
            }
            let numeric = !col.declared && (!col.any || col.numeric);
            let column = if numeric {
                FeatureColumn::Numeric { name: names[j].clone() }
            } else {
                let categories: Vec<String> = col.categories.keys().cloned().collect();
                if options.one_hot_max.is_some_and(|max| categories.len() > max) {
                    FeatureColumn::Indexed { name: names[j].clone(), categories }
                } else {
                    FeatureColumn::Categorical { name: names[j].clone(), categories }
                }
            };
            let values = &col.values;
            // A column without a missing cell never uses its fill value, so the median passes
            // and the most-frequent cap skip it.
            let fill = match (options.impute, numeric) {
                (None, _) => Fill::Off,
                (Some(_), true) if values.count == 0 => Fill::NoValues,
                (Some(Impute::Mean), true) => Fill::Value((values.sum / values.count as f64) as f32),
                (Some(Impute::Median), true) if col.missing => {
                    medians.push((plan.len(), j, values.count));
                    Fill::NoValues
                }
                (Some(Impute::MostFrequent), true) if col.missing => match values.most_frequent() {
                    Some(v) => Fill::Value(v),
                    None => {
                        return Err(Error::InvalidArgument {
                            what: format!(
                                "{name}: imputing column '{}' by its most frequent value needs a count of every \
                                 distinct value, and it has more than {}; impute by \"median\" or \"mean\", which \
                                 a streamed file computes in bounded memory",
                                names[j],
                                values.cap()
                            ),
                        });
                    }
                },
                (Some(_), true) => Fill::Off,
                (Some(_), false) => {
                    let counts: Vec<usize> = col.categories.values().copied().collect();
                    most_frequent(&counts).map_or(Fill::NoValues, Fill::Category)
                }
            };
            plan.push((j, column));
            fills.push(fill);
        }
        let encoding = ColumnEncoding::new(plan.iter().map(|(_, c)| c.clone()).collect());
        let (classes, class_names) = scanner.targets.finish(options.task);
        let rows = scanner.rows;
        let mut stream = TableStream {
            path: path.to_path_buf(),
            name,
            source,
            file_len,
            feature_names: encoding.feature_names(),
            names,
            target_col: scanner.target_col,
            plan,
            fills,
            encoding,
            declared_task: options.task,
            classes,
            class_names,
            rows,
            block_rows,
            n_blocks: rows.div_ceil(block_rows as u64) as usize,
        };
        for group in medians.chunks(MEDIAN_COLUMNS_PER_PASS) {
            for ((k, _, _), median) in group.iter().zip(stream.medians(group)?) {
                stream.fills[*k] = Fill::Value(median);
            }
        }
        Ok(stream)
    }

    /// The medians of `columns` (plan index, column, number of finite values), in two passes.
    fn medians(&self, columns: &[(usize, usize, u64)]) -> Result<Vec<f32>> {
        let mut select = MedianSelect::new(columns.iter().map(|&(_, _, n)| n).collect());
        let mut rdr = self.open()?;
        let mut record = ::csv::StringRecord::new();
        let finite = |cell: &str| cell.parse::<f32>().ok().filter(|v| v.is_finite());
        self.records(&mut rdr, 0, self.rows, &mut record, |_, _, r| {
            for (c, &(_, j, _)) in columns.iter().enumerate() {
                if let Some(v) = finite(&r[j]) {
                    select.first(c, v);
                }
            }
            Ok(())
        })?;
        select.between();
        self.records(&mut rdr, 0, self.rows, &mut record, |_, _, r| {
            for (c, &(_, j, _)) in columns.iter().enumerate() {
                if let Some(v) = finite(&r[j]) {
                    select.second(c, v);
                }
            }
            Ok(())
        })?;
        Ok(select.medians())
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

    /// The index features (position, category count), as [`Dataset::index_columns`] gives them.
    pub fn index_columns(&self) -> Vec<(usize, usize)> {
        self.encoding.index_columns()
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
        self.n_blocks
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
    fn open(&self) -> Result<SourceReader> {
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
        Ok(match &self.source {
            Source::Csv(csv) => SourceReader::Csv(csv.reader(file)),
            #[cfg(feature = "parquet")]
            Source::Parquet(_) => SourceReader::Parquet(file),
        })
    }

    /// Reads `count` records from the start of block `b`, calling `f(row, n, record)` for each
    /// (`n`: the line or 1-based row that messages name).
    fn records(
        &self,
        rdr: &mut SourceReader,
        b: usize,
        count: u64,
        record: &mut ::csv::StringRecord,
        f: impl FnMut(u64, u64, &::csv::StringRecord) -> Result<()>,
    ) -> Result<()> {
        let first_row = b as u64 * self.block_rows as u64;
        match (&self.source, rdr) {
            (Source::Csv(csv), SourceReader::Csv(rdr)) => {
                csv.records(rdr, &self.name, &self.names, b, first_row, count, record, f)
            }
            #[cfg(feature = "parquet")]
            (Source::Parquet(pq), SourceReader::Parquet(file)) => {
                pq.records(file, &self.name, first_row, count, record, f)
            }
            #[cfg(feature = "parquet")]
            _ => unreachable!("internal: a reader of the other format"),
        }
    }

    /// Reads `count` rows from block `b` on, calling `f(row number, features, target)` for each
    /// with the row's features encoded (D values, unscaled). Cells are checked as the in-memory
    /// reader checks them: target first, then features, errors naming line (or row) and column.
    fn read_rows(
        &self,
        rdr: &mut SourceReader,
        b: usize,
        count: u64,
        row_buf: &mut Vec<f32>,
        record: &mut ::csv::StringRecord,
        mut f: impl FnMut(u64, &[f32], RowTarget) -> Result<()>,
    ) -> Result<()> {
        self.records(rdr, b, count, record, |row, n, record| {
            let target = self.encode_row(record, n, row_buf)?;
            f(row, row_buf, target)
        })
    }

    /// An error about cell `j` of the record messages call `n`.
    fn cell_error(&self, n: u64, j: usize, found: String, expected: &str) -> Error {
        let column = Some(self.names[j].clone());
        match self.source {
            Source::Csv(_) => csv_error(&self.name, n, column, found, expected),
            #[cfg(feature = "parquet")]
            Source::Parquet(_) => {
                Error::Cell { path: self.name.clone(), row: n, column, found, expected: expected.into() }
            }
        }
    }

    /// Encodes one record into `out` (replacing it) and returns its target.
    fn encode_row(&self, record: &::csv::StringRecord, n: u64, out: &mut Vec<f32>) -> Result<RowTarget> {
        let error = |j: usize, found: String, expected: &str| self.cell_error(n, j, found, expected);
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
            let mut std: Vec<f32> = sq
                .iter()
                .zip(&mean)
                .map(|(q, &m)| {
                    let s = (q / n).sqrt();
                    let tiny = (f64::from(m.abs()) * f64::from(f32::EPSILON)).max(f64::MIN_POSITIVE);
                    if s <= tiny { 1.0 } else { s.min(f64::from(f32::MAX)) as f32 }
                })
                .collect();
            // Index features pass unchanged, as `Standardizer::fit` leaves them.
            let mut mean = mean;
            for (j, _) in self.index_columns() {
                (mean[j], std[j]) = (0.0, 1.0);
            }
            Some(Standardizer::from_parts(mean, std)?)
        } else {
            None
        };
        for (j, _) in self.index_columns() {
            (min[j], max[j]) = (0.0, 1.0);
        }
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

/// What [`TableStream::prepare`] fits on the training rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFit {
    pub standardizer: bool,
    pub min_max: bool,
    /// A [`TargetScaler`]; ignored for classification.
    pub target_scaler: bool,
}

/// What [`TableStream::prepare`] found.
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

/// Refuses arguments no scan can use.
fn check_scan_arguments(options: &CsvOptions, block_rows: usize) -> Result<()> {
    if block_rows == 0 {
        return Err(Error::InvalidArgument { what: "a stream block of 0 rows; expected at least 1".into() });
    }
    if options.columns.is_some() {
        return Err(Error::InvalidArgument {
            what: "a fixed column encoding is for prediction files; a streamed training file infers its own".into(),
        });
    }
    Ok(())
}

/// The length of the file at `path`, recorded so that a changed file is noticed.
fn file_len(path: &Path) -> Result<u64> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    Ok(std::fs::metadata(path).map_err(io)?.len())
}

#[cfg(test)]
mod tests;
