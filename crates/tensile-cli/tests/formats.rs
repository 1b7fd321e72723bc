//! Every input format through the `tensile` binary: a Parquet table, NumPy arrays (`.npz`, and
//! `.npy` with a targets file) and a folder of images each go through `train`, `eval` and
//! `predict`. Fixtures are written by the tests (Parquet with the `parquet` crate, arrays with
//! `npyz`, PNGs with `image`) from a seeded generator, so every run sees the same data.

use std::path::Path;
use std::sync::Arc;

mod common;
use common::{ok, tensile};

fn eval_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["eval", "run"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&ok(tensile(&all, dir))).expect("eval --json prints JSON")
}

/// A small seeded generator (xorshift), uniform in [0, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn write_config(dir: &Path, data: &str, extra_data: &str, model: &str) {
    let config = format!(
        "[data]\n{data}\n{extra_data}\nvalidation_split = 0.25\n\n{model}\n\
         [training]\nepochs = 30\nbatch_size = 16\noptimizer = {{ type = \"adam\", lr = 1e-2 }}\nseed = 3\n\n\
         [output]\ndir = \"run\"\n"
    );
    std::fs::write(dir.join("run.toml"), config).expect("write config");
}

/// 120 rows: two numeric columns, a string column and a string class (`a`, `b`, `c`), with the
/// class given by the position of the numeric columns (well separated) and echoed by the color.
fn parquet_table(path: &Path, with_target: bool) {
    parquet_table_in_groups(path, with_target, None);
}

/// [`parquet_table`] written in row groups of at most `group_rows` rows.
fn parquet_table_in_groups(path: &Path, with_target: bool, group_rows: Option<usize>) {
    use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let (mut x, mut n, mut color, mut label) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..120 {
        let class = i % 3;
        x.push(class as f64 * 3.0 + noise.next());
        n.push((noise.next() * 10.0) as i32 - class as i32 * 20);
        color.push(["red", "green", "blue"][(class + usize::from(noise.next() < 0.1)) % 3]);
        label.push(["a", "b", "c"][class]);
    }
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("x", Arc::new(Float64Array::from(x))),
        ("n", Arc::new(Int32Array::from(n))),
        ("color", Arc::new(StringArray::from(color))),
    ];
    if with_target {
        columns.push(("species", Arc::new(StringArray::from(label))));
    }
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let file = std::fs::File::create(path).expect("create");
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(group_rows).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn parquet_table_trains_evaluates_and_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    parquet_table(&d.join("t.parquet"), true);
    parquet_table(&d.join("new.parquet"), false);
    write_config(d, "train = \"t.parquet\"\ntarget = \"species\"", "", "");
    let out = ok(tensile(&["train", "run.toml"], d));
    // x, n, and one feature per color.
    assert!(out.contains("t.parquet: 120 rows, 5 features, 3 classes"), "{out}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/model.json")).expect("model.json")).expect("json");
    assert_eq!(info["input"]["columns"][2]["categories"], serde_json::json!(["blue", "green", "red"]), "{info}");

    let report = eval_json(d, &["--data", "t.parquet"]);
    assert_eq!(report["rows"], 120);
    assert_eq!(report["class_names"], serde_json::json!(["a", "b", "c"]));
    assert!(report["accuracy"].as_f64().expect("accuracy") >= 0.9, "{report}");

    // The same table as CSV holding only two of the colors: its one-hot columns come from the
    // training encoding, so it scores like the Parquet file on the same rows.
    ok(tensile(&["predict", "run", "--data", "new.parquet", "--out", "pred.csv"], d));
    let pred = std::fs::read_to_string(d.join("pred.csv")).expect("predictions");
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("prediction,p_a,p_b,p_c"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 120);
    let right = rows.iter().enumerate().filter(|(i, r)| r.starts_with(["a,", "b,", "c,"][i % 3])).count();
    assert!(right >= 108, "{right} of 120 right:\n{pred}");

    let csv: String = std::iter::once("x,n,color,species\n".to_string())
        .chain((0..3).map(|i| format!("{}.5,{},red,{}\n", i * 3, -20 * i as i64, ["a", "b", "c"][i])))
        .collect();
    std::fs::write(d.join("few.csv"), csv).expect("write");
    let report = eval_json(d, &["--data", "few.csv"]);
    assert_eq!(report["rows"], 3, "{report}");
    let pred = ok(tensile(&["predict", "run", "--data", "few.csv"], d));
    assert_eq!(pred.lines().count(), 4, "{pred}");
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().expect("begin");
    w.extend(data.iter().copied()).expect("write");
    w.finish().expect("finish");
}

