//! Model specs: a model as plain data — a list of layers, each a table with a `type` and its
//! arguments — which the config file holds and which is saved next to every trained model.
//!
//! ```toml
//! layers = [
//!   { type = "reshape", shape = [1, 8, 8] },
//!   { type = "conv2d", channels = 16, kernel = 3, padding = 1 },
//!   { type = "relu" },
//!   { type = "maxpool2d", kernel = 2 },
//!   { type = "flatten" },
//!   { type = "linear", units = 10 },
//! ]
//! ```
//!
//! Input sizes are never written: [`ModelSpec::build`] walks the layers with the per-sample
//! input shape and infers each layer's input from the previous layer's output (`in_features`,
//! `in_channels`, `num_features`, `d_model` …). A shape that does not fit is an error naming the
//! layer's position and type, what it expects and what it was given.

use serde::{Deserialize, Serialize};
use tensile_core::Rng;

use crate::attention::{
    FeedForwardActivation, MultiheadSelfAttention, MultiheadSelfAttentionConfig, TransformerEncoderLayer,
    TransformerEncoderLayerConfig,
};
use crate::error::{Error, Result};
use crate::module::{Module, Sequential};
use crate::{
    AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig,
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Flatten, Gelu, GlobalAvgPool, Gru, LayerNorm, LayerNormConfig,
    LeakyRelu, Linear, Lstm, MaxPool1d, MaxPool2d, Pool1dConfig, Pool2dConfig, RecurrentConfig, Relu, Reshape,
    Residual, Sigmoid, Silu, Softmax, Tanh,
};

/// A size given once for both dimensions (`3`) or per dimension (`[3, 5]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    Same(usize),
    Each([usize; 2]),
}

impl Pair {
    pub fn get(self) -> (usize, usize) {
        match self {
            Pair::Same(v) => (v, v),
            Pair::Each([a, b]) => (a, b),
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_pair() -> Pair {
    Pair::Same(1)
}
fn zero_pair() -> Pair {
    Pair::Same(0)
}
fn slope() -> f64 {
    0.01
}
fn eps() -> f64 {
    1e-5
}
fn momentum() -> f64 {
    0.1
}
fn last() -> i64 {
    -1
}

/// One layer of a spec. Names and defaults follow PyTorch's layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Linear {
        units: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    Conv1d {
        channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "one")]
        dilation: usize,
        #[serde(default = "one")]
        groups: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    Conv2d {
        channels: usize,
        kernel: Pair,
        #[serde(default = "one_pair")]
        stride: Pair,
        #[serde(default = "zero_pair")]
        padding: Pair,
        #[serde(default = "one_pair")]
        dilation: Pair,
        #[serde(default = "one")]
        groups: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    Maxpool1d {
        kernel: usize,
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    Maxpool2d {
        kernel: Pair,
        stride: Option<Pair>,
        #[serde(default = "zero_pair")]
        padding: Pair,
    },
    Avgpool1d {
        kernel: usize,
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    Avgpool2d {
        kernel: Pair,
        stride: Option<Pair>,
        #[serde(default = "zero_pair")]
        padding: Pair,
    },
    GlobalAvgPool,
    Flatten,
    /// The per-sample shape (the batch dimension is kept).
    Reshape {
        shape: Vec<usize>,
    },
    Dropout {
        rate: f64,
    },
    Batchnorm1d {
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default = "momentum")]
        momentum: f64,
    },
    Batchnorm2d {
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default = "momentum")]
        momentum: f64,
    },
    Layernorm {
        #[serde(default = "eps")]
        eps: f64,
    },
    /// Token ids (u32, `[T]` per sample) to vectors `[T, dim]`.
    Embedding {
        vocab: usize,
        dim: usize,
    },
    /// `[T, D] -> [H·dirs]` (the last step), or `[T, H·dirs]` with `return_sequences`.
    Gru {
        hidden: usize,
        #[serde(default = "one")]
        layers: usize,
        #[serde(default)]
        bidirectional: bool,
        #[serde(default)]
        return_sequences: bool,
    },
    Lstm {
        hidden: usize,
        #[serde(default = "one")]
        layers: usize,
        #[serde(default)]
        bidirectional: bool,
        #[serde(default)]
        return_sequences: bool,
    },
    /// Multi-head self-attention over `[T, D]`.
    Attention {
        heads: usize,
        #[serde(default)]
        causal: bool,
    },
    /// A pre-norm transformer encoder block over `[T, D]`.
    Transformer {
        heads: usize,
        ff: usize,
        #[serde(default)]
        causal: bool,
        #[serde(default)]
        gelu: bool,
    },
    /// `x + f(x)` where `f` is the inner list of layers.
    Residual {
        layers: Vec<LayerSpec>,
    },
    Relu,
    LeakyRelu {
        #[serde(default = "slope")]
        slope: f64,
    },
    Gelu {
        #[serde(default)]
        approximate: bool,
    },
    Tanh,
    Sigmoid,
    Softmax {
        #[serde(default = "last")]
        dim: i64,
    },
    Silu,
}

