//! The Parquet reader: typed columns become the same features, categories and targets a CSV file
//! would give, missing values and bad cells are errors naming the row and column, and truncated
//! or corrupt files name the file; streamed, a file in several row groups reads as it does whole.
//! Fixtures are written by the test with the `parquet` crate.
#![cfg(feature = "parquet")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use tensile_core::Rng;
use tensile_data::{
    CsvOptions, FeatureColumn, Impute, Standardizer, StreamFit, StreamLoader, StreamSplit, TableStream, Targets, Task,
    read_csv_from_with, read_parquet,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tensile-parquet-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let file = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn table(path: &Path, x: Vec<Option<f64>>, color: Vec<Option<&str>>, label: Vec<&str>) {
    write(
        path,
        vec![
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
            ("n", Arc::new(Int64Array::from(vec![1i64, 2, 3])) as ArrayRef),
            ("color", Arc::new(StringArray::from(color)) as ArrayRef),
            ("flag", Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef),
            ("label", Arc::new(StringArray::from(label)) as ArrayRef),
        ],
    );
}

#[test]
fn typed_columns_read_like_the_same_csv() {
    let dir = TempDir::new("same");
    let path = dir.path("t.parquet");
    table(
        &path,
        vec![Some(0.5), Some(1.5), Some(-2.0)],
        vec![Some("red"), Some("blue"), Some("red")],
        vec!["cat", "dog", "cat"],
    );
    let ds = read_parquet(&path, "label", &CsvOptions::default()).expect("valid");
    let csv = "x,n,color,flag,label\n0.5,1,red,true,cat\n1.5,2,blue,false,dog\n-2.0,3,red,true,cat\n";
    let options = CsvOptions { categorical: vec!["flag".into()], ..CsvOptions::default() };
    let from_csv = read_csv_from_with(csv.as_bytes(), "t.csv", "label", &options).expect("csv");
    assert_eq!(ds.features(), from_csv.features());
    assert_eq!(ds.feature_names(), from_csv.feature_names());
    assert_eq!(ds.targets(), from_csv.targets());
    assert_eq!(ds.columns(), from_csv.columns());
    assert_eq!(
        ds.targets(),
        &Targets::Classes { labels: vec![0, 1, 0], class_names: vec!["cat".into(), "dog".into()] }
    );
    assert!(
        matches!(&ds.columns().columns()[2], FeatureColumn::Categorical { categories, .. } if categories == &["blue", "red"])
    );

    // Prediction: the training encoding, the target column ignored.
    let options = CsvOptions { columns: Some(ds.columns().clone()), ..CsvOptions::default() };
    let f = tensile_data::read_parquet_features(&path, &options).expect("features");
    assert_eq!(f.values(), ds.features());
}

#[test]
fn a_string_column_of_digits_is_still_categorical() {
    let dir = TempDir::new("digits");
    let path = dir.path("t.parquet");
    table(&path, vec![Some(1.0), Some(2.0), Some(3.0)], vec![Some("10"), Some("2"), Some("10")], vec!["a", "b", "a"]);
    let ds = read_parquet(&path, "label", &CsvOptions::default()).expect("valid");
    assert_eq!(ds.feature_names(), &["x", "n", "color=10", "color=2", "flag=false", "flag=true"]);
}

#[test]
fn nulls_are_missing_values_named_by_row_and_column_unless_imputed() {
    let dir = TempDir::new("nulls");
    let path = dir.path("t.parquet");
    table(&path, vec![Some(1.0), None, Some(3.0)], vec![Some("red"), Some("red"), None], vec!["a", "b", "a"]);
    let e = read_parquet(&path, "label", &CsvOptions::default()).expect_err("null");
    assert_eq!(e.to_string(), format!("{}, row 2, column 'x': found an empty cell, expected a number", path.display()));
    let options = CsvOptions { impute: Some(Impute::Mean), ..CsvOptions::default() };
    let ds = read_parquet(&path, "label", &options).expect("imputed");
    assert_eq!(ds.row(1)[0], 2.0);
    assert_eq!(ds.row(2)[2..3], [1.0], "the most frequent category fills the null");
}

#[test]
fn non_finite_numbers_name_the_row() {
    let dir = TempDir::new("inf");
    let path = dir.path("t.parquet");
    table(&path, vec![Some(1.0), Some(1e300), Some(3.0)], vec![Some("a"); 3], vec!["1.5", "2", "3"]);
    let e = read_parquet(&path, "label", &CsvOptions { task: Task::Regression, ..CsvOptions::default() })
        .expect_err("1e300 is beyond f32");
    assert_eq!(
        e.to_string(),
        format!(
            "{}, row 2, column 'x': found '1e300', expected a finite number within the f32 range (about ±3.4e38)",
            path.display()
        )
    );
}

#[test]
fn schema_problems_name_the_column() {
    let dir = TempDir::new("schema");
    let path = dir.path("t.parquet");
    table(&path, vec![Some(1.0); 3], vec![Some("a"); 3], vec!["a", "b", "a"]);
    let e = read_parquet(&path, "species", &CsvOptions::default()).expect_err("no such column");
    assert_eq!(
        e.to_string(),
        format!(
            "{}, schema: found no column named 'species', expected one of: x, n, color, flag, label",
            path.display()
        )
    );
    let nested = dir.path("nested.parquet");
    let list = arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![
        Some(vec![Some(1)]),
        Some(vec![Some(2)]),
    ]);
    write(
        &nested,
        vec![("v", Arc::new(list) as ArrayRef), ("y", Arc::new(Int64Array::from(vec![0i64, 1])) as ArrayRef)],
    );
    let e = read_parquet(&nested, "y", &CsvOptions::default()).expect_err("list column");
    assert!(
        e.to_string().starts_with(&format!("{}, schema, column 'v': found the type List(", nested.display())),
        "{e}"
    );
}

