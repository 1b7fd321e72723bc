//! The error type of tensile-train.

/// Everything a training run can refuse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] tensile_core::Error),
    #[error(transparent)]
    Model(#[from] tensile_nn::Error),
    #[error(transparent)]
    Data(#[from] tensile_data::Error),
    #[error("training configuration: {key}: {msg}")]
    Config { key: &'static str, msg: String },
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("step {step}: {msg}")]
    Diverged { step: u64, msg: String },
}

/// `Result` with tensile-train's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
