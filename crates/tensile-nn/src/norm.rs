//! Normalization layers: `BatchNorm1d`, `BatchNorm2d` (per-channel statistics over the batch and
//! spatial positions, with running statistics for evaluation) and `LayerNorm` (statistics over
//! each sample's last dimensions). Names, defaults and update rules follow PyTorch, so
//! `weight`, `bias`, `running_mean` and `running_var` port both ways.
//!
//! Batch norm in training mode normalizes with the batch's biased variance and updates the
//! running statistics with the unbiased one:
//! `running = (1 − momentum)·running + momentum·batch_stat`. Those updates write the buffers in
//! place under `no_grad`, so they never join the graph. PyTorch's `num_batches_tracked` buffer
//! is not kept: it only matters for `momentum=None` (a cumulative average), which is not offered.

use tensile_core::{DType, Tensor, no_grad};

use crate::error::{Result, invalid};
use crate::module::{Module, join_name};

/// Hyperparameters of [`BatchNorm1d`] and [`BatchNorm2d`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormConfig {
    /// `C`, the size of dimension 1 of the input.
    pub num_features: usize,
    pub eps: f64,
    /// Weight of the newest batch in the running statistics, in `[0, 1]`.
    pub momentum: f64,
    /// Learn a per-channel scale `weight` (ones) and shift `bias` (zeros).
    pub affine: bool,
    /// Keep `running_mean` / `running_var` and use them in evaluation mode; without them, batch
    /// statistics are used in both modes.
    pub track_running_stats: bool,
}

impl BatchNormConfig {
    /// PyTorch's defaults: `eps = 1e-5`, `momentum = 0.1`, affine, tracking running statistics.
    pub fn new(num_features: usize) -> Self {
        BatchNormConfig { num_features, eps: 1e-5, momentum: 0.1, affine: true, track_running_stats: true }
    }
}

/// What the two batch norm layers share; they differ only in the input ranks they accept.
struct BatchNorm {
    what: &'static str,
    config: BatchNormConfig,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    /// `(running_mean, running_var)`.
    running: Option<(Tensor, Tensor)>,
    training: bool,
}

impl BatchNorm {
    fn new(what: &'static str, config: BatchNormConfig) -> Result<BatchNorm> {
        let c = config.num_features;
        if c == 0 {
            return invalid(what, "num_features must be at least 1");
        }
        if !config.eps.is_finite() || config.eps <= 0.0 {
            return invalid(what, format!("eps = {} must be positive", config.eps));
        }
        if !(0.0..=1.0).contains(&config.momentum) {
            return invalid(what, format!("momentum = {} must be in [0, 1]", config.momentum));
        }
        let (weight, bias) = if config.affine {
            (Some(Tensor::ones(c, DType::F32).requires_grad()), Some(Tensor::zeros(c, DType::F32).requires_grad()))
        } else {
            (None, None)
        };
        let running = config.track_running_stats.then(|| (Tensor::zeros(c, DType::F32), Tensor::ones(c, DType::F32)));
        Ok(BatchNorm { what, config, weight, bias, running, training: true })
    }

