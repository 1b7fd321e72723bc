//! Training on a streamed CSV or Parquet file: it learns, it resumes exactly after SIGKILL at
//! arbitrary moments, and its checkpoints refuse other data.
//!
//! The killed runs are child processes: this test binary re-runs itself with
//! `TENSILE_STREAM_CHILD_DIR` set, which makes `stream_child` train into that directory from the
//! `digits.csv` or `digits.parquet` written there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tensile_data::{CsvOptions, TableStream};
use tensile_nn::optim::AdamConfig;
use tensile_nn::schedule::{Schedule, ScheduleConfig};
use tensile_nn::weights;
use tensile_train::{CheckpointConfig, OptimizerConfig, StreamingData, Trainer, TrainerConfig};

/// Rows per block: small, so the digits' 1,797 rows make 57 blocks and windows of a few.
const BLOCK_ROWS: usize = 32;
/// A quarter of it (64 KiB) holds 7 blocks of 32 rows of 64 features; the validation rows
/// (about 360) fit in the half allowed for them.
const BUDGET: u64 = 256 * 1024;

/// The built-in digits as a CSV file with a header `p0,…,p63,digit`.
fn write_digits_csv(path: &Path) -> PathBuf {
    let ds = tensile_data::digits();
    let mut text: String = (0..64).map(|j| format!("p{j},")).collect::<String>() + "digit\n";
    for (i, &label) in ds.labels().unwrap().iter().enumerate() {
        for v in ds.row(i) {
            text.push_str(&format!("{v},"));
        }
        text.push_str(&format!("{label}\n"));
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// The built-in digits as a Parquet file in row groups of 500 rows (not a multiple of the
/// blocks, so blocks straddle row groups): 64 float columns `p0..p63` and an integer `digit`.
fn write_digits_parquet(path: &Path) -> PathBuf {
    use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
    let ds = tensile_data::digits();
    let mut columns: Vec<(String, ArrayRef)> = (0..64)
        .map(|j| {
            let values: Vec<f32> = (0..ds.len()).map(|i| ds.row(i)[j]).collect();
            (format!("p{j}"), Arc::new(Float32Array::from(values)) as ArrayRef)
        })
        .collect();
    let labels: Vec<i64> = ds.labels().unwrap().iter().map(|&l| i64::from(l)).collect();
    columns.push(("digit".into(), Arc::new(Int64Array::from(labels))));
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(500)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props))
        .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path.to_path_buf()
}

fn config() -> TrainerConfig {
    TrainerConfig {
        epochs: 4,
        batch_size: 16,
        accumulate_batches: 2,
        schedule: Some(ScheduleConfig { schedule: Schedule::Cosine { t_max: 4, eta_min: 0.0 }, ..Default::default() }),
        checkpoint: CheckpointConfig { every_epochs: 1, every_steps: Some(7), keep: 2 },
        seed: 11,
        ..Default::default()
    }
}

fn scan(csv: &Path) -> TableStream {
    TableStream::scan(csv, "digit", &CsvOptions::default(), BLOCK_ROWS).unwrap()
}

/// Trains (resuming from whatever is in `dir`) on `dir/digits.parquet` if there is one, else on
/// `dir/digits.csv`, and saves the final weights as `final.safetensors`.
fn train_into(dir: &Path) {
    let cfg = config();
    let mut model = common::mlp(64, 0.2, &mut cfg.init_rng());
    let parquet = dir.join("digits.parquet");
    let stream = if parquet.exists() {
        TableStream::scan_parquet(&parquet, "digit", &CsvOptions::default(), BLOCK_ROWS).unwrap()
    } else {
        scan(&dir.join("digits.csv"))
    };
    let data = StreamingData { train: &stream, validation: None, test: None, memory_budget: BUDGET };
    let mut trainer = Trainer::new(cfg).unwrap().run_dir(dir).resume(true);
    trainer.fit_stream(&mut model, &data).unwrap();
    weights::save_weights(&model, &dir.join("final.safetensors")).unwrap();
}