/// 100 rows of 4 features in two blobs, class 0 or 1 (`i64`).
fn blobs() -> (Vec<f32>, Vec<i64>) {
    let mut noise = Noise(42);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let class = (i % 2) as i64;
        for _ in 0..4 {
            x.push(class as f32 * 2.0 - 1.0 + (noise.next() as f32 - 0.5));
        }
        y.push(class);
    }
    (x, y)
}

#[test]
fn npz_arrays_train_evaluate_and_predict() {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (x, y) = blobs();
    {
        let mut npz = npyz::npz::NpzWriter::create(d.join("d.npz")).expect("create");
        let w = npz.array::<f32>("features", Default::default()).expect("x").default_dtype();
        let mut w = w.shape(&[100, 4]).begin_nd().expect("x");
        w.extend(x.iter().copied()).expect("x");
        w.finish().expect("x");
        let w = npz.array::<i64>("labels", Default::default()).expect("y").default_dtype();
        let mut w = w.shape(&[100]).begin_nd().expect("y");
        w.extend(y.iter().copied()).expect("y");
        w.finish().expect("y");
    }
    write_config(d, "train = \"d.npz\"", "features = \"features\"\ntargets = \"labels\"", "");
    let out = ok(tensile(&["train", "run.toml"], d));
    assert!(out.contains("d.npz: 100 rows, 4 features, 2 classes"), "{out}");
    let report = eval_json(d, &["--data", "d.npz"]);
    assert!(report["accuracy"].as_f64().expect("accuracy") >= 0.95, "{report}");
    let pred = ok(tensile(&["predict", "run", "--data", "d.npz"], d));
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("prediction,p_0,p_1"));
    let right = lines.zip(&y).filter(|(l, c)| l.starts_with(&format!("{c},"))).count();
    assert!(right >= 95, "{right} of 100:\n{pred}");

    // The same arrays as .npy files, the targets named by data.train_targets and --targets.
    write_npy(&d.join("x.npy"), &[100, 4], &x);
    write_npy(&d.join("y.npy"), &[100], &y);
    write_config(d, "train = \"x.npy\"\ntrain_targets = \"y.npy\"", "", "");
    std::fs::remove_dir_all(d.join("run")).expect("fresh run");
    ok(tensile(&["train", "run.toml", "--quiet"], d));
    let report = eval_json(d, &["--data", "x.npy", "--targets", "y.npy"]);
    assert!(report["accuracy"].as_f64().expect("accuracy") >= 0.95, "{report}");
    let pred = ok(tensile(&["predict", "run", "--data", "x.npy"], d));
    assert_eq!(pred.lines().count(), 101);
}

/// `n` PNGs per class: `dark` images near black and `light` ones near white, with pixel noise
/// and sizes that vary between 7 and 9 pixels a side (so they must be resized).
fn image_folder(root: &Path, n: usize, seed: u64) {
    let mut noise = Noise(seed);
    for (class, base) in [("dark", 40.0), ("light", 210.0)] {
        std::fs::create_dir_all(root.join(class)).expect("dir");
        for i in 0..n {
            let (w, h) = (7 + (i % 3) as u32, 9 - (i % 2) as u32);
            let img = image::GrayImage::from_fn(w, h, |_, _| image::Luma([(base + noise.next() * 40.0) as u8]));
            img.save(root.join(class).join(format!("{i:03}.png"))).expect("png");
        }
    }
}

