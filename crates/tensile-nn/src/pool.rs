//! Pooling layers: `MaxPool1d`, `MaxPool2d`, `AvgPool1d`, `AvgPool2d` (sliding windows, as
//! PyTorch's with `ceil_mode=False`, average pooling counting padding as zeros) and
//! `GlobalAvgPool` (the mean over every spatial position). The window arithmetic lives in
//! tensile-core (`Tensor::max_pool2d` and friends); this file owns configuration and checks.
//!
//! Shapes: `[B, C, L] -> [B, C, OL]`, `[B, C, H, W] -> [B, C, OH, OW]` with
//! `OL = (L + 2·padding − kernel) / stride + 1`; `GlobalAvgPool`: `[B, C, ...] -> [B, C]`.

use tensile_core::Tensor;

use crate::PoolWindow;
use crate::error::{Result, invalid};
use crate::module::Module;

/// Window of a 1-D pooling layer. `stride: None` means the stride equals the kernel, as in
/// PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool1dConfig {
    pub kernel: usize,
    pub stride: Option<usize>,
    pub padding: usize,
}

impl Pool1dConfig {
    /// Non-overlapping windows of `kernel` without padding.
    pub fn new(kernel: usize) -> Self {
        Pool1dConfig { kernel, stride: None, padding: 0 }
    }
}

/// Window of a 2-D pooling layer; pairs are `(height, width)`. `stride: None` means the stride
/// equals the kernel, as in PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool2dConfig {
    pub kernel: (usize, usize),
    pub stride: Option<(usize, usize)>,
    pub padding: (usize, usize),
}

impl Pool2dConfig {
    /// Non-overlapping windows of `kernel` without padding.
    pub fn new(kernel: (usize, usize)) -> Self {
        Pool2dConfig { kernel, stride: None, padding: (0, 0) }
    }
}

/// The resolved window: `(kernel, stride, padding)` as `(height, width)` pairs.
type Window = PoolWindow;

/// Checks one axis. PyTorch refuses padding above half the kernel, since a window could then
/// lie wholly in the padding.
fn check_axis(what: &str, axis: &str, kernel: usize, stride: usize, padding: usize) -> Result<()> {
    if kernel == 0 {
        return invalid(what, format!("kernel{axis} must be at least 1"));
    }
    if stride == 0 {
        return invalid(what, format!("stride{axis} must be at least 1"));
    }
    if 2 * padding > kernel {
        return invalid(what, format!("padding{axis} = {padding} must be at most half the kernel ({kernel})"));
    }
    Ok(())
}

fn window_1d(what: &str, c: &Pool1dConfig) -> Result<Window> {
    let stride = c.stride.unwrap_or(c.kernel);
    check_axis(what, "", c.kernel, stride, c.padding)?;
    Ok(((1, c.kernel), (1, stride), (0, c.padding)))
}

fn window_2d(what: &str, c: &Pool2dConfig) -> Result<Window> {
    let stride = c.stride.unwrap_or(c.kernel);
    check_axis(what, " height", c.kernel.0, stride.0, c.padding.0)?;
    check_axis(what, " width", c.kernel.1, stride.1, c.padding.1)?;
    Ok((c.kernel, stride, c.padding))
}

fn check_rank(what: &str, x: &Tensor, rank: usize, layout: &str) -> Result<()> {
    if x.rank() != rank {
        return invalid(what, format!("expected input {layout}, found shape {}", x.shape()));
    }
    Ok(())
}

macro_rules! pool_layer {
    ($(#[$doc:meta])* $name:ident, $config:ty, $window:ident, $kind:literal, $rank:literal, $layout:literal,
     |$x:ident, $k:ident, $s:ident, $p:ident| $body:expr $(, $extra:item)*) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            config: $config,
            window: Window,
        }

        impl $name {
            /// Checks the window: kernel and stride at least 1, padding at most half the kernel.
            pub fn new(config: $config) -> Result<$name> {
                let window = $window($kind, &config)?;
                Ok($name { config, window })
            }
            pub fn config(&self) -> &$config {
                &self.config
            }
        }

        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                check_rank($kind, $x, $rank, $layout)?;
                let ($k, $s, $p) = self.window;
                Ok($body?)
            }
            fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
            fn kind(&self) -> &'static str {
                $kind
            }
            $($extra)*
        }
    };
}

pool_layer!(
    /// Max pooling over `[B, C, L]` (PyTorch's `nn.MaxPool1d`); the gradient goes to the first
    /// maximum of each window.
    MaxPool1d, Pool1dConfig, window_1d, "max_pool1d", 3, "[B, C, L]",
    |x, k, s, p| x.max_pool1d(k.1, s.1, p.1)
);
pool_layer!(
    /// Max pooling over `[B, C, H, W]` (PyTorch's `nn.MaxPool2d`); the gradient goes to the
    /// first maximum of each window.
    MaxPool2d, Pool2dConfig, window_2d, "max_pool2d", 4, "[B, C, H, W]",
    |x, k, s, p| x.max_pool2d(k, s, p),
    fn max_pool2d_window(&self) -> Option<PoolWindow> {
        Some(self.window)
    }
);
pool_layer!(
    /// Average pooling over `[B, C, L]` (PyTorch's `nn.AvgPool1d`, padding counted as zeros).
    AvgPool1d, Pool1dConfig, window_1d, "avg_pool1d", 3, "[B, C, L]",
    |x, k, s, p| x.avg_pool1d(k.1, s.1, p.1)
);
pool_layer!(
    /// Average pooling over `[B, C, H, W]` (PyTorch's `nn.AvgPool2d`, padding counted as zeros).
    AvgPool2d, Pool2dConfig, window_2d, "avg_pool2d", 4, "[B, C, H, W]",
    |x, k, s, p| x.avg_pool2d(k, s, p)
);

/// The mean over every spatial position: `[B, C, ...] -> [B, C]` (PyTorch's
/// `nn.AdaptiveAvgPool2d(1)` followed by a flatten, for any number of spatial dimensions).
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalAvgPool;

impl Module for GlobalAvgPool {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 3 {
            return invalid(
                "global_avg_pool",
                format!("expected input [B, C, ...] with at least one spatial dimension, found shape {}", x.shape()),
            );
        }
        let spatial: Vec<usize> = (2..x.rank()).collect();
        Ok(x.mean(spatial, false)?)
    }
    fn visit_params(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn kind(&self) -> &'static str {
        "global_avg_pool"
    }
}