/// A whole model as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub layers: Vec<LayerSpec>,
}

impl LayerSpec {
    /// The `type` name as written in configs.
    pub fn type_name(&self) -> String {
        let v = serde_json::to_value(self).expect("internal: specs serialize");
        v.get("type").and_then(|t| t.as_str()).unwrap_or("?").to_string()
    }
}

type AdaptedForward<M> = Box<dyn Fn(&M, &tensile_core::Tensor) -> Result<tensile_core::Tensor> + Send>;

/// A layer whose forward pass the spec adjusts (a recurrent layer's last step only; attention
/// with the spec's causal flag), delegating everything else to the layer itself.
struct Adapted<M> {
    inner: M,
    forward: AdaptedForward<M>,
    kind: &'static str,
}

impl<M: Module> Module for Adapted<M> {
    fn forward(&self, x: &tensile_core::Tensor) -> Result<tensile_core::Tensor> {
        (self.forward)(&self.inner, x)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &tensile_core::Tensor)) {
        self.inner.visit_params(prefix, f)
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &tensile_core::Tensor)) {
        self.inner.visit_buffers(prefix, f)
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &std::sync::Mutex<Rng>)) {
        self.inner.visit_rngs(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training)
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
}

/// `[B, T, H]` output sequence to the last step `[B, H]`, unless the whole sequence is wanted.
fn recurrent(inner: Box<dyn Module>, return_sequences: bool) -> Adapted<Box<dyn Module>> {
    let kind = inner.kind();
    #[allow(clippy::borrowed_box)] // the adapted layer is the box itself
    let forward = move |m: &Box<dyn Module>, x: &tensile_core::Tensor| -> Result<tensile_core::Tensor> {
        let y = m.forward(x)?;
        if return_sequences {
            return Ok(y);
        }
        let t = y.dim(1)?;
        Ok(y.narrow(1, t - 1, 1)?.squeeze(1)?)
    };
    Adapted { inner, forward: Box::new(forward), kind }
}

struct Builder<'a> {
    rng: &'a mut Rng,
}

