//! The trainer's promises: early stopping restores the best epoch's exact weights; NaN never
//! silently continues; a run directory gets its history; bad settings are refused by name.

mod common;

use std::sync::{Arc, Mutex};

use tensile_data::Dataset;
use tensile_nn::optim::SgdConfig;
use tensile_train::{
    Callback, Context, DivergenceConfig, EarlyStoppingConfig, EpochRecord, EventKind, FindingKind, OptimizerConfig,
    StopCondition, StopReason, Trainer, TrainerConfig, TrainingData,
};

type Snapshots = Arc<Mutex<Vec<(usize, Vec<(String, Vec<u32>)>)>>>;

/// Records the model's weights at every evaluation.
struct RecordWeights(Snapshots);

impl Callback for RecordWeights {
    fn name(&self) -> &str {
        "record_weights"
    }
    fn on_evaluation(&mut self, ctx: &mut Context, r: &mut EpochRecord) -> tensile_train::Result<()> {
        self.0.lock().unwrap().push((r.epoch, common::weight_bits(ctx.model)));
        Ok(())
    }
}

/// A few rows of digits: a large model memorizes them and validation loss soon rises.
fn small_digits(rows: usize) -> Dataset {
    let all = tensile_data::digits();
    all.subset(&(0..rows).collect::<Vec<_>>())
}

