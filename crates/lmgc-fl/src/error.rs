//! The one error type of `lmgc-fl`.

use std::path::PathBuf;

/// Everything that can go wrong in the transport.
///
/// Errors that concern one client (a bad token, a lying size, an undecodable update) are
/// reported to that client and logged; they never stop a round. The variants here are what
/// reaches the caller of [`crate::server::serve`] or [`crate::client::run`].
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
    /// A configuration file or value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// TLS set-up failed (certificate, key, fingerprint, CA file).
    #[error("TLS: {0}")]
    Tls(String),
    /// The QUIC connection could not be made or was lost.
    #[error("connection: {0}")]
    Connection(String),
    /// The peer broke the protocol: a malformed message, one out of order, a size above the
    /// limit.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// The aggregator refused this client (authentication, version, codec); the message is
    /// the aggregator's.
    #[error("rejected by the aggregator: {0}")]
    Rejected(String),
    /// The two sides share no protocol version.
    #[error(
        "protocol version mismatch: this build speaks {ours}, the peer {theirs}; run the same lmgc release on both sides"
    )]
    Version {
        /// This build's version.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// Compressing, decompressing or parsing a model or update failed.
    #[error(transparent)]
    Codec(#[from] lmgc_core::Error),
    /// An update does not fit the global model (names, shapes, types).
    #[error("update does not match the global model: {0}")]
    Mismatch(String),
    /// The local trainer failed.
    #[error("training: {0}")]
    Train(String),
    /// A broken invariant inside lmgc-fl: a bug, please report it.
    #[error("internal error (a bug in lmgc-fl): {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
