//! Tests of streaming against the in-memory reader on small files.

use super::*;
use crate::csv::read_csv_with;

/// A file in the temp folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("tensile-stream-{tag}-{}.csv", std::process::id()));
        std::fs::write(&path, text).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// 200 rows: two numeric features, a text column (categorical), a text class target.
fn table(rows: usize) -> String {
    let mut text = String::from("x,colour,y,label\n");
    for i in 0..rows {
        let colour = ["red", "green", "blue"][i * 7 % 3];
        let label = ["cat", "dog"][(i * 5 + i / 3) % 2];
        text.push_str(&format!("{},{colour},{},{label}\n", i as f32 * 0.5 - 3.0, (i * i) % 17));
    }
    text
}

fn opts() -> CsvOptions {
    CsvOptions::default()
}

#[test]
fn the_scan_infers_the_schema_the_in_memory_reader_infers() {
    let cases: Vec<(&str, String, CsvOptions)> = vec![
        ("text-classes", table(200), opts()),
        ("bom-semicolon", format!("\u{feff}{}", table(50).replace(',', ";")), opts()),
        ("numeric-classes", "a,t\n1,10\n2,2\n3,1\n4,-0\n5,0\n6,2\n".into(), opts()),
        ("regression", (0..40).fold("a,t\n".to_string(), |s, i| s + &format!("{i},{}\n", i * 3)), opts()),
        (
            "declared-and-imputed",
            "a,zip,t\n1,10,x\n,20,y\n3,,x\n4,10,y\n".into(),
            CsvOptions { categorical: vec!["zip".into()], impute: Some(Impute::Mean), ..opts() },
        ),
    ];
    for (tag, text, options) in cases {
        let file = TempFile::new(tag, text.as_bytes());
        let target = if text.contains("label") { "label" } else { "t" };
        let ds = read_csv_with(&file.0, target, &options).expect(tag);
        let stream = TableStream::scan(&file.0, target, &options, 16).expect(tag);
        assert_eq!(stream.columns(), ds.columns(), "{tag}");
        assert_eq!(stream.feature_names(), ds.feature_names(), "{tag}");
        assert_eq!(stream.class_names(), ds.class_names(), "{tag}");
        assert_eq!(stream.len(), ds.len(), "{tag}");
        // Every row, encoded by the stream, equals the in-memory row.
        let all = stream.prepare(&StreamSplit { key: 0, threshold: u64::MAX }, StreamFit::default()).expect(tag);
        assert_eq!(all.validation.as_ref(), Some(&ds), "{tag}");
    }
}

#[test]
fn prepare_fits_the_standardizer_of_the_training_rows_and_keeps_the_validation_rows() {
    let file = TempFile::new("prepare", table(300).as_bytes());
    let ds = read_csv_with(&file.0, "label", &opts()).expect("valid");
    let stream = TableStream::scan(&file.0, "label", &opts(), 32).expect("valid");
    let split = StreamSplit::hashed(0.25, &mut Rng::seed(3)).expect("fraction");
    let (train, val): (Vec<usize>, Vec<usize>) = (0..300).partition(|&r| !split.is_validation(r as u64));
    assert!((60..90).contains(&val.len()), "{} validation rows", val.len());
    assert_eq!(stream.split_counts(&split), (train.len(), val.len()));
    let all = StreamFit { standardizer: true, min_max: true, target_scaler: true };
    let prepared = stream.prepare(&split, all).expect("valid");
    assert_eq!(prepared.train_rows, train.len());
    assert_eq!(prepared.standardizer, Some(Standardizer::fit(&ds, &train).expect("fit")));
    assert_eq!(prepared.min_max, Some(MinMaxScaler::fit(&ds, &train).expect("fit")));
    assert_eq!(prepared.target_scaler, None, "classification has no target scaler");
    assert_eq!(prepared.validation, Some(ds.subset(&val)));
    assert_eq!(stream.prepare(&StreamSplit::none(), StreamFit::default()).expect("valid").validation, None);

    let mut text = String::from("a,b,t\n");
    for i in 0..150 {
        text.push_str(&format!("{},{},{}\n", i % 13, 1e4 + (i * 7 % 11) as f32, 100.0 + (i * i % 37) as f32 * 2.5));
    }
    let file = TempFile::new("prepare-regression", text.as_bytes());
    let ds = read_csv_with(&file.0, "t", &opts()).expect("valid");
    let stream = TableStream::scan(&file.0, "t", &opts(), 32).expect("valid");
    let prepared = stream.prepare(&split, all).expect("valid");
    let train: Vec<usize> = (0..150).filter(|&r| !split.is_validation(r as u64)).collect();
    assert_eq!(prepared.standardizer, Some(Standardizer::fit(&ds, &train).expect("fit")));
    assert_eq!(prepared.target_scaler, Some(TargetScaler::fit(&ds, &train).expect("fit")));
}

