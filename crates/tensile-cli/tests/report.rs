//! End-to-end tests of `report.html`: tiny runs trained through the binary, the page rebuilt with
//! `tensile report`, then loaded in a real headless browser (Debian's `chromium`, which
//! `.ci/run` installs) to check that the curves render and that no script fails; and the errors
//! `tensile report` gives for directories that are not runs or hold missing or corrupt files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{ok, tensile};

/// Asserts exit status 1 without a panic and returns stderr.
fn fails(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "stdout:\n{}\nstderr:\n{err}", String::from_utf8_lossy(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A temp dir holding `dataset` and `run.toml`, trained into `run/`.
fn trained(dataset: &str, extra_data: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dataset);
    std::fs::copy(src, dir.path().join(dataset)).expect("copy data");
    let config = format!(
        "[data]\ntrain = \"{dataset}\"\ntarget = \"target\"\n{extra_data}\n\
         [model]\nhidden = [16]\n\n\
         [training]\nepochs = 12\nbatch_size = 16\noptimizer = {{ type = \"adam\", lr = 1e-2 }}\nseed = 3\n\n\
         [output]\ndir = \"run\"\n"
    );
    std::fs::write(dir.path().join("run.toml"), config).expect("write config");
    ok(tensile(&["train", "run.toml", "--quiet"], dir.path()));
    dir
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

/// Debian's chromium, or a failure that says how to install it.
fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test needs a headless browser: Debian's `chromium` (`.ci/run` installs it with \
             `apt-get install -y --no-install-recommends chromium`)"
        )
    })
}

/// Loads `page` in headless chromium and returns the DOM after its scripts ran, and the
/// browser's log.
fn browse(page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("file://{}", std::path::absolute(page).expect("absolute path").display());
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .output()
        .expect("chromium runs");
    let (dom, log) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "chromium failed: {:?}\n{log}", out.status.code());
    (dom, log)
}

/// `(drawn, total)` from the marker the page's script writes on `<body>`.
fn curves_rendered(dom: &str) -> (usize, usize) {
    let key = "data-curves-rendered=\"";
    let start = dom.find(key).unwrap_or_else(|| panic!("the page's script did not run:\n{dom}")) + key.len();
    let value = &dom[start..start + dom[start..].find('"').expect("closing quote")];
    let (a, b) = value.split_once('/').expect("drawn/total");
    (a.parse().expect("a count"), b.parse().expect("a count"))
}

/// Asserts the browser logged no script error and loaded nothing from the network.
fn assert_clean_log(log: &str) {
    for bad in ["Uncaught", "SyntaxError", "TypeError", "ReferenceError", "net::ERR", "Refused to"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(bad)).collect();
        assert!(lines.is_empty(), "the browser logged {bad}:\n{}", lines.join("\n"));
    }
}