impl Builder<'_> {
    /// Builds `layers` from per-sample input `shape`; returns the model and its output shape.
    fn sequence(
        &mut self,
        layers: &[LayerSpec],
        mut shape: Vec<usize>,
        path: &str,
    ) -> Result<(Sequential, Vec<usize>)> {
        let mut seq = Sequential::new();
        for (i, spec) in layers.iter().enumerate() {
            let here = if path.is_empty() { format!("{}", i + 1) } else { format!("{path}.{}", i + 1) };
            let (layer, out) = self.layer(spec, &shape).map_err(|e| match e {
                Error::Invalid { msg, .. } => Error::Invalid {
                    what: format!("model layer {here} ({})", spec.type_name()),
                    msg: format!("{msg} (input shape per sample {shape:?})"),
                },
                other => other,
            })?;
            seq.push(layer);
            shape = out;
        }
        Ok((seq, shape))
    }

    fn layer(&mut self, spec: &LayerSpec, s: &[usize]) -> Result<(Box<dyn Module>, Vec<usize>)> {
        let need = |rank: usize, what: &str| -> Result<()> {
            if s.len() == rank {
                Ok(())
            } else {
                Err(Error::Invalid { what: String::new(), msg: format!("expects input {what}, found {s:?}") })
            }
        };
        let rng = &mut *self.rng;
        Ok(match spec {
            LayerSpec::Linear { units, bias } => {
                let d = *s.last().ok_or_else(|| bad("expects at least one dimension"))?;
                let mut out = s.to_vec();
                *out.last_mut().expect("checked") = *units;
                (Box::new(Linear::new(d, *units, *bias, rng)), out)
            }
            LayerSpec::Conv1d { channels, kernel, stride, padding, dilation, groups, bias } => {
                need(2, "[channels, length]")?;
                let cfg = Conv1dConfig {
                    in_channels: s[0],
                    out_channels: *channels,
                    kernel: *kernel,
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                    bias: *bias,
                };
                let l = out_size(s[1], *kernel, *stride, *padding, *dilation)?;
                (Box::new(Conv1d::new(cfg, rng)?), vec![*channels, l])
            }
            LayerSpec::Conv2d { channels, kernel, stride, padding, dilation, groups, bias } => {
                need(3, "[channels, height, width]")?;
                let (k, st, p, d) = (kernel.get(), stride.get(), padding.get(), dilation.get());
                let cfg = Conv2dConfig {
                    in_channels: s[0],
                    out_channels: *channels,
                    kernel: k,
                    stride: st,
                    padding: p,
                    dilation: d,
                    groups: *groups,
                    bias: *bias,
                };
                let h = out_size(s[1], k.0, st.0, p.0, d.0)?;
                let w = out_size(s[2], k.1, st.1, p.1, d.1)?;
                (Box::new(Conv2d::new(cfg, rng)?), vec![*channels, h, w])
            }
            LayerSpec::Maxpool1d { kernel, stride, padding } | LayerSpec::Avgpool1d { kernel, stride, padding } => {
                need(2, "[channels, length]")?;
                let cfg = Pool1dConfig { kernel: *kernel, stride: *stride, padding: *padding };
                let l = out_size(s[1], *kernel, stride.unwrap_or(*kernel), *padding, 1)?;
                let layer: Box<dyn Module> = if matches!(spec, LayerSpec::Maxpool1d { .. }) {
                    Box::new(MaxPool1d::new(cfg)?)
                } else {
                    Box::new(AvgPool1d::new(cfg)?)
                };
                (layer, vec![s[0], l])
            }
            LayerSpec::Maxpool2d { kernel, stride, padding } | LayerSpec::Avgpool2d { kernel, stride, padding } => {
                need(3, "[channels, height, width]")?;
                let (k, p) = (kernel.get(), padding.get());
                let st = stride.map(|s| s.get()).unwrap_or(k);
                let cfg = Pool2dConfig { kernel: k, stride: stride.map(|s| s.get()), padding: p };
                let (h, w) = (out_size(s[1], k.0, st.0, p.0, 1)?, out_size(s[2], k.1, st.1, p.1, 1)?);
                let layer: Box<dyn Module> = if matches!(spec, LayerSpec::Maxpool2d { .. }) {
                    Box::new(MaxPool2d::new(cfg)?)
                } else {
                    Box::new(AvgPool2d::new(cfg)?)
                };
                (layer, vec![s[0], h, w])
            }
            LayerSpec::GlobalAvgPool => {
                if s.len() < 2 {
                    return Err(bad(format!("expects [channels, ...spatial], found {s:?}")));
                }
                (Box::new(GlobalAvgPool), vec![s[0]])
            }
            LayerSpec::Flatten => (Box::new(Flatten), vec![s.iter().product()]),
            LayerSpec::Reshape { shape } => {
                let (have, want): (usize, usize) = (s.iter().product(), shape.iter().product());
                if have != want {
                    return Err(bad(format!("cannot reshape {s:?} ({have} values) to {shape:?} ({want} values)")));
                }
                (Box::new(Reshape::new(shape)?), shape.clone())
            }
            LayerSpec::Dropout { rate } => {
                let layer = Dropout::new(DropoutConfig { p: *rate }, rng)?;
                (Box::new(layer), s.to_vec())
            }
            LayerSpec::Batchnorm1d { eps, momentum } => {
                if !(s.len() == 1 || s.len() == 2) {
                    return Err(bad(format!("expects [features] or [channels, length], found {s:?}")));
                }
                let cfg = BatchNormConfig { eps: *eps, momentum: *momentum, ..BatchNormConfig::new(s[0]) };
                (Box::new(BatchNorm1d::new(cfg)?), s.to_vec())
            }
            LayerSpec::Batchnorm2d { eps, momentum } => {
                need(3, "[channels, height, width]")?;
                let cfg = BatchNormConfig { eps: *eps, momentum: *momentum, ..BatchNormConfig::new(s[0]) };
                (Box::new(BatchNorm2d::new(cfg)?), s.to_vec())
            }
            LayerSpec::Layernorm { eps } => {
                let d = *s.last().ok_or_else(|| bad("expects at least one dimension"))?;
                let cfg = LayerNormConfig { eps: *eps, ..LayerNormConfig::new(&[d]) };
                (Box::new(LayerNorm::new(cfg)?), s.to_vec())
            }
            LayerSpec::Embedding { vocab, dim } => {
                let layer = Embedding::new(EmbeddingConfig { num_embeddings: *vocab, embedding_dim: *dim }, rng)?;
                let mut out = s.to_vec();
                out.push(*dim);
                (Box::new(layer), out)
            }
            LayerSpec::Gru { hidden, layers, bidirectional, return_sequences }
            | LayerSpec::Lstm { hidden, layers, bidirectional, return_sequences } => {
                need(2, "[time, features]")?;
                let cfg = RecurrentConfig {
                    num_layers: *layers,
                    bidirectional: *bidirectional,
                    ..RecurrentConfig::new(s[1], *hidden)
                };
                let inner: Box<dyn Module> = if matches!(spec, LayerSpec::Gru { .. }) {
                    Box::new(Gru::new(cfg, rng)?)
                } else {
                    Box::new(Lstm::new(cfg, rng)?)
                };
                let width = hidden * if *bidirectional { 2 } else { 1 };
                let out = if *return_sequences { vec![s[0], width] } else { vec![width] };
                (Box::new(recurrent(inner, *return_sequences)), out)
            }
            LayerSpec::Attention { heads, causal } => {
                need(2, "[time, features]")?;
                let cfg = MultiheadSelfAttentionConfig::new(s[1], *heads);
                let inner = MultiheadSelfAttention::new(cfg, rng)?;
                let causal = *causal;
                let forward =
                    move |m: &MultiheadSelfAttention, x: &tensile_core::Tensor| m.forward_masked(x, causal, None);
                (Box::new(Adapted { inner, forward: Box::new(forward), kind: "attention" }), s.to_vec())
            }
            LayerSpec::Transformer { heads, ff, causal, gelu } => {
                need(2, "[time, features]")?;
                let cfg = TransformerEncoderLayerConfig {
                    dim_feedforward: *ff,
                    causal: *causal,
                    activation: if *gelu { FeedForwardActivation::Gelu } else { FeedForwardActivation::Relu },
                    ..TransformerEncoderLayerConfig::new(s[1], *heads)
                };
                (Box::new(TransformerEncoderLayer::new(cfg, rng)?), s.to_vec())
            }
            LayerSpec::Residual { layers } => {
                let (inner, out) = self.sequence(layers, s.to_vec(), "residual")?;
                if out != s {
                    return Err(bad(format!("the inner layers map {s:?} to {out:?}; a residual needs the same shape")));
                }
                (Box::new(Residual::new(inner)), out)
            }
            LayerSpec::Relu => (Box::new(Relu), s.to_vec()),
            LayerSpec::LeakyRelu { slope } => (Box::new(LeakyRelu { negative_slope: *slope }), s.to_vec()),
            LayerSpec::Gelu { approximate } => (Box::new(Gelu { approximate: *approximate }), s.to_vec()),
            LayerSpec::Tanh => (Box::new(Tanh), s.to_vec()),
            LayerSpec::Sigmoid => (Box::new(Sigmoid), s.to_vec()),
            LayerSpec::Softmax { dim } => (Box::new(Softmax { dim: *dim }), s.to_vec()),
            LayerSpec::Silu => (Box::new(Silu), s.to_vec()),
        })
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Invalid { what: String::new(), msg: msg.into() }
}