#[test]
fn an_epoch_deals_every_training_row_once_holding_one_window_at_most() {
    let file = TempFile::new("epoch", table(500).as_bytes());
    let ds = read_csv_with(&file.0, "label", &opts()).expect("valid");
    let stream = TableStream::scan(&file.0, "label", &opts(), 16).expect("valid");
    let split = StreamSplit::hashed(0.2, &mut Rng::seed(9)).expect("fraction");
    let mut loader = StreamLoader::new(&stream, split, 24, 3, Rng::seed(1)).expect("valid");
    let train: Vec<usize> = (0..500).filter(|&r| !split.is_validation(r as u64)).collect();
    assert_eq!(loader.len(), train.len());
    let mut orders = Vec::new();
    for _ in 0..3 {
        let mut epoch = loader.epoch();
        assert_eq!(epoch.len(), train.len().div_ceil(24));
        let (mut x, mut y, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        for j in 0..epoch.len() {
            epoch.gather(j, &mut x, &mut y).expect("batch");
            assert_eq!(x.len(), y.len() * ds.n_features());
            // Identify each row by its features: column 0 (x) is unique per row.
            for (row, &label) in x.chunks(ds.n_features()).zip(&y) {
                let i = train.iter().copied().find(|&i| ds.row(i) == row).expect("a training row");
                assert_eq!(ds.labels().expect("classes")[i], label);
                seen.push(i);
            }
        }
        assert!(epoch.peak_rows_held() <= loader.max_window_rows(), "{}", epoch.peak_rows_held());
        assert!(epoch.peak_rows_held() > 0);
        assert_eq!(epoch.windows_read(), 500usize.div_ceil(16).div_ceil(3));
        assert!(epoch.gather(epoch.len(), &mut x, &mut y).is_err());
        orders.push(seen.clone());
        seen.sort_unstable();
        assert_eq!(seen, train);
    }
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[1], orders[2]);
}

#[test]
fn any_batch_can_be_read_first_and_a_restored_state_redraws_the_epoch() {
    let file = TempFile::new("seek", table(400).as_bytes());
    let stream = TableStream::scan(&file.0, "label", &opts(), 10).expect("valid");
    let split = StreamSplit::hashed(0.1, &mut Rng::seed(2)).expect("fraction");
    let mut loader = StreamLoader::new(&stream, split, 7, 2, Rng::seed(4)).expect("valid");
    loader.epoch();
    let mut second = loader.epoch();
    let sequential: Vec<(Vec<f32>, Vec<u32>)> = (0..second.len())
        .map(|j| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            second.gather(j, &mut x, &mut y).expect("batch");
            (x, y)
        })
        .collect();
    let mut resumed = StreamLoader::new(&stream, split, 7, 2, Rng::seed(99)).expect("valid");
    resumed.restore(second.start_state());
    let mut again = resumed.epoch();
    assert_eq!(again.number(), 1);
    for j in [31, 5, 0, sequential.len() - 1, 17] {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        again.gather(j, &mut x, &mut y).expect("batch");
        assert_eq!((x, y), sequential[j], "batch {j}");
    }
    let mut values = Vec::new();
    assert!(again.gather_values(0, &mut Vec::new(), &mut values).is_err());
}

#[test]
fn cell_errors_match_the_in_memory_reader_and_a_changed_file_is_refused() {
    let text = "a,b,t\n1,2,x\n3,oops,y\n5,6,x\n";
    let file = TempFile::new("bad-cell", text.as_bytes());
    let in_memory = read_csv_with(&file.0, "t", &opts()).expect_err("bad cell").to_string();
    let stream = TableStream::scan(&file.0, "t", &opts(), 2).expect("structure is fine");
    let fit = StreamFit { standardizer: true, ..StreamFit::default() };
    let streamed = stream.prepare(&StreamSplit::none(), fit).expect_err("bad cell").to_string();
    assert_eq!(streamed, in_memory);
    assert!(streamed.contains("line 3") && streamed.contains("column 'b'"), "{streamed}");

    let ragged = TempFile::new("ragged", b"a,t\n1,x\n2\n");
    let e = TableStream::scan(&ragged.0, "t", &opts(), 2).expect_err("ragged");
    assert_eq!(e.to_string(), read_csv_with(&ragged.0, "t", &opts()).expect_err("ragged").to_string());

    let good = TempFile::new("changed", table(40).as_bytes());
    let stream = TableStream::scan(&good.0, "label", &opts(), 8).expect("valid");
    std::fs::write(&good.0, table(41)).expect("rewrite");
    let e = stream.prepare(&StreamSplit::none(), StreamFit::default()).expect_err("changed");
    assert!(e.to_string().contains("changed since it was scanned"), "{e}");
}

