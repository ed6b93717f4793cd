//! The `.lmgc` container, version 1 (specified in `docs/format.md`).
//!
//! ```text
//! magic       8 bytes   89 4C 4D 47 43 0D 0A 1A   ("\x89LMGC\r\n\x1a")
//! version     1 byte    1
//! header_len  4 bytes   u32 little-endian, at most MAX_HEADER_LEN
//! header      postcard-encoded `Header`
//! header_hash 8 bytes   xxh3-64 of the header bytes, little-endian
//! streams     the coded streams, block by block, in header order; nothing after them
//! ```
//!
//! Decoding validates the whole header (sizes, limits, per-codec stream layout) before it
//! allocates for or decodes any stream, checks the prior's fingerprint before decoding, and
//! compares the xxh3-128 of the output with the recorded checksum at the end.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::auto_codec::AutoCodec;
use crate::classical::ClassicalCodec;
use crate::codec::{
    Block, BytegroupCodec, Codec, CodecSpec, CodedBlock, Progress, StoreCodec, StreamEntry,
};
use crate::context_prior::ContextPrior;
use crate::hybrid::HybridCodec;
use crate::io::{Format, Piece, SourceFile};
use crate::prior::Prior;
use crate::prior_codec::PriorCodec;
use crate::tensor::byte_len;
use crate::{DType, Error, Result};

/// First bytes of every `.lmgc` file.
pub const MAGIC: [u8; 8] = *b"\x89LMGC\r\n\x1a";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Headers above this size are refused before reading them (a million tensors fit).
pub const MAX_HEADER_LEN: u32 = 256 << 20;
const PREFIX_LEN: usize = MAGIC.len() + 1 + 4;

/// One tensor of the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

/// A contiguous range of the payload and the streams that code it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// Index into [`Header::tensors`], or `None` for bytes that are not tensor data.
    pub tensor: Option<u32>,
    /// Element type (`U8` for non-tensor bytes).
    pub dtype: DType,
    /// Length in bytes.
    pub len: u64,
    /// Its streams, in order.
    pub streams: Vec<StreamEntry>,
}

/// Everything before the streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The codec and its parameters (for a prior: its fingerprint, serializer, window).
    pub codec: CodecSpec,
    /// Format of the original file.
    pub source: Format,
    /// Length of the original file.
    pub payload_len: u64,
    /// xxh3-128 of the original file.
    pub checksum: [u8; 16],
    /// Tensors, in file order.
    pub tensors: Vec<TensorEntry>,
    /// Blocks covering the file, in order.
    pub blocks: Vec<BlockEntry>,
}

/// Limits applied to untrusted containers.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest payload that will be decoded, in bytes.
    pub max_output: u64,
    /// Whether the caller vouches for the file (it made it itself). Codecs whose decoders are
    /// unsafe on hostile input (fpzip) run only on trusted input.
    pub trusted_input: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_output: 16 << 30,
            trusted_input: false,
        }
    }
}

/// A parsed and validated container.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    /// The header.
    pub header: Header,
    /// Total file size.
    pub file_len: u64,
    /// Bytes before the first stream (magic, version, lengths, header, header hash).
    pub header_bytes: u64,
    streams: &'a [u8],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compresses a parsed tensor file with `codec`.
pub fn compress(
    source: &SourceFile,
    codec: &mut dyn Codec,
    progress: &Progress<'_>,
) -> Result<Vec<u8>> {
    compress_measured(source, codec, progress).map(|(bytes, _)| bytes)
}

