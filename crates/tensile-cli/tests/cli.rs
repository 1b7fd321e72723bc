//! End-to-end tests through the `tensile` binary: train from a config, then eval and predict
//! with the run directory it wrote; config errors; exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tensile(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(args)
        .current_dir(cwd)
        .env("TENSILE_NUM_THREADS", "2")
        .output()
        .expect("the binary runs")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts success and returns stdout.
fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "exit {:?}\nstdout:\n{out}\nstderr:\n{err}", o.status.code());
    out
}

/// Asserts exit status `code` and returns stderr.
fn fails(o: Output, code: i32) -> String {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A temp dir holding `run.toml` that trains on `dataset` for a few epochs into `run/`.
fn setup(dataset: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(data(dataset), dir.path().join(dataset)).expect("copy data");
    let config = format!(
        "[data]\ntrain = \"{dataset}\"\ntarget = \"target\"\nvalidation_split = 0.2\n\n\
         [training]\nepochs = 15\nbatch_size = 16\noptimizer = {{ type = \"adam\", lr = 1e-2 }}\nseed = 7\n{extra}\n\
         [output]\ndir = \"run\"\n"
    );
    std::fs::write(dir.path().join("run.toml"), config).expect("write config");
    dir
}

fn eval_json(dir: &Path, dataset: &str) -> serde_json::Value {
    let out = ok(tensile(&["eval", "run", "--data", dataset, "--json"], dir));
    serde_json::from_str(&out).expect("eval --json prints JSON")
}

#[test]
fn iris_trains_evaluates_and_predicts() {
    let dir = setup("iris.csv", "early_stopping = { monitor = \"val_loss\", patience = 5, min_delta = 1e-4 }");
    let out = ok(tensile(&["train", "run.toml"], dir.path()));
    assert!(out.contains("iris.csv: 150 rows, 4 features, 3 classes"), "{out}");
    assert!(out.contains("best epoch"), "{out}");
    for f in ["config.toml", "model.json", "model.safetensors", "history.csv", "provenance.json"] {
        assert!(dir.path().join("run").join(f).exists(), "{f} missing");
    }
    let resolved = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(resolved.contains("task = \"classification\""), "{resolved}");
    assert!(resolved.contains("patience = 5"), "{resolved}");

    let report = eval_json(dir.path(), "iris.csv");
    assert!(report["accuracy"].as_f64().unwrap() >= 0.9, "{report}");
    assert_eq!(report["rows"], 150);
    let text = ok(tensile(&["eval", "run", "--data", "iris.csv"], dir.path()));
    assert!(text.contains("confusion matrix"), "{text}");

    // Regression: a file holding only some classes numbers them from 0 when read; eval must map
    // them onto the training classes, not score class `2` rows as class `0`.
    let all = std::fs::read_to_string(dir.path().join("iris.csv")).unwrap();
    let only_2: String =
        all.lines().filter(|l| l.starts_with("sepal") || l.ends_with(",2")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("only2.csv"), only_2).unwrap();
    let report = eval_json(dir.path(), "only2.csv");
    assert_eq!(report["class_names"], serde_json::json!(["0", "1", "2"]), "{report}");
    let row2: u64 = report["confusion_matrix"][2].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(row2, 50, "{report}");
    assert!(report["accuracy"].as_f64().unwrap() >= 0.8, "{report}");

    ok(tensile(&["predict", "run", "--data", "iris.csv", "--out", "pred.csv"], dir.path()));
    let pred = std::fs::read_to_string(dir.path().join("pred.csv")).unwrap();
    let mut lines = pred.lines();
    assert_eq!(lines.next(), Some("prediction,p_0,p_1,p_2"));
    assert_eq!(lines.count(), 150);
}

#[test]
fn wine_trains_and_evaluates() {
    let dir = setup("wine.csv", "");
    ok(tensile(&["train", "run.toml", "--quiet"], dir.path()));
    let report = eval_json(dir.path(), "wine.csv");
    assert!(report["accuracy"].as_f64().unwrap() >= 0.85, "{report}");
}

#[test]
fn diabetes_regression_trains_evaluates_and_predicts() {
    let dir = setup("diabetes.csv", "");
    let out = ok(tensile(&["train", "run.toml", "--set", "model.hidden=[32]"], dir.path()));
    assert!(out.contains("regression"), "{out}");
    let report = eval_json(dir.path(), "diabetes.csv");
    assert_eq!(report["task"], "regression");
    assert!(report["r2"].as_f64().unwrap() > 0.2, "{report}");
    let pred = ok(tensile(&["predict", "run", "--data", "diabetes.csv"], dir.path()));
    assert_eq!(pred.lines().next(), Some("prediction"));
    assert_eq!(pred.lines().count(), 443);
}

#[test]
fn set_overrides_are_written_to_the_resolved_config() {
    let dir = setup("iris.csv", "");
    let args = ["train", "run.toml", "--quiet", "--set", "training.epochs=2", "--set", "training.optimizer.lr=0.05"];
    ok(tensile(&args, dir.path()));
    let resolved = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    let t: toml::Table = resolved.parse().expect("the resolved config is TOML");
    assert_eq!(t["training"]["epochs"].as_integer(), Some(2));
    assert_eq!(t["training"]["optimizer"]["lr"].as_float(), Some(0.05));
    // Every default is filled in, the default model included.
    assert_eq!(t["training"]["batch_size"].as_integer(), Some(16));
    assert!(t["training"]["checkpoint"]["keep"].is_integer(), "{resolved}");
    assert!(t["model"]["layers"].as_array().is_some_and(|l| l.len() == 3), "{resolved}");
}

#[test]
fn data_and_target_train_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let iris = data("iris.csv");
    let args = ["train", "--data", iris.to_str().unwrap(), "--target", "target", "--epochs", "2", "--out", "r"];
    ok(tensile(&args, dir.path()));
    assert!(dir.path().join("r/model.json").exists());
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let dir = setup("iris.csv", "");
    std::fs::write(dir.path().join("bad.toml"), "[trainig]\nepochs = 3\n").unwrap();
    let err = fails(tensile(&["train", "bad.toml"], dir.path()), 1);
    assert!(err.contains("unknown key `trainig`") && err.contains("did you mean `training`?"), "{err}");

    std::fs::write(dir.path().join("bad2.toml"), "[training]\nepocs = 3\n").unwrap();
    let err = fails(tensile(&["train", "bad2.toml"], dir.path()), 1);
    assert!(err.contains("`training.epocs`") && err.contains("did you mean `epochs`?"), "{err}");

    let err = fails(tensile(&["train", "run.toml", "--set", "training.optimizer.lrr=0.1"], dir.path()), 1);
    assert!(err.contains("lrr") && err.contains("did you mean `lr`?"), "{err}");

    // Regression: serde ignores unknown keys in a schedule table; they must not pass silently.
    let err = fails(tensile(&["train", "run.toml", "--set", "training.schedule.typ=\"cosine\""], dir.path()), 1);
    assert!(err.contains("unknown key `training.schedule.typ`") && err.contains("did you mean `type`?"), "{err}");
}

