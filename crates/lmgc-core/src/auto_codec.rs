//! `auto`: every block coded by whichever of the prior codec and `bytegroup` is smaller.
//!
//! Layout (docs/format.md): with [`CodecSpec::Auto`], each block's first stream entry is a
//! selector carried entirely in the entry — `coded_len 0, span 0, symbols` [`BYTEGROUP`] or
//! [`PRIOR`] — followed by the chosen codec's own entries. When no block gains enough to pay
//! for the selectors and the larger codec description, the encoder writes a plain
//! `bytegroup` container instead, so `auto` is never larger than `bytegroup`.

use crate::codec::{
    Block, BytegroupCodec, Codec, CodecSpec, CodedBlock, EncodedStream, Progress, StreamEntry,
};
use crate::prior_codec::PriorCodec;
use crate::{Error, Result};

/// Selector value: the block is coded by `bytegroup`.
pub const BYTEGROUP: u64 = 0;
/// Selector value: the block is coded by the prior codec.
pub const PRIOR: u64 = 1;

/// The selector entry for `choice`.
pub fn selector(choice: u64) -> StreamEntry {
    StreamEntry {
        coded_len: 0,
        symbols: choice,
        span: 0,
    }
}

/// Bytes an entry takes in the header (postcard varints).
fn entry_len(e: &StreamEntry) -> usize {
    postcard::to_allocvec(e).map_or(30, |v| v.len())
}

/// Header bytes plus coded bytes of a block's streams.
fn cost(streams: &[EncodedStream]) -> usize {
    streams
        .iter()
        .map(|s| s.bytes.len() + entry_len(&s.entry))
        .sum()
}

/// Per-block choice between a prior codec and `bytegroup`.
pub struct AutoCodec<'p> {
    prior: PriorCodec<'p>,
    spec: CodecSpec,
}

impl<'p> AutoCodec<'p> {
    /// Wraps a prior codec.
    pub fn new(prior: PriorCodec<'p>) -> Self {
        let spec = match prior.spec() {
            CodecSpec::Prior(p) => CodecSpec::Auto(p),
            other => other,
        };
        AutoCodec { prior, spec }
    }
}

