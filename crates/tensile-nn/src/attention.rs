//! Attention: [`MultiheadSelfAttention`] (PyTorch's `nn.MultiheadAttention` with
//! `batch_first=True`, used as self-attention: query = key = value = x) and
//! [`TransformerEncoderLayer`] (PyTorch's `nn.TransformerEncoderLayer`, `batch_first=True`).
//! Parameter names, layouts and initialization follow PyTorch, so weights port both ways.
//!
//! Masked scores are filled with the dtype's lowest finite value rather than `-inf`: a row whose
//! keys are all masked then attends uniformly instead of turning into NaN (PyTorch gives NaN
//! there); every other row gets the same weights either way. Builds on [`Linear`],
//! [`LayerNorm`] and [`Dropout`].
//!
//! Not supported (PyTorch options left out): separate key/value inputs (`kdim`, `vdim`),
//! `add_bias_kv`, `add_zero_attn`, arbitrary float `attn_mask`s, returning attention weights.
//! Shapes: B batch, T time, E embedding size (`d_model`), `nh` heads of `hd = E / nh` features.

use std::sync::Mutex;

use tensile_core::{DType, Rng, Tensor};

use crate::dropout::{Dropout, DropoutConfig};
use crate::error::{Result, invalid};
use crate::init;
use crate::linear::Linear;
use crate::module::{Module, join_name};
use crate::norm::{LayerNorm, LayerNormConfig};

/// The configuration of a [`MultiheadSelfAttention`] (PyTorch's constructor arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiheadSelfAttentionConfig {
    /// `E`: features in and out.
    pub embed_dim: usize,
    /// `nh`: heads; must divide `embed_dim`.
    pub num_heads: usize,
    /// Dropout on the attention weights while training. PyTorch's default 0.
    pub dropout: f64,
    /// Whether the input and output projections have biases. PyTorch's default true.
    pub bias: bool,
}

impl MultiheadSelfAttentionConfig {
    /// `embed_dim` and `num_heads` with PyTorch's defaults (no dropout, biases).
    pub fn new(embed_dim: usize, num_heads: usize) -> MultiheadSelfAttentionConfig {
        MultiheadSelfAttentionConfig { embed_dim, num_heads, dropout: 0.0, bias: true }
    }
}

fn check_heads(what: &str, embed_dim: usize, num_heads: usize) -> Result<()> {
    if embed_dim == 0 || num_heads == 0 {
        return invalid(what, format!("embed_dim ({embed_dim}) and num_heads ({num_heads}) must be at least 1"));
    }
    if !embed_dim.is_multiple_of(num_heads) {
        return invalid(what, format!("embed_dim {embed_dim} is not divisible by num_heads {num_heads}"));
    }
    Ok(())
}

fn check_rate(what: &str, field: &str, p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return invalid(what, format!("{field} = {p} must be in [0, 1)"));
    }
    Ok(())
}

/// Multi-head scaled dot-product self-attention: `[B, T, E] -> [B, T, E]`.
///
/// `q, k, v = x W_qᵀ + b_q, …` (the three stacked in `in_proj_weight [3E, E]` and
/// `in_proj_bias [3E]`), split into heads; per head `softmax(q kᵀ / √hd) v`; heads concatenated
/// and projected by `out_proj` (`weight [E, E]`, `bias [E]`).
pub struct MultiheadSelfAttention {
    config: MultiheadSelfAttentionConfig,
    in_proj_weight: Tensor,
    in_proj_bias: Option<Tensor>,
    out_proj: Linear,
    dropout: Dropout,
}

impl MultiheadSelfAttention {
    /// Initialized as PyTorch's: `in_proj_weight` Xavier-uniform, `out_proj.weight` as a linear
    /// layer's (`±1/sqrt(E)`), both biases zero.
    pub fn new(config: MultiheadSelfAttentionConfig, rng: &mut Rng) -> Result<MultiheadSelfAttention> {
        let what = "multihead_attention";
        check_heads(what, config.embed_dim, config.num_heads)?;
        check_rate(what, "dropout", config.dropout)?;
        let e = config.embed_dim;
        // PyTorch builds out_proj (drawing its weight) before resetting in_proj; same order here.
        let out_weight = init::uniform_fan_in(&[e, e], e, DType::F32, rng);
        let out_bias = config.bias.then(|| Tensor::zeros(e, DType::F32));
        let out_proj = Linear::from_tensors(out_weight, out_bias)?;
        let in_proj_weight = init::xavier_uniform(&[3 * e, e], 1.0, DType::F32, rng)?.requires_grad();
        let in_proj_bias = config.bias.then(|| Tensor::zeros(3 * e, DType::F32).requires_grad());
        let dropout = Dropout::new(DropoutConfig { p: config.dropout }, rng)?;
        Ok(MultiheadSelfAttention { config, in_proj_weight, in_proj_bias, out_proj, dropout })
    }

