//! What users read when a CSV file is wrong: each case feeds text through `read_csv_from` and
//! checks the error message names the place (line, column) and what was found and expected.

use tensile_data::{Error, Targets, Task, read_csv, read_csv_from};

/// Reads `text` as `t.csv` with target column `y`.
fn read(text: &str, task: Task) -> tensile_data::Result<tensile_data::Dataset> {
    read_csv_from(text.as_bytes(), "t.csv", "y", task)
}

/// Asserts that reading `text` fails with exactly `message`.
fn check_error(text: &str, message: &str) {
    match read(text, Task::Infer) {
        Ok(ds) => panic!("expected an error, read {} rows", ds.len()),
        Err(e) => assert_eq!(e.to_string(), message),
    }
}

#[test]
fn ragged_row_names_the_line_and_field_counts() {
    check_error("a,b,y\n1,2,0\n3,4\n", "t.csv, line 3: found 2 fields, expected 3 fields, as in the header");
}

#[test]
fn text_in_a_feature_column_names_line_column_and_text() {
    check_error(
        "a,b,y\n1,2,0\n3,abc,1\n",
        "t.csv, line 3, column 'b': found 'abc', expected a number (feature columns must be \
         numeric)",
    );
}

#[test]
fn nan_inf_and_empty_cells_name_the_first_bad_cell() {
    check_error(
        "a,b,y\n1,2,0\n1,NaN,1\n,inf,1\n",
        "t.csv, line 3, column 'b': found 'NaN', expected a finite number within the f32 range \
         (about ±3.4e38)",
    );
    check_error("a,b,y\n1,2,0\n,inf,1\n", "t.csv, line 3, column 'a': found an empty cell, expected a number");
    check_error(
        "a,b,y\n1,2,0\n1,1e39,1\n",
        "t.csv, line 3, column 'b': found '1e39', expected a finite number within the f32 range \
         (about ±3.4e38)",
    );
    check_error("a,b,y\n1,2,\n", "t.csv, line 2, column 'y': found an empty cell, expected a target value");
}

#[test]
fn missing_target_column_lists_the_columns() {
    check_error(
        "a,b,label\n1,2,0\n",
        "t.csv, line 1 (header): found no column named 'y', expected one of: a, b, label",
    );
}

#[test]
fn empty_file_and_header_only_name_the_line() {
    check_error("", "t.csv, line 1: found the end of the file, expected a header row naming the columns");
    check_error("a,b,y\n", "t.csv, line 2: found the end of the file, expected at least one data row after the header");
}

#[test]
fn bad_headers_are_errors() {
    check_error(
        "a,a,y\n1,2,0\n",
        "t.csv, line 1, column 'a': found a second column named 'a', expected unique column names",
    );
    check_error(",b,y\n1,2,0\n", "t.csv, line 1: found an empty name for column 1, expected a name for every column");
    check_error(
        "y\n0\n",
        "t.csv, line 1: found only the target column 'y', expected at least one feature column \
         besides the target",
    );
}

#[test]
fn regression_target_must_be_numeric() {
    let e = read("a,y\n1,2.5\n2,high\n", Task::Regression).expect_err("text target");
    assert_eq!(
        e.to_string(),
        "t.csv, line 3, column 'y': found 'high', expected a number, because the task is regression"
    );
    assert!(matches!(e, Error::Csv { line: 3, .. }));
}

#[test]
fn string_targets_become_sorted_class_names() {
    let ds = read("a,b,y\n1,2,setosa\n3,4,virginica\n5,6,setosa\n7,8,versicolor\n", Task::Infer).expect("valid");
    assert_eq!(
        ds.targets(),
        &Targets::Classes {
            labels: vec![0, 2, 0, 1],
            class_names: vec!["setosa".into(), "versicolor".into(), "virginica".into()],
        }
    );
    assert_eq!(ds.row(3), &[7.0, 8.0]);
    assert_eq!(ds.feature_names(), &["a", "b"]);
}

#[test]
fn target_column_may_be_anywhere_and_cells_are_trimmed() {
    let ds = read("y, a ,b\n 1 , 0.5 ,2\n0,1,-3e2\r\n", Task::Infer).expect("valid");
    assert_eq!(ds.feature_names(), &["a", "b"]);
    assert_eq!(ds.features(), &[0.5, 2.0, 1.0, -300.0]);
    assert_eq!(ds.labels(), Some(&[1, 0][..]));
    assert_eq!(ds.class_names().map(<[String]>::len), Some(2));
}

#[test]
fn tasks_choose_classes_or_values() {
    let text = "a,y\n1,0\n2,3\n3,1\n";
    assert_eq!(read(text, Task::Regression).expect("ok").values(), Some(&[0.0, 3.0, 1.0][..]));
    let ds = read(text, Task::Classification).expect("ok");
    assert_eq!(ds.labels(), Some(&[0, 2, 1][..]));
    assert_eq!(ds.class_names().expect("classes"), &["0", "1", "3"]);
    let fractional = "a,y\n1,0.25\n2,1.5\n";
    assert!(read(fractional, Task::Infer).expect("ok").values().is_some());
}

#[test]
fn read_csv_reports_a_missing_file_by_path() {
    let path = std::path::Path::new("/nonexistent/tensile/data.csv");
    let e = read_csv(path, "y", Task::Infer).expect_err("no such file");
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/tensile/data.csv: "), "{e}");
}

#[test]
fn read_csv_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("tensile-data-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("small.csv");
    std::fs::write(&path, "x,y\n1,a\n2,b\n").expect("write");
    let ds = read_csv(&path, "y", Task::Infer).expect("valid");
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!((ds.len(), ds.n_classes()), (2, Some(2)));
}

#[test]
fn invalid_utf8_names_the_line() {
    let bytes = b"a,y\n1,0\n\xff\xfe,1\n";
    let e = read_csv_from(&bytes[..], "t.csv", "y", Task::Infer).expect_err("bad bytes");
    assert_eq!(e.to_string(), "t.csv, line 3, column 'a': found bytes that are not valid UTF-8, expected UTF-8 text");
}

#[test]
fn crlf_line_ends_do_not_shift_line_numbers() {
    // Regression: the csv crate counts a CRLF line only when it reads the next record, so its
    // line numbers were one short; a BOM must not shift them either.
    check_error("a,y\r\n1,0\r\n2\r\n", "t.csv, line 3: found 1 fields, expected 2 fields, as in the header");
    check_error(
        "\u{feff}a,b,y\r\n1,2,0\r\n3,x,1\r\n4,5,0\r\n",
        "t.csv, line 3, column 'b': found 'x', expected a number (feature columns must be numeric)",
    );
    let bytes = b"a,y\r\n1,0\r\n1,0\r\n\xff,1\r\n";
    let e = read_csv_from(&bytes[..], "t.csv", "y", Task::Infer).expect_err("bad bytes");
    assert_eq!(e.to_string(), "t.csv, line 4, column 'a': found bytes that are not valid UTF-8, expected UTF-8 text");
}
