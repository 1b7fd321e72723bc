//! Unit tests of the report: page sections per task, escaping, no outside resources, gaps for
//! non-finite values, the history.csv parser and evaluation.json.

use super::chart::{nice_step, tick};
use super::*;
use crate::history::{Event, EventKind, History};

fn history(values: &[(&str, &[f64])]) -> Vec<EpochRow> {
    let n = values[0].1.len();
    (0..n)
        .map(|i| EpochRow {
            epoch: i + 1,
            step: 4 * (i as u64 + 1),
            lr: 1e-3,
            seconds: 0.5,
            values: values.iter().map(|(k, v)| (k.to_string(), v[i])).collect(),
            events: Vec::new(),
        })
        .collect()
}

fn finding(title: &str, problem: bool, message: &str) -> FindingRow {
    FindingRow { title: title.into(), problem, message: message.into(), evidence: vec![("epoch".into(), 3.0)] }
}

fn classification_report(class_names: &[&str]) -> Report {
    let names: Vec<String> = class_names.iter().map(|s| s.to_string()).collect();
    // 3 samples of class 0 (one mistaken for 1), 2 of class 1.
    let logits = vec![2.0, 0.0, 3.0, 1.0, 0.0, 1.0, 0.0, 4.0, 1.0, 5.0];
    let out = Outputs::classification(logits, 2, vec![0, 0, 0, 1, 1]).unwrap();
    let held_out = HeldOut::from_outputs("validation", &out, Some(&names));
    let evaluation = RunEvaluation {
        monitor: "val_loss".into(),
        best_epoch: Some(3),
        best_value: Some(0.25),
        best_restored: true,
        stopped: "completed all 4 epochs".into(),
        validation: [("val_loss".to_string(), 0.25), ("val_accuracy".to_string(), 0.8)].into_iter().collect(),
        test: Some([("test_loss".to_string(), 0.3), ("test_accuracy".to_string(), 0.75)].into_iter().collect()),
        held_out,
        diagnosis: vec![
            finding("Best epoch", false, "The best val_loss was at epoch 3."),
            finding("Overfitting", true, "Overfits."),
        ],
    };
    Report {
        title: "iris".into(),
        history: history(&[
            ("train_loss", &[1.0, 0.6, 0.4, 0.3]),
            ("val_loss", &[1.1, 0.5, 0.25, 0.3]),
            ("val_accuracy", &[0.4, 0.6, 0.8, 0.8]),
        ]),
        evaluation,
        config_toml: "[training]\nepochs = 4\n".into(),
        provenance: serde_json::json!({"seed": 7, "rows": 150, "features": 4, "config": {"epochs": 4}, "machine": {"os": "linux"}}),
    }
}

fn regression_report() -> Report {
    let out = Outputs::regression(vec![1.0, 2.0, 4.0], vec![1.0, 3.0, 3.0], 1).unwrap();
    let mut r = classification_report(&["a", "b"]);
    r.evaluation.held_out = HeldOut::from_outputs("test", &out, None);
    r.history = history(&[
        ("train_loss", &[2.0, 1.0]),
        ("val_loss", &[2.5, 1.5]),
        ("val_rmse", &[1.6, 1.2]),
        ("val_r2", &[0.1, 0.4]),
    ]);
    r
}

#[test]
fn esc_escapes_markup_and_quotes() {
    assert_eq!(
        esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
    );
}

#[test]
fn classification_page_has_every_section_a_confusion_matrix_and_per_class_scores() {
    let page = render(&classification_report(&["setosa", "versicolor"]));
    for id in ["summary", "curves", "diagnosis", "evaluation", "epochs", "config", "provenance"] {
        assert!(page.contains(&format!("<section id=\"{id}\">")), "no section {id}");
    }
    assert!(page.contains("<table class=\"confusion\">"));
    assert!(page.contains("<th>setosa</th>") && page.contains("<th>versicolor</th>"));
    // Row "setosa": 2 right, 1 predicted as versicolor; precision of setosa 2/2, recall 2/3.
    assert!(
        page.contains(">2</td><td style=\"background:rgba(220,38,38,0.283)\" title=\"33.3% of the row\">1</td>"),
        "{page}"
    );
    assert!(page.contains("<tr><th>setosa</th><td>1.0000</td><td>0.6667</td><td>0.8000</td><td>3</td></tr>"));
    assert!(page.contains("<th>accuracy</th><td colspan=\"3\">80.00%</td>"));
    assert!(page.contains("Evaluation on the validation set"));
    assert!(!page.contains("RMSE"));
    // Losses and scores are separate charts, with the best epoch marked.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 2);
    assert!(page.contains("class=\"best\""));
    // Validation and test columns of the final metrics.
    assert!(page.contains("<th>validation (epoch 3)</th><th>test</th>"));
    assert!(page.contains("<tr><th>accuracy</th><td>0.8000</td><td>0.7500</td></tr>"));
    assert!(page.contains("<li class=\"problem\"><span class=\"badge\">Overfitting</span>"));
}

