//! A corpus of malformed inputs run through the `tensile` binary. Each case writes its files
//! into a fresh folder, runs one command there, and checks what a user sees: exit status 1 (2
//! for usage errors, which are clap's), one paragraph starting with `error:` that names the
//! file and the line, row, column, key or array and says what was found, no panic, and no file
//! left behind (no half-written predictions, no run directory for a run that never started).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// One malformed input: files to write, the command, and what its error must say.
struct Case {
    name: &'static str,
    setup: fn(&Path),
    /// The arguments; `RUN` stands for a run directory trained on `x`, `color` -> `y`.
    args: &'static [&'static str],
    code: i32,
    expect: &'static [&'static str],
}

/// A config training on `file` (target `y`) for one epoch into `out/`, plus `extra` lines.
fn config(dir: &Path, file: &str, extra: &str) {
    let text = format!(
        "[data]\ntrain = \"{file}\"\ntarget = \"y\"\n{extra}\n[training]\nepochs = 1\n\n[output]\ndir = \"out\"\n"
    );
    write(dir, "run.toml", text.as_bytes());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A CSV training file `d.csv` and the config for it.
fn csv(dir: &Path, text: &[u8]) {
    write(dir, "d.csv", text);
    config(dir, "d.csv", "");
}

fn png(dir: &Path, name: &str, w: u32, h: u32) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    image::GrayImage::from_pixel(w, h, image::Luma([128])).save(path).expect("png");
}

/// `images/a/1.png` (4x4) and the config training on `images`.
fn images(dir: &Path, extra: &str) {
    png(dir, "images/a/1.png", 4, 4);
    config(dir, "images", extra);
}