#[test]
fn truncated_and_foreign_files_name_the_file() {
    let dir = TempDir::new("truncated");
    let path = dir.path("t.parquet");
    table(&path, vec![Some(1.0); 3], vec![Some("a"); 3], vec!["a", "b", "a"]);
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let e = read_parquet(&cut, "label", &CsvOptions::default()).expect_err("truncated");
    assert!(
        e.to_string().starts_with(&format!("{}: found a file that is not a readable Parquet file", cut.display())),
        "{e}"
    );
    let text = dir.path("text.parquet");
    std::fs::write(&text, "a,b\n1,2\n").expect("write");
    let e = read_parquet(&text, "label", &CsvOptions::default()).expect_err("CSV named .parquet");
    assert!(
        e.to_string().starts_with(&format!("{}: found a file that is not a readable Parquet file", text.display())),
        "{e}"
    );
    let e = read_parquet(&dir.path("missing.parquet"), "label", &CsvOptions::default()).expect_err("missing");
    assert!(e.to_string().starts_with(&dir.path("missing.parquet").display().to_string()), "{e}");
}

/// 300 rows in row groups of 70: `n` (the row's number), `x` (a float, null every 7th row),
/// `user` (40 distinct strings), `flag` (a boolean) and a string `label`.
fn row_groups(path: &Path) {
    let rows = 300;
    let x: Vec<Option<f64>> = (0..rows).map(|i| (i % 7 != 3).then(|| ((i * 37) % 101) as f64 * 0.25 - 6.0)).collect();
    let user: Vec<String> = (0..rows).map(|i| format!("u{:02}", (i * 13) % 40)).collect();
    let label: Vec<&str> = (0..rows).map(|i| ["cat", "dog", "eel"][(i * 7 + i / 5) % 3]).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("n", Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef),
        ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
        ("user", Arc::new(StringArray::from(user)) as ArrayRef),
        ("flag", Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 0))))),
        ("label", Arc::new(StringArray::from(label)) as ArrayRef),
    ])
    .expect("batch");
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(70)).build();
    let file = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn a_streamed_parquet_file_in_row_groups_reads_like_the_whole_file() {
    let dir = TempDir::new("stream");
    let path = dir.path("groups.parquet");
    row_groups(&path);
    let options = CsvOptions { impute: Some(Impute::Median), one_hot_max: Some(8), ..CsvOptions::default() };
    let ds = read_parquet(&path, "label", &options).expect("valid");
    assert_eq!(ds.index_columns(), vec![(2, 40)]);
    // Blocks of 32 rows straddle the row groups of 70.
    let stream = TableStream::scan_parquet(&path, "label", &options, 32).expect("valid");
    assert_eq!((stream.len(), stream.n_blocks()), (300, 10));
    assert_eq!(stream.columns(), ds.columns());
    assert_eq!(stream.feature_names(), ds.feature_names());
    assert_eq!(stream.class_names(), ds.class_names());

    let split = StreamSplit::hashed(0.3, &mut Rng::seed(5)).expect("fraction");
    let (train, val): (Vec<usize>, Vec<usize>) = (0..300).partition(|&r| !split.is_validation(r as u64));
    let fit = StreamFit { standardizer: true, ..StreamFit::default() };
    let prepared = stream.prepare(&split, fit).expect("valid");
    assert_eq!(prepared.validation, Some(ds.subset(&val)));
    assert_eq!(prepared.standardizer, Some(Standardizer::fit(&ds, &train).expect("fit")));

    // An epoch deals every training row once, each equal to the row read whole.
    let mut loader = StreamLoader::new(&stream, split, 16, 2, Rng::seed(1)).expect("valid");
    let mut epoch = loader.epoch();
    let (mut x, mut y, mut seen) = (Vec::new(), Vec::new(), Vec::new());
    let labels = ds.labels().expect("classes");
    for j in 0..epoch.len() {
        epoch.gather(j, &mut x, &mut y).expect("batch");
        for (row, &label) in x.chunks(ds.n_features()).zip(&y) {
            let i = row[0] as usize;
            assert_eq!((row, label), (ds.row(i), labels[i]), "row {i}");
            seen.push(i);
        }
    }
    assert!(epoch.peak_rows_held() <= 64, "{}", epoch.peak_rows_held());
    seen.sort_unstable();
    assert_eq!(seen, train);
}

#[test]
fn a_null_in_a_streamed_parquet_file_is_reported_as_when_read_whole() {
    let dir = TempDir::new("stream-null");
    let path = dir.path("groups.parquet");
    row_groups(&path);
    let options = CsvOptions::default();
    let whole = read_parquet(&path, "label", &options).expect_err("a null").to_string();
    let stream = TableStream::scan_parquet(&path, "label", &options, 32).expect("the schema is fine");
    let streamed = stream.prepare(&StreamSplit::none(), StreamFit::default()).expect_err("a null").to_string();
    assert_eq!(streamed, whole);
    assert!(streamed.contains("row 4, column 'x'"), "{streamed}");
}
