//! Weight initializers, as in PyTorch's `torch.nn.init`: constants, uniform and normal draws,
//! Xavier/Glorot and Kaiming/He scaling with PyTorch's `calculate_gain`, and the fan sizes they
//! are computed from.
//!
//! Each initializer is a free function that makes a new tensor of a given shape and dtype, and a
//! variant of [`Init`], plain data naming an initializer and its arguments (what a model spec
//! stores, e.g. `init = "kaiming_normal"`), which can also fill an existing parameter in place.
//! Random initializers draw from a caller-supplied seeded [`Rng`] in row-major order (one
//! uniform or one normal per element), so the same seed gives the same weights. Defaults follow
//! PyTorch, so ported models start from the same distributions.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tensile_core::{DType, Rng, Tensor};

use crate::error::{Error, Result, invalid};

/// `U(-bound, bound)` with `bound = 1/sqrt(fan_in)`: PyTorch's default for linear and
/// convolution weights and biases (`kaiming_uniform_(a=√5)` reduces to this bound).
pub fn uniform_fan_in(shape: &[usize], fan_in: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    let bound = if fan_in == 0 { 0.0 } else { 1.0 / (fan_in as f64).sqrt() };
    Tensor::rand_uniform(shape, -bound, bound, dtype, rng)
}

// ---- fans and gains ----------------------------------------------------------------------------

/// `(fan_in, fan_out)` of a weight, exactly as PyTorch's `_calculate_fan_in_and_fan_out`: for
/// `[O, I, k1, k2, ...]` (a linear `[O, I]` or a convolution), `fan_in = I·k1·k2·…` and
/// `fan_out = O·k1·k2·…`. Shapes of rank below 2 have no fans and are refused.
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return invalid(
            "fan_in_and_fan_out",
            format!("fan in and fan out need a shape of at least 2 dimensions [out, in, ...], found {shape:?}"),
        );
    }
    let receptive_field: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive_field, shape[0] * receptive_field))
}

/// Which fan Kaiming initialization scales by: `FanIn` preserves the variance of activations in
/// the forward pass, `FanOut` that of gradients in the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    #[default]
    FanIn,
    FanOut,
}

impl FanMode {
    /// `"fan_in"` or `"fan_out"`, PyTorch's `mode` strings.
    pub fn from_name(name: &str) -> Result<FanMode> {
        match name {
            "fan_in" => Ok(FanMode::FanIn),
            "fan_out" => Ok(FanMode::FanOut),
            _ => invalid("fan mode", format!("unknown mode '{name}' (expected fan_in or fan_out)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
        }
    }
}

/// The nonlinearity after a layer, which sets the gain of [`calculate_gain`]. PyTorch's names
/// `linear`, `identity` and the `conv*` family all have gain 1 and parse to `Linear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinearity {
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu,
    Selu,
}

impl Nonlinearity {
    /// PyTorch's `nonlinearity` strings (`relu`, `leaky_relu`, `tanh`, `conv2d`, …).
    pub fn from_name(name: &str) -> Result<Nonlinearity> {
        Ok(match name {
            "linear" | "identity" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d" | "conv_transpose2d"
            | "conv_transpose3d" => Nonlinearity::Linear,
            "sigmoid" => Nonlinearity::Sigmoid,
            "tanh" => Nonlinearity::Tanh,
            "relu" => Nonlinearity::Relu,
            "leaky_relu" => Nonlinearity::LeakyRelu,
            "selu" => Nonlinearity::Selu,
            _ => return invalid("nonlinearity", format!("unknown nonlinearity '{name}'")),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Nonlinearity::Linear => "linear",
            Nonlinearity::Sigmoid => "sigmoid",
            Nonlinearity::Tanh => "tanh",
            Nonlinearity::Relu => "relu",
            Nonlinearity::LeakyRelu => "leaky_relu",
            Nonlinearity::Selu => "selu",
        }
    }
}

/// PyTorch's `calculate_gain`: 1 for linear and sigmoid, 5/3 for tanh, √2 for relu,
/// `√(2 / (1 + slope²))` for leaky_relu (`param` is the negative slope, default 0.01) and 3/4
/// for selu. `param` is ignored for the others.
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f64>) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        Nonlinearity::Selu => 0.75,
    }
}

// ---- initializers ----------------------------------------------------------------------------

/// Uniform in `[low, high)`, PyTorch's `uniform_` (default `U(0, 1)`). `low <= high`.
pub fn uniform(shape: &[usize], low: f64, high: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    Init::Uniform { low, high }.tensor(shape, dtype, rng)
}

/// Normal with the given mean and standard deviation (`std >= 0`), PyTorch's `normal_`.
pub fn normal(shape: &[usize], mean: f64, std: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    Init::Normal { mean, std }.tensor(shape, dtype, rng)
}