#[test]
fn image_folder_trains_the_default_mlp_and_a_cnn_evaluates_and_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    image_folder(&d.join("images"), 24, 7);
    image_folder(&d.join("test"), 5, 99);
    let images = "train = \"images\"\nimage_size = [6, 6]\ncolor = \"grayscale\"";
    write_config(d, images, "test = \"test\"", "");
    let out = ok(tensile(&["train", "run.toml"], d));
    assert!(out.contains("images: 48 rows, 36 features, 2 classes"), "{out}");
    assert!(out.contains("test: "), "the test folder is scored: {out}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/model.json")).expect("model.json")).expect("json");
    assert_eq!(info["input_shape"], serde_json::json!([1, 6, 6]), "{info}");
    assert_eq!(info["spec"]["layers"][0]["type"], "flatten", "{info}");
    let report = eval_json(d, &["--data", "test"]);
    assert_eq!((report["rows"].as_u64(), report["accuracy"].as_f64()), (Some(10), Some(1.0)), "{report}");

    // A CNN reads the [1, 6, 6] samples directly.
    let cnn = "[model]\nlayers = [\n  { type = \"conv2d\", channels = 4, kernel = 3 },\n  { type = \"relu\" },\n  \
               { type = \"flatten\" },\n  { type = \"linear\", units = 2 },\n]\n";
    write_config(d, images, "", cnn);
    let summary = ok(tensile(&["summary", "run.toml"], d));
    assert!(summary.contains("[1, 4, 4, 4]") && summary.contains("parameters: 170"), "the CNN's own shapes: {summary}");
    std::fs::remove_dir_all(d.join("run")).expect("fresh run");
    ok(tensile(&["train", "run.toml", "--quiet"], d));
    let report = eval_json(d, &["--data", "test"]);
    assert_eq!(report["accuracy"].as_f64(), Some(1.0), "{report}");

    // Predict on a folder of class folders, a flat folder and one file: rows named by path.
    let pred = ok(tensile(&["predict", "run", "--data", "test"], d));
    let lines: Vec<&str> = pred.lines().collect();
    assert_eq!(lines[0], "file,prediction,p_dark,p_light");
    assert_eq!(lines.len(), 11);
    for line in &lines[1..] {
        let class = line.split('/').next().expect("class folder");
        assert!(line.split(',').nth(1) == Some(class), "{line}");
    }
    let pred = ok(tensile(&["predict", "run", "--data", "test/light"], d));
    assert!(pred.lines().nth(1).is_some_and(|l| l.starts_with("000.png,light,")), "{pred}");
    let pred = ok(tensile(&["predict", "run", "--data", "test/dark/001.png"], d));
    assert!(pred.lines().nth(1).is_some_and(|l| l.starts_with("001.png,dark,")), "{pred}");
}

#[test]
fn a_streamed_parquet_table_in_several_row_groups_trains_and_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    parquet_table_in_groups(&d.join("t.parquet"), true, Some(50));
    parquet_table(&d.join("new.parquet"), false);
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::reader::SerializedFileReader::new(std::fs::File::open(d.join("t.parquet")).expect("open"))
            .expect("parquet"),
    )
    .num_row_groups();
    assert_eq!(meta, 3, "row groups of 50, 50 and 20 rows");
    write_config(d, "train = \"t.parquet\"\ntarget = \"species\"", "stream = true", "");
    let out = ok(tensile(&["train", "run.toml"], d));
    assert!(out.contains("t.parquet: 120 rows, 5 features, 3 classes"), "{out}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/model.json")).expect("model.json")).expect("json");
    assert_eq!(info["input"]["columns"][2]["categories"], serde_json::json!(["blue", "green", "red"]), "{info}");
    // It was streamed: its checkpoints record the stream's blocks and windows.
    let checkpoints: Vec<Vec<u8>> = std::fs::read_dir(d.join("run/checkpoints"))
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tensile"))
        .map(|p| std::fs::read(p).expect("read checkpoint"))
        .collect();
    assert!(!checkpoints.is_empty());
    assert!(checkpoints.iter().all(|c| c.windows(13).any(|w| w == b"window_blocks")));

    ok(tensile(&["predict", "run", "--data", "new.parquet", "--out", "pred.csv"], d));
    let pred = std::fs::read_to_string(d.join("pred.csv")).expect("predictions");
    let rows: Vec<&str> = pred.lines().skip(1).collect();
    assert_eq!(rows.len(), 120);
    let right = rows.iter().enumerate().filter(|(i, r)| r.starts_with(["a,", "b,", "c,"][i % 3])).count();
    assert!(right >= 108, "{right} of 120 right:\n{pred}");
}
