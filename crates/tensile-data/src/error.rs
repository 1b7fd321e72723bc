//! The one error type of tensile-data.
//!
//! Every variant carries structured fields (file, line, column, what was found, what was
//! expected) rather than a preformatted string, so the CLI can print a precise message and tests
//! can match on fields. Readers build these; splits, preprocessing and loaders only ever return
//! [`Error::InvalidArgument`], because their inputs come from code or config, not from files.

/// The result type of every fallible function in tensile-data.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, with enough context to find it in the input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cell, header or record that does not hold what the reader expects. `line` is 1-based
    /// and counts physical lines, as an editor shows them.
    #[error("{path}, line {line}{}: found {found}, expected {expected}", column_part(.column))]
    Csv { path: String, line: u64, column: Option<String>, found: String, expected: String },

    /// A cell of a columnar file (Parquet) that does not hold what the reader expects. `row` is
    /// 1-based and counts data rows.
    #[error("{path}, row {row}{}: found {found}, expected {expected}", column_part(.column))]
    Cell { path: String, row: u64, column: Option<String>, found: String, expected: String },

    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The header has no column with the requested name (the target column, usually).
    #[error(
        "{path}, line 1 (header): found no column named '{column}', expected one of: {}",
        available.join(", ")
    )]
    MissingColumn { path: String, column: String, available: Vec<String> },

    /// The input ended before the reader found what it needs: a header, or any data row.
    #[error("{path}, line {line}: found the end of the file, expected {expected}")]
    Empty { path: String, line: u64, expected: String },

    /// A binary input (an NPY/NPZ array, an image, a folder of images) that is not what the
    /// reader expects. `path` is the file or folder; `within` narrows it down where useful (an
    /// array inside an NPZ archive).
    #[error("{path}{}: found {found}, expected {expected}", within_part(.within))]
    Format { path: String, within: Option<String>, found: String, expected: String },

    /// A parameter given by code or config is out of range (a split fraction, a batch size, a
    /// buffer of the wrong length).
    #[error("invalid argument: {what}")]
    InvalidArgument { what: String },
}

fn within_part(within: &Option<String>) -> String {
    match within {
        Some(what) => format!(", {what}"),
        None => String::new(),
    }
}

fn column_part(column: &Option<String>) -> String {
    match column {
        Some(name) => format!(", column '{name}'"),
        None => String::new(),
    }
}

/// Quotes a cell for an error message, shortened so that one huge cell cannot flood a terminal.
pub(crate) fn quote_cell(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        format!("'{text}'")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("'{head}…'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_message_names_file_line_column_found_and_expected() {
        let e = Error::Csv {
            path: "a.csv".into(),
            line: 3,
            column: Some("x".into()),
            found: "'abc'".into(),
            expected: "a number".into(),
        };
        assert_eq!(e.to_string(), "a.csv, line 3, column 'x': found 'abc', expected a number");
    }

    #[test]
    fn long_cells_are_shortened() {
        let q = quote_cell(&"y".repeat(100));
        assert_eq!(q.chars().count(), 43);
    }
}