#[test]
fn classifier_report_renders_in_a_browser_and_report_rebuilds_it() {
    let dir = trained("iris.csv", "validation_split = 0.2");
    let run = dir.path().join("run");
    let written = std::fs::read_to_string(run.join("report.html")).expect("train writes report.html");

    // The evaluation scored the rows the trainer validated on, with the best weights: its loss
    // and accuracy are the best epoch's validation values.
    let ev = json(&run.join("evaluation.json"));
    let best = ev["best_epoch"].as_u64().expect("a best epoch");
    let history = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = history.lines().nth(best as usize).unwrap().split(',').collect();
    let value = |name: &str| row[header.iter().position(|h| *h == name).unwrap()].parse::<f64>().unwrap();
    let held = &ev["held_out"];
    assert_eq!((held["set"].as_str(), held["rows"].as_u64()), (Some("validation"), Some(30)));
    let loss = held["loss"].as_f64().unwrap();
    assert!((loss - value("val_loss")).abs() < 1e-5 * value("val_loss").max(1.0), "{loss} vs {}", value("val_loss"));
    assert!((held["scores"]["accuracy"].as_f64().unwrap() - value("val_accuracy")).abs() < 1e-12);
    let counts: Vec<u64> =
        held["scores"]["confusion"]["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!((counts.len(), counts.iter().sum::<u64>()), (9, 30));

    // `tensile report` rebuilds the same page from the directory alone.
    std::fs::remove_file(run.join("report.html")).unwrap();
    let out = ok(tensile(&["report", "run"], dir.path()));
    assert!(out.contains("report.html"), "{out}");
    assert_eq!(std::fs::read_to_string(run.join("report.html")).unwrap(), written);
    ok(tensile(&["report", "run", "--out", "copy.html"], dir.path()));
    assert_eq!(std::fs::read_to_string(dir.path().join("copy.html")).unwrap(), written);

    let (dom, log) = browse(&run.join("report.html"));
    assert_clean_log(&log);
    let (drawn, total) = curves_rendered(&dom);
    assert!(total >= 2 && drawn == total, "{drawn} of {total} charts drawn");
    for text in ["Confusion matrix", "Per class", "macro average", "Evaluation on the validation set", "Diagnosis"] {
        assert!(dom.contains(text), "no {text:?} in the page");
    }
}

#[test]
fn regressor_report_shows_errors_on_the_test_set() {
    let dir = trained("diabetes.csv", "test = \"diabetes.csv\"\nvalidation_split = 0.2");
    let run = dir.path().join("run");
    let ev = json(&run.join("evaluation.json"));
    assert_eq!(ev["held_out"]["set"], "test");
    assert_eq!(ev["held_out"]["rows"], 442);
    assert_eq!(ev["held_out"]["scores"]["task"], "regression");
    // The test set's MSE in the target's units is the trainer's test loss.
    let test_loss = ev["test"]["test_loss"].as_f64().unwrap();
    let loss = ev["held_out"]["loss"].as_f64().unwrap();
    assert!((loss - test_loss).abs() < 1e-4 * test_loss, "{loss} vs {test_loss}");

    let (dom, log) = browse(&run.join("report.html"));
    assert_clean_log(&log);
    let (drawn, total) = curves_rendered(&dom);
    assert!(total >= 3 && drawn == total, "{drawn} of {total} charts drawn");
    assert!(dom.contains("Evaluation on the test set") && dom.contains("RMSE") && dom.contains("R²"));
    assert!(!dom.contains("Confusion matrix"));
}

#[test]
fn report_errors_name_the_directory_or_file() {
    let dir = trained("iris.csv", "");
    let cwd = dir.path();
    let err = fails(tensile(&["report", "nowhere"], cwd));
    assert!(err.contains("nowhere is not a directory"), "{err}");
    std::fs::create_dir(cwd.join("empty")).unwrap();
    let err = fails(tensile(&["report", "empty"], cwd));
    assert!(err.contains("empty is not a run directory"), "{err}");

    // Each input, corrupted in turn (then restored), is named with what is wrong.
    let cases = [
        ("config.toml", "[training\nepochs = 3\n", "config.toml is not valid TOML"),
        ("provenance.json", "{\"seed\": 1,", "provenance.json is not valid JSON"),
        ("provenance.json", "[1, 2]", "provenance.json: found an array; expected a JSON object"),
        ("history.csv", "epoch,step\n1,2\n", "history.csv: line 1: found the header `epoch,step`"),
        ("evaluation.json", "{\"monitor\": 1}", "evaluation.json: not a tensile evaluation"),
    ];
    let run = cwd.join("run");
    for (file, text, expected) in cases {
        let path = run.join(file);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, text).unwrap();
        let err = fails(tensile(&["report", "run"], cwd));
        assert!(err.contains(expected), "{file}: {err}");
        std::fs::write(&path, good).unwrap();
    }
    let err = fails(tensile(&["report", "run", "--out", "no/such/dir/page.html"], cwd));
    assert!(err.contains("no/such/dir/page.html"), "{err}");
    std::fs::remove_file(run.join("evaluation.json")).unwrap();
    let err = fails(tensile(&["report", "run"], cwd));
    assert!(err.contains("evaluation.json is missing") && err.contains("--resume"), "{err}");
    // Line and column of bad TOML.
    std::fs::write(run.join("config.toml"), "[training]\nepochs = = 3\n").unwrap();
    std::fs::write(run.join("evaluation.json"), "{}").unwrap();
    let err = fails(tensile(&["report", "run"], cwd));
    assert!(err.contains("config.toml") && err.contains("line 2"), "{err}");
}
