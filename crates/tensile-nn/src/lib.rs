//! tensile-nn: the building blocks of models — the [`Module`] trait, layers, initializers,
//! losses and optimizers.
//!
//! Layers follow PyTorch's shapes, defaults and parameter names, so models and results port.
//! This crate knows nothing of data files, the training loop or the command line.
//!
//! One training step by hand:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tensile_core::{DType, Rng, Tensor};
//! use tensile_nn::{Adam, AdamConfig, Linear, Module, Optimizer, Relu, Sequential, cross_entropy, named_parameters};
//!
//! let mut rng = Rng::seed(0);
//! let model = Sequential::new()
//!     .with(Linear::new(4, 16, true, &mut rng))
//!     .with(Relu)
//!     .with(Linear::new(16, 3, true, &mut rng));
//! let mut opt = Adam::new(named_parameters(&model), AdamConfig { lr: 0.01, ..Default::default() });
//! let x = Tensor::randn((8, 4), 0.0, 1.0, DType::F32, &mut rng);
//! let y = Tensor::from_vec(vec![0u32, 1, 2, 0, 1, 2, 0, 1], 8)?;
//! let before = cross_entropy(&model.forward(&x)?, &y)?;
//! for _ in 0..50 {
//!     let loss = cross_entropy(&model.forward(&x)?, &y)?;
//!     opt.step(&loss.backward()?)?;
//! }
//! let after = cross_entropy(&model.forward(&x)?, &y)?;
//! assert!(after.item()? < before.item()? / 4.0, "{before:?} -> {after:?}");
//! # Ok(()) }
//! ```

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod error;
pub mod init;
pub mod linear;
pub mod loss;
pub mod module;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reshape;
pub mod residual;
pub mod rnn;
pub mod schedule;
pub mod spec;
pub mod summary;
pub mod tabular;
pub mod weights;

pub use activation::{Gelu, LeakyRelu, Relu, Sigmoid, Silu, Softmax, Tanh};
pub use attention::{
    FeedForwardActivation, MultiheadSelfAttention, MultiheadSelfAttentionConfig, TransformerEncoderLayer,
    TransformerEncoderLayerConfig,
};
pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
pub use dropout::{Dropout, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig};
pub use error::{Error, Result};
pub use init::{FanMode, Init, Nonlinearity};
pub use linear::Linear;
pub use loss::cross_entropy;
pub use loss::{
    BceWithLogitsLoss, CrossEntropyLoss, HuberLoss, KlDivLoss, KlReduction, L1Loss, Loss, MseLoss, NllLoss, Reduction,
    SmoothL1Loss, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss,
};
pub use module::{Module, Sequential, cast, join_name, named_parameters, parameter_count};
pub use norm::{BatchNorm1d, BatchNorm2d, BatchNormConfig, LayerNorm, LayerNormConfig};
pub use optim::{
    Adagrad, AdagradConfig, AdamW, AdamWConfig, GradClip, Lion, LionConfig, OptimizerState, ParamGroup, RmsProp,
    RmsPropConfig, clip_grad_norm, clip_grad_value, decay_split,
};
pub use optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
pub use pool::{AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d, Pool1dConfig, Pool2dConfig};
pub use reshape::{Flatten, Reshape};
pub use residual::Residual;
pub use rnn::{Gru, GruConfig, Lstm, LstmConfig, RecurrentConfig};
pub use schedule::{Schedule, ScheduleConfig, Scheduler, SchedulerState, StepUnit, Warmup};
pub use spec::{LayerSpec, ModelSpec, Pair};
pub use summary::{Summary, SummaryRow, summary};
pub use tabular::{Embedded, IndexColumn, TabularEmbedding, embedding_dim_for};
pub use tensile_core::ops::PoolWindow;
pub use weights::{load_weights, save_weights};