    pub fn config(&self) -> &MultiheadSelfAttentionConfig {
        &self.config
    }
    /// `[3E, E]`: the query, key and value projections stacked in that order.
    pub fn in_proj_weight(&self) -> &Tensor {
        &self.in_proj_weight
    }
    /// `[3E]`, `None` without biases.
    pub fn in_proj_bias(&self) -> Option<&Tensor> {
        self.in_proj_bias.as_ref()
    }
    pub fn out_proj(&self) -> &Linear {
        &self.out_proj
    }

    /// Self-attention over `x [B, T, E]` (or unbatched `[T, E]`). With `causal`, position `t`
    /// attends only to positions `<= t`. `key_padding_mask` is a `u8` mask `[B, T]` (`[T]`
    /// unbatched) whose nonzero entries mark keys to ignore, like PyTorch's boolean
    /// `key_padding_mask` (true = padding).
    pub fn forward_masked(&self, x: &Tensor, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<Tensor> {
        let what = "multihead_attention";
        let (e, nh) = (self.config.embed_dim, self.config.num_heads);
        let unbatched = x.rank() == 2;
        let x = match x.rank() {
            3 => x.clone(),
            2 => x.unsqueeze(0)?,
            _ => return invalid(what, format!("input must be [B, T, E] or [T, E], found shape {}", x.shape())),
        };
        let (b, t) = (x.dims()[0], x.dims()[1]);
        if x.dims()[2] != e {
            return invalid(what, format!("input has {} features, expected embed_dim {e}", x.dims()[2]));
        }
        let padding = key_padding_mask.map(|m| padding_mask(m, b, t, unbatched)).transpose()?;

        let hd = e / nh;
        let qkv = x.linear(&self.in_proj_weight, self.in_proj_bias.as_ref())?;
        // [B, T, 3E] -> [3, B, nh, T, hd], views. q, k, v are narrows of dimension 0 that keep
        // it with size 1 ([1, B, nh, T, hd]): squeezing it away would copy the strided data.
        let heads = qkv.reshape(vec![b, t, 3, nh, hd])?.permute(&[2, 0, 3, 1, 4])?;
        let part = |i: usize| heads.narrow(0, i, 1);
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        // [1, B, nh, T, hd] @ [1, B, nh, hd, T] -> [1, B, nh, T, T]
        let mut scores = q.mul_scalar(1.0 / (hd as f64).sqrt())?.matmul(&k.t()?)?;
        let lowest = Tensor::full(lowest_finite(scores.dtype()), (), scores.dtype());
        if causal {
            scores = causal_mask(t)?.where_cond(&lowest, &scores)?;
        }
        if let Some(m) = &padding {
            scores = m.where_cond(&lowest, &scores)?;
        }
        let weights = self.dropout.forward(&scores.softmax(-1)?)?;
        // [1, B, nh, T, hd] -> [B, T, nh, hd] -> [B, T, E]
        let out = weights.matmul(&v)?.squeeze(0)?.transpose(1, 2)?.reshape((b, t, e))?;
        let out = self.out_proj.forward(&out)?;
        if unbatched { Ok(out.squeeze(0)?) } else { Ok(out) }
    }
}

/// The lowest finite value of a float dtype, as `f64`: masked scores become this, so
/// `exp(masked - max)` is 0 and a fully masked row stays finite.
fn lowest_finite(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}

/// `[T, T]` `u8`: 1 where key `j` lies after query `i` (masked out).
fn causal_mask(t: usize) -> Result<Tensor> {
    let m: Vec<u8> = (0..t * t).map(|ij| u8::from(ij % t > ij / t)).collect();
    Ok(Tensor::from_vec(m, (t, t))?)
}

/// Checks a key padding mask and shapes it `[1, B, 1, 1, T]` to broadcast over the scores.
fn padding_mask(m: &Tensor, b: usize, t: usize, unbatched: bool) -> Result<Tensor> {
    let expected: &[usize] = if unbatched { &[t] } else { &[b, t] };
    if m.dtype() != DType::U8 || m.dims() != expected {
        return invalid(
            "multihead_attention",
            format!(
                "key_padding_mask must be a u8 mask of shape {expected:?}, found {:?} of shape {}",
                m.dtype(),
                m.shape()
            ),
        );
    }
    Ok(m.reshape(vec![1, b, 1, 1, t])?)
}

impl Module for MultiheadSelfAttention {
    /// `[B, T, E] -> [B, T, E]`, no mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, false, None)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join_name(prefix, "in_proj_weight"), &self.in_proj_weight);
        if let Some(b) = &self.in_proj_bias {
            f(&join_name(prefix, "in_proj_bias"), b);
        }
        self.out_proj.visit_params(&join_name(prefix, "out_proj"), f);
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        self.dropout.visit_rngs(&join_name(prefix, "dropout"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("out_proj".to_string(), &self.out_proj as &dyn Module)]
    }
    fn kind(&self) -> &'static str {
        "multihead_attention"
    }
}

