//! The workloads' models, built from tensile-nn layers exactly as the peers build theirs
//! (`../shared/peers/torch_bench.py`): same layers, sizes, activations and PyTorch
//! initializations. W1-W3 are [`Sequential`] stacks; the two sequence models are small
//! [`Module`]s of their own because they pick the last hidden state or add learned positions.

use tensile_core::{Rng, Tensor};
use tensile_nn::{
    Conv2d, Conv2dConfig, Embedding, EmbeddingConfig, FeedForwardActivation, Flatten, Gru, GruConfig, Linear,
    MaxPool2d, Module, Pool2dConfig, Relu, Sequential, TransformerEncoderLayer, TransformerEncoderLayerConfig,
    join_name,
};

use crate::data::Work;
use crate::error::Result;

/// The workload's model, freshly initialized from `rng`.
pub fn build(work: Work, rng: &mut Rng) -> Result<Box<dyn Module>> {
    Ok(match work {
        // 784-512-256-10, ReLU.
        Work::W1 => Box::new(
            Sequential::new()
                .with(Linear::new(784, 512, true, rng))
                .with(Relu)
                .with(Linear::new(512, 256, true, rng))
                .with(Relu)
                .with(Linear::new(256, 10, true, rng)),
        ),
        // [B, 1, 28, 28] -> conv 32 -> 26x26 -> pool -> 13x13 -> conv 64 -> 11x11 -> pool -> 5x5.
        Work::W2 => Box::new(
            Sequential::new()
                .with(Conv2d::new(Conv2dConfig::new(1, 32, (3, 3)), rng)?)
                .with(Relu)
                .with(MaxPool2d::new(Pool2dConfig::new((2, 2)))?)
                .with(Conv2d::new(Conv2dConfig::new(32, 64, (3, 3)), rng)?)
                .with(Relu)
                .with(MaxPool2d::new(Pool2dConfig::new((2, 2)))?)
                .with(Flatten)
                .with(Linear::new(64 * 5 * 5, 128, true, rng))
                .with(Relu)
                .with(Linear::new(128, 10, true, rng)),
        ),
        // 16-64-64-1, ReLU.
        Work::W3 => Box::new(
            Sequential::new()
                .with(Linear::new(16, 64, true, rng))
                .with(Relu)
                .with(Linear::new(64, 64, true, rng))
                .with(Relu)
                .with(Linear::new(64, 1, true, rng)),
        ),
        Work::W5Gru => Box::new(GruClassifier::new(rng)?),
        Work::W5Tf => Box::new(TinyTransformer::new(rng)?),
    })
}

/// w5gru: `x [B, 64, 32]` -> one-layer GRU with 128 hidden units from a zero state -> the last
/// hidden state `[B, 128]` -> linear 10.
pub struct GruClassifier {
    gru: Gru,
    fc: Linear,
}

impl GruClassifier {
    pub fn new(rng: &mut Rng) -> Result<GruClassifier> {
        let gru = Gru::new(GruConfig::new(32, 128), rng)?;
        Ok(GruClassifier { gru, fc: Linear::new(128, 10, true, rng) })
    }
}

impl Module for GruClassifier {
    fn forward(&self, x: &Tensor) -> tensile_nn::Result<Tensor> {
        // h_n is [layers * directions = 1, B, H].
        let (_, h_n) = self.gru.forward_with_state(x, None)?;
        self.fc.forward(&h_n.squeeze(0)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, m) in self.children() {
            m.visit_params(&join_name(prefix, &name), f);
        }
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        vec![("gru".into(), &self.gru as &dyn Module), ("fc".into(), &self.fc)]
    }
    fn kind(&self) -> &'static str {
        "gru_classifier"
    }
}

/// Sequence length, embedding width and vocabulary of w5tf.
const TF_LEN: usize = 64;
const TF_DIM: usize = 128;
const TF_VOCAB: usize = 1000;

/// w5tf: token ids `[B, T <= 64]` (u32) -> token embedding 128 + learned position embedding ->
/// two pre-norm encoder layers (4 heads, feed-forward 512, exact GELU, no dropout) -> mean over
/// positions -> linear 10. No final layer norm, as in the peers' model.
pub struct TinyTransformer {
    tok: Embedding,
    pos: Embedding,
    layers: Vec<TransformerEncoderLayer>,
    fc: Linear,
}

impl TinyTransformer {
    pub fn new(rng: &mut Rng) -> Result<TinyTransformer> {
        let tok = Embedding::new(EmbeddingConfig { num_embeddings: TF_VOCAB, embedding_dim: TF_DIM }, rng)?;
        let pos = Embedding::new(EmbeddingConfig { num_embeddings: TF_LEN, embedding_dim: TF_DIM }, rng)?;
        let config = TransformerEncoderLayerConfig {
            dim_feedforward: 512,
            dropout: 0.0,
            activation: FeedForwardActivation::Gelu,
            norm_first: true,
            ..TransformerEncoderLayerConfig::new(TF_DIM, 4)
        };
        let layers =
            (0..2).map(|_| TransformerEncoderLayer::new(config.clone(), rng)).collect::<tensile_nn::Result<_>>()?;
        Ok(TinyTransformer { tok, pos, layers, fc: Linear::new(TF_DIM, 10, true, rng) })
    }
}

impl Module for TinyTransformer {
    fn forward(&self, tokens: &Tensor) -> tensile_nn::Result<Tensor> {
        let t = tokens.dims().last().copied().unwrap_or(0);
        if tokens.rank() != 2 || t == 0 || t > TF_LEN {
            return Err(tensile_nn::Error::Invalid {
                what: "tiny_transformer".into(),
                msg: format!("tokens must be [B, T] with 1 <= T <= {TF_LEN}, found shape {}", tokens.shape()),
            });
        }
        // [B, T, E] + [T, E] (broadcast over the batch).
        let mut h = self.tok.forward(tokens)?.add(&self.pos.weight().narrow(0, 0, t)?)?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        self.fc.forward(&h.mean(1, false)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (name, m) in self.children() {
            m.visit_params(&join_name(prefix, &name), f);
        }
    }
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("tok".into(), &self.tok), ("pos".into(), &self.pos)];
        for (i, layer) in self.layers.iter().enumerate() {
            out.push((format!("layers.{i}"), layer));
        }
        out.push(("fc".into(), &self.fc));
        out
    }
    fn kind(&self) -> &'static str {
        "tiny_transformer"
    }
}
