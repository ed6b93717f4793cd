//! # lmgc
//!
//! Lossless compression of federated-learning gradient updates, with an LLM as the
//! probability model (the LM-GC method), and the transport that carries them.
//!
//! This facade re-exports the workspace crates; the `lmgc` binary is the command-line front
//! end. See the README for the architecture.
//!
//! - [`core`]: tensor I/O, serializers, integer CDFs, range coder, codecs, `.lmgc` container.

pub use lmgc_core as core;