#[test]
fn inferring_the_task_needs_no_list_of_regression_values() {
    let mut text = String::from("a,t\n");
    for i in 0..100 {
        text.push_str(&format!("{i},{}\n", i as f32 * 1.5));
    }
    let file = TempFile::new("infer", text.as_bytes());
    let stream = TableStream::scan(&file.0, "t", &opts(), 8).expect("valid");
    assert_eq!(stream.class_names(), None);
    text.push_str("100,many\n");
    let file = TempFile::new("infer-text", text.as_bytes());
    let e = TableStream::scan(&file.0, "t", &opts(), 8).expect_err("text after many numbers");
    assert!(e.to_string().contains("line 102") && e.to_string().contains("task = classification"), "{e}");
    let classes = TableStream::scan(&file.0, "t", &CsvOptions { task: Task::Classification, ..opts() }, 8);
    assert_eq!(classes.expect("declared classes").n_classes(), Some(101));
}

/// All rows on the validation side, so `prepare` returns the whole file encoded.
const ALL: StreamSplit = StreamSplit { key: 0, threshold: u64::MAX };

/// The whole file as the stream encodes it, after checking the schema agrees with `ds`'s.
fn streamed_rows(stream: &TableStream, ds: &Dataset, tag: &str) -> Dataset {
    assert_eq!(stream.columns(), ds.columns(), "{tag}");
    assert_eq!(stream.index_columns(), ds.index_columns(), "{tag}");
    assert_eq!(stream.feature_names(), ds.feature_names(), "{tag}");
    stream.prepare(&ALL, StreamFit::default()).expect(tag).validation.expect(tag)
}

/// A many-valued `user` column (`n` ids, scrambled order), a short `colour` column and a label.
fn users(n: usize) -> String {
    let mut text = String::from("user,colour,x,label\n");
    for i in 0..3 * n {
        let id = (i * 37) % n;
        text.push_str(&format!("u{id:04},{},{},{}\n", ["red", "blue"][i % 2], i as f32 * 0.25, id % 3));
    }
    text
}

#[test]
fn a_many_valued_text_column_streams_as_the_same_index_feature() {
    let file = TempFile::new("index", users(300).as_bytes());
    let options = CsvOptions { one_hot_max: Some(16), ..opts() };
    let ds = read_csv_with(&file.0, "label", &options).expect("valid");
    assert_eq!(ds.index_columns(), vec![(0, 300)]);
    let stream = TableStream::scan(&file.0, "label", &options, 64).expect("valid");
    assert_eq!(streamed_rows(&stream, &ds, "index"), ds);
    // Scalers fitted on the stream leave the index feature as `fit` does in memory.
    let everything: Vec<usize> = (0..ds.len()).collect();
    let fit = StreamFit { standardizer: true, min_max: true, target_scaler: false };
    let prepared = stream.prepare(&StreamSplit::none(), fit).expect("valid");
    let standardizer = prepared.standardizer.expect("fitted");
    assert_eq!(standardizer, Standardizer::fit(&ds, &everything).expect("fit"));
    assert_eq!((standardizer.mean()[0], standardizer.std()[0]), (0.0, 1.0));
    assert_eq!(prepared.min_max, Some(MinMaxScaler::fit(&ds, &everything).expect("fit")));
    // A declared numeric id column is indexed the same way; without a threshold it is one-hot.
    let declared = CsvOptions { categorical: vec!["x".into()], ..options.clone() };
    let ds = read_csv_with(&file.0, "label", &declared).expect("valid");
    assert_eq!(ds.index_columns(), vec![(0, 300), (3, 900)]);
    let stream = TableStream::scan(&file.0, "label", &declared, 64).expect("valid");
    assert_eq!(streamed_rows(&stream, &ds, "declared"), ds);
    let stream = TableStream::scan(&file.0, "label", &opts(), 64).expect("valid");
    assert!(stream.index_columns().is_empty() && stream.n_features() == 303);
}

