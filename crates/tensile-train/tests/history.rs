//! The history and the files written from it: `history.csv`, `steps.csv`, the JSON a
//! checkpoint stores, and the curve plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tensile_train::history::{EpochRecord, Event, EventKind, History, Mode, StepRecord};
use tensile_train::plot::{write_curves, write_lr_finder_plot};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tensile-history-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn epoch(epoch: usize, step: u64, lr: f64, seconds: f64, values: &[(&str, f64)], events: Vec<Event>) -> EpochRecord {
    let values: BTreeMap<String, f64> = values.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    EpochRecord { epoch, step, lr, seconds, values, events }
}

fn event(step: u64, epoch: usize, kind: EventKind, message: &str) -> Event {
    Event { step, epoch, kind, message: message.into() }
}

fn small() -> History {
    History {
        epochs: vec![
            epoch(1, 2, 0.1, 1.5, &[("train_loss", 0.9), ("val_loss", 1.0)], vec![]),
            epoch(
                2,
                4,
                0.05,
                1.25,
                &[("train_loss", 0.5), ("val_loss", 0.75), ("val_accuracy", 0.8)],
                vec![
                    event(3, 2, EventKind::LearningRateChanged, "learning rate 0.1 -> 0.05"),
                    event(4, 2, EventKind::CheckpointSaved, "checkpoint saved, step 4"),
                ],
            ),
        ],
        steps: vec![
            StepRecord { step: 1, epoch: 1, loss: 1.25, lr: 0.1 },
            StepRecord { step: 2, epoch: 1, loss: f64::NAN, lr: 0.1 },
            StepRecord { step: 3, epoch: 2, loss: 0.5, lr: 1e-7 },
            StepRecord { step: 4, epoch: 2, loss: f64::INFINITY, lr: 0.05 },
        ],
    }
}

#[test]
fn csv_files_have_exact_contents_and_no_temporary_file_remains() {
    let dir = scratch("csv");
    small().write_csv(&dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("history.csv")).unwrap(),
        "epoch,step,lr,seconds,train_loss,val_accuracy,val_loss,events\n\
         1,2,0.1,1.5,0.9,,1,\n\
         2,4,0.05,1.25,0.5,0.8,0.75,\"learning rate 0.1 -> 0.05; checkpoint saved, step 4\"\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("steps.csv")).unwrap(),
        "step,epoch,loss,lr\n1,1,1.25,0.1\n2,1,NaN,0.1\n3,2,0.5,1e-7\n4,2,inf,0.05\n"
    );
    assert_eq!(files(&dir), ["history.csv", "steps.csv"]);
    // Writing again replaces the files whole.
    History::default().write_csv(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("history.csv")).unwrap(), "epoch,step,lr,seconds,events\n");
    assert_eq!(files(&dir), ["history.csv", "steps.csv"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writing_into_a_missing_directory_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("tensile-history-test-{}-missing/sub", std::process::id()));
    let err = small().write_csv(&dir).unwrap_err().to_string();
    assert!(err.contains("history.csv"), "{err}");
}

#[test]
fn values_and_best_skip_non_finite_and_prefer_the_earliest_tie() {
    let h = History {
        epochs: vec![
            epoch(1, 1, 0.1, 1.0, &[("val_loss", f64::NAN), ("val_accuracy", 0.5)], vec![]),
            epoch(2, 2, 0.1, 1.0, &[("val_loss", 0.5), ("val_accuracy", 0.9)], vec![]),
            epoch(3, 3, 0.1, 1.0, &[("val_loss", 0.5), ("val_accuracy", 0.9)], vec![]),
            epoch(4, 4, 0.1, 1.0, &[("val_loss", 0.7)], vec![]),
        ],
        steps: vec![],
    };
    let v = h.values("val_loss");
    assert_eq!(v.len(), 4);
    assert!(v[0].1.is_nan());
    assert_eq!(h.values("val_accuracy"), vec![(1, 0.5), (2, 0.9), (3, 0.9)]);
    assert_eq!(h.best("val_loss", Mode::Min), Some((2, 0.5)));
    assert_eq!(h.best("val_accuracy", Mode::Max), Some((2, 0.9)));
    assert_eq!(h.best("val_f1", Mode::Max), None);
    assert_eq!(h.keys(), ["val_accuracy", "val_loss"]);
}

