//! The `Codec` trait and the codecs that need no model: `store` and `bytegroup`.
//!
//! A codec turns blocks (typed byte ranges of the payload) into streams and back. The
//! container records what each stream covers so that a decoder can check every size before
//! it allocates or decodes anything.

use serde::{Deserialize, Serialize};

use crate::classical::Classical;
use crate::prior::PriorFingerprint;
use crate::serialize::SerializerSpec;
use crate::{DType, Error, Result, bytegroup, cdf::Precision};

/// Reports progress in payload bytes done.
pub type Progress<'a> = dyn Fn(u64) + Sync + 'a;

/// Which codec made a container, with its parameters. Recorded in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CodecSpec {
    /// Bytes as they are.
    Store,
    /// Byte planes with adaptive context models ([`crate::bytegroup`]).
    Bytegroup,
    /// The LM-GC pipeline: serializer, tokenizer, windows, prior, range coder.
    Prior(PriorCodecSpec),
    /// A classical baseline ([`crate::classical`]).
    Classical(Classical),
    /// Per block, the prior codec with these parameters or `bytegroup`, whichever was
    /// smaller ([`crate::auto_codec`]). Appended last: earlier variants keep their encoding.
    Auto(PriorCodecSpec),
    /// The prior codes plane 0 of every element (a float's exponent), `bytegroup`'s models
    /// the other planes ([`crate::hybrid`]). The serializer applies to the plane-0 bytes.
    Hybrid(PriorCodecSpec),
}

/// Parameters of the prior (LM-GC) codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorCodecSpec {
    /// The model that predicts tokens.
    pub prior: PriorFingerprint,
    /// How bytes become text.
    pub serializer: SerializerSpec,
    /// Tokens per window, BOS included.
    pub window: u32,
    /// Table precision.
    pub precision: Precision,
    /// Whether tokens that the serializer cannot produce are masked out.
    pub mask: bool,
}

/// Largest window accepted from a file.
pub const MAX_WINDOW: u32 = 1 << 20;

impl CodecSpec {
    /// The prior codec's parameters, for the codecs that run a prior.
    pub fn prior(&self) -> Option<&PriorCodecSpec> {
        match self {
            CodecSpec::Prior(p) | CodecSpec::Auto(p) | CodecSpec::Hybrid(p) => Some(p),
            CodecSpec::Store | CodecSpec::Bytegroup | CodecSpec::Classical(_) => None,
        }
    }

    /// Short name (`store`, `bytegroup`, `prior:context-o3`).
    pub fn name(&self) -> String {
        match self {
            CodecSpec::Store => "store".into(),
            CodecSpec::Bytegroup => "bytegroup".into(),
            CodecSpec::Prior(p) => format!("prior:{}", p.prior.name),
            CodecSpec::Classical(c) => c.name(),
            CodecSpec::Auto(p) => format!("auto:{}", p.prior.name),
            CodecSpec::Hybrid(p) => format!("hybrid:{}", p.prior.name),
        }
    }

