//! The walking skeleton end to end: an MLP trained on the built-in digits reaches the accuracy
//! users are promised, and training is bit-for-bit reproducible across runs and thread counts.

use tensile_nn::{Linear, Module, Relu, Sequential, named_parameters};
use tensile_train::{EpochRecord, TrainConfig, fit_classifier};

fn mlp(config: &TrainConfig) -> Sequential {
    let mut rng = config.init_rng();
    Sequential::new().with(Linear::new(64, 128, true, &mut rng)).with(Relu).with(Linear::new(128, 10, true, &mut rng))
}

/// Trains and returns every parameter's bits plus the history.
fn train(config: &TrainConfig) -> (Vec<Vec<u32>>, Vec<EpochRecord>) {
    let mut model = mlp(config);
    let history = fit_classifier(&mut model, &tensile_data::digits(), config, |_| {}).unwrap();
    let bits = named_parameters(&model as &dyn Module)
        .iter()
        .map(|(_, t)| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect();
    (bits, history)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn digits_mlp_reaches_95_percent_validation_accuracy() {
    let (_, history) = train(&TrainConfig::default());
    let last = history.last().unwrap();
    assert!(last.val_accuracy >= 0.95, "validation accuracy {:.4}", last.val_accuracy);
    assert!(last.train_loss < history[0].train_loss / 5.0, "training loss barely fell: {history:?}");
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_does_not() {
    let config = TrainConfig { epochs: 3, ..Default::default() };
    let (a, ha) = train(&config);
    let (b, hb) = train(&config);
    assert_eq!(a, b);
    assert_eq!(
        ha.iter().map(|r| r.val_loss.to_bits()).collect::<Vec<_>>(),
        hb.iter().map(|r| r.val_loss.to_bits()).collect::<Vec<_>>()
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
