//! What the trainer does differently for classification and regression: how a batch becomes
//! tensors, which loss is used, and how outputs are collected for metrics.
//!
//! Classification: `x [B, D]` f32, targets u32 `[B]`, softmax cross-entropy on logits `[B, C]`.
//! Regression: targets f32 `[B, 1]`, mean squared error on predictions `[B, 1]`.

use tensile_core::Tensor;
use tensile_data::{Dataset, Targets};
use tensile_nn::{cross_entropy, mse_loss};

use crate::error::{Error, Result};
use crate::metrics::{Outputs, Task};

/// The task a dataset's targets call for.
pub fn task_of(ds: &Dataset) -> Result<Task> {
    Ok(match ds.targets() {
        Targets::Classes { class_names, .. } => Task::Classification { n_classes: class_names.len() },
        Targets::Values(_) => Task::Regression,
    })
}

/// Refuses a validation or test set whose targets or width do not match the training task.
pub fn check_compatible(task: &Task, train_features: usize, ds: &Dataset, what: &'static str) -> Result<()> {
    if ds.n_features() != train_features {
        return Err(Error::Config {
            key: what,
            msg: format!("has {} features, the training data has {train_features}", ds.n_features()),
        });
    }
    match (task, task_of(ds)?) {
        (Task::Classification { n_classes }, Task::Classification { n_classes: m }) if m <= *n_classes => Ok(()),
        (Task::Regression, Task::Regression) => Ok(()),
        (t, u) => Err(Error::Config { key: what, msg: format!("targets are {u:?}, the training data's are {t:?}") }),
    }
}

/// Copies `rows` of `ds` into the buffers and wraps them as tensors `(x [B, D], targets)`.
pub fn batch_tensors(
    ds: &Dataset,
    task: &Task,
    rows: &[usize],
    x: &mut Vec<f32>,
    y: &mut Vec<f32>,
) -> Result<(Tensor, Tensor)> {
    let b = rows.len();
    match task {
        Task::Classification { .. } => {
            let mut labels = Vec::with_capacity(b);
            ds.gather(rows, x, &mut labels)?;
            Ok((Tensor::from_slice(x, (b, ds.n_features()))?, Tensor::from_vec(labels, b)?))
        }
        Task::Regression => {
            ds.gather_values(rows, x, y)?;
            Ok((Tensor::from_slice(x, (b, ds.n_features()))?, Tensor::from_slice(y, (b, 1))?))
        }
    }
}

/// The training loss of a batch.
pub fn batch_loss(task: &Task, out: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(match task {
        Task::Classification { .. } => cross_entropy(out, targets)?,
        Task::Regression => mse_loss(out, targets)?,
    })
}

/// Model outputs for `rows` (concatenated in row order) paired with their targets.
pub fn outputs(task: &Task, ds: &Dataset, rows: &[usize], collected: Vec<f32>) -> Result<Outputs> {
    match (task, ds.targets()) {
        (Task::Classification { n_classes }, Targets::Classes { labels, .. }) => {
            Outputs::classification(collected, *n_classes, rows.iter().map(|&r| labels[r]).collect())
        }
        (Task::Regression, Targets::Values(values)) => {
            Outputs::regression(collected, rows.iter().map(|&r| values[r]).collect(), 1)
        }
        _ => Err(Error::Config { key: "task", msg: "the targets do not match the task".into() }),
    }
}