    /// `x [B, C, ...]`, normalized per channel over every dimension but 1.
    fn forward(&self, x: &Tensor, ranks: &[usize], layout: &str) -> Result<Tensor> {
        let c = self.config.num_features;
        if !ranks.contains(&x.rank()) || x.dims()[1] != c {
            return invalid(self.what, format!("expected input {layout} with C = {c}, found shape {}", x.shape()));
        }
        let reduce: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        // Per-channel tensors [C] are viewed as [1, C, 1, ...] to broadcast against x.
        let mut bshape = vec![1; x.rank()];
        bshape[1] = c;
        let per_channel = |t: &Tensor| t.reshape(bshape.clone());

        let use_batch_stats = self.training || self.running.is_none();
        let normalized = if use_batch_stats {
            let n = x.elem_count() / c;
            if n < 2 {
                // As PyTorch: a single value per channel has no variance to normalize by.
                return invalid(
                    self.what,
                    format!("training needs more than one value per channel, input shape is {}", x.shape()),
                );
            }
            let mean = x.mean(&reduce, true)?;
            let centered = x.sub(&mean)?;
            let var = centered.square()?.mean(&reduce, true)?;
            if self.training
                && let Some((rm, rv)) = &self.running
            {
                self.update_running(rm, rv, &mean, &var, n)?;
            }
            centered.div(&var.add_scalar(self.config.eps)?.sqrt()?)?
        } else {
            let (rm, rv) = self.running.as_ref().expect("internal: checked above");
            let inv_std = rv.add_scalar(self.config.eps)?.sqrt()?.recip()?;
            x.sub(&per_channel(rm)?)?.mul(&per_channel(&inv_std)?)?
        };
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => Ok(normalized.mul(&per_channel(w)?)?.add(&per_channel(b)?)?),
            _ => Ok(normalized),
        }
    }

    /// `running = (1 − m)·running + m·batch`, with the variance made unbiased (`· n/(n − 1)`)
    /// as PyTorch does. `mean` and `var` are `[1, C, 1, ...]`.
    fn update_running(&self, rm: &Tensor, rv: &Tensor, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let _guard = no_grad();
        let m = self.config.momentum;
        let c = self.config.num_features;
        let mean = mean.reshape(c)?.to_dtype(rm.dtype())?;
        let var = var.reshape(c)?.to_dtype(rv.dtype())?.mul_scalar(n as f64 / (n - 1) as f64)?;
        rm.assign_(&rm.mul_scalar(1.0 - m)?.add(&mean.mul_scalar(m)?)?)?;
        rv.assign_(&rv.mul_scalar(1.0 - m)?.add(&var.mul_scalar(m)?)?)?;
        Ok(())
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            f(&join_name(prefix, "weight"), w);
            f(&join_name(prefix, "bias"), b);
        }
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some((rm, rv)) = &self.running {
            f(&join_name(prefix, "running_mean"), rm);
            f(&join_name(prefix, "running_var"), rv);
        }
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $ranks:expr, $layout:literal) => {
        $(#[$doc])*
        pub struct $name(BatchNorm);

        impl $name {
            /// Weight ones, bias zeros, running mean zeros, running variance ones; in training
            /// mode.
            pub fn new(config: BatchNormConfig) -> Result<$name> {
                Ok($name(BatchNorm::new($kind, config)?))
            }
            pub fn config(&self) -> &BatchNormConfig {
                &self.0.config
            }
            /// The per-channel scale `[C]` (`None` unless affine).
            pub fn weight(&self) -> Option<&Tensor> {
                self.0.weight.as_ref()
            }
            /// The per-channel shift `[C]` (`None` unless affine).
            pub fn bias(&self) -> Option<&Tensor> {
                self.0.bias.as_ref()
            }
            /// `running_mean [C]` (`None` unless tracking running statistics).
            pub fn running_mean(&self) -> Option<&Tensor> {
                self.0.running.as_ref().map(|r| &r.0)
            }
            /// `running_var [C]` (`None` unless tracking running statistics).
            pub fn running_var(&self) -> Option<&Tensor> {
                self.0.running.as_ref().map(|r| &r.1)
            }
            pub fn is_training(&self) -> bool {
                self.0.training
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.0.forward(x, &$ranks, $layout)
            }
            fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit_params(prefix, f)
            }
            fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit_buffers(prefix, f)
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn kind(&self) -> &'static str {
                $kind
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalization of `[B, C]` or `[B, C, L]` (PyTorch's `nn.BatchNorm1d`).
    BatchNorm1d, "batch_norm1d", [2, 3], "[B, C] or [B, C, L]"
);
batch_norm_layer!(
    /// Batch normalization of `[B, C, H, W]` (PyTorch's `nn.BatchNorm2d`).
    BatchNorm2d, "batch_norm2d", [4], "[B, C, H, W]"
);

/// Hyperparameters of [`LayerNorm`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormConfig {
    /// The trailing dimensions normalized over (`[D]` for features of size D).
    pub normalized_shape: Vec<usize>,
    pub eps: f64,
    /// Learn an elementwise scale `weight` (ones) of `normalized_shape`.
    pub elementwise_affine: bool,
    /// With `elementwise_affine`, also learn a shift `bias` (zeros).
    pub bias: bool,
}

impl LayerNormConfig {
    /// PyTorch's defaults: `eps = 1e-5`, with weight and bias.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNormConfig { normalized_shape: normalized_shape.to_vec(), eps: 1e-5, elementwise_affine: true, bias: true }
    }
}

/// `[..., normalized_shape] -> same shape`: each sample's last dimensions scaled to mean 0 and
/// (biased) variance 1, then `· weight + bias` (PyTorch's `nn.LayerNorm`). No running state, so
/// training and evaluation behave the same.
pub struct LayerNorm {
    config: LayerNormConfig,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
}

impl LayerNorm {
    /// Weight ones and bias zeros of `normalized_shape`.
    pub fn new(config: LayerNormConfig) -> Result<LayerNorm> {
        if config.normalized_shape.is_empty() || config.normalized_shape.contains(&0) {
            return invalid(
                "layer_norm",
                format!("normalized_shape {:?} must be non-empty with sizes of at least 1", config.normalized_shape),
            );
        }
        if !config.eps.is_finite() || config.eps <= 0.0 {
            return invalid("layer_norm", format!("eps = {} must be positive", config.eps));
        }
        let shape = config.normalized_shape.clone();
        let weight = config.elementwise_affine.then(|| Tensor::ones(shape.clone(), DType::F32).requires_grad());
        let bias = (config.elementwise_affine && config.bias).then(|| Tensor::zeros(shape, DType::F32).requires_grad());
        Ok(LayerNorm { config, weight, bias })
    }
    pub fn config(&self) -> &LayerNormConfig {
        &self.config
    }
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ns = &self.config.normalized_shape;
        if x.rank() < ns.len() || &x.dims()[x.rank() - ns.len()..] != ns.as_slice() {
            return invalid("layer_norm", format!("expected input [..., {ns:?}], found shape {}", x.shape()));
        }
        Ok(x.layer_norm(ns.len(), self.weight.as_ref(), self.bias.as_ref(), self.config.eps)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        if let Some(w) = &self.weight {
            f(&join_name(prefix, "weight"), w);
        }
        if let Some(b) = &self.bias {
            f(&join_name(prefix, "bias"), b);
        }
    }
    fn kind(&self) -> &'static str {
        "layer_norm"
    }
}
