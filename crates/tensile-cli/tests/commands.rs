//! End-to-end tests through the `tensile` binary for `lr-find`, `train --json`, the flat schedule
//! form, feature and target scaling, a closed standard output, and every command's help.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tensile"));
    c.env("TENSILE_NUM_THREADS", "2");
    c
}

fn tensile(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().expect("the binary runs")
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

/// Asserts exit status 1 and returns stderr.
fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A temp dir holding the given data files and `run.toml` (train on the first for 4 epochs
/// unless `extra` sets them, `extra` added to `[training]`, results in `run/`).
fn setup(files: &[&str], extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in files {
        std::fs::copy(data(f), dir.path().join(f)).expect("copy data");
    }
    let epochs = if extra.contains("epochs =") { "" } else { "epochs = 4\n" };
    let config = format!(
        "[data]\ntrain = \"{}\"\n\n[training]\n{epochs}batch_size = 16\nseed = 7\n{extra}\n\n[output]\ndir = \"run\"\n",
        files[0]
    );
    std::fs::write(dir.path().join("run.toml"), config).expect("write config");
    dir
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn toml_of(path: impl AsRef<Path>) -> toml::Table {
    read(path).parse().expect("valid TOML")
}

/// One column of a CSV file with a header, as numbers.
fn column(csv_text: &str, name: &str) -> Vec<f64> {
    let mut lines = csv_text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let j = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    lines.map(|l| l.split(',').nth(j).expect("field").parse().expect("a number")).collect()
}

// ---------------------------------------------------------------------------------------------
// lr-find

#[test]
fn lr_find_suggests_a_rate_and_writes_the_curve_and_plots() {
    let dir = setup(&["iris.csv"], "");
    let out = ok(tensile(&["lr-find", "run.toml", "--set", "training.batch_size=8"], dir.path()));
    assert!(out.contains("iris.csv: 150 rows, 4 features, 3 classes"), "{out}");
    assert!(out.contains("batch 8 with adam"), "--set reaches the finder: {out}");
    let line = out.lines().find(|l| l.starts_with("suggested learning rate: ")).expect(&out);
    let lr: f64 = line["suggested learning rate: ".len()..].split(' ').next().unwrap().parse().expect(line);
    assert!(lr > 1e-7 && lr < 10.0, "{lr}");
    assert!(out.contains(&format!("--set training.optimizer.lr={lr:.2e}")), "{out}");
    assert!(out.contains("<- suggested"), "the table marks the suggestion: {out}");

    let run = dir.path().join("run");
    let csv_text = read(run.join("lr_finder.csv"));
    assert_eq!(csv_text.lines().next(), Some("step,lr,loss,raw_loss"));
    let lrs = column(&csv_text, "lr");
    assert!(lrs.len() >= 10 && lrs.len() <= 100, "{}", lrs.len());
    assert_eq!(lrs[0], 1e-7);
    assert!(lrs.windows(2).all(|w| w[1] > w[0]), "rates grow");
    assert!(lrs.iter().any(|&x| (x - lr).abs() <= 0.005 * lr), "the suggestion is a point of the curve");
    assert!(read(run.join("lr_finder.svg")).contains("<svg"));
    assert!(std::fs::read(run.join("lr_finder.png")).unwrap().starts_with(b"\x89PNG"));
    assert!(!run.join("checkpoints").exists(), "nothing is trained for keeps");
}

#[test]
fn lr_find_takes_data_target_out_and_range_flags() {
    let dir = tempfile::tempdir().unwrap();
    let diabetes = data("diabetes.csv");
    let args = [
        "lr-find",
        "--data",
        diabetes.to_str().unwrap(),
        "--target",
        "target",
        "--out",
        "lr",
        "--start-lr",
        "1e-5",
        "--end-lr",
        "1",
        "--steps",
        "30",
    ];
    let out = ok(tensile(&args, dir.path()));
    assert!(out.contains("regression") && out.contains("lr 1.00e-5 to 1.00e0"), "{out}");
    let lrs = column(&read(dir.path().join("lr/lr_finder.csv")), "lr");
    assert!(lrs.len() <= 30 && lrs[0] == 1e-5, "{lrs:?}");

    let err = fails(tensile(&["lr-find", "--data", diabetes.to_str().unwrap(), "--steps", "1"], dir.path()));
    assert!(err.contains("num_steps") && err.contains("at least 2"), "{err}");
    let err = fails(tensile(&["lr-find", "--target", "y"], dir.path()));
    assert!(err.contains("--data"), "{err}");
}

#[test]
fn lr_find_help_has_usage_options_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(tensile(&["lr-find", "--help"], dir.path()));
    for line in [
        "Usage: tensile lr-find [OPTIONS] [CONFIG]",
        "--data <FILE>",
        "--target <COLUMN>",
        "--set <KEY=VALUE>",
        "--out <DIR>",
        "--start-lr <LR>",
        "[default: 1e-7]",
        "--end-lr <LR>",
        "--steps <N>",
        "Examples:",
        "  tensile lr-find run.toml ",
        "lr_finder.csv",
        "--set training.optimizer.lr=",
    ] {
        assert!(help.contains(line), "missing {line:?} in:\n{help}");
    }
    assert_eq!(ok(tensile(&["help", "lr-find"], dir.path())), help);
}

/// Every subcommand listed by `tensile --help` has examples in `--help` and `tensile help`.
#[test]
fn every_command_help_has_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let top = ok(tensile(&["--help"], dir.path()));
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"lr-find") && commands.contains(&"train"), "{top}");
    for cmd in commands {
        for args in [vec![cmd, "--help"], vec!["help", cmd]] {
            let help = ok(tensile(&args, dir.path()));
            assert!(help.contains("Examples:") && help.contains(&format!("tensile {cmd} ")), "{args:?}:\n{help}");
        }
        assert!(top.contains(&format!("  tensile {cmd} ")), "the top-level examples show {cmd}");
    }
}