impl Codec for AutoCodec<'_> {
    /// `Auto` with the prior's parameters, or `Bytegroup` when the last encode found mixing
    /// not worth it.
    fn spec(&self) -> CodecSpec {
        self.spec.clone()
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        let grouped = BytegroupCodec.encode(blocks, &|_| {})?;
        let prior = self.prior.encode(blocks, progress)?;
        let sel = entry_len(&selector(PRIOR));
        let choose_prior: Vec<bool> = grouped
            .iter()
            .zip(&prior)
            .map(|(g, p)| cost(p) < cost(g))
            .collect();
        let saved: usize = grouped
            .iter()
            .zip(&prior)
            .zip(&choose_prior)
            .filter(|(_, c)| **c)
            .map(|((g, p), _)| cost(g) - cost(p))
            .sum();
        let spec_len = |s: &CodecSpec| postcard::to_allocvec(s).map_or(usize::MAX / 4, |v| v.len());
        let auto_spec = match self.prior.spec() {
            CodecSpec::Prior(p) => CodecSpec::Auto(p),
            other => return Err(Error::Internal(format!("auto over {}", other.name()))),
        };
        // Each block pays its selector, and the length prefix of its entry list may grow by up
        // to two varint bytes (more entries); the codec description is larger too.
        let overhead =
            spec_len(&auto_spec) - spec_len(&CodecSpec::Bytegroup) + (sel + 2) * blocks.len();
        if saved <= overhead {
            self.spec = CodecSpec::Bytegroup;
            return Ok(grouped);
        }
        self.spec = auto_spec;
        Ok(grouped
            .into_iter()
            .zip(prior)
            .zip(choose_prior)
            .map(|((g, p), use_prior)| {
                let (choice, mut streams) = if use_prior {
                    (PRIOR, p)
                } else {
                    (BYTEGROUP, g)
                };
                streams.insert(
                    0,
                    EncodedStream {
                        bytes: Vec::new(),
                        entry: selector(choice),
                        ideal_bits: None,
                    },
                );
                streams
            })
            .collect())
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        // Split by selector (validated by `CodecSpec::check_block`), decode each group with its
        // codec, put the blocks back in order.
        let mut groups: [(Vec<usize>, Vec<CodedBlock<'_>>); 2] = Default::default();
        for (i, b) in blocks.iter().enumerate() {
            let (first, rest) = b
                .streams
                .split_first()
                .ok_or_else(|| Error::corrupt("auto block without a selector"))?;
            let g = match first.0.symbols {
                BYTEGROUP => 0,
                PRIOR => 1,
                other => return Err(Error::corrupt(format!("auto selector {other}"))),
            };
            groups[g].0.push(i);
            groups[g].1.push(CodedBlock {
                dtype: b.dtype,
                len: b.len,
                streams: rest.to_vec(),
            });
        }
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); blocks.len()];
        let [(gi, gb), (pi, pb)] = groups;
        for (i, d) in gi.into_iter().zip(BytegroupCodec.decode(&gb, progress)?) {
            out[i] = d;
        }
        if !pb.is_empty() {
            for (i, d) in pi.into_iter().zip(self.prior.decode(&pb, progress)?) {
                out[i] = d;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdf::Precision;
    use crate::codec::PriorCodecSpec;
    use crate::container::{self, DecodeLimits};
    use crate::context_prior::ContextPrior;
    use crate::io::{Format, SourceFile, safetensors_bytes};
    use crate::prior::Prior;
    use crate::{DType, Gradient, Tensor};

    fn spec(prior: &ContextPrior) -> PriorCodecSpec {
        PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: "hex-space-be".parse().unwrap(),
            window: 128,
            precision: Precision::MAX,
            mask: true,
        }
    }

    fn noisy(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1 << 24) as f32 * 1e-3 - 5e-4
            })
            .collect()
    }

    /// Through the container: decodes exactly and is never larger than `bytegroup`.
    #[test]
    fn never_larger_than_bytegroup_and_decodes() {
        let g = Gradient::new(vec![
            Tensor::from_f32("a", &noisy(300, 1)),
            Tensor::from_f32("b", &[0.0; 64]),
        ])
        .unwrap();
        let bytes = safetensors_bytes(&g);
        let src = SourceFile::parse(Format::Safetensors, &bytes).unwrap();
        let mut prior = ContextPrior::new(3).unwrap();
        let s = spec(&prior);
        let mut auto = AutoCodec::new(PriorCodec::new(&mut prior, s, 8).unwrap());
        let packed = container::compress(&src, &mut auto, &|_| {}).unwrap();
        let plain = container::compress(&src, &mut BytegroupCodec, &|_| {}).unwrap();
        assert!(
            packed.len() <= plain.len(),
            "{} > {}",
            packed.len(),
            plain.len()
        );
        let back = container::decompress(&packed, &DecodeLimits::default(), None, &|_| {}).unwrap();
        assert_eq!(back, bytes);
    }

    /// Blocks coded by different codecs in one container decode back in order, and the
    /// selectors are validated.
    #[test]
    fn mixed_blocks_decode_and_selectors_are_checked() {
        let a: Vec<u8> = noisy(200, 2).iter().flat_map(|v| v.to_le_bytes()).collect();
        let b: Vec<u8> = noisy(50, 3).iter().flat_map(|v| v.to_le_bytes()).collect();
        let blocks = [
            Block {
                dtype: DType::F32,
                data: &a,
            },
            Block {
                dtype: DType::F32,
                data: &b,
            },
        ];
        let mut prior = ContextPrior::new(2).unwrap();
        let s = spec(&prior);
        let by_group = BytegroupCodec.encode(&blocks[..1], &|_| {}).unwrap();
        let mut codec = PriorCodec::new(&mut prior, s.clone(), 4).unwrap();
        let by_prior = codec.encode(&blocks[1..], &|_| {}).unwrap();
        let mut streams = vec![vec![selector(BYTEGROUP)], vec![selector(PRIOR)]];
        streams[0].extend(by_group[0].iter().map(|e| e.entry));
        streams[1].extend(by_prior[0].iter().map(|e| e.entry));
        let auto = CodecSpec::Auto(s.clone());
        auto.check_block(DType::F32, a.len() as u64, &streams[0])
            .unwrap();
        auto.check_block(DType::F32, b.len() as u64, &streams[1])
            .unwrap();
        // A selector naming no codec, or one with bytes, or a missing one: corrupt.
        for bad in [
            selector(7),
            StreamEntry {
                coded_len: 4,
                ..selector(0)
            },
        ] {
            let mut s = streams[0].clone();
            s[0] = bad;
            assert!(auto.check_block(DType::F32, a.len() as u64, &s).is_err());
        }
        assert!(
            auto.check_block(DType::F32, a.len() as u64, &streams[0][1..])
                .is_err()
        );
        let coded: Vec<CodedBlock<'_>> = [(&blocks[0], &by_group[0]), (&blocks[1], &by_prior[0])]
            .iter()
            .zip(&streams)
            .map(|((blk, enc), entries)| CodedBlock {
                dtype: blk.dtype,
                len: blk.data.len() as u64,
                streams: entries
                    .iter()
                    .zip(std::iter::once(&[][..]).chain(enc.iter().map(|e| &e.bytes[..])))
                    .map(|(e, bytes)| (*e, bytes))
                    .collect(),
            })
            .collect();
        let mut auto_codec = AutoCodec::new(codec);
        let out = auto_codec.decode(&coded, &|_| {}).unwrap();
        assert_eq!(out, vec![a.clone(), b.clone()]);
    }
}
