//! # lmgc
//!
//! Lossless compression of federated-learning gradient updates, with an LLM as the
//! probability model (the LM-GC method), and the transport that carries them.
//!
//! This facade re-exports the workspace crates; the `lmgc` binary is the command-line front
//! end. See the README for the architecture.
//!
//! - [`core`]: tensor I/O, serializers, integer CDFs, range coder, codecs, `.lmgc` container.
//! - [`codecs`]: every codec by name, for the CLI and the benchmark.
//! - [`bench`]: `lmgc bench`, every codec side by side on the same files.

pub use lmgc_core as core;

pub mod bench;
pub mod codecs;
