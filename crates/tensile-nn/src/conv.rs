//! Convolution layers, `Conv1d` and `Conv2d`: parameters, configuration checks and PyTorch's
//! default initialization. The arithmetic is `Tensor::conv1d` / `Tensor::conv2d` in
//! tensile-core (im2col and one grouped matrix product), so this file only owns the layer.
//!
//! Shapes: `x [B, C, L] -> [B, O, OL]` and `x [B, C, H, W] -> [B, O, OH, OW]` with
//! `OL = (L + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`; weight `[O, C/groups, K..]`,
//! bias `[O]`, named `weight` and `bias` as in PyTorch so weights port unchanged.

use tensile_core::{DType, Rng, Tensor};

use crate::PoolWindow;
use crate::error::{Result, invalid};
use crate::init;
use crate::module::{Module, join_name};

/// Hyperparameters of [`Conv1d`] (PyTorch's `nn.Conv1d` arguments, zero padding only).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    pub bias: bool,
}

impl Conv1dConfig {
    /// PyTorch's defaults for everything but the channels and kernel: stride 1, no padding,
    /// dilation 1, one group, with bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv1dConfig { in_channels, out_channels, kernel, stride: 1, padding: 0, dilation: 1, groups: 1, bias: true }
    }
}

/// Hyperparameters of [`Conv2d`]; pairs are `(height, width)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
    pub bias: bool,
}

impl Conv2dConfig {
    /// PyTorch's defaults for everything but the channels and kernel: stride 1, no padding,
    /// dilation 1, one group, with bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: (usize, usize)) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
}

/// Checks what both layers share; `sizes` are `(field, value)` pairs that must be at least 1.
fn validate(what: &str, in_ch: usize, out_ch: usize, groups: usize, sizes: &[(&str, usize)]) -> Result<()> {
    for (field, v) in [("in_channels", in_ch), ("out_channels", out_ch), ("groups", groups)].iter().chain(sizes) {
        if *v == 0 {
            return invalid(what, format!("{field} must be at least 1"));
        }
    }
    if !in_ch.is_multiple_of(groups) || !out_ch.is_multiple_of(groups) {
        return invalid(
            what,
            format!("groups = {groups} must divide in_channels = {in_ch} and out_channels = {out_ch}"),
        );
    }
    Ok(())
}

/// Checks a given weight (and bias) against the shape the config implies.
fn check_tensors(what: &str, expected: &[usize], weight: &Tensor, bias: Option<&Tensor>, has_bias: bool) -> Result<()> {
    if weight.dims() != expected {
        return invalid(what, format!("weight must have shape {expected:?}, found {}", weight.shape()));
    }
    match (bias, has_bias) {
        (Some(b), true) if b.dims() == [expected[0]] => Ok(()),
        (Some(b), true) => invalid(what, format!("bias must have shape [{}], found {}", expected[0], b.shape())),
        (None, false) => Ok(()),
        (Some(_), false) => invalid(what, "a bias was given but config.bias is false"),
        (None, true) => invalid(what, "config.bias is true but no bias was given"),
    }
}

/// Draws weight and bias as PyTorch does: both `U(±1/sqrt(fan_in))`, weight first.
fn init_params(shape: &[usize], bias: bool, rng: &mut Rng) -> (Tensor, Option<Tensor>) {
    let fan_in: usize = shape[1..].iter().product();
    let weight = init::uniform_fan_in(shape, fan_in, DType::F32, rng).requires_grad();
    let bias = bias.then(|| init::uniform_fan_in(&[shape[0]], fan_in, DType::F32, rng).requires_grad());
    (weight, bias)
}

fn check_input(what: &str, x: &Tensor, rank: usize, layout: &str, in_channels: usize) -> Result<()> {
    if x.rank() != rank || x.dims()[1] != in_channels {
        return invalid(what, format!("expected input {layout} with C = {in_channels}, found shape {}", x.shape()));
    }
    Ok(())
}

fn visit(weight: &Tensor, bias: Option<&Tensor>, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
    f(&join_name(prefix, "weight"), weight);
    if let Some(b) = bias {
        f(&join_name(prefix, "bias"), b);
    }
}