/// [`compress`], also returning the ideal code length of all streams in bits (`-Σ log2 p`
/// under the codec's own tables) when the codec reports one for every stream.
pub fn compress_measured(
    source: &SourceFile,
    codec: &mut dyn Codec,
    progress: &Progress<'_>,
) -> Result<(Vec<u8>, Option<f64>)> {
    let payload = source.to_bytes();
    let mut tensors = Vec::new();
    let mut blocks = Vec::new();
    let mut inputs = Vec::new();
    for piece in &source.pieces {
        match piece {
            Piece::Verbatim(bytes) => {
                blocks.push((None, DType::U8, bytes.len() as u64));
                inputs.push(Block {
                    dtype: DType::U8,
                    data: bytes,
                });
            }
            Piece::Tensor(i) => {
                let t = &source.gradient.tensors()[*i];
                blocks.push((Some(tensors.len() as u32), t.dtype(), t.data().len() as u64));
                tensors.push(TensorEntry {
                    name: t.name().to_owned(),
                    dtype: t.dtype(),
                    shape: t.shape().to_vec(),
                });
                inputs.push(Block {
                    dtype: t.dtype(),
                    data: t.data(),
                });
            }
        }
    }
    let encoded = codec.encode(&inputs, progress)?;
    let header = Header {
        codec: codec.spec(),
        source: source.format,
        payload_len: payload.len() as u64,
        checksum: xxh3_128(&payload).to_le_bytes(),
        tensors,
        blocks: blocks
            .into_iter()
            .zip(&encoded)
            .map(|((tensor, dtype, len), streams)| BlockEntry {
                tensor,
                dtype,
                len,
                streams: streams.iter().map(|s| s.entry).collect(),
            })
            .collect(),
    };
    let header_bytes = postcard::to_allocvec(&header)
        .map_err(|e| Error::Internal(format!("header encoding: {e}")))?;
    let header_len = u32::try_from(header_bytes.len())
        .ok()
        .filter(|&n| n <= MAX_HEADER_LEN)
        .ok_or(Error::LimitExceeded {
            what: "container header",
            value: header_bytes.len() as u64,
            limit: u64::from(MAX_HEADER_LEN),
        })?;
    let body: usize = encoded.iter().flatten().map(|s| s.bytes.len()).sum();
    let mut out = Vec::with_capacity(PREFIX_LEN + header_bytes.len() + 8 + body);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&xxh3_64(&header_bytes).to_le_bytes());
    for s in encoded.iter().flatten() {
        out.extend_from_slice(&s.bytes);
    }
    let ideal = encoded.iter().flatten().map(|s| s.ideal_bits).sum();
    Ok((out, ideal))
}

/// Parses and validates a container without decoding its streams.
pub fn parse<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Container<'a>> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::NotLmgc);
    }
    let version = *bytes
        .get(MAGIC.len())
        .ok_or_else(|| Error::corrupt("file ends after the magic bytes"))?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let len_bytes = bytes
        .get(MAGIC.len() + 1..PREFIX_LEN)
        .ok_or_else(|| Error::corrupt("file ends inside the header length"))?;
    let header_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if header_len > MAX_HEADER_LEN {
        return Err(Error::LimitExceeded {
            what: "declared header",
            value: u64::from(header_len),
            limit: u64::from(MAX_HEADER_LEN),
        });
    }
    let header_end = PREFIX_LEN + header_len as usize;
    let header_bytes = bytes.get(PREFIX_LEN..header_end).ok_or_else(|| {
        Error::corrupt(format!(
            "file of {} bytes ends inside its {header_len}-byte header",
            bytes.len()
        ))
    })?;
    let hash = bytes
        .get(header_end..header_end + 8)
        .ok_or_else(|| Error::corrupt("file ends before the header hash"))?;
    if u64::from_le_bytes(hash.try_into().expect("8 bytes")) != xxh3_64(header_bytes) {
        return Err(Error::corrupt(
            "header hash mismatch (the header is damaged)",
        ));
    }
    let (header, rest) = postcard::take_from_bytes::<Header>(header_bytes)
        .map_err(|e| Error::corrupt(format!("header: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(format!(
            "{} stray bytes after the header",
            rest.len()
        )));
    }
    let streams = &bytes[header_end + 8..];
    validate(&header, streams.len() as u64, limits)?;
    Ok(Container {
        header,
        file_len: bytes.len() as u64,
        header_bytes: (header_end + 8) as u64,
        streams,
    })
}