/// Every element `value`, PyTorch's `constant_` (and `zeros_`, `ones_`). Draws nothing.
pub fn constant(shape: &[usize], value: f64, dtype: DType) -> Tensor {
    Tensor::full(value, shape, dtype)
}

/// Xavier/Glorot uniform, PyTorch's `xavier_uniform_`: `U(-a, a)` with
/// `a = gain·√(6 / (fan_in + fan_out))`. Shape `[O, I, ...]`.
pub fn xavier_uniform(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    Init::XavierUniform { gain }.tensor(shape, dtype, rng)
}

/// Xavier/Glorot normal, PyTorch's `xavier_normal_`: `N(0, std²)` with
/// `std = gain·√(2 / (fan_in + fan_out))`. Shape `[O, I, ...]`.
pub fn xavier_normal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    Init::XavierNormal { gain }.tensor(shape, dtype, rng)
}

/// Kaiming/He uniform, PyTorch's `kaiming_uniform_`: `U(-b, b)` with
/// `b = √3·gain / √fan`, `gain = calculate_gain(nonlinearity, a)` and `fan` chosen by `mode`.
/// PyTorch's defaults are `a = 0`, `FanIn`, `LeakyRelu` (gain √2). Shape `[O, I, ...]`.
pub fn kaiming_uniform(
    shape: &[usize],
    a: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut Rng,
) -> Result<Tensor> {
    Init::KaimingUniform { a, mode, nonlinearity }.tensor(shape, dtype, rng)
}

/// Kaiming/He normal, PyTorch's `kaiming_normal_`: `N(0, std²)` with `std = gain / √fan`
/// (`gain` and `fan` as in [`kaiming_uniform`]). Shape `[O, I, ...]`.
pub fn kaiming_normal(
    shape: &[usize],
    a: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    dtype: DType,
    rng: &mut Rng,
) -> Result<Tensor> {
    Init::KaimingNormal { a, mode, nonlinearity }.tensor(shape, dtype, rng)
}

/// An initializer and its arguments, as plain data (what a model spec names). Field names are
/// PyTorch's argument names. Serialized with a `kind` tag, and every argument that has a PyTorch
/// default may be left out: `{"kind": "kaiming_normal", "nonlinearity": "relu"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Init {
    Zeros,
    Ones,
    Constant {
        value: f64,
    },
    Uniform {
        #[serde(default)]
        low: f64,
        #[serde(default = "one")]
        high: f64,
    },
    Normal {
        #[serde(default)]
        mean: f64,
        #[serde(default = "one")]
        std: f64,
    },
    XavierUniform {
        #[serde(default = "one")]
        gain: f64,
    },
    XavierNormal {
        #[serde(default = "one")]
        gain: f64,
    },
    /// `a` is the negative slope used by the `LeakyRelu` gain.
    KaimingUniform {
        #[serde(default)]
        a: f64,
        #[serde(default)]
        mode: FanMode,
        #[serde(default = "leaky_relu")]
        nonlinearity: Nonlinearity,
    },
    KaimingNormal {
        #[serde(default)]
        a: f64,
        #[serde(default)]
        mode: FanMode,
        #[serde(default = "leaky_relu")]
        nonlinearity: Nonlinearity,
    },
}

fn one() -> f64 {
    1.0
}

/// PyTorch's default nonlinearity for Kaiming initialization (with `a = 0` its gain is √2).
fn leaky_relu() -> Nonlinearity {
    Nonlinearity::LeakyRelu
}