    /// Checks that a block's stream entries are consistent with this codec, the block's dtype
    /// and its length. Run on untrusted headers before any decoding.
    pub fn check_block(&self, dtype: DType, len: u64, streams: &[StreamEntry]) -> Result<()> {
        let bad = |why: String| {
            Err(Error::corrupt(format!(
                "{} block of {len} bytes: {why}",
                self.name()
            )))
        };
        match self {
            CodecSpec::Hybrid(_) => return crate::hybrid::check_block(self, dtype, len, streams),
            CodecSpec::Auto(p) => {
                let Some((first, rest)) = streams.split_first() else {
                    return bad("no selector".into());
                };
                let inner = match *first {
                    StreamEntry {
                        coded_len: 0,
                        span: 0,
                        symbols: crate::auto_codec::BYTEGROUP,
                    } => CodecSpec::Bytegroup,
                    StreamEntry {
                        coded_len: 0,
                        span: 0,
                        symbols: crate::auto_codec::PRIOR,
                    } => CodecSpec::Prior(p.clone()),
                    other => return bad(format!("bad selector {other:?}")),
                };
                return inner.check_block(dtype, len, rest);
            }
            CodecSpec::Classical(_) => {
                let expected: &[u64] = if len == 0 { &[] } else { &[len] };
                if streams.iter().map(|s| s.span).ne(expected.iter().copied())
                    || streams.iter().any(|s| s.symbols != s.span)
                {
                    return bad("a classical block is one stream covering it".into());
                }
            }
            CodecSpec::Store => {
                let expected: &[u64] = if len == 0 { &[] } else { &[len] };
                let spans: Vec<u64> = streams.iter().map(|s| s.span).collect();
                if spans != expected
                    || streams
                        .iter()
                        .any(|s| s.coded_len != s.span || s.symbols != s.span)
                {
                    return bad("stored streams do not cover the block".into());
                }
            }
            CodecSpec::Bytegroup => {
                let expected = bytegroup::chunk_lengths(dtype, len);
                if streams.len() != expected.len()
                    || streams
                        .iter()
                        .zip(&expected)
                        .any(|(s, &n)| s.span != n || s.symbols != n)
                {
                    return bad("streams do not match the chunking".into());
                }
                if streams.iter().any(|s| s.coded_len % 4 != 0) {
                    return bad("a stream is not a whole number of words".into());
                }
            }
            CodecSpec::Prior(p) => {
                if !(2..=MAX_WINDOW).contains(&p.window) {
                    return bad(format!("window {} outside 2..={MAX_WINDOW}", p.window));
                }
                if p.serializer.check().is_err() {
                    return bad(format!("serializer {} is not a valid one", p.serializer));
                }
                let text = p.serializer.text_len(dtype.width(), len);
                let mut sum = 0u64;
                for s in streams {
                    if s.symbols == 0 || s.symbols > s.span || s.coded_len % 4 != 0 {
                        return bad(format!(
                            "stream of {} tokens over {} characters",
                            s.symbols, s.span
                        ));
                    }
                    sum = sum
                        .checked_add(s.span)
                        .ok_or_else(|| Error::corrupt("span overflow"))?;
                }
                if sum != text {
                    return bad(format!(
                        "windows cover {sum} characters, the serialized block has {text}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One stream of a block as recorded in the container header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// Bytes of the coded stream.
    pub coded_len: u64,
    /// Symbols coded: bytes for `store`/`bytegroup`, tokens (BOS excluded) for a prior.
    pub symbols: u64,
    /// What the stream reproduces: payload bytes for `store`/`bytegroup`, serialized
    /// characters for a prior.
    pub span: u64,
}

/// A block to encode.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Element type (`U8` for bytes that are not tensor data).
    pub dtype: DType,
    /// The bytes.
    pub data: &'a [u8],
}

/// An encoded stream with its entry.
#[derive(Debug, Clone)]
pub struct EncodedStream {
    /// Coded bytes.
    pub bytes: Vec<u8>,
    /// Its header entry.
    pub entry: StreamEntry,
    /// Ideal code length in bits under the model (`-Σ log2 p`), where the codec knows it.
    pub ideal_bits: Option<f64>,
}

impl EncodedStream {
    /// A stream that reproduces `n` payload bytes from `bytes` (store, bytegroup, classical).
    pub fn covering(bytes: Vec<u8>, n: u64) -> Self {
        EncodedStream {
            entry: StreamEntry {
                coded_len: bytes.len() as u64,
                symbols: n,
                span: n,
            },
            bytes,
            ideal_bits: None,
        }
    }
}

/// A block to decode: its validated size and its streams.
#[derive(Debug, Clone)]
pub struct CodedBlock<'a> {
    /// Element type.
    pub dtype: DType,
    /// Decoded length in bytes.
    pub len: u64,
    /// `(entry, coded bytes)` per stream.
    pub streams: Vec<(StreamEntry, &'a [u8])>,
}

/// A lossless codec over blocks.
pub trait Codec {
    /// Name and parameters, recorded in the container.
    fn spec(&self) -> CodecSpec;
    /// Encodes every block into its streams.
    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>>;
    /// Decodes blocks whose entries passed [`CodecSpec::check_block`].
    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>>;
}

/// Stores bytes unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreCodec;

impl Codec for StoreCodec {
    fn spec(&self) -> CodecSpec {
        CodecSpec::Store
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        Ok(blocks
            .iter()
            .map(|b| {
                progress(b.data.len() as u64);
                let n = b.data.len() as u64;
                if n == 0 {
                    return vec![];
                }
                vec![EncodedStream {
                    ideal_bits: Some(n as f64 * 8.0),
                    ..EncodedStream::covering(b.data.to_vec(), n)
                }]
            })
            .collect())
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(blocks
            .iter()
            .map(|b| {
                progress(b.len);
                b.streams
                    .iter()
                    .flat_map(|(_, s)| s.iter().copied())
                    .collect()
            })
            .collect())
    }
}

/// The `bytegroup` codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytegroupCodec;

impl Codec for BytegroupCodec {
    fn spec(&self) -> CodecSpec {
        CodecSpec::Bytegroup
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        blocks
            .iter()
            .map(|b| {
                Ok(bytegroup::encode(b.dtype, b.data, progress)?
                    .into_iter()
                    .map(|(bytes, n)| EncodedStream::covering(bytes, n))
                    .collect())
            })
            .collect()
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        blocks
            .iter()
            .map(|b| {
                let mut out = vec![0u8; b.len as usize];
                let streams: Vec<(&[u8], u64)> =
                    b.streams.iter().map(|(e, s)| (*s, e.span)).collect();
                bytegroup::decode(b.dtype, &streams, &mut out, progress)?;
                Ok(out)
            })
            .collect()
    }
}