fn validate(h: &Header, body_len: u64, limits: &DecodeLimits) -> Result<()> {
    // Whether this build can run the codec is checked when decoding, so `inspect` still works.
    if let CodecSpec::Classical(c) = h.codec
        && !c.safe_on_untrusted_input()
        && !limits.trusted_input
    {
        return Err(Error::Unsupported(format!(
            "{} streams are decoded only from trusted files (its decoder is unsafe on hostile input); pass --trust-input if you made this file",
            c.name()
        )));
    }
    if h.payload_len > limits.max_output {
        return Err(Error::LimitExceeded {
            what: "decoded payload",
            value: h.payload_len,
            limit: limits.max_output,
        });
    }
    let mut payload = 0u64;
    let mut coded = 0u64;
    let mut next_tensor = 0u32;
    for b in &h.blocks {
        if let Some(i) = b.tensor {
            // Tensors appear once each, in order.
            if i != next_tensor {
                return Err(Error::corrupt(format!(
                    "block refers to tensor {i}, expected {next_tensor}"
                )));
            }
            next_tensor += 1;
            let t = h
                .tensors
                .get(i as usize)
                .ok_or_else(|| Error::corrupt(format!("no tensor {i}")))?;
            if t.dtype != b.dtype || byte_len(t.dtype, &t.shape) != Some(b.len) {
                return Err(Error::corrupt(format!(
                    "tensor {:?}: shape {:?} of {} does not fill {} bytes",
                    t.name, t.shape, t.dtype, b.len
                )));
            }
        } else if b.dtype != DType::U8 {
            return Err(Error::corrupt("a non-tensor block must have dtype u8"));
        }
        if b.len % b.dtype.width() as u64 != 0 {
            return Err(Error::corrupt(format!(
                "block of {} bytes is not whole {} elements",
                b.len, b.dtype
            )));
        }
        payload = payload
            .checked_add(b.len)
            .ok_or_else(|| Error::corrupt("payload length overflows"))?;
        if payload > h.payload_len {
            return Err(Error::corrupt(format!(
                "blocks exceed the declared payload of {} bytes",
                h.payload_len
            )));
        }
        h.codec.check_block(b.dtype, b.len, &b.streams)?;
        for s in &b.streams {
            coded = coded
                .checked_add(s.coded_len)
                .ok_or_else(|| Error::corrupt("stream lengths overflow"))?;
        }
    }
    if next_tensor as usize != h.tensors.len() {
        return Err(Error::corrupt(format!(
            "{} tensors listed, {next_tensor} stored",
            h.tensors.len()
        )));
    }
    if payload != h.payload_len {
        return Err(Error::corrupt(format!(
            "blocks hold {payload} bytes, the header declares {}",
            h.payload_len
        )));
    }
    if coded != body_len {
        let what = if coded > body_len {
            "truncated"
        } else {
            "has trailing bytes"
        };
        return Err(Error::corrupt(format!(
            "file {what}: streams declare {coded} bytes, {body_len} present"
        )));
    }
    Ok(())
}

