//! # lmgc
//!
//! Lossless compression of federated-learning gradient updates, with an LLM as the
//! probability model (the LM-GC method), and the transport that carries them.
//!
//! This facade re-exports the workspace crates; the `lmgc` binary is the command-line front
//! end. See the README for the architecture.
//!
//! - [`core`]: tensor I/O, serializers, integer CDFs, range coder, codecs, `.lmgc` container.
//! - [`model`]: GGUF models, tokenizers and the default model's fetcher (the LLM prior in progress).
//! - [`train`]: CIFAR-10, the paper's ConvNet on burn, gradient collection.
//! - [`codecs`]: every codec by name, for the CLI and the benchmark.
//! - [`bench`]: `lmgc bench`, every codec side by side on the same files.
//! - [`fedavg`]: federated ConvNet training on CIFAR-10 through the transport (the example).
//! - [`fl_transport`]: the QUIC aggregator and clients (`lmgc-fl`); [`fl`]: its codecs with
//!   the LLM, and the trainers of `lmgc client`.

pub use lmgc_core as core;
pub use lmgc_fl as fl_transport;
pub use lmgc_model as model;
pub use lmgc_train as train;

pub mod bench;
pub mod codecs;
pub mod fedavg;
pub mod fl;
