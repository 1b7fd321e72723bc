//! The diagnosis on synthetic histories whose story is known: overfitting, healthy,
//! underfitting, an oscillating learning rate, a divergent run, a plateau.

use std::collections::BTreeMap;

use tensile_train::diagnosis::{Finding, FindingKind, diagnose};
use tensile_train::history::{EpochRecord, Event, EventKind, History, StepRecord};

fn epoch(epoch: usize, train: f64, val: f64, events: Vec<Event>) -> EpochRecord {
    let values: BTreeMap<String, f64> = [("train_loss".to_string(), train), ("val_loss".to_string(), val)].into();
    EpochRecord { epoch, step: epoch as u64 * 100, lr: 1e-3, seconds: 1.0, values, events }
}

fn event(epoch: usize, step: u64, kind: EventKind, message: &str) -> Event {
    Event { step, epoch, kind, message: message.into() }
}

fn history(train: &[f64], val: &[f64]) -> History {
    let epochs = train.iter().zip(val).enumerate().map(|(i, (&t, &v))| epoch(i + 1, t, v, vec![])).collect();
    History { epochs, steps: vec![] }
}

fn kinds(findings: &[Finding]) -> Vec<FindingKind> {
    findings.iter().map(|f| f.kind.clone()).collect()
}

fn find(findings: &[Finding], pred: impl Fn(&FindingKind) -> bool) -> &Finding {
    findings.iter().find(|f| pred(&f.kind)).unwrap_or_else(|| panic!("no such finding in {findings:#?}"))
}

/// Validation loss falls to 0.231 at epoch 11, then rises steadily to 0.410 at epoch 19, while
/// training loss falls geometrically from 0.198 (epoch 11) to 0.052 (epoch 19); early stopping
/// ends the run and restores the weights of epoch 11.
fn overfitting_run() -> History {
    let mut h = History::default();
    for e in 1..=19 {
        let x = e as f64;
        let val = if e <= 11 { 0.231 + 0.05 * (11.0 - x) } else { 0.231 + (0.410 - 0.231) * (x - 11.0) / 8.0 };
        let train = 0.198 * (0.052f64 / 0.198).powf((x - 11.0) / 8.0);
        let events = if e == 19 {
            vec![
                event(19, 1900, EventKind::EarlyStop, "val_loss did not improve for 8 epochs"),
                event(19, 1900, EventKind::BestRestored, "restored the weights of epoch 11"),
            ]
        } else {
            vec![]
        };
        h.epochs.push(epoch(e, train, val, events));
    }
    h
}

#[test]
fn overfitting_names_the_onset_the_numbers_and_the_restored_epoch() {
    let f = diagnose(&overfitting_run(), "val_loss");
    assert_eq!(
        kinds(&f),
        [
            FindingKind::BestEpoch { epoch: 11 },
            FindingKind::EarlyStopped { at_epoch: 19 },
            FindingKind::Overfitting { began_at_epoch: 12 },
        ]
    );
    assert_eq!(
        f[2].message,
        "Overfitting began at epoch 12: validation loss rose from 0.231 to 0.410 over the next 8 epochs while \
         training loss kept falling (0.198 to 0.052); the best weights, from epoch 11, were restored."
    );
    assert_eq!(
        f[0].message,
        "The best val_loss, 0.231, was reached at epoch 11 of 19, and its weights were restored at the end."
    );
    assert_eq!(f[1].message, "Training stopped early after epoch 19: val_loss did not improve for 8 epochs.");
    let evidence: BTreeMap<&str, f64> = f[2].evidence.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(evidence["began_at_epoch"], 12.0);
    assert!((evidence["val_loss_last"] - 0.410).abs() < 1e-12);
}

#[test]
fn overfitting_needs_the_rise_to_last_and_training_loss_to_fall() {
    // A blip: validation loss rises for two epochs, then improves again.
    let train: Vec<f64> = (1..=10).map(|e| 1.0 / e as f64).collect();
    let val = [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.45, 0.4, 0.38, 0.37];
    let f = diagnose(&history(&train, &val), "val_loss");
    assert!(!f.iter().any(|f| matches!(f.kind, FindingKind::Overfitting { .. })), "{f:#?}");
    // Validation loss rises, but so does training loss: not overfitting.
    let train = [1.0, 0.8, 0.7, 0.7, 0.75, 0.8, 0.85];
    let val = [1.0, 0.8, 0.7, 0.72, 0.76, 0.8, 0.86];
    let f = diagnose(&history(&train, &val), "val_loss");
    assert!(!f.iter().any(|f| matches!(f.kind, FindingKind::Overfitting { .. })), "{f:#?}");
}

#[test]
fn healthy_run() {
    let train: Vec<f64> = (1..=10).map(|e| 1.0 / e as f64).collect();
    let val: Vec<f64> = train.iter().map(|t| t + 0.05).collect();
    let f = diagnose(&history(&train, &val), "val_loss");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 10 }, FindingKind::Healthy]);
    assert_eq!(
        f[1].message,
        "Training looks healthy: training loss went from 1.000 to 0.100 and validation loss from 1.050 to 0.150 \
         over 10 epochs, with no sign of overfitting, underfitting, a plateau or instability."
    );
}

#[test]
fn underfitting_run() {
    let train: Vec<f64> = (1..=10).map(|e| 2.30 - 0.01 * e as f64).collect();
    let val: Vec<f64> = (1..=10).map(|e| 2.31 - 0.008 * e as f64).collect();
    let f = diagnose(&history(&train, &val), "val_loss");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 10 }, FindingKind::Underfitting]);
    assert_eq!(
        f[1].message,
        "Underfitting: after 10 epochs training loss is still 2.200 (it started at 2.290) and validation loss at \
         2.230 (from 2.302), both within 10% of where they began; a larger model, a higher learning rate or more \
         epochs may help."
    );
}