#[test]
fn regression_page_shows_errors_instead_of_a_confusion_matrix() {
    let page = render(&regression_report());
    for id in ["summary", "curves", "diagnosis", "evaluation", "epochs", "config", "provenance"] {
        assert!(page.contains(&format!("<section id=\"{id}\">")), "no section {id}");
    }
    assert!(!page.contains("<table class=\"confusion\">"));
    assert!(!page.contains("Per class"));
    assert!(page.contains("Evaluation on the test set"));
    // Errors 0, 1, 1: MAE 2/3, RMSE sqrt(2/3), R² = 1 - 2 / (2/3 · 3 … ) = 1 - 2/2.6667.
    assert!(page.contains("<tr><th>MAE</th><td>0.6667</td>"));
    assert!(page.contains("<tr><th>RMSE</th><td>0.8165</td>"));
    assert!(page.contains("<tr><th>R²</th><td>0.2500</td>"));
    // Loss, scores (r2) and errors (rmse) charts.
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 3);
}

#[test]
fn everything_from_files_is_escaped() {
    let mut r = classification_report(&["<script>alert(1)</script>", "b&b"]);
    r.title = "runs/<i>x</i>".into();
    r.config_toml = "name = \"</pre><script>alert(2)</script>\"\n".into();
    r.provenance = serde_json::json!({"cpu_model": "\"><img src=x onerror=alert(3)>", "<k>": 1});
    r.evaluation.diagnosis = vec![finding("<b>T</b>", true, "loss < 1 & rising")];
    r.evaluation.stopped = "<u>early</u>".into();
    r.history[0].events.push("lr <= 0.1 \"now\"".into());
    for e in &mut r.history {
        e.values.insert("val_<em>".into(), 0.5);
    }
    let page = render(&r);
    for raw in ["<script>alert", "<img", "<i>x", "<b>T", "<u>", "<em>", "<k>", "</pre><script>"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
    assert_eq!(page.matches("<script>").count(), 1, "only the page's own script");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("loss &lt; 1 &amp; rising"));
    assert!(page.contains("b&amp;b"));
    assert!(page.contains("lr &lt;= 0.1 &quot;now&quot;"));
}

#[test]
fn page_loads_nothing_from_elsewhere() {
    let page = render(&classification_report(&["a", "b"]));
    for bad in ["src=", "<link", "@import", "url(", "@font-face", "http://", "https://"] {
        let hits: Vec<&str> = page.matches(bad).collect();
        // The SVG namespace is a name, not a request.
        let allowed = if bad == "http://" { page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count() } else { 0 };
        assert_eq!(hits.len(), allowed, "{bad}");
    }
    assert!(page.contains("data-curves-rendered"));
}