#[test]
fn mode_is_inferred_from_the_metric_name() {
    for name in [
        "val_accuracy",
        "accuracy",
        "val_f1",
        "precision",
        "val_recall",
        "val_r2",
        "top5_accuracy",
        "val_top3",
        "val_acc",
    ] {
        assert_eq!(Mode::for_metric(name), Mode::Max, "{name}");
    }
    for name in
        ["val_loss", "train_loss", "val_rmse", "mae", "val_mse", "perplexity", "val_accuracy_loss", "error_rate"]
    {
        assert_eq!(Mode::for_metric(name), Mode::Min, "{name}");
    }
}

#[test]
fn json_round_trip_keeps_non_finite_values() {
    let h = small();
    let json = serde_json::to_string(&h).unwrap();
    assert!(json.contains("\"NaN\"") && json.contains("\"inf\""), "{json}");
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert!(back.steps[1].loss.is_nan());
    assert_eq!(back.steps[3].loss, f64::INFINITY);
    assert_eq!(back.epochs, h.epochs);
    // What plain serde_json writes for NaN (null) is read back as NaN too.
    let s: StepRecord = serde_json::from_str(r#"{"step":1,"epoch":1,"loss":null,"lr":0.1}"#).unwrap();
    assert!(s.loss.is_nan());
}

fn assert_plots(dir: &Path, stem: &str, svg_must_contain: &[&str]) {
    let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    assert!(png.len() > 1000, "{stem}.png is only {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
    for text in svg_must_contain {
        assert!(svg.contains(text), "{stem}.svg lacks {text:?}");
    }
}

fn curve(n: usize) -> History {
    let epochs = (1..=n)
        .map(|e| {
            let x = e as f64;
            epoch(
                e,
                e as u64 * 10,
                1e-3,
                0.5,
                &[("train_loss", 1.0 / x), ("val_loss", 1.0 / x + 0.01 * x), ("val_accuracy", 1.0 - 0.5 / x)],
                vec![],
            )
        })
        .collect();
    History { epochs, steps: vec![] }
}

#[test]
fn curves_are_written_with_both_panels_legend_and_axis_labels() {
    let dir = scratch("curves");
    write_curves(&curve(15), "val_accuracy", &dir).unwrap();
    assert_plots(&dir, "curves", &["epoch", "loss", "val_accuracy", "train_loss", "val_loss", "best val_accuracy"]);
    assert_eq!(files(&dir), ["curves.png", "curves.svg"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn curves_work_with_one_epoch_and_with_non_finite_values() {
    let dir = scratch("curves-edge");
    write_curves(&curve(1), "val_loss", &dir).unwrap();
    assert_plots(&dir, "curves", &["epoch", "best val_loss: "]);

    let mut h = curve(6);
    h.epochs[2].values.insert("train_loss".into(), f64::NAN);
    h.epochs[3].values.insert("val_loss".into(), f64::INFINITY);
    h.epochs[4].values.insert("val_accuracy".into(), f64::NEG_INFINITY);
    write_curves(&h, "val_accuracy", &dir).unwrap();
    assert_plots(&dir, "curves", &["epoch", "val_accuracy"]);

    // Nothing finite at all, and a monitor the history lacks: still a (mostly empty) plot.
    let mut h = curve(3);
    for e in &mut h.epochs {
        e.values.values_mut().for_each(|v| *v = f64::NAN);
    }
    write_curves(&h, "val_f1", &dir).unwrap();
    write_curves(&History::default(), "val_loss", &dir).unwrap();
    assert_plots(&dir, "curves", &["epoch"]);
    assert_eq!(files(&dir), ["curves.png", "curves.svg"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lr_finder_plot_has_a_log_axis_and_the_suggestion() {
    let dir = scratch("lr-finder");
    let lrs: Vec<f64> = (0..60).map(|i| 1e-6 * 10f64.powf(i as f64 / 10.0)).collect();
    let losses: Vec<f64> = lrs
        .iter()
        .map(|&lr| if lr < 1e-2 { 2.3 - 0.2 * (lr / 1e-6).log10() } else { 1.5 + (lr * 100.0).powi(2) })
        .collect();
    write_lr_finder_plot(&lrs, &losses, Some(3e-3), &dir).unwrap();
    assert_plots(&dir, "lr_finder", &["learning rate (log scale)", "loss", "suggested lr: 3.00e-3"]);
    write_lr_finder_plot(&[], &[], None, &dir).unwrap();
    write_lr_finder_plot(&[1e-3], &[f64::NAN], Some(f64::NAN), &dir).unwrap();
    assert_eq!(files(&dir), ["lr_finder.png", "lr_finder.svg"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