/// 1-D convolution over `[B, C, L]` (PyTorch's `nn.Conv1d`).
pub struct Conv1d {
    config: Conv1dConfig,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv1d {
    /// A layer initialized as PyTorch's: weight `[O, C/groups, K]` and bias `[O]` uniform in
    /// `±1/sqrt(C/groups · K)`.
    pub fn new(config: Conv1dConfig, rng: &mut Rng) -> Result<Conv1d> {
        Self::validate(&config)?;
        let shape = Self::weight_shape(&config);
        let (weight, bias) = init_params(&shape, config.bias, rng);
        Ok(Conv1d { config, weight, bias })
    }

    /// A layer with given weight `[O, C/groups, K]` and bias `[O]` (present iff `config.bias`).
    pub fn from_tensors(config: Conv1dConfig, weight: Tensor, bias: Option<Tensor>) -> Result<Conv1d> {
        Self::validate(&config)?;
        check_tensors("conv1d", &Self::weight_shape(&config), &weight, bias.as_ref(), config.bias)?;
        Ok(Conv1d { config, weight: weight.requires_grad(), bias: bias.map(|b| b.requires_grad()) })
    }

    fn validate(c: &Conv1dConfig) -> Result<()> {
        let sizes = [("kernel", c.kernel), ("stride", c.stride), ("dilation", c.dilation)];
        validate("conv1d", c.in_channels, c.out_channels, c.groups, &sizes)
    }

    fn weight_shape(c: &Conv1dConfig) -> Vec<usize> {
        vec![c.out_channels, c.in_channels / c.groups, c.kernel]
    }

    pub fn config(&self) -> &Conv1dConfig {
        &self.config
    }
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Conv1d {
    /// `[B, C, L] -> [B, O, OL]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        check_input("conv1d", x, 3, "[B, C, L]", c.in_channels)?;
        Ok(x.conv1d(&self.weight, self.bias.as_ref(), c.stride, c.padding, c.dilation, c.groups)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit(&self.weight, self.bias.as_ref(), prefix, f);
    }
    fn kind(&self) -> &'static str {
        "conv1d"
    }
}

/// 2-D convolution over `[B, C, H, W]` (PyTorch's `nn.Conv2d`).
pub struct Conv2d {
    config: Conv2dConfig,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv2d {
    /// A layer initialized as PyTorch's: weight `[O, C/groups, KH, KW]` and bias `[O]` uniform
    /// in `±1/sqrt(C/groups · KH · KW)`.
    pub fn new(config: Conv2dConfig, rng: &mut Rng) -> Result<Conv2d> {
        Self::validate(&config)?;
        let shape = Self::weight_shape(&config);
        let (weight, bias) = init_params(&shape, config.bias, rng);
        Ok(Conv2d { config, weight, bias })
    }

    /// A layer with given weight `[O, C/groups, KH, KW]` and bias `[O]` (present iff
    /// `config.bias`).
    pub fn from_tensors(config: Conv2dConfig, weight: Tensor, bias: Option<Tensor>) -> Result<Conv2d> {
        Self::validate(&config)?;
        check_tensors("conv2d", &Self::weight_shape(&config), &weight, bias.as_ref(), config.bias)?;
        Ok(Conv2d { config, weight: weight.requires_grad(), bias: bias.map(|b| b.requires_grad()) })
    }

    fn validate(c: &Conv2dConfig) -> Result<()> {
        let sizes = [
            ("kernel height", c.kernel.0),
            ("kernel width", c.kernel.1),
            ("stride height", c.stride.0),
            ("stride width", c.stride.1),
            ("dilation height", c.dilation.0),
            ("dilation width", c.dilation.1),
        ];
        validate("conv2d", c.in_channels, c.out_channels, c.groups, &sizes)
    }

    fn weight_shape(c: &Conv2dConfig) -> Vec<usize> {
        vec![c.out_channels, c.in_channels / c.groups, c.kernel.0, c.kernel.1]
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Conv2d {
    /// `[B, C, H, W] -> [B, O, OH, OW]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        check_input("conv2d", x, 4, "[B, C, H, W]", c.in_channels)?;
        Ok(x.conv2d(&self.weight, self.bias.as_ref(), c.stride, c.padding, c.dilation, c.groups)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit(&self.weight, self.bias.as_ref(), prefix, f);
    }
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    fn forward_relu(&self, x: &Tensor) -> Option<Result<Tensor>> {
        let c = &self.config;
        Some(check_input("conv2d", x, 4, "[B, C, H, W]", c.in_channels).and_then(|()| {
            Ok(x.conv2d_relu(&self.weight, self.bias.as_ref(), c.stride, c.padding, c.dilation, c.groups)?)
        }))
    }
    fn forward_relu_max_pool2d(&self, x: &Tensor, pool: PoolWindow) -> Option<Result<Tensor>> {
        let c = &self.config;
        Some(check_input("conv2d", x, 4, "[B, C, H, W]", c.in_channels).and_then(|()| {
            let (w, b) = (&self.weight, self.bias.as_ref());
            Ok(x.conv2d_relu_max_pool2d(w, b, c.stride, c.padding, c.dilation, c.groups, pool)?)
        }))
    }
}
