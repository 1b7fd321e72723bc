//! The training loop for classifiers: seeded split, standardization fitted on the training rows,
//! shuffled mini-batches, forward, cross-entropy, backward, optimizer step; then the loss and
//! accuracy over the whole validation set after every epoch.
//!
//! Every random stream derives from `TrainConfig::seed` (initialization is the caller's, from
//! [`TrainConfig::init_rng`]; the split and the batch order are forked here), so the same seed
//! gives the same bits, whatever the thread count.

use std::time::Instant;

use tensile_core::{Rng, Tensor, no_grad};
use tensile_data::{Dataset, Loader, Standardizer, train_validation_split};
use tensile_nn::{Adam, AdamConfig, Module, Optimizer, Sgd, SgdConfig, cross_entropy, named_parameters};

use crate::error::{Error, Result};

/// Which optimizer to train with, and its hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd(SgdConfig),
    Adam(AdamConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

/// Hyperparameters of a run, with defaults that suit small tables.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub validation_fraction: f64,
    pub optimizer: OptimizerConfig,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 20,
            batch_size: 32,
            validation_fraction: 0.2,
            optimizer: OptimizerConfig::default(),
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// The stream model initialization should draw from, derived from the seed.
    pub fn init_rng(&self) -> Rng {
        Rng::seed(self.seed).fork(1)
    }
    fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Config { key: "epochs", msg: "must be at least 1".into() });
        }
        if self.batch_size == 0 {
            return Err(Error::Config { key: "batch_size", msg: "must be at least 1".into() });
        }
        Ok(())
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, weighted by batch size.
    pub train_loss: f64,
    /// Loss over the whole validation set.
    pub val_loss: f64,
    /// Accuracy over the whole validation set, in `[0, 1]`.
    pub val_accuracy: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// Loss and accuracy of a classifier on some rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
}

fn batch_tensors(ds: &Dataset, rows: &[usize], x: &mut Vec<f32>, y: &mut Vec<u32>) -> Result<(Tensor, Tensor)> {
    ds.gather(rows, x, y)?;
    let xt = Tensor::from_slice(x, (rows.len(), ds.n_features()))?;
    let yt = Tensor::from_slice(y, rows.len())?;
    Ok((xt, yt))
}

/// Loss and accuracy of `model` over `rows` of `ds`, in batches, with no graph recorded.
pub fn evaluate(model: &dyn Module, ds: &Dataset, rows: &[usize], batch_size: usize) -> Result<Evaluation> {
    let _guard = no_grad();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    for chunk in rows.chunks(batch_size.max(1)) {
        let (xt, yt) = batch_tensors(ds, chunk, &mut x, &mut y)?;
        let logits = model.forward(&xt)?;
        loss_sum += cross_entropy(&logits, &yt)?.item()? * chunk.len() as f64;
        correct += logits.argmax(1, false)?.count_equal(&yt)?;
    }
    let n = rows.len().max(1) as f64;
    Ok(Evaluation { loss: loss_sum / n, accuracy: correct as f64 / n })
}

/// Trains a classifier on `data` (which must have class targets) and reports each epoch to
/// `on_epoch`. The features are standardized with statistics of the training rows only.
/// Returns the per-epoch history.
pub fn fit_classifier(
    model: &mut dyn Module,
    data: &Dataset,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<Vec<EpochRecord>> {
    config.check()?;
    if data.n_classes().is_none() {
        return Err(Error::Config {
            key: "task",
            msg: "the data has numeric targets; this loop trains classifiers".into(),
        });
    }
    let root = Rng::seed(config.seed);
    let (train_rows, val_rows) = train_validation_split(data, config.validation_fraction, true, &mut root.fork(2))?;
    let scaler = Standardizer::fit(data, &train_rows)?;
    let mut ds = data.clone();
    scaler.transform_in_place(ds.features_mut())?;

    let params = named_parameters(model);
    let mut opt: Box<dyn Optimizer> = match &config.optimizer {
        OptimizerConfig::Sgd(c) => Box::new(Sgd::new(params, c.clone())),
        OptimizerConfig::Adam(c) => Box::new(Adam::new(params, c.clone())),
    };
    let mut loader = Loader::new(train_rows, config.batch_size, true, false, root.fork(3))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut history = Vec::with_capacity(config.epochs);
    for epoch in 1..=config.epochs {
        let start = Instant::now();
        model.set_training(true);
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let order = loader.epoch();
        for rows in &order {
            let (xt, yt) = batch_tensors(&ds, rows, &mut x, &mut y)?;
            let loss = cross_entropy(&model.forward(&xt)?, &yt)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            loss_sum += loss.item()? * rows.len() as f64;
            seen += rows.len();
        }
        model.set_training(false);
        let val = evaluate(model, &ds, &val_rows, config.batch_size.max(256))?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);
    }
    Ok(history)
}
