//! `Dropout`: inverted dropout, as PyTorch's `nn.Dropout`. In training mode each element is
//! zeroed with probability `p` and the survivors are scaled by `1/(1-p)`, so evaluation (the
//! identity) needs no rescaling. The mask comes from a random stream the layer owns and reports
//! through `Module::visit_rngs`, so a checkpoint can restore it and a resumed run draws the same
//! masks.

use std::sync::Mutex;

use tensile_core::{Rng, Tensor};

use crate::error::{Result, invalid};
use crate::module::{Module, join_name};

/// Dropout's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DropoutConfig {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
}

impl Default for DropoutConfig {
    /// PyTorch's default rate, 0.5.
    fn default() -> Self {
        DropoutConfig { p: 0.5 }
    }
}

/// `[...] -> [...]`: zeroes elements with probability `p` while training, identity otherwise.
/// Starts in training mode, like PyTorch's modules.
pub struct Dropout {
    config: DropoutConfig,
    training: bool,
    rng: Mutex<Rng>,
}

impl Dropout {
    /// A dropout layer whose masks are drawn from a stream forked from `rng` (which advances by
    /// one draw, so layers built one after another from the same `rng` draw different masks).
    pub fn new(config: DropoutConfig, rng: &mut Rng) -> Result<Dropout> {
        // `p = 1` is refused (PyTorch allows it): the survivors' scale 1/(1-p) would be infinite.
        if !(0.0..1.0).contains(&config.p) {
            return invalid("dropout", format!("p = {} must be in [0, 1)", config.p));
        }
        let stream = rng.next_u64();
        Ok(Dropout { config, training: true, rng: Mutex::new(rng.fork(stream)) })
    }
    pub fn config(&self) -> &DropoutConfig {
        &self.config
    }
    pub fn is_training(&self) -> bool {
        self.training
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.config.p;
        if !self.training || p == 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        // One uniform per element in row-major order, so the mask depends only on the stream's
        // state and the shape.
        let mask: Vec<f64> = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            (0..x.elem_count()).map(|_| if rng.next_f64() < p { 0.0 } else { scale }).collect()
        };
        let mask = Tensor::from_vec(mask, x.shape())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        f(&join_name(prefix, "rng"), &self.rng);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn kind(&self) -> &'static str {
        "dropout"
    }
}
