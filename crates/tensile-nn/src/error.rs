//! The error type of tensile-nn.

/// Everything building, running or updating a model can refuse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] tensile_core::Error),

    #[error("{what}: {msg}")]
    Invalid { what: String, msg: String },

    #[error("parameter '{name}' has no gradient of the right shape: expected {expected}, found {found}")]
    GradShape { name: String, expected: String, found: String },
}

/// `Result` with tensile-nn's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid<T>(what: impl Into<String>, msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid { what: what.into(), msg: msg.into() })
}
