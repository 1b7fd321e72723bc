//! The walking skeleton end to end: an MLP trained on the built-in digits reaches the accuracy
//! users are promised, and training is bit-for-bit reproducible across runs and thread counts.

mod common;

use tensile_train::{EpochRecord, Trainer, TrainerConfig, TrainingData};

type TrainConfig = TrainerConfig;

/// Trains and returns every parameter's bits plus the history.
fn train(config: &TrainConfig) -> (Vec<(String, Vec<u32>)>, Vec<EpochRecord>) {
    let mut model = common::mlp(128, 0.0, &mut config.init_rng());
    let data = tensile_data::digits();
    let mut trainer = Trainer::new(config.clone()).unwrap();
    let result = trainer.fit(&mut model, &TrainingData { train: &data, validation: None, test: None }).unwrap();
    (common::weight_bits(&model), result.history.epochs)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn digits_mlp_reaches_95_percent_validation_accuracy() {
    let (_, history) = train(&TrainConfig::default());
    let last = history.last().unwrap();
    let acc = last.values["val_accuracy"];
    assert!(acc >= 0.95, "validation accuracy {acc:.4}");
    assert!(
        last.values["train_loss"] < history[0].values["train_loss"] / 5.0,
        "training loss barely fell: {history:?}"
    );
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_does_not() {
    let config = TrainConfig { epochs: 3, ..Default::default() };
    let (a, ha) = train(&config);
    let (b, hb) = train(&config);
    assert_eq!(a, b);
    assert_eq!(
        ha.iter().map(|r| r.values["val_loss"].to_bits()).collect::<Vec<_>>(),
        hb.iter().map(|r| r.values["val_loss"].to_bits()).collect::<Vec<_>>()
    );
    let (c, _) = train(&TrainConfig { seed: 7, ..config });
    assert_ne!(a, c);
}

#[test]
fn one_and_two_threads_give_identical_weights() {
    // Batch 512 makes the matrix products and reductions large enough to split across threads.
    let config = TrainConfig { epochs: 3, batch_size: 512, ..Default::default() };
    let (one, _) = in_pool(1, || train(&config));
    let (two, _) = in_pool(2, || train(&config));
    assert_eq!(one, two);
}