impl Container<'_> {
    /// The coded blocks, with each stream's bytes.
    fn coded_blocks(&self) -> Vec<CodedBlock<'_>> {
        let mut at = 0usize;
        self.header
            .blocks
            .iter()
            .map(|b| CodedBlock {
                dtype: b.dtype,
                len: b.len,
                streams: b
                    .streams
                    .iter()
                    .map(|e| {
                        let s = &self.streams[at..at + e.coded_len as usize];
                        at += e.coded_len as usize;
                        (*e, s)
                    })
                    .collect(),
            })
            .collect()
    }

    /// Decodes the payload. A prior codec needs `prior` unless it is the built-in one; its
    /// fingerprint is checked before anything is decoded.
    pub fn decode(
        &self,
        prior: Option<&mut dyn Prior>,
        progress: &Progress<'_>,
    ) -> Result<Vec<u8>> {
        self.decode_batched(prior, 0, progress)
    }

    /// [`Parsed::decode`] with `batch` windows of a prior codec decoded in lockstep (0: the
    /// prior's [`Prior::preferred_batch`]).
    pub fn decode_batched(
        &self,
        prior: Option<&mut dyn Prior>,
        batch: usize,
        progress: &Progress<'_>,
    ) -> Result<Vec<u8>> {
        let blocks = self.coded_blocks();
        let decoded = match &self.header.codec {
            CodecSpec::Store => StoreCodec.decode(&blocks, progress)?,
            CodecSpec::Bytegroup => BytegroupCodec.decode(&blocks, progress)?,
            CodecSpec::Classical(c) => ClassicalCodec(*c).decode(&blocks, progress)?,
            CodecSpec::Prior(spec) | CodecSpec::Auto(spec) | CodecSpec::Hybrid(spec) => {
                let mut builtin;
                let prior: &mut dyn Prior =
                    match (ContextPrior::from_fingerprint(&spec.prior), prior) {
                        (Some(p), _) => {
                            builtin = p;
                            &mut builtin
                        }
                        (None, Some(p)) => p,
                        (None, None) => return Err(Error::PriorRequired(spec.prior.to_string())),
                    };
                let codec = PriorCodec::new(prior, spec.clone(), batch)?;
                if matches!(self.header.codec, CodecSpec::Auto(_)) {
                    AutoCodec::new(codec).decode(&blocks, progress)?
                } else if matches!(self.header.codec, CodecSpec::Hybrid(_)) {
                    HybridCodec::new(codec).decode(&blocks, progress)?
                } else {
                    let mut codec = codec;
                    codec.decode(&blocks, progress)?
                }
            }
        };
        let mut out = Vec::with_capacity(self.header.payload_len as usize);
        for (b, d) in self.header.blocks.iter().zip(decoded) {
            if d.len() as u64 != b.len {
                return Err(Error::Internal(format!(
                    "codec produced {} bytes for a {}-byte block",
                    d.len(),
                    b.len
                )));
            }
            out.extend_from_slice(&d);
        }
        let sum = xxh3_128(&out).to_le_bytes();
        if sum != self.header.checksum {
            return Err(Error::ChecksumMismatch {
                expected: hex(&self.header.checksum),
                found: hex(&sum),
            });
        }
        Ok(out)
    }
}

