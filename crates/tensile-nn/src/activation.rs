//! Activation functions as layers, with no parameters: `Relu`, `LeakyRelu`, `Gelu`, `Tanh`,
//! `Sigmoid`, `Softmax`, `Silu`. Each calls the tensile-core op of the same name, whose gradient
//! rule sits beside its forward there; defaults are PyTorch's.

use tensile_core::Tensor;

use crate::error::Result;
use crate::module::Module;

macro_rules! stateless {
    ($name:ident, $kind:literal, |$s:ident, $x:ident| $body:expr) => {
        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                let $s = self;
                Ok($body?)
            }
            fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
            fn kind(&self) -> &'static str {
                $kind
            }
        }
    };
}

/// `max(x, 0)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relu;
impl Module for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.relu()?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "relu"
    }
    fn is_relu(&self) -> bool {
        true
    }
}

/// `x` for `x > 0`, else `negative_slope · x` (PyTorch's `nn.LeakyReLU`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    pub negative_slope: f64,
}
impl Default for LeakyRelu {
    /// PyTorch's slope, 0.01.
    fn default() -> Self {
        LeakyRelu { negative_slope: 0.01 }
    }
}
stateless!(LeakyRelu, "leaky_relu", |s, x| x.leaky_relu(s.negative_slope));

/// `x · Φ(x)` (PyTorch's `nn.GELU`); the default is the exact erf form, `approximate: true`
/// selects the tanh approximation (`approximate='tanh'`) used by GPT-2 and BERT.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gelu {
    pub approximate: bool,
}
stateless!(Gelu, "gelu", |s, x| if s.approximate { x.gelu_tanh() } else { x.gelu() });

/// Hyperbolic tangent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tanh;
stateless!(Tanh, "tanh", |_s, x| x.tanh());

/// `1 / (1 + e^-x)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sigmoid;
stateless!(Sigmoid, "sigmoid", |_s, x| x.sigmoid());

/// `x · sigmoid(x)` (PyTorch's `nn.SiLU`, also called swish).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silu;
stateless!(Silu, "silu", |_s, x| x.silu());

/// `exp(x) / sum(exp(x))` along `dim` (negative counts from the back). Unlike PyTorch's
/// `nn.Softmax()`, whose implicit dimension is deprecated, the default is explicit: the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Softmax {
    pub dim: i64,
}
impl Default for Softmax {
    fn default() -> Self {
        Softmax { dim: -1 }
    }
}
stateless!(Softmax, "softmax", |s, x| x.softmax(s.dim));
