//! The one error type of `lmgc-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `lmgc-core`.
///
/// Variants separate bad input (a file that is not what it claims, a limit exceeded, an
/// unsupported feature) from I/O failures and from broken invariants inside lmgc
/// ([`Error::Internal`]), so a front end can choose its exit code with [`Error::is_internal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A tensor file (safetensors, npy, raw) is malformed.
    #[error("malformed {format} input: {reason}")]
    MalformedInput {
        /// `safetensors`, `npy` or `raw`.
        format: &'static str,
        /// What is wrong, with the offending values.
        reason: String,
    },
    /// The input uses a feature lmgc does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The bytes are not an `.lmgc` container at all.
    #[error("not an .lmgc file (bad magic bytes); was it produced by `lmgc compress`?")]
    NotLmgc,
    /// The container was written by an incompatible version of the format.
    #[error(
        "unsupported .lmgc format version {found} (this build reads version {supported}); upgrade lmgc"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// The container is truncated or corrupted.
    #[error("corrupt .lmgc container: {0}")]
    Corrupt(String),
    /// A declared size exceeds a configured limit; nothing was allocated for it.
    #[error(
        "{what} is {value} bytes, above the limit of {limit}; raise the limit if the file is trusted"
    )]
    LimitExceeded {
        /// Which size.
        what: &'static str,
        /// Declared value.
        value: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The container needs a different prior (model, quantization recipe or tokenizer).
    #[error(
        "prior mismatch: the file was encoded with {expected}, but the loaded prior is {found}; load the same model file"
    )]
    PriorMismatch {
        /// Fingerprint recorded in the file.
        expected: String,
        /// Fingerprint of the prior at hand.
        found: String,
    },
    /// The container needs a prior but none was supplied.
    #[error("this file was encoded with the prior {0}; decode it with that model loaded")]
    PriorRequired(String),
    /// Decoding finished but the output does not match the recorded checksum.
    #[error(
        "checksum mismatch after decoding (expected {expected}, got {found}): the file is corrupt or the prior computed different probabilities"
    )]
    ChecksumMismatch {
        /// Recorded xxh3-128, hex.
        expected: String,
        /// Computed xxh3-128, hex.
        found: String,
    },
    /// Serialized text does not parse back under its serializer spec.
    #[error("serialized text does not match format {spec}: {reason}")]
    Parse {
        /// The serializer spec.
        spec: String,
        /// What went wrong and where.
        reason: String,
    },
    /// A value given by the user (option, spec string) is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The option or value.
        what: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },
    /// The prior failed (model evaluation, tokenization).
    #[error("prior: {0}")]
    Prior(String),
    /// An invariant inside lmgc was broken; this is a bug.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// True when the failure is a bug in lmgc rather than bad input or the environment.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt(reason.into())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
