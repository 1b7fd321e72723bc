//! Reading a Parquet table into a [`Dataset`] (behind the `parquet` cargo feature).
//!
//! A Parquet file is read with the same rules as a CSV file, through the same code: each cell
//! is turned into the text a CSV file would hold (numbers written so they parse back exactly,
//! a null as an empty cell) and handed to the CSV reader's column typing, imputation and cell
//! checks ([`crate::CsvOptions`] applies, the delimiter aside). So the target column, one-hot
//! categories, class names, missing values (an error naming the row and column unless
//! [`crate::CsvOptions::impute`] is set) and the messages are those of CSV, with rows counted
//! from 1 instead of lines. What Parquet adds is types: a string or boolean column is
//! categorical whatever its cells look like, integer and float columns are numeric, and a
//! column of another type (dates, timestamps, decimals, lists) is an error naming it rather
//! than a guess. Going through text costs some speed; one set of rules for both formats was
//! preferred to a second, typed code path that would drift from the first.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::csv::{CsvOptions, Origin, TextHeader, TextRow};
use crate::dataset::{Dataset, Features};
use crate::error::{Error, Result};

/// Reads the Parquet file at `path`; `target` names the target column. Options and rules are
/// those of [`crate::read_csv_with`] (see the module documentation for the differences).
pub fn read_parquet(path: &Path, target: &str, options: &CsvOptions) -> Result<Dataset> {
    let (header, rows) = read_text(path, Some(target), options)?;
    let target_col = header.names.iter().position(|n| n == target).expect("internal: checked with the header");
    header.dataset(target_col, &rows, options)
}

/// Reads only features from the Parquet file at `path`, for prediction, as
/// [`crate::read_csv_features`] does for CSV.
pub fn read_parquet_features(path: &Path, options: &CsvOptions) -> Result<Features> {
    let (header, rows) = read_text(path, None, options)?;
    header.features(&rows, options)
}

fn read_text(path: &Path, target: Option<&str>, options: &CsvOptions) -> Result<(TextHeader, Vec<TextRow>)> {
    let name = path.display().to_string();
    let builder = open(path)?;
    let header = header_of(&name, builder.schema())?;
    header.check(target, options)?;

    let reader =
        builder.build().map_err(|e| format_error(&name, format!("an unreadable file ({e})"), "a Parquet file"))?;
    let mut rows: Vec<TextRow> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(&name, rows.len() as u64, &e))?;
        let columns = batch_cells(&batch);
        for i in 0..batch.num_rows() {
            let record: ::csv::StringRecord = columns.iter().map(|c| c[i].as_str()).collect();
            rows.push((rows.len() as u64 + 1, record));
        }
    }
    if rows.is_empty() {
        return Err(format_error(&name, "no rows".into(), "at least one data row"));
    }
    Ok((header, rows))
}

fn format_error(name: &str, found: String, expected: &str) -> Error {
    Error::Format { path: name.into(), within: None, found, expected: expected.into() }
}

/// The error for data that cannot be decoded after `rows` rows were read.
pub(crate) fn unreadable(name: &str, rows: u64, e: &dyn std::fmt::Display) -> Error {
    format_error(
        name,
        format!("data that cannot be read after row {rows} ({e})"),
        "a complete Parquet file (is it truncated?)",
    )
}

/// A reader builder over the Parquet file at `path`, its footer read.
pub(crate) fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io { path: name.clone(), source })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        format_error(
            &name,
            format!("a file that is not a readable Parquet file ({e})"),
            "a Parquet file (a truncated or corrupt file cannot be read)",
        )
    })
}

/// The column names of a Parquet schema, with its string and boolean columns as text columns;
/// a column of another type than those and numbers is an error naming it.
pub(crate) fn header_of(name: &str, schema: &Schema) -> Result<TextHeader> {
    let mut header = TextHeader {
        path: name.into(),
        origin: Origin::Parquet,
        names: schema.fields().iter().map(|f| f.name().clone()).collect(),
        text_columns: Vec::new(),
    };
    if header.names.is_empty() {
        return Err(format_error(name, "no columns".into(), "a table with a target column and feature columns"));
    }
    for field in schema.fields() {
        match kind_of(field.data_type()) {
            Some(Kind::Text) => header.text_columns.push(field.name().clone()),
            Some(Kind::Number) => {}
            None => {
                return Err(Error::Format {
                    path: name.into(),
                    within: Some(format!("schema, column '{}'", field.name())),
                    found: format!("the type {}", field.data_type()),
                    expected: "integers, floats, strings or booleans".into(),
                });
            }
        }
    }
    Ok(header)
}

/// Every cell of a batch as the text a CSV cell would hold, column by column.
pub(crate) fn batch_cells(batch: &RecordBatch) -> Vec<Vec<String>> {
    batch.columns().iter().map(|c| cells(c.as_ref())).collect()
}

/// What a column's cells are, for typing it.
enum Kind {
    Number,
    Text,
}

fn kind_of(dt: &DataType) -> Option<Kind> {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Null => Some(Kind::Number),
        DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Kind::Text),
        DataType::Dictionary(_, values) => kind_of(values),
        _ => None,
    }
}

/// Each cell of a column (of a type [`kind_of`] accepts) as the text a CSV cell would hold: a
/// null as an empty cell, floats in a form that parses back to the same value, text trimmed.
fn cells(array: &dyn Array) -> Vec<String> {
    let n = array.len();
    let texts: Vec<String> = match array.data_type() {
        DataType::Int8 => numbers::<Int8Type>(array),
        DataType::Int16 => numbers::<Int16Type>(array),
        DataType::Int32 => numbers::<Int32Type>(array),
        DataType::Int64 => numbers::<Int64Type>(array),
        DataType::UInt8 => numbers::<UInt8Type>(array),
        DataType::UInt16 => numbers::<UInt16Type>(array),
        DataType::UInt32 => numbers::<UInt32Type>(array),
        DataType::UInt64 => numbers::<UInt64Type>(array),
        DataType::Float32 => array.as_primitive::<Float32Type>().values().iter().map(|v| format!("{v:?}")).collect(),
        DataType::Float64 => array.as_primitive::<Float64Type>().values().iter().map(|v| format!("{v:?}")).collect(),
        DataType::Boolean => {
            array.as_boolean().iter().map(|v| v.map_or("", |b| if b { "true" } else { "false" }).to_owned()).collect()
        }
        DataType::Utf8 => array.as_string::<i32>().iter().map(|v| v.unwrap_or("").trim().to_owned()).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(|v| v.unwrap_or("").trim().to_owned()).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(|v| v.unwrap_or("").trim().to_owned()).collect(),
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let values = cells(dict.values().as_ref());
            if values.is_empty() {
                vec![String::new(); n]
            } else {
                dict.normalized_keys().into_iter().map(|k| values[k].clone()).collect()
            }
        }
        // Null columns, and (unreachable after the schema check) anything else: all missing.
        _ => vec![String::new(); n],
    };
    texts.into_iter().enumerate().map(|(i, t)| if array.is_null(i) { String::new() } else { t }).collect()
}

fn numbers<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<String>
where
    T::Native: ToString,
{
    array.as_primitive::<T>().values().iter().map(ToString::to_string).collect()
}