#[test]
fn stream_child() {
    if let Ok(dir) = std::env::var("TENSILE_STREAM_CHILD_DIR") {
        train_into(Path::new(&dir));
    }
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stream_child", "--test-threads=1", "--quiet"])
        .env("TENSILE_STREAM_CHILD_DIR", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Trains on the file `write` puts in a folder uninterrupted (twice, to check it is
/// deterministic), then killed at several moments and resumed, and compares the final weights.
fn killed_and_resumed_ends_bit_identical(tag: &str, write: fn(&Path) -> PathBuf) {
    let reference = common::temp_dir(&format!("{tag}-ref"));
    write(&reference);
    assert!(spawn_child(&reference).wait().unwrap().success());
    let full = std::fs::read(reference.join("final.safetensors")).unwrap();
    let full_time = {
        let again = common::temp_dir(&format!("{tag}-timing"));
        write(&again);
        let t = Instant::now();
        assert!(spawn_child(&again).wait().unwrap().success());
        let same = std::fs::read(again.join("final.safetensors")).unwrap();
        assert!(same == full, "two uninterrupted streamed runs differ");
        std::fs::remove_dir_all(&again).unwrap();
        t.elapsed()
    };

    let killed = common::temp_dir(&format!("{tag}-killed"));
    write(&killed);
    let mut kills = 0;
    for fraction in [0.2, 0.35, 0.5, 0.6, 0.75, 0.9, 0.3, 0.45] {
        let mut child = spawn_child(&killed);
        std::thread::sleep(full_time.mul_f64(fraction));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            kills += 1;
        }
        child.wait().unwrap();
        if killed.join("final.safetensors").exists() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !killed.join("final.safetensors").exists() && Instant::now() < deadline {
        assert!(spawn_child(&killed).wait().unwrap().success());
    }
    assert!(kills >= 2, "the run finished before it could be interrupted ({kills} kills)");
    let resumed = std::fs::read(killed.join("final.safetensors")).unwrap();
    assert!(full == resumed, "resumed weights differ from the uninterrupted run's");
    for d in [reference, killed] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_streamed_run_killed_and_resumed_ends_bit_identical_to_an_uninterrupted_one() {
    killed_and_resumed_ends_bit_identical("stream", |d| write_digits_csv(&d.join("digits.csv")));
}

#[test]
fn a_streamed_parquet_run_killed_and_resumed_ends_bit_identical_to_an_uninterrupted_one() {
    killed_and_resumed_ends_bit_identical("stream-parquet", |d| write_digits_parquet(&d.join("digits.parquet")));
}

#[test]
fn a_streamed_run_learns_and_reports_its_standardizer() {
    let dir = common::temp_dir("stream-learns");
    let csv = write_digits_csv(&dir.join("digits.csv"));
    let stream = scan(&csv);
    assert_eq!((stream.len(), stream.n_features(), stream.n_classes()), (1797, 64, Some(10)));
    let cfg = TrainerConfig { epochs: 3, ..config() };
    let mut model = common::mlp(64, 0.0, &mut cfg.init_rng());
    let data = StreamingData { train: &stream, validation: None, test: None, memory_budget: BUDGET };
    let result = Trainer::new(cfg).unwrap().fit_stream(&mut model, &data).unwrap();
    let acc = result.history.epochs.last().unwrap().values["val_accuracy"];
    assert!(acc > 0.85, "validation accuracy {acc}");
    assert!(result.scaler.is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn budgets_too_small_and_checkpoints_of_other_data_are_refused() {
    let dir = common::temp_dir("stream-refusals");
    let csv = write_digits_csv(&dir.join("digits.csv"));
    let stream = scan(&csv);
    let cfg = TrainerConfig { epochs: 1, max_steps: Some(3), ..config() };
    let run = |budget: u64, resume: bool| {
        let mut model = common::mlp(16, 0.0, &mut cfg.init_rng());
        let data = StreamingData { train: &stream, validation: None, test: None, memory_budget: budget };
        Trainer::new(cfg.clone()).unwrap().run_dir(dir.join("run")).resume(resume).fit_stream(&mut model, &data)
    };
    let e = run(16 * 1024, false).unwrap_err().to_string();
    assert!(e.contains("memory_budget") && e.contains("one block of 32 rows"), "{e}");
    let e = run(96 * 1024, false).unwrap_err().to_string();
    assert!(e.contains("validation_split") && e.contains("half the memory budget"), "{e}");

    run(BUDGET, false).unwrap();
    // Twice the budget: a larger window, so a different order of rows. Resuming would not be
    // exact, so it is refused.
    let e = run(2 * BUDGET, true).unwrap_err().to_string();
    assert!(e.contains("windows of 7 blocks") && e.contains("windows of 15 blocks"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_streamed_regression_trains_on_a_scaled_target_and_reports_in_its_units() {
    let dir = common::temp_dir("stream-regression");
    let mut text = String::from("a,b,c,y\n");
    let mut rng = tensile_core::Rng::seed(3);
    for _ in 0..2000 {
        let (a, b, c) = (rng.normal(), rng.normal(), rng.normal());
        let noise = 5.0 * rng.normal();
        text.push_str(&format!("{a},{b},{c},{}\n", 500.0 + 100.0 * (a - 0.5 * b + 0.25 * c) + noise));
    }
    let csv = dir.join("linear.csv");
    std::fs::write(&csv, text).unwrap();
    let stream = TableStream::scan(&csv, "y", &CsvOptions::default(), BLOCK_ROWS).unwrap();
    assert_eq!(stream.n_classes(), None);
    let optimizer = OptimizerConfig::Adam(AdamConfig { lr: 0.05, ..Default::default() });
    let cfg = TrainerConfig { epochs: 15, batch_size: 32, optimizer, seed: 2, ..Default::default() };
    let mut rng = cfg.init_rng();
    let mut model = tensile_nn::Sequential::new().with(tensile_nn::Linear::new(3, 1, true, &mut rng));
    let data = StreamingData { train: &stream, validation: None, test: None, memory_budget: BUDGET };
    let result = Trainer::new(cfg).unwrap().fit_stream(&mut model, &data).unwrap();
    let t = result.target_scaler.expect("a target scaler for regression");
    assert!((t.mean() - 500.0).abs() < 15.0 && (t.std() - 114.6).abs() < 15.0, "{t:?}");
    let last = &result.history.epochs.last().unwrap().values;
    assert!(last["val_r2"] > 0.99, "{last:?}");
    // In the target's units: about the noise's std of 5, not a few hundredths of the target's std.
    assert!(last["val_rmse"] > 3.0 && last["val_rmse"] < 8.0, "{last:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
