//! The usual model families, built from specs and trained by the trainer on the built-in digits,
//! reach the accuracy users expect: a small CNN on the 8x8 images (reshaped to 1x8x8) and a GRU
//! reading each image row by row as a sequence of 8 steps.

use tensile_nn::ModelSpec;
use tensile_train::{Trainer, TrainerConfig, TrainingData};

fn train(spec_json: &str, config: TrainerConfig) -> f64 {
    let spec: ModelSpec = serde_json::from_str(spec_json).unwrap();
    let data = tensile_data::digits();
    let (mut model, out) = spec.build(&[64], &mut config.init_rng()).unwrap();
    assert_eq!(out, vec![10]);
    let mut trainer = Trainer::new(config).unwrap();
    let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
    let (best_epoch, _) = result.best.unwrap();
    result.history.epochs.iter().find(|r| r.epoch == best_epoch).unwrap().values["val_accuracy"]
}

#[test]
fn a_small_cnn_reaches_97_percent_on_digits() {
    let acc = train(
        r#"{"layers": [
            {"type": "reshape", "shape": [1, 8, 8]},
            {"type": "conv2d", "channels": 16, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2},
            {"type": "conv2d", "channels": 32, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "units": 64},
            {"type": "relu"},
            {"type": "linear", "units": 10}
        ]}"#,
        TrainerConfig { epochs: 30, ..Default::default() },
    );
    assert!(acc >= 0.97, "CNN validation accuracy {acc:.4}");
}

#[test]
fn a_gru_reading_rows_as_a_sequence_learns_above_90_percent() {
    let acc = train(
        r#"{"layers": [
            {"type": "reshape", "shape": [8, 8]},
            {"type": "gru", "hidden": 64},
            {"type": "linear", "units": 10}
        ]}"#,
        TrainerConfig { epochs: 15, ..Default::default() },
    );
    assert!(acc > 0.90, "GRU validation accuracy {acc:.4}");
}