/// The feed-forward activation of a [`TransformerEncoderLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedForwardActivation {
    /// PyTorch's default.
    #[default]
    Relu,
    /// Exact (erf) GELU.
    Gelu,
}

/// The configuration of a [`TransformerEncoderLayer`] (PyTorch's constructor arguments, plus
/// `causal`).
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerEncoderLayerConfig {
    /// `E`: features in and out.
    pub d_model: usize,
    /// Attention heads; must divide `d_model`.
    pub nhead: usize,
    /// Width of the feed-forward hidden layer. PyTorch's default 2048.
    pub dim_feedforward: usize,
    /// Dropout rate on the attention weights, after attention, inside and after the
    /// feed-forward block (while training). PyTorch's default 0.1.
    pub dropout: f64,
    /// PyTorch's default ReLU.
    pub activation: FeedForwardActivation,
    /// PyTorch's default 1e-5.
    pub layer_norm_eps: f64,
    /// Pre-norm (`x + SA(LN1(x))`, then `x + FF(LN2(x))`) when true; post-norm
    /// (`LN1(x + SA(x))`, then `LN2(x + FF(x))`) when false. Defaults to true, unlike PyTorch
    /// (false), because pre-norm stacks train stably without learning-rate warm-up.
    pub norm_first: bool,
    /// Biases in the projections, linear layers and layer norms. PyTorch's default true.
    pub bias: bool,
    /// Whether [`Module::forward`] masks attention causally (position `t` sees `<= t`), as
    /// passing `is_causal=True` with a causal `src_mask` to PyTorch's `forward`.
    pub causal: bool,
}

impl TransformerEncoderLayerConfig {
    /// `d_model` and `nhead` with the defaults above.
    pub fn new(d_model: usize, nhead: usize) -> TransformerEncoderLayerConfig {
        TransformerEncoderLayerConfig {
            d_model,
            nhead,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: FeedForwardActivation::Relu,
            layer_norm_eps: 1e-5,
            norm_first: true,
            bias: true,
            causal: false,
        }
    }
}

/// A transformer encoder block: self-attention and a feed-forward network
/// (`linear1 [ff, E] -> activation -> linear2 [E, ff]`), each with a residual connection and a
/// layer norm. `[B, T, E] -> [B, T, E]`. Starts in training mode (dropout active).
pub struct TransformerEncoderLayer {
    config: TransformerEncoderLayerConfig,
    self_attn: MultiheadSelfAttention,
    linear1: Linear,
    dropout: Dropout,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
}

