//! Fully connected layer: `y = x Wᵀ + b`.

use tensile_core::{DType, Rng, Tensor};

use crate::error::{Result, invalid};
use crate::init;
use crate::module::{Module, join_name};

/// `[..., in] -> [..., out]`, weight `[out, in]`, bias `[out]` (PyTorch's layout, so weights
/// port directly).
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer initialized as PyTorch's `nn.Linear`: weight and bias uniform in
    /// `±1/sqrt(in_features)`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Linear {
        let weight = init::uniform_fan_in(&[out_features, in_features], in_features, DType::F32, rng);
        let bias = bias.then(|| init::uniform_fan_in(&[out_features], in_features, DType::F32, rng));
        Linear { weight: weight.requires_grad(), bias: bias.map(|b| b.requires_grad()) }
    }

    /// A layer from given weight `[out, in]` and optional bias `[out]` (any float dtype).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            return invalid("linear", format!("weight must be [out, in], found shape {}", weight.shape()));
        }
        if let Some(b) = &bias
            && b.dims() != [weight.dims()[0]]
        {
            return invalid("linear", format!("bias shape {} does not match weight {}", b.shape(), weight.shape()));
        }
        Ok(Linear { weight: weight.requires_grad(), bias: bias.map(|b| b.requires_grad()) })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // One op in the graph for the product and the bias.
        Ok(x.linear(&self.weight, self.bias.as_ref())?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join_name(prefix, "bias"), b);
        }
    }
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn forward_relu(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(x.linear_relu(&self.weight, self.bias.as_ref()).map_err(Into::into))
    }
}
