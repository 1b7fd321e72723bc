//! The CSV record source of a [`super::TableStream`]: the scan reads the file with
//! [`crate::read_csv`]'s parser and structural checks and records where each block of rows
//! starts (byte, line); a block is read by seeking the `csv` crate's reader there.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::csv::{CsvOptions, Origin, TextHeader, csv_error, from_csv_crate, line_of, open_input, read_record};
use crate::error::{Error, Result};

use super::{ScanLimits, Scanner};

/// Where a block's first row starts: the file byte offset and the line, for seeking and messages.
#[derive(Debug, Clone, Copy)]
struct BlockStart {
    byte: u64,
    line: u64,
    record: u64,
}

/// A scanned CSV file: its delimiter and where each block starts.
#[derive(Debug, Clone)]
pub(super) struct CsvSource {
    delimiter: u8,
    blocks: Vec<BlockStart>,
}

/// Scans the CSV file at `path`: checks the header, hands every data row to a [`Scanner`] and
/// records the start of every block of `block_rows` rows.
pub(super) fn scan(
    path: &Path,
    target: &str,
    options: &CsvOptions,
    block_rows: usize,
    limits: ScanLimits,
) -> Result<(TextHeader, CsvSource, Scanner)> {
    let name = path.display().to_string();
    let io = |source| Error::Io { path: name.clone(), source };
    let mut head = [0u8; 3];
    let mut probe = File::open(path).map_err(io)?;
    let got = read_up_to(&mut probe, &mut head).map_err(io)?;
    let bom = if got == 3 && head == [0xEF, 0xBB, 0xBF] { 3 } else { 0 };
    let (input, delimiter) = open_input(File::open(path).map_err(io)?, &name, options.delimiter)?;
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(delimiter)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let mut record = ::csv::StringRecord::new();
    if !read_record(&mut rdr, &mut record, &name, &[])? {
        return Err(Error::Empty { path: name.clone(), line: 1, expected: "a header row naming the columns".into() });
    }
    let header_line = line_of(&record);
    let header = TextHeader {
        path: name.clone(),
        origin: Origin::Csv { header_line },
        names: record.iter().map(str::to_owned).collect(),
        text_columns: Vec::new(),
    };
    header.check(Some(target), options)?;
    let mut scanner = Scanner::new(&header, target, options, limits);
    let mut blocks = Vec::new();
    let width = header.names.len();
    while read_record(&mut rdr, &mut record, &name, &header.names)? {
        let line = line_of(&record);
        if record.len() != width {
            return Err(csv_error(
                &name,
                line,
                None,
                format!("{} fields", record.len()),
                &format!("{width} fields, as in the header"),
            ));
        }
        if scanner.rows.is_multiple_of(block_rows as u64) {
            let pos = record.position().expect("internal: a read record has a position");
            blocks.push(BlockStart { byte: pos.byte() + bom, line: pos.line(), record: pos.record() });
        }
        scanner.observe(&header, &record, line)?;
    }
    if scanner.rows == 0 {
        return Err(Error::Empty {
            path: name.clone(),
            line: rdr.position().line().max(header_line + 1),
            expected: "at least one data row after the header".into(),
        });
    }
    Ok((header, CsvSource { delimiter, blocks }, scanner))
}

impl CsvSource {
    /// A reader over `file` (already checked to be the scanned file).
    pub(super) fn reader(&self, file: File) -> ::csv::Reader<File> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::All)
            .delimiter(self.delimiter)
            .buffer_capacity(1 << 16)
            .from_reader(file)
    }

    /// Reads `count` records from the start of block `b` (row `first_row`), calling
    /// `f(row, line, record)` for each.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn records(
        &self,
        rdr: &mut ::csv::Reader<File>,
        name: &str,
        names: &[String],
        b: usize,
        first_row: u64,
        count: u64,
        record: &mut ::csv::StringRecord,
        mut f: impl FnMut(u64, u64, &::csv::StringRecord) -> Result<()>,
    ) -> Result<()> {
        let start = self.blocks[b];
        let mut pos = ::csv::Position::new();
        pos.set_byte(start.byte).set_line(start.line).set_record(start.record);
        rdr.seek(pos).map_err(|e| from_csv_crate(e, name, names))?;
        for row in first_row..first_row + count {
            let more = rdr.read_record(record).map_err(|e| from_csv_crate(e, name, names))?;
            if !more || record.len() != names.len() {
                return Err(Error::Format {
                    path: name.into(),
                    within: Some(format!("line {}", rdr.position().line())),
                    found: "a row that differs from the scan (the file changed while training)".into(),
                    expected: format!("data row {} as first read", row + 1),
                });
            }
            f(row, line_of(record), record)?;
        }
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
