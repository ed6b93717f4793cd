//! # lmgc-core
//!
//! The lossless half of lmgc: everything between a gradient file and a compressed `.lmgc`
//! container, with no dependency on any machine-learning framework.
//!
//! ```text
//!  tensor file ──io──▶ SourceFile (Gradient + verbatim pieces)
//!      │                                 │ blocks
//!      │            ┌────────────────────┼─────────────────────────┐
//!      │            ▼                    ▼                         ▼
//!      │        StoreCodec        BytegroupCodec            PriorCodec<dyn Prior>
//!      │                       byte planes + adaptive   serialize ▶ tokenize ▶ windows
//!      │                        context models           ▶ Prior tables (cdf)
//!      │                              │                         │
//!      │                              └──── coder (range coder) ┘
//!      │                                         │ streams
//!      └──────────── container (.lmgc v1: header, streams, checksum) ◀┘
//! ```
//!
//! The classical baselines of the LM-GC paper and the strong general-purpose compressors
//! ([`classical`]) sit behind the same [`codec::Codec`] trait, so `lmgc bench` compares
//! everything in one table.
//!
//! What this crate does not do: run a neural network (that is `lmgc-model`, which
//! implements [`Prior`]), move bytes over a network (`lmgc-fl`), or parse command lines.
//!
//! ```
//! use lmgc_core::{container, codec::BytegroupCodec, io::{Format, SourceFile, safetensors_bytes}, Gradient, Tensor};
//! let g = Gradient::new(vec![Tensor::from_f32("w", &[0.5, -0.0, f32::NAN, 1e-40])])?;
//! let file = safetensors_bytes(&g);
//! let source = SourceFile::parse(Format::Safetensors, &file)?;
//! let packed = container::compress(&source, &mut BytegroupCodec, &|_| {})?;
//! let unpacked = container::decompress(&packed, &Default::default(), None, &|_| {})?;
//! assert_eq!(unpacked, file);
//! # Ok::<(), lmgc_core::Error>(())
//! ```

pub mod adaptive;
pub mod auto_codec;
pub mod byte_tokens;
pub mod bytegroup;
pub mod cdf;
pub mod classical;
pub mod codec;
pub mod coder;
pub mod container;
pub mod context_prior;
mod dtype;
mod error;
pub mod fsutil;
pub mod hybrid;
pub mod io;
pub mod payload;
pub mod prior;
pub mod prior_codec;
pub mod serialize;
mod tensor;

pub use dtype::DType;
pub use error::{Error, Result};
pub use prior::{Prior, PriorFingerprint, TokenId};
pub use tensor::{Gradient, Tensor, byte_len};