/// Parses, validates and decodes a container in one call.
pub fn decompress(
    bytes: &[u8],
    limits: &DecodeLimits,
    prior: Option<&mut dyn Prior>,
    progress: &Progress<'_>,
) -> Result<Vec<u8>> {
    parse(bytes, limits)?.decode(prior, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::PriorCodecSpec;
    use crate::io::safetensors_bytes;
    use crate::{Gradient, Tensor};

    fn sample() -> SourceFile {
        let g = Gradient::new(vec![
            Tensor::from_f32(
                "conv.weight",
                &(0..300)
                    .map(|i| ((i as f32) * 0.37).sin() * 1e-3)
                    .collect::<Vec<_>>(),
            ),
            Tensor::new("bn.count", DType::I64, vec![1], 7i64.to_le_bytes().to_vec()).unwrap(),
            Tensor::new("h", DType::F16, vec![3], vec![0, 60, 0, 188, 255, 127]).unwrap(),
        ])
        .unwrap();
        SourceFile::parse(Format::Safetensors, &safetensors_bytes(&g)).unwrap()
    }

    type Compressor = Box<dyn FnMut(&SourceFile) -> Vec<u8>>;

    fn codecs() -> Vec<Compressor> {
        vec![
            Box::new(|s| compress(s, &mut StoreCodec, &|_| {}).unwrap()),
            Box::new(|s| compress(s, &mut BytegroupCodec, &|_| {}).unwrap()),
            Box::new(|s| {
                let mut prior = ContextPrior::new(3).unwrap();
                let spec = PriorCodecSpec {
                    prior: prior.fingerprint(),
                    serializer: "hex-space-be".parse().unwrap(),
                    window: 64,
                    precision: crate::cdf::Precision::new(20).unwrap(),
                    mask: true,
                };
                let mut c = PriorCodec::new(&mut prior, spec, 5).unwrap();
                compress(s, &mut c, &|_| {}).unwrap()
            }),
        ]
    }

    #[test]
    fn every_codec_round_trips_the_exact_file() {
        let src = sample();
        for mut c in codecs() {
            let packed = c(&src);
            let out = decompress(&packed, &DecodeLimits::default(), None, &|_| {}).unwrap();
            assert_eq!(out, src.to_bytes());
        }
    }

    /// Every truncation and a sweep of single-byte corruptions give an error or the right
    /// bytes, never a panic and never wrong output.
    #[test]
    fn damage_is_always_detected() {
        let src = sample();
        for mut c in codecs() {
            let packed = c(&src);
            for n in 0..packed.len() {
                assert!(decompress(&packed[..n], &DecodeLimits::default(), None, &|_| {}).is_err());
            }
            for i in (0..packed.len()).step_by(3) {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = packed.clone();
                    bad[i] ^= flip;
                    if let Ok(out) = decompress(&bad, &DecodeLimits::default(), None, &|_| {}) {
                        assert_eq!(
                            out,
                            src.to_bytes(),
                            "byte {i} ^ {flip:#x} decoded to wrong data"
                        );
                    }
                }
            }
            let mut longer = packed.clone();
            longer.push(0);
            assert!(matches!(
                decompress(&longer, &DecodeLimits::default(), None, &|_| {}),
                Err(Error::Corrupt(_))
            ));
        }
    }

    /// A well-formed header whose fields lie: each is refused before decoding.
    #[test]
    fn lying_headers_are_refused() {
        let src = sample();
        let packed = compress(&src, &mut BytegroupCodec, &|_| {}).unwrap();
        let c = parse(&packed, &DecodeLimits::default()).unwrap();
        let body = &packed[c.header_bytes as usize..];
        let rebuild = |h: &Header| {
            let hb = postcard::to_allocvec(h).unwrap();
            let mut out = MAGIC.to_vec();
            out.push(VERSION);
            out.extend_from_slice(&(hb.len() as u32).to_le_bytes());
            out.extend_from_slice(&hb);
            out.extend_from_slice(&xxh3_64(&hb).to_le_bytes());
            out.extend_from_slice(body);
            out
        };
        let mut cases: Vec<(&str, Header)> = Vec::new();
        let mut h = c.header.clone();
        h.payload_len = u64::MAX;
        cases.push(("huge payload", h));
        let mut h = c.header.clone();
        h.tensors[0].shape = vec![u64::MAX, 4];
        cases.push(("overflowing shape", h));
        let mut h = c.header.clone();
        h.blocks[1].len += 4;
        h.payload_len += 4;
        cases.push(("block longer than its tensor", h));
        let mut h = c.header.clone();
        h.blocks[1].streams[0].coded_len += 1;
        cases.push(("stream past the end", h));
        let mut h = c.header.clone();
        h.blocks[1].tensor = Some(9);
        cases.push(("missing tensor", h));
        let mut h = c.header.clone();
        h.codec = CodecSpec::Store;
        cases.push(("wrong codec for the streams", h));
        for (what, h) in cases {
            let err = parse(&rebuild(&h), &DecodeLimits::default()).expect_err(what);
            assert!(
                matches!(err, Error::Corrupt(_) | Error::LimitExceeded { .. }),
                "{what}: {err}"
            );
        }
        // The unmodified rebuild still decodes, so the cases above fail for their lie alone.
        assert!(decompress(&rebuild(&c.header), &DecodeLimits::default(), None, &|_| {}).is_ok());
        let small = DecodeLimits {
            max_output: 100,
            ..Default::default()
        };
        assert!(matches!(
            parse(&packed, &small),
            Err(Error::LimitExceeded { .. })
        ));
    }

    /// Format v1 is frozen: these digests change only with a new format version (and a
    /// decoder for the old one). A failure here means old files may no longer decode.
    #[test]
    fn golden_bytes_of_format_v1() {
        let src = sample();
        let digests: Vec<u64> = codecs()
            .into_iter()
            .map(|mut c| xxh3_64(&c(&src)))
            .collect();
        assert_eq!(digests, GOLDEN, "format v1 output changed: {digests:#x?}");
    }
    const GOLDEN: [u64; 3] = [
        0xfbac_6976_962a_b39a,
        0x758c_98f2_6468_4164,
        0x7866_3c6a_a7a8_9fb3,
    ];

    #[test]
    fn foreign_and_future_files() {
        assert!(matches!(
            parse(b"PK\x03\x04 a zip file", &DecodeLimits::default()),
            Err(Error::NotLmgc)
        ));
        let mut future = compress(&sample(), &mut StoreCodec, &|_| {}).unwrap();
        future[8] = 2;
        assert!(matches!(
            parse(&future, &DecodeLimits::default()),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        let mut huge = MAGIC.to_vec();
        huge.push(VERSION);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&huge, &DecodeLimits::default()),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn a_different_prior_is_refused_before_decoding() {
        let src = sample();
        let mut prior = ContextPrior::new(2).unwrap();
        let mut spec = PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: Default::default(),
            window: 32,
            precision: Default::default(),
            mask: false,
        };
        let packed = compress(
            &src,
            &mut PriorCodec::new(&mut prior, spec.clone(), 4).unwrap(),
            &|_| {},
        )
        .unwrap();
        let mut c = parse(&packed, &DecodeLimits::default()).unwrap();
        spec.prior.model_sha256[0] ^= 1;
        c.header.codec = CodecSpec::Prior(spec);
        let mut other = ContextPrior::new(2).unwrap();
        assert!(matches!(
            c.decode(Some(&mut other), &|_| {}),
            Err(Error::PriorMismatch { .. })
        ));
        assert!(matches!(
            c.decode(None, &|_| {}),
            Err(Error::PriorRequired(_))
        ));
    }

    /// Lanes: any lane count (one, a few, one per window, more than the decoder's batch)
    /// decodes to the same bytes, with one flush per lane; the old layout (one window per
    /// stream) is the special case of as many lanes as windows.
    #[test]
    fn any_lane_count_round_trips_and_fewer_lanes_are_smaller() {
        let values: Vec<f32> = (0..700)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let g = Gradient::new(vec![Tensor::from_f32("w", &values)]).unwrap();
        let src = SourceFile::parse(Format::Safetensors, &safetensors_bytes(&g)).unwrap();
        let mut prior = ContextPrior::new(2).unwrap();
        let spec = PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: "hex-space-be".parse().unwrap(),
            window: 48,
            precision: Default::default(),
            mask: true,
        };
        let mut sizes = Vec::new();
        for lanes in [Some(1), Some(3), None, Some(100_000)] {
            let mut codec = PriorCodec::new(&mut prior, spec.clone(), 4)
                .unwrap()
                .with_lanes(lanes);
            let packed = compress(&src, &mut codec, &|_| {}).unwrap();
            let c = parse(&packed, &DecodeLimits::default()).unwrap();
            let streams = c.coded_blocks()[1].streams.len(); // block 0: the file header
            match lanes {
                Some(1) => assert_eq!(streams, 1),
                Some(3) => assert_eq!(streams, 3),
                None => assert_eq!(streams, crate::prior_codec::DEFAULT_BATCH),
                _ => assert!(streams > 100, "one per window: {streams}"),
            }
            for batch in [1, 2, 64] {
                let mut other = ContextPrior::new(2).unwrap();
                let out = c.decode_batched(Some(&mut other), batch, &|_| {}).unwrap();
                assert_eq!(out, src.to_bytes(), "lanes {lanes:?}, batch {batch}");
            }
            sizes.push(packed.len());
        }
        assert!(sizes[0] < sizes[1] && sizes[1] < sizes[3], "{sizes:?}");
    }
}