#[test]
fn wrong_type_and_syntax_errors_name_line_and_column() {
    let dir = setup("iris.csv", "");
    std::fs::write(dir.path().join("t.toml"), "[training]\nepochs = \"many\"\n").unwrap();
    let err = fails(tensile(&["train", "t.toml"], dir.path()), 1);
    assert!(err.contains("t.toml, line 2, column 10") && err.contains("epochs"), "{err}");

    std::fs::write(dir.path().join("s.toml"), "[training\nepochs = 3\n").unwrap();
    let err = fails(tensile(&["train", "s.toml"], dir.path()), 1);
    assert!(err.contains("s.toml, line 1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one paragraph: {err}");
}

#[test]
fn missing_data_file_names_the_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "[data]\ntrain = \"nowhere.csv\"\n").unwrap();
    let err = fails(tensile(&["train", "c.toml"], dir.path()), 1);
    assert!(err.starts_with("error: ") && err.contains("nowhere.csv"), "{err}");
    let err = fails(tensile(&["train", "missing.toml"], dir.path()), 1);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    fails(tensile(&["train", "--epochs", "many"], dir.path()), 2);
    fails(tensile(&["frobnicate"], dir.path()), 2);
    fails(tensile(&["eval"], dir.path()), 2);
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    let top = ok(tensile(&["--help"], dir.path()));
    assert!(top.contains("Examples:") && top.contains("tensile predict"), "{top}");
    for cmd in ["train", "summary", "eval", "predict"] {
        let help = ok(tensile(&["help", cmd], dir.path()));
        assert!(help.contains("Examples:") && help.contains(&format!("tensile {cmd}")), "{help}");
    }
}

#[test]
fn summary_shows_the_layer_table() {
    let dir = setup("wine.csv", "");
    let out = ok(tensile(&["summary", "run.toml"], dir.path()));
    assert!(out.contains("wine.csv (13 features"), "{out}");
    // 13*128+128 + 128*3+3 parameters.
    assert!(out.contains("parameters: 2179"), "{out}");
    assert!(out.contains("linear") && out.contains("relu"), "{out}");
    assert!(out.contains("training memory estimate: 34.0 KiB"), "{out}");
}

#[test]
fn existing_run_directory_needs_resume() {
    let dir = setup("iris.csv", "");
    ok(tensile(&["train", "run.toml", "--quiet", "--set", "training.epochs=2"], dir.path()));
    let err = fails(tensile(&["train", "run.toml", "--quiet", "--set", "training.epochs=2"], dir.path()), 1);
    assert!(err.contains("--resume"), "{err}");
    ok(tensile(&["train", "run.toml", "--quiet", "--resume", "--set", "training.epochs=3"], dir.path()));
    let history = std::fs::read_to_string(dir.path().join("run/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 4, "{history}");
}
