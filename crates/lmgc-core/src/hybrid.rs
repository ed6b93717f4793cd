//! `hybrid`: the prior codes the structured byte of every element, the byte planes the rest.
//!
//! In dense fp32 gradients the three mantissa bytes are close to random for any model, and an
//! LLM spends more than 8 bits on each of them (issue 9, docs/perf.md); what it can model is
//! the exponent. So each element is split as `bytegroup` splits it: plane 0 (the exponent of a
//! float, its sign moved to the bottom; the top byte of an integer) becomes a one-byte-per-
//! element block that the [`PriorCodec`] serializes (e.g. `hex-comma`: `7a,79,7b`, or `token`:
//! one model token per exponent) and codes, and planes 1.. go through `bytegroup`'s adaptive
//! models ([`bytegroup::encode_tail`]), plane 1 in the context of the element's exponent. With
//! `token` the model sees one token per `f32` instead of about 8 for `lm`'s text.
//!
//! Layout of a block's streams (docs/format.md): the prior's lanes over the head block, then
//! one tail stream per `bytegroup` chunk of the block (none for one-byte elements, whose head
//! is the whole element). The tail count follows from the block's dtype and length, so the
//! decoder splits the list without a marker.

use crate::codec::{Block, Codec, CodecSpec, CodedBlock, EncodedStream, Progress, StreamEntry};
use crate::prior_codec::PriorCodec;
use crate::{DType, Error, Result, bytegroup};

/// Lengths of a block's tail streams: `bytegroup` chunks, none for one-byte elements.
pub fn tail_lengths(dtype: DType, len: u64) -> Vec<u64> {
    if dtype.width() == 1 {
        Vec::new()
    } else {
        bytegroup::chunk_lengths(dtype, len)
    }
}

/// The hybrid codec over a prior codec, whose serializer applies to the head bytes.
pub struct HybridCodec<'p> {
    prior: PriorCodec<'p>,
}

impl<'p> HybridCodec<'p> {
    /// Wraps a prior codec.
    pub fn new(prior: PriorCodec<'p>) -> Self {
        HybridCodec { prior }
    }
}

/// Scales progress in head bytes to payload bytes.
fn scaled<'a>(progress: &'a Progress<'a>, blocks: u64, heads: u64) -> impl Fn(u64) + Sync + 'a {
    move |n| progress((u128::from(n) * u128::from(blocks) / u128::from(heads.max(1))) as u64)
}

impl Codec for HybridCodec<'_> {
    fn spec(&self) -> CodecSpec {
        match self.prior.spec() {
            CodecSpec::Prior(p) => CodecSpec::Hybrid(p),
            other => other,
        }
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        let heads: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| bytegroup::heads(b.dtype, b.data))
            .collect();
        let head_blocks: Vec<Block<'_>> = heads
            .iter()
            .map(|h| Block {
                dtype: DType::U8,
                data: h,
            })
            .collect();
        let total: u64 = blocks.iter().map(|b| b.data.len() as u64).sum();
        let head_total: u64 = heads.iter().map(|h| h.len() as u64).sum();
        // The tails need nothing from the prior: they are coded on a thread of their own while
        // the prior codes the heads (on a GPU host, the model's time hides theirs).
        let prior = &mut self.prior;
        let (out, tails) = std::thread::scope(|scope| {
            let tails = scope.spawn(|| {
                blocks
                    .iter()
                    .map(|b| match b.dtype.width() {
                        1 => Ok(Vec::new()),
                        _ => bytegroup::encode_tail(b.dtype, b.data, &|_| {}),
                    })
                    .collect::<Result<Vec<_>>>()
            });
            let out = prior.encode(&head_blocks, &scaled(progress, total, head_total));
            (out, tails.join())
        });
        let mut out = out?;
        let tails =
            tails.map_err(|_| Error::Internal("the tail coder thread panicked".into()))??;
        for (streams, tail) in out.iter_mut().zip(tails) {
            streams.extend(
                tail.into_iter()
                    .map(|(bytes, n)| EncodedStream::covering(bytes, n)),
            );
        }
        Ok(out)
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut head_blocks = Vec::with_capacity(blocks.len());
        let mut tails = Vec::with_capacity(blocks.len());
        for b in blocks {
            let k = tail_lengths(b.dtype, b.len).len();
            let split = b.streams.len().checked_sub(k).ok_or_else(|| {
                Error::corrupt(format!(
                    "hybrid block with {} streams, fewer than its {k} tail streams",
                    b.streams.len()
                ))
            })?;
            let (head, tail) = b.streams.split_at(split);
            head_blocks.push(CodedBlock {
                dtype: DType::U8,
                len: b.len / b.dtype.width() as u64,
                streams: head.to_vec(),
            });
            tails.push(tail);
        }
        let total: u64 = blocks.iter().map(|b| b.len).sum();
        let head_total: u64 = head_blocks.iter().map(|b| b.len).sum();
        let heads = self
            .prior
            .decode(&head_blocks, &scaled(progress, total, head_total))?;
        blocks
            .iter()
            .zip(heads)
            .zip(tails)
            .map(|((b, heads), tail)| {
                if b.dtype.width() == 1 {
                    return Ok(heads);
                }
                let mut out = vec![0u8; b.len as usize];
                let streams: Vec<(&[u8], u64)> = tail.iter().map(|(e, s)| (*s, e.span)).collect();
                bytegroup::decode_tail(b.dtype, &streams, &heads, &mut out, &|_| {})?;
                Ok(out)
            })
            .collect()
    }
}