/// Columns with missing cells: `odd` has 7 values (an odd count), `even` 8 with middles in
/// different high halves of the key (1 and 2), `ties` two values as frequent as each other,
/// `zeros` -0 and 0 tied with 5, `signed` negatives spanning magnitudes, `full` none missing.
const IMPUTE: &str = "odd,even,ties,zeros,signed,full,t
3,1,4,-0,-1e-20,1,a
NA,2,4,0,-3.5,2,b
1,,9,5,,3,a
9,1,9,5,250,4,b
,2,NaN,,-0.0001,5,a
7,NA,2,-0,7,6,b
2,1,,0,1e5,7,a
5,2,2,5,-2e5,8,b
,8,3,,-3.5,9,a
";

#[test]
fn every_imputation_fills_what_the_in_memory_reader_fills() {
    let file = TempFile::new("impute", IMPUTE.as_bytes());
    for how in [Impute::Mean, Impute::Median, Impute::MostFrequent] {
        let tag = format!("{how:?}");
        let options = CsvOptions { impute: Some(how), ..opts() };
        let ds = read_csv_with(&file.0, "t", &options).expect(&tag);
        for block_rows in [1, 4, 100] {
            let stream = TableStream::scan(&file.0, "t", &options, block_rows).expect(&tag);
            let streamed = streamed_rows(&stream, &ds, &tag);
            // Bit for bit: -0.0 and 0.0 differ here, where `==` would not tell them apart.
            let bits = |d: &Dataset| d.features().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&streamed), bits(&ds), "{tag}, blocks of {block_rows}");
            assert_eq!(streamed.targets(), ds.targets(), "{tag}");
        }
    }
    // Spot checks of the definitions the comparison relies on: row 5 of `even` (2,1,2,1,2,1,2,8
    // sorted: 1,1,1,2,2,2,2,8) is the mean of the middles, 2; `ties` (4,4,9,9,2,2,3) picks the
    // smallest of the most frequent, 2.
    let median = read_csv_with(&file.0, "t", &CsvOptions { impute: Some(Impute::Median), ..opts() }).expect("valid");
    assert_eq!(median.row(5)[1], 2.0);
    let frequent =
        read_csv_with(&file.0, "t", &CsvOptions { impute: Some(Impute::MostFrequent), ..opts() }).expect("valid");
    assert_eq!(frequent.row(4)[2], 2.0);
}

#[test]
fn a_column_with_no_values_to_impute_from_fails_as_in_memory() {
    let text = "a,b,t\n1,,x\n2,NA,y\n3,,x\n";
    let file = TempFile::new("no-values", text.as_bytes());
    for how in [Impute::Mean, Impute::Median, Impute::MostFrequent] {
        let options = CsvOptions { impute: Some(how), ..opts() };
        let in_memory = read_csv_with(&file.0, "t", &options).expect_err("no values").to_string();
        let stream = TableStream::scan(&file.0, "t", &options, 2).expect("structure is fine");
        let streamed = stream.prepare(&StreamSplit::none(), StreamFit::default()).expect_err("no values");
        assert_eq!(streamed.to_string(), in_memory, "{how:?}");
    }
}

#[test]
fn most_frequent_of_too_many_distinct_numbers_is_refused_naming_the_column() {
    let mut text = String::from("id,x,t\n");
    for i in 0..50 {
        let x = if i == 7 { String::new() } else { format!("{}", i as f32 * 0.5) };
        text.push_str(&format!("{i},{x},{}\n", i % 2));
    }
    let file = TempFile::new("distinct", text.as_bytes());
    let options = CsvOptions { impute: Some(Impute::MostFrequent), ..opts() };
    let small = ScanLimits { distinct_values: 20 };
    let e = TableStream::scan_csv_with(&file.0, "t", &options, 8, small).expect_err("over the cap").to_string();
    assert!(e.contains("column 'x'") && e.contains("more than 20") && e.contains("\"median\""), "{e}");
    // `id` has as many distinct values but no missing cell, so it needs no fill value.
    assert!(!e.contains("'id'"), "{e}");
    let median = CsvOptions { impute: Some(Impute::Median), ..opts() };
    let ds = read_csv_with(&file.0, "t", &median).expect("valid");
    let stream = TableStream::scan_csv_with(&file.0, "t", &median, 8, small).expect("median has no cap");
    assert_eq!(streamed_rows(&stream, &ds, "median"), ds);
}