#[test]
fn oscillating_epoch_losses_mean_the_learning_rate_is_too_high() {
    let train = [1.0, 1.4, 0.9, 1.5, 0.95, 1.45, 0.9, 1.6];
    let val: Vec<f64> = train.iter().map(|t| t + 0.05).collect();
    let f = diagnose(&history(&train, &val), "val_loss");
    // The lack of progress is explained by the learning rate: no separate plateau finding.
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 3 }, FindingKind::LearningRateTooHigh]);
    assert_eq!(
        f[1].message,
        "The learning rate looks too high: training loss ended at 1.600 in epoch 8, above its 1.000 in epoch 1; \
         training loss rose in 4 of 7 epochs (the largest rise, into epoch 8, from 0.900 to 1.600); try one 3 to \
         10 times lower."
    );
}

#[test]
fn oscillating_step_losses_mean_the_learning_rate_is_too_high() {
    // Epoch means fall smoothly, but within epochs the loss swings between blocks of steps.
    let train: Vec<f64> = (1..=5).map(|e| 1.0 / e as f64).collect();
    let val: Vec<f64> = train.iter().map(|t| t + 0.05).collect();
    let mut h = history(&train, &val);
    h.steps = (1..=200u64)
        .map(|s| StepRecord {
            step: s,
            epoch: (s as usize - 1) / 40 + 1,
            loss: if (s - 1) / 10 % 2 == 0 { 0.5 } else { 1.5 },
            lr: 0.1,
        })
        .collect();
    let f = diagnose(&h, "val_loss");
    let lr = find(&f, |k| *k == FindingKind::LearningRateTooHigh);
    assert!(
        lr.message.contains("averaged over blocks of 10 steps, rose by more than 10% between 10 of 19"),
        "{}",
        lr.message
    );
    // Healthy step noise (no block-to-block swings) is not flagged.
    h.steps
        .iter_mut()
        .for_each(|s| s.loss = 1.0 / (1.0 + s.step as f64 / 40.0) + if s.step % 2 == 0 { 0.2 } else { 0.0 });
    let f = diagnose(&h, "val_loss");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 5 }, FindingKind::Healthy]);
}

#[test]
fn divergent_run_with_events() {
    let mut h = history(&[1.0, 0.8, 0.7, f64::NAN, 0.65, 0.6], &[1.0, 0.85, 0.75, f64::NAN, 0.7, 0.66]);
    h.epochs[3].events = vec![
        event(4, 412, EventKind::NonFiniteLoss, "loss is NaN at step 412"),
        event(4, 412, EventKind::SkippedStep, "skipped step 412"),
        event(4, 413, EventKind::NonFiniteLoss, "loss is inf at step 413"),
        event(4, 413, EventKind::Rollback, "rolled back to step 300"),
        event(4, 413, EventKind::LearningRateChanged, "learning rate 0.001 -> 0.0005"),
    ];
    h.epochs[4].events = vec![event(5, 520, EventKind::NonFiniteGradient, "gradient of fc1.weight is NaN")];
    let f = diagnose(&h, "val_loss");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 6 }, FindingKind::Divergence { first_epoch: 4 }]);
    assert_eq!(
        f[1].message,
        "Training diverged: 2 non-finite losses, 1 non-finite gradient, 1 rollback and 1 skipped step, the first \
         at step 412 (epoch 4); 1 epoch ended with a non-finite loss, and the learning rate was lowered once."
    );
    // Without events, a non-finite epoch loss alone is a divergence.
    let h = history(&[1.0, 0.8, f64::INFINITY], &[1.0, 0.8, f64::NAN]);
    let f = diagnose(&h, "val_loss");
    let d = find(&f, |k| matches!(k, FindingKind::Divergence { .. }));
    assert_eq!(d.kind, FindingKind::Divergence { first_epoch: 3 });
    assert_eq!(d.message, "Training diverged: the loss was not finite in 1 epoch, the first being epoch 3.");
}

#[test]
fn plateau_of_a_monitored_score() {
    let train: Vec<f64> = (1..=12).map(|e| 1.0 / e as f64).collect();
    let val: Vec<f64> = train.iter().map(|t| t + 0.05).collect();
    let mut h = history(&train, &val);
    let acc = [0.5, 0.7, 0.8, 0.85, 0.9, 0.91, 0.912, 0.9125, 0.912, 0.911, 0.9121, 0.9124];
    for (e, a) in h.epochs.iter_mut().zip(acc) {
        e.values.insert("val_accuracy".into(), a);
    }
    let f = diagnose(&h, "val_accuracy");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 8 }, FindingKind::Plateau { since_epoch: 7 }]);
    assert_eq!(
        f[1].message,
        "The monitored val_accuracy has plateaued: its best over the last 5 epochs (0.912) is no more than 0.1% \
         better than its best before them (0.912, at epoch 7); lowering the learning rate or stopping earlier \
         would save time."
    );
}

#[test]
fn short_and_empty_histories() {
    assert!(diagnose(&History::default(), "val_loss").is_empty());
    let f = diagnose(&history(&[1.0], &[1.1]), "val_loss");
    assert_eq!(kinds(&f), [FindingKind::BestEpoch { epoch: 1 }]);
    // The same history always gives the same findings.
    assert_eq!(diagnose(&overfitting_run(), "val_loss"), diagnose(&overfitting_run(), "val_loss"));
}