/// `d.parquet` with a float column `x` (one null) and a string target `y`.
fn parquet(dir: &Path, with_null: bool) {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    let x = Float64Array::from(vec![Some(1.0), if with_null { None } else { Some(2.0) }, Some(3.0)]);
    let batch = RecordBatch::try_from_iter([
        ("x", Arc::new(x) as ArrayRef),
        ("y", Arc::new(StringArray::from(vec!["a", "b", "a"])) as ArrayRef),
    ])
    .expect("batch");
    let file = std::fs::File::create(dir.join("d.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(dir: &Path, name: &str, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("create"));
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().expect("begin");
    w.extend(data.iter().copied()).expect("write");
    w.finish().expect("finish");
}

/// Rows for eval and predict against the trained run: `x` numeric, `color` red or blue.
const GOOD_ROWS: &str = "x,color,y\n1.5,red,yes\n-1,blue,no\n";

const CASES: &[Case] = &[
    // ---- CSV training files ----
    Case {
        name: "ragged row",
        setup: |d| csv(d, b"a,b,y\n1,2,0\n3,4\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3", "found 2 fields", "expected 3 fields"],
    },
    Case {
        name: "text in a numeric column",
        setup: |d| csv(d, b"a,b,y\n1,2,0\n3,abc,1\n4,5,0\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'b'", "found 'abc'", "expected a number"],
    },
    Case {
        name: "NaN cell",
        setup: |d| csv(d, b"a,y\n1,0\nNaN,1\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'a'", "found 'NaN'", "finite number"],
    },
    Case {
        name: "1e400 overflows f32",
        setup: |d| csv(d, b"a,y\n1,0\n1e400,1\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'a'", "found '1e400'", "f32 range"],
    },
    Case {
        name: "empty file",
        setup: |d| csv(d, b""),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 1", "found the end of the file", "a header row"],
    },
    Case {
        name: "header only",
        setup: |d| csv(d, b"a,y\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 2", "found the end of the file", "at least one data row"],
    },
    Case {
        name: "bad UTF-8",
        setup: |d| csv(d, b"a,y\n1,0\n\xff\xfe,1\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'a'", "not valid UTF-8", "expected UTF-8 text"],
    },
    Case {
        name: "UTF-16 byte order mark",
        setup: |d| csv(d, b"\xff\xfea\x00,\x00y\x00\n\x00"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 1", "UTF-16 byte order mark", "expected UTF-8 text"],
    },
    Case {
        name: "unbalanced quote",
        setup: |d| csv(d, b"a,y\n1,0\n\"2,1\n3,0\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3", "never closed", "closing quote"],
    },
    Case {
        name: "missing target column",
        setup: |d| csv(d, b"a,label\n1,0\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 1 (header)", "no column named 'y'", "a, label"],
    },
    Case {
        name: "empty target cell",
        setup: |d| csv(d, b"a,y\n1,0\n2,\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'y'", "found an empty cell", "a target value"],
    },
    Case {
        name: "duplicate column names",
        setup: |d| csv(d, b"a,a,y\n1,2,0\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 1, column 'a'", "a second column named 'a'", "unique column names"],
    },
    Case {
        name: "text target for regression",
        setup: |d| csv(d, b"a,y\n1,2.5\n2,high\n"),
        args: &["train", "run.toml", "--set", "data.task=\"regression\""],
        code: 1,
        expect: &["d.csv, line 3, column 'y'", "found 'high'", "regression"],
    },
    Case {
        name: "NA without impute",
        setup: |d| csv(d, b"a,b,y\n1,x,0\nNA,y,1\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.csv, line 3, column 'a'", "found 'NA'", "impute can fill it"],
    },
    Case {
        name: "missing training file",
        setup: |d| config(d, "nowhere.csv", ""),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["nowhere.csv", "No such file"],
    },
    Case {
        name: "unknown data format",
        setup: |d| {
            write(d, "d.xlsx", b"PK");
            config(d, "d.xlsx", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.xlsx", "found a .xlsx file", "expected CSV"],
    },
    // ---- config files and overrides ----
    Case {
        name: "unknown config key",
        setup: |d| write(d, "run.toml", b"[data]\ntrian = \"d.csv\"\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["unknown key `data.trian`", "run.toml", "did you mean `train`?"],
    },
    Case {
        name: "wrong value type",
        setup: |d| write(d, "run.toml", b"[training]\nepochs = \"many\"\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["run.toml, line 2, column 10", "epochs", "\"many\""],
    },
    Case {
        name: "config that is not TOML",
        setup: |d| write(d, "run.toml", b"train this: please\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["run.toml, line 1", "train this: please"],
    },
    Case {
        name: "negative epochs",
        setup: |d| write(d, "run.toml", b"[training]\nepochs = -3\n"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["run.toml, line 2", "-3", "epochs"],
    },
    Case {
        name: "batch size 0",
        setup: |d| csv(d, b"a,y\n1,0\n2,1\n"),
        args: &["train", "run.toml", "--set", "training.batch_size=0"],
        code: 1,
        expect: &["run.toml", "batch_size", "at least 1"],
    },
    Case {
        name: "bad --set syntax",
        setup: |d| csv(d, b"a,y\n1,0\n2,1\n"),
        args: &["train", "run.toml", "--set", "training.epochs"],
        code: 1,
        expect: &["--set training.epochs", "expected KEY=VALUE"],
    },
    Case {
        name: "--set with an empty key part",
        setup: |d| csv(d, b"a,y\n1,0\n2,1\n"),
        args: &["train", "run.toml", "--set", "training..epochs=3"],
        code: 1,
        expect: &["--set training..epochs=3", "not a dotted key path"],
    },
    Case {
        name: "unknown color",
        setup: |d| images(d, "color = \"purple\""),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["run.toml, line 4", "purple", "grayscale"],
    },
    Case {
        name: "image size of the wrong type",
        setup: |d| images(d, "image_size = \"28\""),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["run.toml, line 4", "image_size"],
    },
    Case {
        name: "image size 0",
        setup: |d| images(d, "image_size = [0, 28]"),
        args: &["train", "run.toml"],
        code: 1,
        expect: &["data.image_size", "found [0, 28]", "at least 1 pixel"],
    },
    Case {
        name: "missing config file",
        setup: |_| {},
        args: &["train", "missing.toml"],
        code: 1,
        expect: &["missing.toml"],
    },
    Case {
        name: "epochs not a number",
        setup: |_| {},
        args: &["train", "--epochs", "many"],
        code: 2,
        expect: &["--epochs"],
    },
    Case { name: "eval without --data", setup: |_| {}, args: &["eval", "RUN"], code: 2, expect: &["--data"] },
    // ---- image folders ----
    Case {
        name: "images of mixed sizes without image_size",
        setup: |d| {
            images(d, "");
            png(d, "images/b/1.png", 5, 3);
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["images/b/1.png", "5x3 pixels", "4x4 like the first image, images/a/1.png", "image size"],
    },
    Case {
        name: "corrupt image",
        setup: |d| {
            images(d, "");
            write(d, "images/b/x.png", b"\x89PNG\r\n\x1a\nthe rest is missing");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["images/b/x.png", "cannot be decoded", "a valid PNG or JPEG image"],
    },
    Case {
        name: "empty class folder",
        setup: |d| {
            images(d, "");
            std::fs::create_dir_all(d.join("images/b")).expect("mkdir");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["images/b", "an empty class folder", "at least one PNG or JPEG"],
    },
    Case {
        name: "a text file among the images",
        setup: |d| {
            images(d, "");
            write(d, "images/b/notes.txt", b"hello");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["images/b/notes.txt", "not an image", ".png"],
    },
    Case {
        name: "a single image as training data",
        setup: |d| {
            png(d, "one.png", 2, 2);
            config(d, "one.png", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["one.png", "a single image", "one sub-folder of images per class"],
    },
    Case {
        name: "image folder for regression",
        setup: |d| {
            images(d, "");
            png(d, "images/b/1.png", 4, 4);
        },
        args: &["train", "run.toml", "--set", "data.task=\"regression\""],
        code: 1,
        expect: &["images", "found class labels", "regression"],
    },
    // ---- Parquet ----
    Case {
        name: "truncated Parquet",
        setup: |d| {
            parquet(d, false);
            let bytes = std::fs::read(d.join("d.parquet")).expect("read");
            write(d, "d.parquet", &bytes[..bytes.len() - 20]);
            config(d, "d.parquet", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.parquet", "not a readable Parquet file", "truncated or corrupt"],
    },
    Case {
        name: "null in a Parquet column",
        setup: |d| {
            parquet(d, true);
            config(d, "d.parquet", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.parquet, row 2, column 'x'", "found an empty cell", "expected a number"],
    },
    Case {
        name: "null in a streamed Parquet column",
        setup: |d| {
            parquet(d, true);
            config(d, "d.parquet", "stream = true");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.parquet, row 2, column 'x'", "found an empty cell", "expected a number"],
    },
    Case {
        name: "Parquet without the target column",
        setup: |d| {
            parquet(d, false);
            config(d, "d.parquet", "");
        },
        args: &["train", "run.toml", "--set", "data.target=\"label\""],
        code: 1,
        expect: &["d.parquet, schema", "no column named 'label'", "one of: x, y"],
    },
    // ---- NumPy ----
    Case {
        name: ".npy with a wrong magic string",
        setup: |d| {
            write(d, "x.npy", b"\x93NUMPX not an array");
            npy(d, "y.npy", &[2], &[0i64, 1]);
            config(d, "x.npy", "train_targets = \"y.npy\"");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["x.npy", "no valid NPY header", "numpy.save"],
    },
    Case {
        name: ".npy targets of the wrong length",
        setup: |d| {
            npy(d, "x.npy", &[3, 2], &[1.0f32; 6]);
            npy(d, "y.npy", &[2], &[0i64, 1]);
            config(d, "x.npy", "train_targets = \"y.npy\"");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["y.npy", "found 2 targets", "expected 3"],
    },
    Case {
        name: ".npy without a targets file",
        setup: |d| {
            npy(d, "x.npy", &[3, 2], &[1.0f32; 6]);
            config(d, "x.npy", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["x.npy", "holds only features", "data.train_targets"],
    },
    Case {
        name: ".npy asked to stream",
        setup: |d| {
            npy(d, "x.npy", &[3, 2], &[1.0f32; 6]);
            npy(d, "y.npy", &[3], &[0i64, 1, 0]);
            config(d, "x.npy", "train_targets = \"y.npy\"\nstream = true");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["x.npy", "data.stream is on", "only CSV and Parquet files are streamed"],
    },
    Case {
        name: ".npz that is not a zip archive",
        setup: |d| {
            write(d, "d.npz", b"not a zip");
            config(d, "d.npz", "");
        },
        args: &["train", "run.toml"],
        code: 1,
        expect: &["d.npz", "not a zip archive", "an NPZ archive"],
    },
    // ---- eval and predict against a trained run ----
    Case {
        name: "eval: a label unseen in training",
        setup: |d| write(d, "e.csv", b"x,color,y\n1,red,yes\n2,blue,maybe\n"),
        args: &["eval", "RUN", "--data", "e.csv"],
        code: 1,
        expect: &["e.csv", "class `maybe`", "not seen in training", "no, yes"],
    },
    Case {
        name: "eval: a category unseen in training",
        setup: |d| write(d, "e.csv", b"x,color,y\n1,red,yes\n2,green,no\n"),
        args: &["eval", "RUN", "--data", "e.csv"],
        code: 1,
        expect: &["e.csv, line 3, column 'color'", "found 'green'", "'blue', 'red'"],
    },
    Case {
        name: "eval: not a run directory",
        setup: |d| write(d, "e.csv", GOOD_ROWS.as_bytes()),
        args: &["eval", "nowhere", "--data", "e.csv"],
        code: 1,
        expect: &["nowhere", "model.json", "a run directory"],
    },
    Case {
        name: "eval: .npy without --targets",
        setup: |d| npy(d, "x.npy", &[2, 2], &[1.0f32; 4]),
        args: &["eval", "RUN", "--data", "x.npy"],
        code: 1,
        expect: &["x.npy", "holds only features", "--targets"],
    },
    Case {
        name: "predict: a category unseen in training",
        setup: |d| write(d, "p.csv", b"x,color\n1,purple\n"),
        args: &["predict", "RUN", "--data", "p.csv", "--out", "pred.csv"],
        code: 1,
        expect: &["p.csv, line 2, column 'color'", "found 'purple'", "categories seen in training"],
    },
    Case {
        name: "predict: a missing feature column",
        setup: |d| write(d, "p.csv", b"color,y\nred,yes\n"),
        args: &["predict", "RUN", "--data", "p.csv", "--out", "pred.csv"],
        code: 1,
        expect: &["p.csv", "no column named 'x'", "color, y"],
    },
    Case {
        name: "predict: text in a numeric column",
        setup: |d| write(d, "p.csv", b"x,color\n1,red\nabc,blue\n"),
        args: &["predict", "RUN", "--data", "p.csv", "--out", "pred.csv"],
        code: 1,
        expect: &["p.csv, line 3, column 'x'", "found 'abc'", "expected a number"],
    },
    Case {
        name: "predict: arrays of another width",
        setup: |d| npy(d, "x.npy", &[2, 5], &[1.0f32; 10]),
        args: &["predict", "RUN", "--data", "x.npy", "--out", "pred.csv"],
        code: 1,
        expect: &["x.npy", "found rows of shape [5]", "expected [3]"],
    },
    Case {
        name: "predict: a missing data file",
        setup: |_| {},
        args: &["predict", "RUN", "--data", "gone.csv", "--out", "pred.csv"],
        code: 1,
        expect: &["gone.csv"],
    },
    Case {
        name: "predict: a BOM and CRLF line ends still work, then a ragged row fails",
        setup: |d| write(d, "p.csv", b"\xef\xbb\xbfx,color\r\n1,red\r\n2\r\n"),
        args: &["predict", "RUN", "--data", "p.csv", "--out", "pred.csv"],
        code: 1,
        expect: &["p.csv, line 3", "found 1 fields", "expected 2 fields"],
    },
];

/// Every file and folder below `dir`, relative to it, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            all.push(path.strip_prefix(dir).expect("below").to_path_buf());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    all.sort();
    all
}

/// Trains the run the eval and predict cases use: `x` numeric, `color` categorical, `y` yes/no.
fn trained_run(root: &Path) -> PathBuf {
    let mut rows = String::from("x,color,y\n");
    for i in 0..40 {
        let yes = i % 2 == 0;
        rows.push_str(&format!(
            "{},{},{}\n",
            if yes { 1.0 + i as f64 / 40.0 } else { -1.0 },
            ["red", "blue"][i % 2],
            ["no", "yes"][usize::from(yes)]
        ));
    }
    write(root, "base.csv", rows.as_bytes());
    write(
        root,
        "base.toml",
        b"[data]\ntrain = \"base.csv\"\ntarget = \"y\"\n[training]\nepochs = 2\n[output]\ndir = \"run\"\n",
    );
    let out = tensile(&["train", "base.toml", "--quiet"], root);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    root.join("run")
}

fn tensile(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(args)
        .current_dir(cwd)
        .env("TENSILE_NUM_THREADS", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs")
}

#[test]
fn every_malformed_input_fails_with_one_clear_paragraph_and_leaves_nothing_behind() {
    assert!(CASES.len() >= 30, "the corpus has {} cases", CASES.len());
    let root = tempfile::tempdir().expect("temp dir");
    let run = trained_run(root.path());
    let run = run.to_str().expect("a UTF-8 path");
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().expect("temp dir");
        (case.setup)(dir.path());
        let before = listing(dir.path());
        let args: Vec<&str> = case.args.iter().map(|&a| if a == "RUN" { run } else { a }).collect();
        let out = tensile(&args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut problems = Vec::new();
        if out.status.code() != Some(case.code) {
            problems.push(format!("exit status {:?}, expected {}", out.status.code(), case.code));
        }
        if !err.starts_with("error: ") {
            problems.push("stderr does not start with `error: `".into());
        }
        if case.code == 1 && err.trim_end().contains('\n') {
            problems.push("more than one line".into());
        }
        for bad in ["panicked", "RUST_BACKTRACE"] {
            if err.contains(bad) {
                problems.push(format!("contains `{bad}`"));
            }
        }
        for want in case.expect {
            if !err.contains(want) {
                problems.push(format!("does not say `{want}`"));
            }
        }
        let after = listing(dir.path());
        if after != before {
            let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
            problems.push(format!("left files behind: {new:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n  stderr: {}", case.name, problems.join("; "), err.trim_end()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn a_utf8_byte_order_mark_is_read_not_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    csv(dir.path(), b"\xef\xbb\xbfa,y\r\n1,0\r\n2,1\r\n3,0\r\n4,1\r\n");
    let out = tensile(&["train", "run.toml", "--quiet"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = std::fs::read_to_string(dir.path().join("out/model.json")).expect("model.json");
    assert!(info.contains("\"a\""), "the first column is `a`, not `\\u{{feff}}a`: {info}");
    let pred = tensile(&["predict", "out", "--data", "d.csv"], dir.path());
    assert!(pred.status.success(), "{}", String::from_utf8_lossy(&pred.stderr));
    assert_eq!(String::from_utf8_lossy(&pred.stdout).lines().count(), 5);
}