fn out_size(size: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Result<usize> {
    if k == 0 || stride == 0 || dil == 0 {
        return Err(bad("kernel, stride and dilation must be at least 1"));
    }
    let span = dil * (k - 1) + 1;
    if size + 2 * pad < span {
        return Err(bad(format!("input size {size} with padding {pad} is smaller than the kernel span {span}")));
    }
    Ok((size + 2 * pad - span) / stride + 1)
}

impl ModelSpec {
    /// Builds the model for samples of `input_shape` (without the batch dimension), drawing
    /// weights from `rng`. Returns the model and the per-sample output shape.
    pub fn build(&self, input_shape: &[usize], rng: &mut Rng) -> Result<(Sequential, Vec<usize>)> {
        if self.layers.is_empty() {
            return Err(Error::Invalid { what: "model".into(), msg: "has no layers".into() });
        }
        Builder { rng }.sequence(&self.layers, input_shape.to_vec(), "")
    }

    /// A multilayer perceptron: `hidden` ReLU layers and a linear output of `outputs` units.
    pub fn mlp(hidden: &[usize], outputs: usize) -> ModelSpec {
        let mut layers = Vec::new();
        for &h in hidden {
            layers.push(LayerSpec::Linear { units: h, bias: true });
            layers.push(LayerSpec::Relu);
        }
        layers.push(LayerSpec::Linear { units: outputs, bias: true });
        ModelSpec { layers }
    }
}