#[test]
fn non_finite_values_leave_gaps_in_the_curves() {
    let mut r = classification_report(&["a", "b"]);
    r.history = history(&[("train_loss", &[1.0, f64::NAN, 0.5, 0.4]), ("val_loss", &[1.0, f64::INFINITY, 0.6, 0.5])]);
    let page = render(&r);
    let paths: Vec<&str> =
        page.split("<path class=\"series\" d=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    assert_eq!(paths.len(), 2);
    for d in paths {
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(!d.contains("NaN") && !d.contains("inf"), "{d}");
    }
    // All values non-finite: a note instead of a chart.
    r.history = history(&[("train_loss", &[f64::NAN, f64::NAN])]);
    assert!(render(&r).contains("No finite values to draw."));
    r.history.clear();
    assert!(render(&r).contains("No epoch was recorded."));
}

#[test]
fn history_csv_round_trips_through_the_parser() {
    let mut h = History::default();
    for (i, (loss, acc)) in [(1.25, Some(0.5)), (f64::NAN, None), (1e-9, Some(1.0))].into_iter().enumerate() {
        let mut values: BTreeMap<String, f64> = [("train_loss".to_string(), loss)].into_iter().collect();
        if let Some(a) = acc {
            values.insert("val_accuracy".into(), a);
        }
        let events = if i == 1 {
            vec![Event {
                step: 2,
                epoch: 2,
                kind: EventKind::Rollback,
                message: "rolled back, \"twice\"; lr lowered".into(),
            }]
        } else {
            Vec::new()
        };
        h.epochs.push(EpochRecord {
            epoch: i + 1,
            step: i as u64 * 3,
            lr: 0.1 / (i + 1) as f64,
            seconds: 0.25,
            values,
            events,
        });
    }
    let text = String::from_utf8(h.history_csv().unwrap()).unwrap();
    let rows = parse_history_csv(&text).unwrap();
    let expected: Vec<EpochRow> = h.epochs.iter().map(EpochRow::from).collect();
    assert_eq!(rows.len(), 3);
    for (a, b) in rows.iter().zip(&expected) {
        assert_eq!((a.epoch, a.step, a.lr, a.seconds, &a.events), (b.epoch, b.step, b.lr, b.seconds, &b.events));
        assert_eq!(a.values.keys().collect::<Vec<_>>(), b.values.keys().collect::<Vec<_>>());
        for (k, v) in &a.values {
            assert!(v.to_bits() == b.values[k].to_bits(), "{k}: {v} vs {}", b.values[k]);
        }
    }
}

#[test]
fn history_csv_errors_name_line_column_and_what_was_expected() {
    let err =
        parse_history_csv("epoch,step,lr,seconds,train_loss,events\n1,4,0.1,0.5,0.9,\n2,8,0.1,0.5,abc,\n").unwrap_err();
    assert_eq!(err, "line 3, column 5 (`train_loss`): found `abc`; expected a number");
    let err = parse_history_csv("epoch,loss\n1,2\n").unwrap_err();
    assert!(err.starts_with("line 1: found the header `epoch,loss`; expected"), "{err}");
    let err = parse_history_csv("epoch,step,lr,seconds,train_loss,events\n1.5,4,0.1,0.5,0.9,\n").unwrap_err();
    assert_eq!(err, "line 2, column 1 (`epoch`): found `1.5`; expected a whole number");
    assert!(parse_history_csv("").unwrap_err().contains("empty"));
    let err = parse_history_csv("epoch,step,lr,seconds,train_loss,events\n1,4,0.1\n").unwrap_err();
    assert_eq!(err, "line 2: found 3 cells; expected 6, one per header column");
}

#[test]
fn evaluation_json_keeps_non_finite_values() {
    let mut ev = regression_report().evaluation;
    ev.best_value = Some(f64::NAN);
    ev.validation.insert("val_loss".into(), f64::INFINITY);
    ev.held_out.loss = f64::NEG_INFINITY;
    ev.diagnosis[0].evidence.push(("val_loss".into(), f64::NAN));
    let dir = std::env::temp_dir().join(format!("tensile-report-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    ev.write(&dir).unwrap();
    let back = RunEvaluation::read(&dir).unwrap();
    assert!(back.best_value.unwrap().is_nan());
    assert_eq!(back.validation["val_loss"], f64::INFINITY);
    assert_eq!(back.held_out.loss, f64::NEG_INFINITY);
    assert!(back.diagnosis[0].evidence[1].1.is_nan());
    assert_eq!(back.held_out.scores, ev.held_out.scores);
    std::fs::write(dir.join(EVALUATION_FILE), "{\"monitor\": 3}").unwrap();
    let err = RunEvaluation::read(&dir).unwrap_err().to_string();
    assert!(err.contains(EVALUATION_FILE) && err.contains("line 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn held_out_rows_are_the_test_set_the_validation_set_or_the_seeded_split() {
    let ds = |n: usize| {
        let targets = tensile_data::Targets::Classes {
            labels: (0..n as u32).map(|i| i % 2).collect(),
            class_names: vec!["a".into(), "b".into()],
        };
        Dataset::new(vec![0.0; n], vec!["x".into()], targets).unwrap()
    };
    let (train, val, test) = (ds(50), ds(7), ds(9));
    let config = TrainerConfig::default();
    let with = |v, t| HeldOutRows::of(&config, &TrainingData { train: &train, validation: v, test: t }).unwrap();
    let h = with(Some(&val), Some(&test));
    assert_eq!((h.set, h.rows.len(), h.dataset.len()), ("test", 9, 9));
    let h = with(Some(&val), None);
    assert_eq!((h.set, h.rows.len()), ("validation", 7));
    let h = with(None, None);
    assert_eq!((h.set, h.rows.len(), h.dataset.len()), ("validation", 10, 50));
    assert_eq!(h.rows, with(None, None).rows, "seeded");
    let (_, expected) =
        train_validation_split(&train, config.validation_split, true, &mut Rng::seed(config.seed).fork(2)).unwrap();
    assert_eq!(h.rows, expected);
}

#[test]
fn mean_loss_is_cross_entropy_or_squared_error() {
    let out = Outputs::classification(vec![0.0, 0.0, 0.0, 0.0], 2, vec![0, 1]).unwrap();
    assert!((mean_loss(&out) - 2f64.ln()).abs() < 1e-12);
    let out = Outputs::regression(vec![1.0, 3.0], vec![2.0, 1.0], 1).unwrap();
    assert_eq!(mean_loss(&out), 2.5);
}

#[test]
fn axis_steps_and_labels_are_round() {
    assert_eq!(nice_step(0.23), 0.5);
    assert_eq!(nice_step(7.0), 10.0);
    assert_eq!(nice_step(0.0), 1.0);
    assert_eq!(tick(0.30000000000000004, 0.1), "0.3");
    assert_eq!(tick(250.0, 50.0), "250");
    assert_eq!(tick(2e-5, 1e-5), "2.0e-5");
}