#[test]
fn early_stopping_on_an_overfitting_run_restores_the_best_epochs_exact_weights() {
    let data = small_digits(120);
    let config = TrainerConfig {
        epochs: 200,
        batch_size: 16,
        validation_split: 0.5,
        optimizer: OptimizerConfig::Adam(tensile_nn::AdamConfig { lr: 3e-3, ..Default::default() }),
        early_stopping: Some(EarlyStoppingConfig {
            conditions: vec![StopCondition { patience: 8, ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut model = common::mlp(512, 0.0, &mut config.init_rng());
    let snapshots: Snapshots = Default::default();
    let mut trainer = Trainer::new(config).unwrap().callback(RecordWeights(snapshots.clone()));
    let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();

    let epochs = result.history.epochs.len();
    assert!(epochs < 200, "training should have stopped early");
    let StopReason::Callback(why) = &result.stop else { panic!("stopped for {:?}", result.stop) };
    assert!(why.contains("val_loss did not improve"), "{why}");
    let (best_epoch, best_loss) = result.best.unwrap();
    assert_eq!(epochs, best_epoch + 8, "patience 8 after the best epoch");
    let min_loss = result.history.epochs.iter().map(|r| r.values["val_loss"]).fold(f64::INFINITY, f64::min);
    assert_eq!(best_loss, min_loss);
    let at_best = snapshots.lock().unwrap().iter().find(|(e, _)| *e == best_epoch).unwrap().1.clone();
    assert_eq!(common::weight_bits(&model), at_best, "restored weights are not the best epoch's");
    let last = result.history.epochs.last().unwrap();
    assert!(last.events.iter().any(|e| e.kind == EventKind::BestRestored), "{:?}", last.events);
    let onset = result.diagnosis.iter().find_map(|f| match f.kind {
        FindingKind::Overfitting { began_at_epoch } => Some((began_at_epoch, f.message.clone())),
        _ => None,
    });
    let (onset, message) = onset.unwrap_or_else(|| panic!("no overfitting finding in {:?}", result.diagnosis));
    assert!(onset.abs_diff(best_epoch) <= 2, "overfitting began at {onset}, best epoch {best_epoch}: {message}");
    assert!(message.contains(&format!("epoch {onset}")), "{message}");
}

#[test]
fn a_learning_rate_that_produces_nan_triggers_rollback_and_a_lower_rate_and_the_run_finishes() {
    let data = tensile_data::digits();
    let config = TrainerConfig {
        epochs: 4,
        optimizer: OptimizerConfig::Sgd(SgdConfig { lr: 1e30, ..Default::default() }),
        divergence: DivergenceConfig { lr_factor: 1e-31, max_bad_steps: 2, ..Default::default() },
        ..Default::default()
    };
    let mut model = common::mlp(64, 0.0, &mut config.init_rng());
    let mut trainer = Trainer::new(config).unwrap();
    let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
    let kinds: Vec<EventKind> = result.history.events().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::NonFiniteLoss) || kinds.contains(&EventKind::NonFiniteGradient), "{kinds:?}");
    assert!(kinds.contains(&EventKind::SkippedStep), "{kinds:?}");
    assert!(kinds.contains(&EventKind::Rollback), "{kinds:?}");
    for (name, bits) in common::weight_bits(&model) {
        assert!(bits.iter().all(|b| f32::from_bits(*b).is_finite()), "{name} has non-finite weights");
    }
    let last = result.history.epochs.last().unwrap();
    assert!(last.lr < 1.0, "learning rate was not lowered: {}", last.lr);
    assert!(last.values["val_accuracy"] > 0.5, "{:?}", last.values);
}

#[test]
fn the_stop_policy_ends_the_run_with_a_clear_error() {
    let data = tensile_data::digits();
    let config = TrainerConfig {
        epochs: 2,
        optimizer: OptimizerConfig::Sgd(SgdConfig { lr: 1e30, ..Default::default() }),
        divergence: DivergenceConfig { policy: tensile_train::DivergencePolicy::Stop, ..Default::default() },
        ..Default::default()
    };
    let mut model = common::mlp(64, 0.0, &mut config.init_rng());
    let err = Trainer::new(config)
        .unwrap()
        .fit(&mut model, &TrainingData { train: &data, validation: None, test: None })
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN or infinite"), "{err}");
}

#[test]
fn bad_settings_are_refused_naming_the_key() {
    for (config, key) in [
        (TrainerConfig { batch_size: 0, ..Default::default() }, "batch_size"),
        (TrainerConfig { validation_split: 1.5, ..Default::default() }, "validation_split"),
        (TrainerConfig { accumulate_batches: 0, ..Default::default() }, "accumulate_batches"),
    ] {
        let err = Trainer::new(config).err().unwrap().to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn a_run_directory_gets_history_and_steps_and_a_test_set_is_scored_with_the_best_weights() {
    let dir = common::temp_dir("rundir");
    let data = tensile_data::digits();
    let (train, test) = (data.subset(&(0..1500).collect::<Vec<_>>()), data.subset(&(1500..1797).collect::<Vec<_>>()));
    let config = TrainerConfig { epochs: 8, ..Default::default() };
    let mut model = common::mlp(64, 0.0, &mut config.init_rng());
    let result = Trainer::new(config)
        .unwrap()
        .run_dir(&dir)
        .fit(&mut model, &TrainingData { train: &train, validation: None, test: Some(&test) })
        .unwrap();
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 9, "{history}");
    assert!(history.lines().next().unwrap().contains("val_accuracy"));
    assert!(dir.join("steps.csv").exists());
    let provenance = std::fs::read_to_string(dir.join("provenance.json")).unwrap();
    assert!(provenance.contains("data_sha256") && provenance.contains("\"seed\": 42"), "{provenance}");
    for curves in ["curves.png", "curves.svg"] {
        assert!(std::fs::metadata(dir.join(curves)).unwrap().len() > 1000, "{curves}");
    }
    assert!(!tensile_train::checkpoint::list(&dir.join("checkpoints")).unwrap().is_empty());
    // The best weights stand alone too, and they are the ones the model ends with.
    let best = common::mlp(64, 0.0, &mut tensile_core::Rng::seed(9));
    tensile_nn::load_weights(&best, &dir.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(common::weight_bits(&best), common::weight_bits(&model));
    let test_values = result.test.unwrap();
    assert!(test_values["test_accuracy"] > 0.85, "{test_values:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The share of validation rows predicted as class 0: a user-defined metric.
struct ShareOfZero;

impl tensile_train::Metric for ShareOfZero {
    fn name(&self) -> String {
        "share_zero".into()
    }
    fn mode(&self) -> tensile_train::Mode {
        tensile_train::Mode::Max
    }
    fn compute(&self, out: &tensile_train::Outputs) -> f64 {
        let tensile_train::Outputs::Classification { logits, n_classes, .. } = out else { return f64::NAN };
        let preds = tensile_train::metrics::predictions(logits, *n_classes);
        preds.iter().filter(|&&p| p == 0).count() as f64 / preds.len() as f64
    }
}

#[test]
fn custom_metrics_are_recorded_and_step_based_evaluation_and_max_steps_are_honoured() {
    let data = tensile_data::digits();
    let config = TrainerConfig {
        epochs: 50,
        max_steps: Some(70),
        eval_every_steps: Some(20),
        monitor: "val_share_zero".into(),
        ..Default::default()
    };
    let mut model = common::mlp(32, 0.0, &mut config.init_rng());
    let result = Trainer::new(config)
        .unwrap()
        .metric(ShareOfZero)
        .fit(&mut model, &TrainingData { train: &data, validation: None, test: None })
        .unwrap();
    assert_eq!(result.stop, StopReason::MaxSteps);
    let steps: Vec<u64> = result.history.epochs.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![20, 40, 60]);
    assert_eq!(result.history.steps.len(), 70);
    let share = result.history.epochs[2].values["val_share_zero"];
    assert!((0.0..=1.0).contains(&share), "{share}");
    assert!(result.best.is_some());
}
