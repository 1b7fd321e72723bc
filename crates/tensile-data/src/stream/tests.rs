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
        let stream = CsvStream::scan(&file.0, target, &options, 16).expect(tag);
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
    let stream = CsvStream::scan(&file.0, "label", &opts(), 32).expect("valid");
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
    let stream = CsvStream::scan(&file.0, "t", &opts(), 32).expect("valid");
    let prepared = stream.prepare(&split, all).expect("valid");
    let train: Vec<usize> = (0..150).filter(|&r| !split.is_validation(r as u64)).collect();
    assert_eq!(prepared.standardizer, Some(Standardizer::fit(&ds, &train).expect("fit")));
    assert_eq!(prepared.target_scaler, Some(TargetScaler::fit(&ds, &train).expect("fit")));
}

#[test]
fn an_epoch_deals_every_training_row_once_holding_one_window_at_most() {
    let file = TempFile::new("epoch", table(500).as_bytes());
    let ds = read_csv_with(&file.0, "label", &opts()).expect("valid");
    let stream = CsvStream::scan(&file.0, "label", &opts(), 16).expect("valid");
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
    let stream = CsvStream::scan(&file.0, "label", &opts(), 10).expect("valid");
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
    let stream = CsvStream::scan(&file.0, "t", &opts(), 2).expect("structure is fine");
    let fit = StreamFit { standardizer: true, ..StreamFit::default() };
    let streamed = stream.prepare(&StreamSplit::none(), fit).expect_err("bad cell").to_string();
    assert_eq!(streamed, in_memory);
    assert!(streamed.contains("line 3") && streamed.contains("column 'b'"), "{streamed}");

    let ragged = TempFile::new("ragged", b"a,t\n1,x\n2\n");
    let e = CsvStream::scan(&ragged.0, "t", &opts(), 2).expect_err("ragged");
    assert_eq!(e.to_string(), read_csv_with(&ragged.0, "t", &opts()).expect_err("ragged").to_string());

    let good = TempFile::new("changed", table(40).as_bytes());
    let stream = CsvStream::scan(&good.0, "label", &opts(), 8).expect("valid");
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
    let stream = CsvStream::scan(&file.0, "t", &opts(), 8).expect("valid");
    assert_eq!(stream.class_names(), None);
    text.push_str("100,many\n");
    let file = TempFile::new("infer-text", text.as_bytes());
    let e = CsvStream::scan(&file.0, "t", &opts(), 8).expect_err("text after many numbers");
    assert!(e.to_string().contains("line 102") && e.to_string().contains("task = classification"), "{e}");
    let classes = CsvStream::scan(&file.0, "t", &CsvOptions { task: Task::Classification, ..opts() }, 8);
    assert_eq!(classes.expect("declared classes").n_classes(), Some(101));
}
