//! The Parquet record source of a [`super::TableStream`]: cells become text by the in-memory
//! Parquet reader's rules ([`crate::parquet`]), so a streamed Parquet file is typed, imputed and
//! checked exactly as `read_parquet` would. Blocks are the same `block_rows` rows as for CSV,
//! counted across the file; reading one selects its rows out of the one or two row groups it
//! lies in (`with_row_groups` and a skip/select [`RowSelection`]), so no more than a block is
//! decoded into memory. The footer's metadata is read once, at the scan, and reused by every
//! read.

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};

use crate::csv::{CsvOptions, TextHeader};
use crate::error::{Error, Result};
use crate::parquet::{batch_cells, header_of, open, unreadable};

use super::{ScanLimits, Scanner};

/// Rows decoded at once when reading a span.
const BATCH_ROWS: usize = 8192;

/// A scanned Parquet file: its metadata and the first row of each row group.
#[derive(Debug, Clone)]
pub(super) struct ParquetSource {
    metadata: ArrowReaderMetadata,
    /// First row of each row group, then the number of rows.
    group_starts: Vec<u64>,
}

/// Scans the Parquet file at `path`: checks the schema and hands every row, as text cells, to a
/// [`Scanner`].
pub(super) fn scan(
    path: &Path,
    target: &str,
    options: &CsvOptions,
    limits: ScanLimits,
) -> Result<(TextHeader, ParquetSource, Scanner)> {
    let name = path.display().to_string();
    let builder = open(path)?;
    let header = header_of(&name, builder.schema())?;
    header.check(Some(target), options)?;
    let metadata = builder.metadata().clone();
    let mut group_starts = vec![0u64];
    for group in metadata.row_groups() {
        group_starts.push(group_starts.last().copied().unwrap_or(0) + group.num_rows().max(0) as u64);
    }
    let metadata = ArrowReaderMetadata::try_new(metadata, Default::default()).map_err(|e| Error::Format {
        path: name.clone(),
        within: None,
        found: format!("unreadable metadata ({e})"),
        expected: "a Parquet file".into(),
    })?;
    let source = ParquetSource { metadata, group_starts };
    let mut scanner = Scanner::new(&header, target, options, limits);
    let rows = source.rows();
    let file = File::open(path).map_err(|e| Error::Io { path: name.clone(), source: e })?;
    let mut record = ::csv::StringRecord::new();
    source.records(&file, &name, 0, rows, &mut record, |_, n, record| scanner.observe(&header, record, n))?;
    if rows == 0 {
        return Err(Error::Format {
            path: name,
            within: None,
            found: "no rows".into(),
            expected: "at least one data row".into(),
        });
    }
    Ok((header, source, scanner))
}

impl ParquetSource {
    /// Rows in the file, from its metadata.
    pub(super) fn rows(&self) -> u64 {
        self.group_starts.last().copied().unwrap_or(0)
    }

    /// Reads rows `first_row..first_row + count`, calling `f(row, 1-based row, record)` for
    /// each, a row group's span at a time.
    pub(super) fn records(
        &self,
        file: &File,
        name: &str,
        first_row: u64,
        count: u64,
        record: &mut ::csv::StringRecord,
        mut f: impl FnMut(u64, u64, &::csv::StringRecord) -> Result<()>,
    ) -> Result<()> {
        let end = first_row + count;
        let mut row = first_row;
        while row < end {
            // The row group holding `row`, and the part of [row, end) inside it.
            let g = self.group_starts.partition_point(|&s| s <= row) - 1;
            let (start, group_end) = (self.group_starts[g], self.group_starts[g + 1]);
            let take = (end.min(group_end) - row) as usize;
            let skip = (row - start) as usize;
            let io = |e| Error::Io { path: name.into(), source: e };
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                file.try_clone().map_err(io)?,
                self.metadata.clone(),
            )
            .with_row_groups(vec![g])
            .with_row_selection(RowSelection::from(vec![RowSelector::skip(skip), RowSelector::select(take)]))
            .with_batch_size(take.min(BATCH_ROWS))
            .build()
            .map_err(|e| unreadable(name, row, &e))?;
            let span_end = row + take as u64;
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(name, row, &e))?;
                let columns = batch_cells(&batch);
                for i in 0..batch.num_rows() {
                    record.clear();
                    for c in &columns {
                        record.push_field(&c[i]);
                    }
                    f(row, row + 1, record)?;
                    row += 1;
                }
            }
            if row != span_end {
                return Err(Error::Format {
                    path: name.into(),
                    within: Some(format!("row group {g}")),
                    found: format!("{} rows where the metadata promised {take}", take as u64 - (span_end - row)),
                    expected: "the rows it had when training started".into(),
                });
            }
        }
        Ok(())
    }
}