impl Init {
    /// The initializer named `name` with PyTorch's default arguments: `zeros`, `ones`,
    /// `uniform` (0, 1), `normal` (0, 1), `xavier_uniform` / `glorot_uniform` and
    /// `xavier_normal` / `glorot_normal` (gain 1), `kaiming_uniform` / `he_uniform` and
    /// `kaiming_normal` / `he_normal` (a = 0, fan_in, leaky_relu). `constant` needs a value, so
    /// it has no name here; build `Init::Constant { value }`.
    pub fn from_name(name: &str) -> Result<Init> {
        let (a, mode, nonlinearity) = (0.0, FanMode::FanIn, leaky_relu());
        Ok(match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "uniform" => Init::Uniform { low: 0.0, high: 1.0 },
            "normal" => Init::Normal { mean: 0.0, std: 1.0 },
            "xavier_uniform" | "glorot_uniform" => Init::XavierUniform { gain: 1.0 },
            "xavier_normal" | "glorot_normal" => Init::XavierNormal { gain: 1.0 },
            "kaiming_uniform" | "he_uniform" => Init::KaimingUniform { a, mode, nonlinearity },
            "kaiming_normal" | "he_normal" => Init::KaimingNormal { a, mode, nonlinearity },
            _ => {
                return invalid(
                    "init",
                    format!(
                        "unknown initializer '{name}' (expected zeros, ones, uniform, normal, xavier_uniform, \
                         xavier_normal, kaiming_uniform or kaiming_normal)"
                    ),
                );
            }
        })
    }

    /// PyTorch's name of the initializer (`kaiming_normal` for `torch.nn.init.kaiming_normal_`).
    pub fn name(&self) -> &'static str {
        match self {
            Init::Zeros => "zeros",
            Init::Ones => "ones",
            Init::Constant { .. } => "constant",
            Init::Uniform { .. } => "uniform",
            Init::Normal { .. } => "normal",
            Init::XavierUniform { .. } => "xavier_uniform",
            Init::XavierNormal { .. } => "xavier_normal",
            Init::KaimingUniform { .. } => "kaiming_uniform",
            Init::KaimingNormal { .. } => "kaiming_normal",
        }
    }

    /// A new tensor of `shape` and float `dtype`, drawn from `rng` in row-major order (constants
    /// draw nothing). Xavier and Kaiming need a shape `[O, I, ...]` of rank at least 2; a shape
    /// with no elements gives an empty tensor and draws nothing, as PyTorch leaves it alone.
    pub fn tensor(&self, shape: &[usize], dtype: DType, rng: &mut Rng) -> Result<Tensor> {
        let what = self.name();
        if !dtype.is_float() {
            return invalid(what, format!("initializers make float tensors, not {dtype:?}"));
        }
        let fans = || fan_in_and_fan_out(shape).or_else(|e| invalid(what, e.to_string()));
        Ok(match *self {
            Init::Zeros => constant(shape, 0.0, dtype),
            Init::Ones => constant(shape, 1.0, dtype),
            Init::Constant { value } => constant(shape, value, dtype),
            Init::Uniform { low, high } => {
                if !(low.is_finite() && high.is_finite() && low <= high) {
                    return invalid(what, format!("needs finite low <= high, found low {low}, high {high}"));
                }
                Tensor::rand_uniform(shape, low, high, dtype, rng)
            }
            Init::Normal { mean, std } => normal_checked(what, shape, mean, std, dtype, rng)?,
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => {
                let (fan_in, fan_out) = fans()?;
                if shape.iter().product::<usize>() == 0 {
                    return Ok(constant(shape, 0.0, dtype));
                }
                let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
                if let Init::XavierUniform { .. } = self {
                    uniform_checked(what, shape, 3f64.sqrt() * std, dtype, rng)?
                } else {
                    normal_checked(what, shape, 0.0, std, dtype, rng)?
                }
            }
            Init::KaimingUniform { a, mode, nonlinearity } | Init::KaimingNormal { a, mode, nonlinearity } => {
                let (fan_in, fan_out) = fans()?;
                if shape.iter().product::<usize>() == 0 {
                    return Ok(constant(shape, 0.0, dtype));
                }
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                };
                let std = calculate_gain(nonlinearity, Some(a)) / (fan as f64).sqrt();
                if let Init::KaimingUniform { .. } = self {
                    uniform_checked(what, shape, 3f64.sqrt() * std, dtype, rng)?
                } else {
                    normal_checked(what, shape, 0.0, std, dtype, rng)?
                }
            }
        })
    }

    /// Overwrites `param` (a float parameter that owns its storage, as layers make them) with a
    /// fresh draw of its own shape and dtype. The tensor keeps its identity, so optimizers and
    /// gradients still find it.
    pub fn fill_(&self, param: &Tensor, rng: &mut Rng) -> Result<()> {
        let fresh = self.tensor(param.dims(), param.dtype(), rng)?;
        Ok(param.assign_(&fresh)?)
    }
}

impl FromStr for Init {
    type Err = Error;
    fn from_str(name: &str) -> Result<Init> {
        Init::from_name(name)
    }
}

/// `U(-bound, bound)`, refusing a negative, NaN or infinite bound (from a bad gain).
fn uniform_checked(what: &'static str, shape: &[usize], bound: f64, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
    if !(bound.is_finite() && bound >= 0.0) {
        return invalid(what, format!("the bound {bound} for shape {shape:?} is not finite and >= 0 (check the gain)"));
    }
    Ok(Tensor::rand_uniform(shape, -bound, bound, dtype, rng))
}

/// `N(mean, std²)`, refusing a negative or non-finite `std` (PyTorch's `normal_` refuses
/// `std < 0`).
fn normal_checked(
    what: &'static str,
    shape: &[usize],
    mean: f64,
    std: f64,
    dtype: DType,
    rng: &mut Rng,
) -> Result<Tensor> {
    if !(std.is_finite() && mean.is_finite() && std >= 0.0) {
        return invalid(what, format!("needs a finite mean and a finite std >= 0, found mean {mean}, std {std}"));
    }
    Ok(Tensor::randn(shape, mean, std, dtype, rng))
}