impl TransformerEncoderLayer {
    /// Initialized as PyTorch's: attention as [`MultiheadSelfAttention::new`], linear layers as
    /// [`Linear::new`], norms with weight 1 and bias 0.
    pub fn new(config: TransformerEncoderLayerConfig, rng: &mut Rng) -> Result<TransformerEncoderLayer> {
        let what = "transformer_encoder_layer";
        check_heads(what, config.d_model, config.nhead)?;
        check_rate(what, "dropout", config.dropout)?;
        if config.dim_feedforward == 0 {
            return invalid(what, "dim_feedforward must be at least 1, found 0");
        }
        if !(config.layer_norm_eps > 0.0 && config.layer_norm_eps.is_finite()) {
            return invalid(what, format!("layer_norm_eps = {} must be positive", config.layer_norm_eps));
        }
        let (e, ff) = (config.d_model, config.dim_feedforward);
        let attn_config = MultiheadSelfAttentionConfig {
            embed_dim: e,
            num_heads: config.nhead,
            dropout: config.dropout,
            bias: config.bias,
        };
        // Built in PyTorch's order, so the random draws follow the same sequence of layers.
        let self_attn = MultiheadSelfAttention::new(attn_config, rng)?;
        let linear1 = Linear::new(e, ff, config.bias, rng);
        let drop = |rng: &mut Rng| Dropout::new(DropoutConfig { p: config.dropout }, rng);
        let dropout = drop(rng)?;
        let linear2 = Linear::new(ff, e, config.bias, rng);
        let norm = || {
            LayerNorm::new(LayerNormConfig {
                eps: config.layer_norm_eps,
                bias: config.bias,
                ..LayerNormConfig::new(&[e])
            })
        };
        let (norm1, norm2) = (norm()?, norm()?);
        let (dropout1, dropout2) = (drop(rng)?, drop(rng)?);
        Ok(TransformerEncoderLayer { config, self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2 })
    }

    pub fn config(&self) -> &TransformerEncoderLayerConfig {
        &self.config
    }
    pub fn self_attn(&self) -> &MultiheadSelfAttention {
        &self.self_attn
    }
    pub fn linear1(&self) -> &Linear {
        &self.linear1
    }
    pub fn linear2(&self) -> &Linear {
        &self.linear2
    }
    pub fn norm1(&self) -> &LayerNorm {
        &self.norm1
    }
    pub fn norm2(&self) -> &LayerNorm {
        &self.norm2
    }

    /// `x [B, T, E]` (or `[T, E]`) through the block, with attention masked causally when
    /// `causal` (whatever the config says) and by `key_padding_mask` (`u8 [B, T]`, nonzero =
    /// ignore that key), as in [`MultiheadSelfAttention::forward_masked`].
    pub fn forward_masked(&self, x: &Tensor, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<Tensor> {
        let sa = |h: &Tensor| -> Result<Tensor> {
            self.dropout1.forward(&self.self_attn.forward_masked(h, causal, key_padding_mask)?)
        };
        if self.config.norm_first {
            let x = x.add(&sa(&self.norm1.forward(x)?)?)?;
            Ok(x.add(&self.feed_forward(&self.norm2.forward(&x)?)?)?)
        } else {
            let x = self.norm1.forward(&x.add(&sa(x)?)?)?;
            self.norm2.forward(&x.add(&self.feed_forward(&x)?)?)
        }
    }

    /// `linear2(dropout(activation(linear1(x))))`, then `dropout2`.
    fn feed_forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.linear1.forward(x)?;
        let h = match self.config.activation {
            FeedForwardActivation::Relu => h.relu()?,
            FeedForwardActivation::Gelu => h.gelu()?,
        };
        self.dropout2.forward(&self.linear2.forward(&self.dropout.forward(&h)?)?)
    }
}

impl Module for TransformerEncoderLayer {
    /// `[B, T, E] -> [B, T, E]`, causal when the config says so.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, self.config.causal, None)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, m) in self.children() {
            m.visit_params(&join_name(prefix, &name), f);
        }
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &Mutex<Rng>)) {
        self.self_attn.visit_rngs(&join_name(prefix, "self_attn"), f);
        for (name, d) in [("dropout", &self.dropout), ("dropout1", &self.dropout1), ("dropout2", &self.dropout2)] {
            d.visit_rngs(&join_name(prefix, name), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.self_attn.set_training(training);
        for d in [&mut self.dropout, &mut self.dropout1, &mut self.dropout2] {
            d.set_training(training);
        }
    }
    /// In PyTorch's parameter order (dropouts have no parameters and are left out).
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let named: [(&str, &dyn Module); 5] = [
            ("self_attn", &self.self_attn),
            ("linear1", &self.linear1),
            ("linear2", &self.linear2),
            ("norm1", &self.norm1),
            ("norm2", &self.norm2),
        ];
        named.into_iter().map(|(n, m)| (n.to_string(), m)).collect()
    }
    fn kind(&self) -> &'static str {
        "transformer_encoder_layer"
    }
}