/// [`CodecSpec::check_block`] for a hybrid block: the tail streams match the chunking, the
/// rest pass the prior codec's check over the head block.
pub(crate) fn check_block(
    spec: &CodecSpec,
    dtype: DType,
    len: u64,
    streams: &[StreamEntry],
) -> Result<()> {
    let CodecSpec::Hybrid(p) = spec else {
        return Err(Error::Internal(format!("hybrid check of {}", spec.name())));
    };
    let expected = tail_lengths(dtype, len);
    let Some(split) = streams.len().checked_sub(expected.len()) else {
        return Err(Error::corrupt(format!(
            "{} block of {len} bytes: {} streams, fewer than its {} tail streams",
            spec.name(),
            streams.len(),
            expected.len()
        )));
    };
    let (head, tail) = streams.split_at(split);
    if tail
        .iter()
        .zip(&expected)
        .any(|(s, &n)| s.span != n || s.symbols != n || s.coded_len % 4 != 0)
    {
        return Err(Error::corrupt(format!(
            "{} block of {len} bytes: tail streams do not match the chunking",
            spec.name()
        )));
    }
    CodecSpec::Prior(p.clone()).check_block(DType::U8, len / dtype.width() as u64, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::PriorCodecSpec;
    use crate::container;
    use crate::context_prior::ContextPrior;
    use crate::io::{Format, SourceFile, safetensors_bytes};
    use crate::prior::Prior;
    use crate::{Gradient, Tensor};
    use proptest::prelude::*;

    fn spec(prior: &dyn Prior, window: u32) -> PriorCodecSpec {
        spec_as(prior, window, "hex-comma")
    }

    fn spec_as(prior: &dyn Prior, window: u32, serializer: &str) -> PriorCodecSpec {
        PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: serializer.parse().unwrap(),
            window,
            precision: crate::cdf::Precision::MAX,
            mask: true,
        }
    }

    fn gradient_like(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = ((s >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
                let sign = if s & 1 == 0 { 1.0 } else { -1.0 };
                (sign * -u.ln() * 1e-3) as f32
            })
            .collect()
    }

    /// Round trip through the container with the built-in prior, every dtype in one file.
    fn round_trip(tensors: Vec<Tensor>, window: u32, lanes: Option<usize>) -> usize {
        round_trip_as(tensors, window, lanes, "hex-comma")
    }

    fn round_trip_as(
        tensors: Vec<Tensor>,
        window: u32,
        lanes: Option<usize>,
        serializer: &str,
    ) -> usize {
        let g = Gradient::new(tensors).unwrap();
        let file = safetensors_bytes(&g);
        let source = SourceFile::parse(Format::Safetensors, &file).unwrap();
        let mut prior = ContextPrior::new(2).unwrap();
        let s = spec_as(&prior, window, serializer);
        let codec = PriorCodec::new(&mut prior, s, 3).unwrap().with_lanes(lanes);
        let mut codec = HybridCodec::new(codec);
        let packed = container::compress(&source, &mut codec, &|_| {}).unwrap();
        let unpacked = container::decompress(&packed, &Default::default(), None, &|_| {}).unwrap();
        assert_eq!(unpacked, file);
        packed.len()
    }

    #[test]
    fn floats_ints_and_bytes_round_trip() {
        let x = gradient_like(3000, 7);
        let ints: Vec<i32> = (0..500).map(|i| i * 7919 - 1_000_000).collect();
        round_trip(
            vec![
                Tensor::from_f32("w", &x),
                Tensor::new(
                    "i",
                    DType::I32,
                    vec![ints.len() as u64],
                    ints.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
                .unwrap(),
                Tensor::new("b", DType::U8, vec![5], vec![1, 2, 3, 4, 5]).unwrap(),
                Tensor::new("e", DType::BF16, vec![0], vec![]).unwrap(),
                Tensor::from_f32("one", &[f32::NAN]),
            ],
            64,
            None,
        );
        // Exponents compress (the mantissas hardly do), header included.
        let size = round_trip(vec![Tensor::from_f32("w", &x)], 4096, None);
        assert!(size < 3000 * 4, "{size}");
    }

    #[test]
    fn corrupt_tail_counts_are_rejected() {
        let mut prior = ContextPrior::new(1).unwrap();
        let s = CodecSpec::Hybrid(spec(&prior, 16));
        let data: Vec<u8> = gradient_like(40, 3)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let codec =
            PriorCodec::new(&mut prior, spec(&ContextPrior::new(1).unwrap(), 16), 2).unwrap();
        let mut codec = HybridCodec::new(codec);
        let streams = codec
            .encode(
                &[Block {
                    dtype: DType::F32,
                    data: &data,
                }],
                &|_| {},
            )
            .unwrap()
            .remove(0);
        let entries: Vec<StreamEntry> = streams.iter().map(|s| s.entry).collect();
        s.check_block(DType::F32, 160, &entries).unwrap();
        assert!(
            s.check_block(DType::F32, 160, &entries[..entries.len() - 1])
                .is_err()
        );
        assert!(s.check_block(DType::F32, 164, &entries).is_err());
        assert!(
            s.check_block(DType::F32, 160, &entries[entries.len() - 1..])
                .is_err()
        );
        let mut bad = entries.clone();
        bad.last_mut().unwrap().span += 4;
        assert!(s.check_block(DType::F32, 160, &bad).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_values_any_dtype(
            dtype in prop::sample::select(DType::ALL.to_vec()),
            elements in prop::collection::vec(any::<u64>(), 0..200),
            window in 2u32..40,
            lanes in prop::option::of(1usize..5),
            serializer in prop::sample::select(vec!["hex-comma", "token", "token-be"]),
        ) {
            let w = dtype.width();
            let data: Vec<u8> = elements.iter().flat_map(|e| e.to_le_bytes()[..w].to_vec()).collect();
            round_trip_as(vec![Tensor::new("t", dtype, vec![elements.len() as u64], data).unwrap()], window, lanes, serializer);
        }
    }
}
