//! The LM-GC pipeline as a [`Codec`] over any [`Prior`].
//!
//! Encode: block bytes → serializer text → tokens → windows of `window - 1` tokens, each
//! behind BOS → [`Prior::prefill`] over batches of windows → one range-coded stream per
//! window. Decode runs a batch of windows in lockstep through [`Prior::step`], range-decodes
//! one token per window per step, detokenizes and parses the text back into bytes.

use crate::codec::{
    Block, Codec, CodecSpec, CodedBlock, EncodedStream, PriorCodecSpec, Progress, StreamEntry,
};
use crate::coder::{Decoder, Encoder};
use crate::prior::{Prior, TableSpec, TokenId};
use crate::{Error, Result};

/// Windows scored per prior call by default.
pub const DEFAULT_BATCH: usize = 64;

/// Memory the windows of one batch may hold in prior state (KV caches): the batch shrinks to
/// fit, so a large default batch stays safe for an LLM with long windows.
pub const STATE_BUDGET: usize = 2 << 30;

/// LM-GC over a prior.
pub struct PriorCodec<'p> {
    prior: &'p mut dyn Prior,
    spec: PriorCodecSpec,
    table: TableSpec,
    batch: usize,
}

/// One window on the encoder side.
struct Window {
    block: usize,
    tokens: Vec<TokenId>,
    span: u64,
}

impl<'p> PriorCodec<'p> {
    /// Wraps a prior. `spec.prior` must be the prior's fingerprint.
    pub fn new(prior: &'p mut dyn Prior, spec: PriorCodecSpec, batch: usize) -> Result<Self> {
        if spec.prior != prior.fingerprint() {
            return Err(Error::PriorMismatch {
                expected: spec.prior.to_string(),
                found: prior.fingerprint().to_string(),
            });
        }
        if !(2..=crate::codec::MAX_WINDOW).contains(&spec.window) {
            return Err(Error::InvalidArgument {
                what: "window",
                reason: format!(
                    "{} tokens; use 2 to {}",
                    spec.window,
                    crate::codec::MAX_WINDOW
                ),
            });
        }
        let mask = spec.mask.then(|| {
            let mut m = vec![false; prior.vocab_size()];
            for t in prior.tokens_within(&spec.serializer.charset()) {
                if let Some(slot) = m.get_mut(t as usize) {
                    *slot = true;
                }
            }
            m
        });
        let table = TableSpec {
            precision: spec.precision,
            mask,
        };
        let limit = Self::batch_limit(prior.state_bytes_per_position(), spec.window);
        Ok(PriorCodec {
            prior,
            spec,
            table,
            batch: batch.clamp(1, limit),
        })
    }

    /// Windows per batch that keep prior state within [`STATE_BUDGET`]: for a state of
    /// `per_position` bytes per position, `STATE_BUDGET / (per_position · window)`, at least 1.
    pub fn batch_limit(per_position: usize, window: u32) -> usize {
        let per_window = per_position.saturating_mul(window as usize);
        match per_window {
            0 => usize::MAX,
            n => (STATE_BUDGET / n).max(1),
        }
    }

    fn windows(&self, index: usize, block: &Block<'_>) -> Result<Vec<Window>> {
        let text = self
            .spec
            .serializer
            .serialize(block.dtype.width(), block.data);
        let tokens = self.prior.tokenize(&text)?;
        let bos = self.prior.bos();
        let mut out = Vec::new();
        let mut covered = Vec::with_capacity(text.len());
        for chunk in tokens.chunks(self.spec.window as usize - 1) {
            let before = covered.len();
            self.prior.detokenize(chunk, &mut covered)?;
            let mut w = Vec::with_capacity(chunk.len() + 1);
            w.push(bos);
            w.extend_from_slice(chunk);
            out.push(Window {
                block: index,
                tokens: w,
                span: (covered.len() - before) as u64,
            });
        }
        if covered != text {
            return Err(Error::Prior("the tokenizer does not reproduce the serialized text; this prior cannot code it losslessly".into()));
        }
        Ok(out)
    }
}