// ---------------------------------------------------------------------------------------------
// train --json

#[test]
fn train_json_prints_one_object_per_event() {
    let dir = setup(&["iris.csv"], "early_stopping = { monitor = \"val_loss\", patience = 1, min_delta = 10.0 }");
    // A test set, so the end event has test scores.
    std::fs::write(
        dir.path().join("test.toml"),
        read(dir.path().join("run.toml")).replace("[training]", "test = \"iris.csv\"\n\n[training]"),
    )
    .unwrap();
    let out = ok(tensile(&["train", "test.toml", "--json"], dir.path()));
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l:?}")))
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().expect("an event name")).collect();

    assert_eq!(kinds[0], "start");
    let start = &events[0];
    assert_eq!(
        (start["data"].as_str(), start["rows"].as_u64(), start["features"].as_u64()),
        (Some("iris.csv"), Some(150), Some(4))
    );
    assert_eq!(start["task"], "classification");
    assert_eq!(start["parameters"], 4 * 128 + 128 + 128 * 3 + 3);

    // Early stopping with an impossible min_delta stops after epoch 2 (patience 1).
    let epochs: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "epoch").collect();
    assert_eq!(epochs.iter().map(|e| e["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for e in &epochs {
        for key in ["train_loss", "val_loss", "val_accuracy", "val_f1"] {
            assert!(e["values"][key].is_f64(), "{key} in {e}");
        }
        assert!(e["lr"].is_f64() && e["seconds"].is_f64() && e["step"].as_u64().unwrap() > 0, "{e}");
    }
    assert!(epochs[0]["step"].as_u64() < epochs[1]["step"].as_u64());

    let last = events.last().unwrap();
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    assert_eq!(kinds[1..kinds.len() - 1].iter().filter(|k| **k == "finding").count(), kinds.len() - 2 - epochs.len());
    assert!(kinds.contains(&"finding"), "{kinds:?}");
    let first_finding = kinds.iter().position(|k| *k == "finding").unwrap();
    assert!(kinds[first_finding..kinds.len() - 1].iter().all(|k| *k == "finding"), "findings come after the epochs");
    for f in events.iter().filter(|e| e["event"] == "finding") {
        assert!(f["kind"].is_string() && f["message"].is_string() && f["evidence"].is_object(), "{f}");
    }
    assert_eq!(last["stop_reason"], "callback", "{last}");
    assert!(last["stop_message"].as_str().unwrap().contains("early stopping"), "{last}");
    assert!(last["best_epoch"].as_u64().is_some_and(|b| b <= 2), "{last}");
    assert!(last["test"]["test_accuracy"].is_f64() && last["test"]["test_loss"].is_f64(), "{last}");
    assert_eq!(last["run_dir"], "run");
    assert!(dir.path().join("run/model.json").exists());
}

#[test]
fn train_json_errors_go_to_stderr() {
    let dir = setup(&["iris.csv"], "epocs = 3");
    let o = tensile(&["train", "run.toml", "--json"], dir.path());
    let err = fails(o.clone());
    assert!(err.starts_with("error: ") && err.contains("did you mean `epochs`?"), "{err}");
    assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
}

// ---------------------------------------------------------------------------------------------
// The flat schedule form

/// The `lr` column of `run/history.csv`.
fn lrs(dir: &Path, run: &str) -> Vec<f64> {
    column(&read(dir.join(run).join("history.csv")), "lr")
}

#[test]
fn flat_cosine_schedule_with_warmup_trains_and_its_resolved_config_round_trips() {
    let dir = setup(&["iris.csv"], "epochs = 8\nschedule = { type = \"cosine\", warmup_epochs = 2 }");
    ok(tensile(&["train", "run.toml", "--quiet", "--set", "training.optimizer.lr=0.01"], dir.path()));

    let resolved = toml_of(dir.path().join("run/config.toml"));
    let schedule = &resolved["training"]["schedule"];
    assert_eq!(schedule["schedule"]["kind"].as_str(), Some("cosine"), "{schedule}");
    assert_eq!(schedule["schedule"]["t_max"].as_integer(), Some(6), "the epochs after warmup: {schedule}");
    assert_eq!(schedule["warmup"]["steps"].as_integer(), Some(2), "{schedule}");

    // The rate each epoch trained at (history.csv records it before the epoch's schedule
    // step): up through two warmup epochs (1/3 and 2/3 of it) to the base rate, then down
    // the cosine.
    let lr = lrs(dir.path(), "run");
    assert_eq!(lr.len(), 8);
    let expected_start = [0.01 / 3.0, 0.02 / 3.0, 0.01];
    assert!(lr[..3].iter().zip(expected_start).all(|(a, b)| (a - b).abs() < 1e-12), "{lr:?}");
    assert!(lr[2..].windows(2).all(|w| w[1] < w[0]) && lr[7] < 0.002, "{lr:?}");

    // The resolved config, used as a config, gives the same run and the same resolved config.
    ok(tensile(&["train", "run/config.toml", "--quiet", "--out", "again"], dir.path()));
    let again = toml_of(dir.path().join("again/config.toml"));
    assert_eq!(again["training"], resolved["training"]);
    assert_eq!(again["model"], resolved["model"]);
    assert_eq!(again["data"], resolved["data"]);
    assert_eq!(lrs(dir.path(), "again"), lr);
}

#[test]
fn every_schedule_kind_has_a_flat_form() {
    let cases = [
        ("{ type = \"constant\", warmup_epochs = 1 }", "constant", None),
        ("{ type = \"step\", step_size = 2 }", "step", Some(("gamma", "0.1"))),
        ("{ type = \"multi-step\", milestones = [1, 2] }", "multi_step", Some(("gamma", "0.1"))),
        ("{ type = \"exponential\", gamma = 0.9 }", "exponential", Some(("gamma", "0.9"))),
        ("{ type = \"cosine_warm_restarts\", t_0 = 2 }", "cosine_warm_restarts", Some(("t_0", "2"))),
        (
            "{ type = \"one_cycle\", max_lr = 0.05, total_steps = 40, warmup_steps = 3 }",
            "one_cycle",
            Some(("max_lr", "0.05")),
        ),
        ("{ type = \"plateau\", factor = 0.5, patience = 1 }", "reduce_on_plateau", Some(("mode", "\"max\""))),
    ];
    for (flat, kind, setting) in cases {
        let dir = setup(&["iris.csv"], &format!("monitor = \"val_accuracy\"\nschedule = {flat}"));
        ok(tensile(&["train", "run.toml", "--quiet", "--epochs", "3"], dir.path()));
        let resolved = toml_of(dir.path().join("run/config.toml"));
        let schedule = &resolved["training"]["schedule"];
        assert_eq!(schedule["schedule"]["kind"].as_str(), Some(kind), "{flat}: {schedule}");
        if let Some((key, value)) = setting {
            assert_eq!(schedule["schedule"][key].to_string(), value, "{flat}: {schedule}");
        }
        assert_eq!(lrs(dir.path(), "run").len(), 3, "{flat}");
    }
}

#[test]
fn flat_schedule_mistakes_are_named() {
    let dir = setup(&["iris.csv"], "");
    let err_for = |schedule: &str| {
        fails(tensile(&["train", "run.toml", "--set", &format!("training.schedule={schedule}")], dir.path()))
    };

    let err = err_for("{type=\"cosine\",warmup_epoch=2}");
    assert!(
        err.contains("unknown key `training.schedule.warmup_epoch`") && err.contains("did you mean `warmup_epochs`?"),
        "{err}"
    );
    let err = err_for("{type=\"step\",step_sise=2}");
    assert!(err.contains("did you mean `step_size`?") && err.contains("for a `step` schedule"), "{err}");
    let err = err_for("{type=\"cosin\"}");
    assert!(err.contains("unknown schedule `cosin`") && err.contains("did you mean `cosine`?"), "{err}");
    let err = err_for("{type=\"one_cycle\",max_lr=0.1,total_steps=10,warmup_epochs=1}");
    assert!(err.contains("warmup_steps"), "{err}");
    let err = err_for("{type=\"cosine\",schedule={kind=\"cosine\",t_max=3}}");
    assert!(err.contains("use one"), "{err}");
    let err = err_for("{type=\"exponential\"}");
    assert!(err.contains("gamma"), "a missing required setting is named: {err}");
    // The nested form's schedule table is checked too (serde alone ignores unknown keys there).
    let err = err_for("{schedule={kind=\"cosine\",t_max=3,tmax=4}}");
    assert!(err.contains("`training.schedule.schedule.tmax`") && err.contains("did you mean `t_max`?"), "{err}");
    let err = err_for("{typ=\"cosine\"}");
    assert!(err.contains("did you mean `type`?"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Feature and target scaling

fn eval_json(dir: &Path, run: &str, dataset: &str) -> serde_json::Value {
    serde_json::from_str(&ok(tensile(&["eval", run, "--data", dataset, "--json"], dir))).expect("JSON")
}

#[test]
fn target_scaling_trains_regression_better_and_reports_original_units() {
    let dir = setup(&["diabetes.csv"], "epochs = 10");
    let train = |out: &str, on: bool| {
        let set = format!("training.standardize_target={on}");
        ok(tensile(
            &["train", "run.toml", "--quiet", "--out", out, "--set", "model.hidden=[32]", "--set", &set],
            dir.path(),
        ));
        eval_json(dir.path(), out, "diabetes.csv")
    };
    let (scaled, raw) = (train("scaled", true), train("raw", false));
    let (r2_scaled, r2_raw) = (scaled["r2"].as_f64().unwrap(), raw["r2"].as_f64().unwrap());
    let (mse_scaled, mse_raw) = (scaled["loss"].as_f64().unwrap(), raw["loss"].as_f64().unwrap());
    // The same 10 epochs: the unscaled target (mean 152, std 77) is still far off.
    assert!(r2_scaled > 0.4, "{scaled}");
    assert!(r2_scaled > r2_raw + 0.3 && mse_scaled < mse_raw / 2.0, "scaled {scaled}\nraw {raw}");

    // model.json keeps the target scaler; an unscaled run's has none (the older layout).
    let info: serde_json::Value = serde_json::from_str(&read(dir.path().join("scaled/model.json"))).unwrap();
    let mean = info["target_scaler"]["mean"].as_f64().unwrap();
    assert!((100.0..200.0).contains(&mean) && info["target_scaler"]["std"].as_f64().unwrap() > 30.0, "{info}");
    assert!(!read(dir.path().join("raw/model.json")).contains("target_scaler"));

    // Predictions are in the target's units: their error matches eval's MAE.
    let predictions = column(&ok(tensile(&["predict", "scaled", "--data", "diabetes.csv"], dir.path())), "prediction");
    let targets = column(&read(dir.path().join("diabetes.csv")), "target");
    let mae = predictions.iter().zip(&targets).map(|(p, t)| (p - t).abs()).sum::<f64>() / targets.len() as f64;
    assert!((mae - scaled["mae"].as_f64().unwrap()).abs() < 1e-3 * mae, "{mae} vs {scaled}");
    let mean_prediction = predictions.iter().sum::<f64>() / predictions.len() as f64;
    assert!((mean_prediction - mean).abs() < 30.0, "{mean_prediction}");

    // The history is in the target's units too: MSEs in the thousands, not around 0.5.
    let history = read(dir.path().join("scaled/history.csv"));
    let val_loss = column(&history, "val_loss");
    let train_loss = column(&history, "train_loss");
    assert!(val_loss.iter().chain(&train_loss).all(|&v| v > 500.0), "{history}");
    assert!(column(&history, "val_mae").iter().all(|&v| v > 10.0), "{history}");
}

#[test]
fn minmax_scaling_and_the_older_standardize_key() {
    let dir = setup(&["wine.csv"], "scaling = \"minmax\"");
    ok(tensile(&["train", "run.toml", "--quiet"], dir.path()));
    let info: serde_json::Value = serde_json::from_str(&read(dir.path().join("run/model.json"))).unwrap();
    assert!(info["standardizer"].is_null() && info["target_scaler"].is_null(), "{info}");
    let (min, max) = (info["min_max"]["min"].as_array().unwrap(), info["min_max"]["max"].as_array().unwrap());
    assert_eq!((min.len(), max.len()), (13, 13));
    assert!(min.iter().zip(max).all(|(a, b)| a.as_f64() < b.as_f64()), "{info}");
    assert_eq!(toml_of(dir.path().join("run/config.toml"))["training"]["scaling"].as_str(), Some("minmax"));
    assert!(eval_json(dir.path(), "run", "wine.csv")["accuracy"].as_f64().unwrap() > 0.8);
    let pred = ok(tensile(&["predict", "run", "--data", "wine.csv"], dir.path()));
    assert_eq!(pred.lines().count(), 179);

    // `standardize = false` (before `scaling` existed) still reads, as `scaling = "none"`.
    let old = setup(&["wine.csv"], "standardize = false");
    ok(tensile(&["train", "run.toml", "--quiet", "--epochs", "1"], old.path()));
    let resolved = toml_of(old.path().join("run/config.toml"));
    assert_eq!(resolved["training"]["scaling"].as_str(), Some("none"));
    assert!(!resolved["training"].as_table().unwrap().contains_key("standardize"));
    let info = read(old.path().join("run/model.json"));
    assert!(!info.contains("min_max") && info.contains("\"standardizer\": null"), "{info}");

    let err = fails(tensile(&["train", "run.toml", "--set", "training.scaling=\"minmx\""], dir.path()));
    assert!(err.contains("minmx") && err.contains("did you mean `minmax`?"), "{err}");
    let err = fails(tensile(&["train", "run.toml", "--set", "training.standardize=true"], dir.path()));
    assert!(err.contains("both training.standardize and training.scaling"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A closed standard output

/// Runs `args` with standard output a pipe whose reader has already gone: every write to it
/// fails with a broken pipe. Returns the exit status and standard error.
fn with_closed_stdout(args: &[&str], cwd: &Path) -> (Option<i32>, String) {
    let mut child =
        bin().args(args).current_dir(cwd).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = setup(&["iris.csv"], "");
    let cases: [&[&str]; 6] = [
        &["train", "run.toml"],
        &["train", "run.toml", "--json", "--out", "json"],
        &["summary", "run.toml"],
        &["eval", "run", "--data", "iris.csv"],
        &["predict", "run", "--data", "iris.csv"],
        &["lr-find", "run.toml", "--out", "lr"],
    ];
    for args in cases {
        let (code, err) = with_closed_stdout(args, dir.path());
        assert_eq!((code, err.as_str()), (Some(0), ""), "{args:?}");
    }
    // Training is not cut short by a reader that has gone: the run is complete.
    assert!(dir.path().join("run/model.json").exists() && dir.path().join("json/model.json").exists());
    assert_eq!(read(dir.path().join("run/history.csv")).lines().count(), 5);
    assert!(dir.path().join("lr/lr_finder.csv").exists());
}

#[test]
fn predict_piped_into_a_reader_that_stops_after_one_line() {
    let dir = setup(&["iris.csv"], "");
    ok(tensile(&["train", "run.toml", "--quiet", "--epochs", "1"], dir.path()));
    // More output than a pipe buffers, so predict is still writing when the reader goes.
    let iris = read(dir.path().join("iris.csv"));
    let mut big = iris.clone();
    for _ in 0..100 {
        big.extend(iris.lines().skip(1).map(|l| format!("{l}\n")));
    }
    std::fs::write(dir.path().join("big.csv"), big).unwrap();
    let mut child = bin()
        .args(["predict", "run", "--data", "big.csv"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "prediction,p_0,p_1,p_2\n");
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!((o.status.code(), err.as_ref()), (Some(0), ""));
}
