//! The one error type of `lmgc-model`.

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A GGUF file is malformed, truncated or hostile; nothing was allocated for the bad field.
    #[error("malformed GGUF file: {0}")]
    Gguf(String),
    /// The file is valid but uses something lmgc does not support.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A tensor or metadata key the architecture needs is missing or has the wrong type.
    #[error("model file lacks {0}")]
    Missing(String),
    /// A backend broke the exact-arithmetic contract or failed to run.
    #[error("backend: {0}")]
    Backend(String),
    /// The tokenizer could not be built or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for lmgc_core::Error {
    fn from(e: Error) -> Self {
        lmgc_core::Error::Prior(e.to_string())
    }
}