impl Codec for PriorCodec<'_> {
    fn spec(&self) -> CodecSpec {
        CodecSpec::Prior(self.spec.clone())
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        let mut windows = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            windows.extend(self.windows(i, b)?);
        }
        let mut out: Vec<Vec<EncodedStream>> = vec![Vec::new(); blocks.len()];
        let chars_per_byte = self.spec.serializer.chars_per_byte() as u64;
        for batch in windows.chunks(self.batch) {
            let mut encoders: Vec<Encoder> = batch.iter().map(|_| Encoder::new()).collect();
            let mut ideal = vec![0f64; batch.len()];
            let refs: Vec<&[TokenId]> = batch.iter().map(|w| &w.tokens[..]).collect();
            self.prior.prefill(&refs, &self.table, &mut |w, t, table| {
                let token = refs[w][t] as usize;
                ideal[w] += table.cost_bits(token);
                encoders[w].encode(token, table).map_err(|_| {
                    Error::Prior(format!("token {token} has zero probability (is the alphabet mask right for this serializer?)"))
                })
            })?;
            for ((w, enc), bits) in batch.iter().zip(encoders).zip(ideal) {
                let bytes = enc.finish();
                out[w.block].push(EncodedStream {
                    entry: StreamEntry {
                        coded_len: bytes.len() as u64,
                        symbols: w.tokens.len() as u64 - 1,
                        span: w.span,
                    },
                    bytes,
                    ideal_bits: Some(bits),
                });
                progress(w.span / chars_per_byte.max(1));
            }
        }
        Ok(out)
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        // Flatten all windows; decode them batch by batch.
        let windows: Vec<(usize, StreamEntry, &[u8])> = blocks
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.streams.iter().map(move |(e, s)| (i, *e, *s)))
            .collect();
        let mut texts: Vec<Vec<u8>> = vec![Vec::new(); blocks.len()];
        let bos = self.prior.bos();
        let chars_per_byte = self.spec.serializer.chars_per_byte() as u64;
        for batch in windows.chunks(self.batch) {
            let mut decoders = batch
                .iter()
                .map(|(_, _, s)| Decoder::new(s))
                .collect::<Result<Vec<_>>>()?;
            let mut tokens: Vec<Vec<TokenId>> = batch
                .iter()
                .map(|(_, e, _)| Vec::with_capacity((e.symbols as usize).min(4096)))
                .collect();
            self.prior.start(batch.len())?;
            let mut inputs: Vec<(usize, TokenId)> = (0..batch.len()).map(|w| (w, bos)).collect();
            while !inputs.is_empty() {
                let mut next = Vec::with_capacity(inputs.len());
                self.prior.step(&inputs, &self.table, &mut |w, table| {
                    let token = decoders[w].decode(table)? as TokenId;
                    tokens[w].push(token);
                    if (tokens[w].len() as u64) < batch[w].1.symbols {
                        next.push((w, token));
                    }
                    Ok(())
                })?;
                inputs = next;
            }
            for ((block, entry, _), toks) in batch.iter().zip(&tokens) {
                let before = texts[*block].len();
                self.prior.detokenize(toks, &mut texts[*block])?;
                let got = (texts[*block].len() - before) as u64;
                if got != entry.span {
                    return Err(Error::corrupt(format!(
                        "a window decoded to {got} characters, its header says {} (corrupt data or a different prior)",
                        entry.span
                    )));
                }
                progress(entry.span / chars_per_byte.max(1));
            }
        }
        blocks
            .iter()
            .zip(texts)
            .map(|(b, text)| {
                self.spec
                    .serializer
                    .deserialize(b.dtype.width(), &text, b.len as usize)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{PriorCodec, STATE_BUDGET};

    #[test]
    fn batches_shrink_to_the_state_budget() {
        assert_eq!(PriorCodec::batch_limit(0, 2048), usize::MAX);
        // SmolLM2's KV cache: 46,440 bytes per position; 2,048-token windows: 22 at once.
        assert_eq!(
            PriorCodec::batch_limit(46_440, 2048),
            STATE_BUDGET / (46_440 * 2048)
        );
        assert_eq!(PriorCodec::batch_limit(46_440, 2048), 22);
        assert_eq!(PriorCodec::batch_limit(usize::MAX, 1 << 20), 1);
    }
}
