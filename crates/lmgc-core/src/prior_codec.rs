//! The LM-GC pipeline as a [`Codec`] over any [`Prior`].
//!
//! Encode: block bytes → serializer text → tokens → windows of `window - 1` tokens, each
//! behind BOS → [`Prior::prefill`] over batches of windows → range coding. Decode runs a
//! batch of windows in lockstep through [`Prior::step_deferred`], range-decodes one token per
//! window per step, detokenizes and parses the text back into bytes.
//!
//! **Lanes.** Windows are independent for the model, but every range-coded stream costs a
//! flush and a header entry (~12 bytes, 1.4% of a 2,048-token window of hex). So a block's
//! windows are dealt into *lanes*: lane `k` is one stream holding a contiguous run of
//! windows, coded one after the other. The decoder runs round `r` (the `r`-th window of every
//! lane) in lockstep across lanes, so the lane count is the decoder's parallelism; the
//! default keeps at least [`DEFAULT_BATCH`] lanes and about [`WINDOWS_PER_LANE`] windows per
//! lane. A stream's windows follow from its token count: all hold `window - 1` tokens but the
//! block's last.

use crate::byte_tokens::Tokenization;
use crate::cdf::FrequencyTable;
use crate::codec::{
    Block, Codec, CodecSpec, CodedBlock, EncodedStream, PriorCodecSpec, Progress, StreamEntry,
};
use crate::coder::{Decoder, Encoder, Interval};
use crate::prior::{Prior, TableSpec, TokenId};
use crate::{Error, Result};
use std::collections::VecDeque;

/// Windows a decoder steps in lockstep unless the prior prefers otherwise
/// ([`Prior::preferred_batch`]), and the fewest an encoder hands one prefill call.
pub const DEFAULT_BATCH: usize = 64;

/// Tokens per [`Prior::prefill`] call a device prior asks for ([`Prior::prefill_tokens`]): a
/// million, 8 MB of intervals. A device prior builds one forward call's tables while it
/// computes the next, so each prefill exposes only its last call's: with 64 windows of 256
/// tokens per prefill, half of them were exposed on an H100 (docs/perf.md). The prior bounds
/// its own state per forward call, so this costs no device memory.
pub const ENCODE_TOKENS: usize = 1 << 20;

/// Windows per lane the default lane count aims at on large blocks.
pub const WINDOWS_PER_LANE: usize = 8;

/// Memory the windows of one batch may hold in prior state (KV caches): the batch shrinks to
/// fit, so a large default batch stays safe for an LLM with long windows.
pub const STATE_BUDGET: usize = 2 << 30;

/// LM-GC over a prior.
pub struct PriorCodec<'p> {
    prior: &'p mut dyn Prior,
    spec: PriorCodecSpec,
    table: TableSpec,
    batch: usize,
    lanes: Option<usize>,
    tokenization: Tokenization,
}

/// One window on the encoder side.
struct Window {
    tokens: Vec<TokenId>,
    span: u64,
}

/// Lanes for a block of `windows` windows: `lanes` if given (at most one per window), else at
/// least [`DEFAULT_BATCH`] and about [`WINDOWS_PER_LANE`] windows each.
pub fn lane_count(windows: usize, lanes: Option<usize>) -> usize {
    let want = lanes.unwrap_or_else(|| DEFAULT_BATCH.max(windows.div_ceil(WINDOWS_PER_LANE)));
    want.clamp(1, windows.max(1))
}

/// Windows `[start, end)` of lane `k` of `n` over `windows` windows: contiguous runs whose
/// sizes differ by at most one.
fn lane_range(k: usize, n: usize, windows: usize) -> (usize, usize) {
    (k * windows / n, (k + 1) * windows / n)
}

impl<'p> PriorCodec<'p> {
    /// Wraps a prior. `spec.prior` must be the prior's fingerprint. `batch`: windows decoded in
    /// lockstep, 0 for the prior's [`Prior::preferred_batch`] (either way at most what the
    /// prior's state budget holds).
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
        let tokenization = Tokenization::new(&*prior, &spec.serializer)?;
        let mask = spec.mask.then(|| tokenization.mask(&*prior));
        let table = TableSpec {
            precision: spec.precision,
            mask,
        };
        let limit = Self::batch_limit_within(
            prior.state_bytes_per_position(),
            spec.window,
            prior.state_budget(),
        );
        let batch = if batch == 0 {
            prior.preferred_batch()
        } else {
            batch
        };
        Ok(PriorCodec {
            prior,
            spec,
            table,
            batch: batch.clamp(1, limit),
            lanes: None,
            tokenization,
        })
    }

    /// Codes each block in `lanes` streams (at most one per window) instead of the default
    /// ([`lane_count`]). More lanes decode with more parallelism and cost ~12 bytes each.
    pub fn with_lanes(mut self, lanes: Option<usize>) -> Self {
        self.lanes = lanes.filter(|&n| n > 0);
        self
    }

    /// Windows from the start of `windows` that the encoder hands the prior in one call: at
    /// least the batch and the prior's [`Prior::prefill_tokens`] (all that are left, if
    /// fewer).
    fn encode_run(&self, windows: &[Window]) -> usize {
        let least = self.prior.prefill_tokens();
        let mut tokens = 0;
        for (i, w) in windows.iter().enumerate() {
            tokens += w.tokens.len();
            if i + 1 >= self.batch && tokens >= least {
                return i + 1;
            }
        }
        windows.len()
    }

    /// Windows per batch that keep prior state within [`STATE_BUDGET`]: for a state of
    /// `per_position` bytes per position, `STATE_BUDGET / (per_position · window)`, at least 1.
    pub fn batch_limit(per_position: usize, window: u32) -> usize {
        Self::batch_limit_within(per_position, window, STATE_BUDGET)
    }

    /// [`PriorCodec::batch_limit`] for a budget of `budget` bytes.
    pub fn batch_limit_within(per_position: usize, window: u32, budget: usize) -> usize {
        let per_window = per_position.saturating_mul(window as usize);
        match per_window {
            0 => usize::MAX,
            n => (budget / n).max(1),
        }
    }

    fn windows(&self, block: &Block<'_>) -> Result<Vec<Window>> {
        let text = self
            .spec
            .serializer
            .serialize(block.dtype.width(), block.data);
        let tokens = self.tokenization.tokenize(&*self.prior, &text)?;
        let bos = self.prior.bos();
        let mut out = Vec::new();
        let mut covered = Vec::with_capacity(text.len());
        for chunk in tokens.chunks(self.spec.window as usize - 1) {
            let before = covered.len();
            self.tokenization
                .detokenize(&*self.prior, chunk, &mut covered)?;
            let mut w = Vec::with_capacity(chunk.len() + 1);
            w.push(bos);
            w.extend_from_slice(chunk);
            out.push(Window {
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
        // Windows of every block, then each block's lanes as ranges of its windows.
        let mut windows = Vec::new();
        let mut lanes = Vec::new(); // (block, first window, end window), global indices
        for (i, b) in blocks.iter().enumerate() {
            let ws = self.windows(b)?;
            let n = lane_count(ws.len(), self.lanes);
            let base = windows.len();
            lanes.extend((0..n).filter_map(|k| {
                let (a, e) = lane_range(k, n, ws.len());
                (a < e).then_some((i, base + a, base + e))
            }));
            windows.extend(ws);
        }
        // Each batch's intervals and ideal bits; the model may visit its windows in any
        // order. Lanes are contiguous runs of windows in window order, so once a batch is
        // scored its windows go, in order, into the open lane's coder and are freed: memory
        // holds one batch of intervals, not the file's.
        let chars_per_byte = self.spec.serializer.chars_per_byte() as u64;
        let mut out: Vec<Vec<EncodedStream>> = vec![Vec::new(); blocks.len()];
        let mut lanes = lanes.into_iter();
        let mut lane = lanes.next();
        let (mut enc, mut lane_bits) = (Encoder::new(), 0f64);
        let mut first = 0;
        while first < windows.len() {
            let batch = &windows[first..first + self.encode_run(&windows[first..])];
            let refs: Vec<&[TokenId]> = batch.iter().map(|w| &w.tokens[..]).collect();
            let mut intervals: Vec<Vec<Interval>> = batch
                .iter()
                .map(|w| Vec::with_capacity(w.tokens.len() - 1))
                .collect();
            let mut ideal = vec![0f64; batch.len()];
            self.prior.prefill(&refs, &self.table, &mut |w, t, table| {
                let token = refs[w][t] as usize;
                ideal[w] += table.cost_bits(token);
                let iv = Interval::of(token, table).ok_or_else(|| {
                    Error::Prior(format!("token {token} has zero probability (is the alphabet mask right for this serializer?)"))
                })?;
                intervals[w].push(iv);
                // Progress as windows complete: a device prior's call spans many.
                if t + 1 == refs[w].len() {
                    progress(batch[w].span / chars_per_byte.max(1));
                }
                Ok(())
            })?;
            for (w, (ivs, bits)) in intervals.iter().zip(ideal).enumerate() {
                for iv in ivs {
                    enc.encode_interval(*iv)?;
                }
                lane_bits += bits;
                let Some((block, a, e)) = lane else {
                    return Err(Error::Internal("a window outside every lane".into()));
                };
                if first + w + 1 == e {
                    let bytes = std::mem::take(&mut enc).finish();
                    let ws = &windows[a..e];
                    out[block].push(EncodedStream {
                        entry: StreamEntry {
                            coded_len: bytes.len() as u64,
                            symbols: ws.iter().map(|w| w.tokens.len() as u64 - 1).sum(),
                            span: ws.iter().map(|w| w.span).sum(),
                        },
                        bytes,
                        ideal_bits: Some(std::mem::take(&mut lane_bits)),
                    });
                    lane = lanes.next();
                }
            }
            first += batch.len();
        }
        Ok(out)
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let per_window = u64::from(self.spec.window - 1);
        // Every lane of every block; round r decodes the r-th window of each lane.
        let lanes: Vec<(usize, StreamEntry, &[u8])> = blocks
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.streams.iter().map(move |(e, s)| (i, *e, *s)))
            .collect();
        let mut decoders = lanes
            .iter()
            .map(|(_, _, s)| Decoder::new(s))
            .collect::<Result<Vec<_>>>()?;
        let mut texts: Vec<Vec<u8>> = lanes.iter().map(|_| Vec::new()).collect();
        let rounds = lanes
            .iter()
            .map(|(_, e, _)| e.symbols.div_ceil(per_window))
            .max()
            .unwrap_or(0);
        let bos = self.prior.bos();
        let chars_per_byte = self.spec.serializer.chars_per_byte() as u64;
        let mut tokens: Vec<Vec<TokenId>> = Vec::new();
        // Lanes that still have windows; finished ones drop out, so the work per round is
        // the live lanes, whatever a header says about the longest one.
        let mut live: Vec<usize> = (0..lanes.len()).collect();
        for r in 0..rounds {
            live.retain(|&l| lanes[l].1.symbols > r * per_window);
            // (lane, tokens of its r-th window)
            let active: Vec<(usize, u64)> = live
                .iter()
                .map(|&l| (l, (lanes[l].1.symbols - r * per_window).min(per_window)))
                .collect();
            for batch in active.chunks(self.batch) {
                tokens.clear();
                tokens.extend(
                    batch
                        .iter()
                        .map(|&(_, n)| Vec::with_capacity((n as usize).min(4096))),
                );
                self.prior.start(batch.len(), self.spec.window as usize)?;
                // The batch's windows step in groups, one group per call: a prior that defers
                // a call's tables codes them while it computes the next group's step. Each
                // call's visits give their group's next inputs, which queue behind the rest.
                let groups = self.prior.step_groups(batch.len()).clamp(1, batch.len());
                let mut queue: VecDeque<Vec<(usize, TokenId)>> = (0..groups)
                    .map(|g| {
                        let (a, e) = lane_range(g, groups, batch.len());
                        (a..e).map(|w| (w, bos)).collect()
                    })
                    .collect();
                loop {
                    let inputs = queue.pop_front();
                    let mut next = Vec::with_capacity(inputs.as_ref().map_or(0, Vec::len));
                    let mut visit = |w: usize, table: &FrequencyTable| -> Result<()> {
                        let token = decoders[batch[w].0].decode(table)? as TokenId;
                        tokens[w].push(token);
                        if (tokens[w].len() as u64) < batch[w].1 {
                            next.push((w, token));
                        }
                        Ok(())
                    };
                    match &inputs {
                        Some(inputs) => {
                            self.prior.step_deferred(inputs, &self.table, &mut visit)?
                        }
                        None => self.prior.finish_steps(&self.table, &mut visit)?,
                    }
                    if !next.is_empty() {
                        queue.push_back(next);
                    } else if inputs.is_none() {
                        break;
                    }
                }
                for (&(lane, _), toks) in batch.iter().zip(&tokens) {
                    let before = texts[lane].len();
                    self.tokenization
                        .detokenize(&*self.prior, toks, &mut texts[lane])?;
                    if texts[lane].len() as u64 > lanes[lane].1.span {
                        return Err(Error::corrupt(format!(
                            "a stream decoded to more than the {} characters its header says \
                             (corrupt data or a different prior)",
                            lanes[lane].1.span
                        )));
                    }
                    progress((texts[lane].len() - before) as u64 / chars_per_byte.max(1));
                }
            }
        }
        let mut block_texts: Vec<Vec<u8>> = vec![Vec::new(); blocks.len()];
        for ((block, entry, _), text) in lanes.iter().zip(texts) {
            if text.len() as u64 != entry.span {
                return Err(Error::corrupt(format!(
                    "a stream decoded to {} characters, its header says {} (corrupt data or a \
                     different prior)",
                    text.len(),
                    entry.span
                )));
            }
            block_texts[*block].extend(text);
        }
        blocks
            .iter()
            .zip(block_texts)
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
    use super::{PriorCodec, STATE_BUDGET, lane_count, lane_range};

    #[test]
    fn lanes_cover_every_window_once() {
        assert_eq!(lane_count(0, None), 1);
        assert_eq!(lane_count(5, None), 5);
        assert_eq!(lane_count(1000, None), 125);
        assert_eq!(lane_count(1000, Some(3)), 3);
        assert_eq!(lane_count(2, Some(30)), 2);
        for windows in 0..40 {
            for n in 1..=windows.max(1) {
                let mut next = 0;
                for k in 0..n {
                    let (a, e) = lane_range(k, n, windows);
                    assert_eq!(a, next);
                    assert!(e - a <= windows.div_ceil(n));
                    next = e;
                }
                assert_eq!(next, windows);
            }
        }
    }

    #[test]
    fn token_with_a_separator_is_refused() {
        use crate::codec::PriorCodecSpec;
        use crate::context_prior::ContextPrior;
        use crate::prior::Prior;
        use crate::serialize::{Separator, SerializerSpec};
        let mut prior = ContextPrior::new(1).unwrap();
        let token: SerializerSpec = "token".parse().unwrap();
        let mut spec = PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: token,
            window: 16,
            precision: crate::cdf::Precision::MAX,
            mask: true,
        };
        assert!(PriorCodec::new(&mut prior, spec.clone(), 2).is_ok());
        spec.serializer.separator = Separator::Space;
        assert!(PriorCodec::new(&mut prior, spec, 2).is_err());
    }

    /// A prior that keeps every `step_deferred` call's tables until the next call, as a
    /// device prior does, and checks the decoder's side of that contract.
    struct Deferring {
        inner: crate::context_prior::ContextPrior,
        groups: usize,
        kept: Vec<(usize, crate::cdf::FrequencyTable)>,
        calls: usize,
    }

    impl crate::prior::Prior for Deferring {
        fn fingerprint(&self) -> crate::prior::PriorFingerprint {
            self.inner.fingerprint()
        }
        fn vocab_size(&self) -> usize {
            self.inner.vocab_size()
        }
        fn bos(&self) -> crate::prior::TokenId {
            self.inner.bos()
        }
        fn tokenize(&self, text: &[u8]) -> crate::Result<Vec<crate::prior::TokenId>> {
            self.inner.tokenize(text)
        }
        fn detokenize(
            &self,
            tokens: &[crate::prior::TokenId],
            out: &mut Vec<u8>,
        ) -> crate::Result<()> {
            self.inner.detokenize(tokens, out)
        }
        fn tokens_within(&self, charset: &[u8]) -> Vec<crate::prior::TokenId> {
            self.inner.tokens_within(charset)
        }
        fn byte_tokens(&self) -> crate::Result<crate::byte_tokens::ByteTokens> {
            self.inner.byte_tokens()
        }
        fn prefill(
            &mut self,
            _: &[&[crate::prior::TokenId]],
            _: &crate::prior::TableSpec,
            _: &mut crate::prior::PrefillVisitor<'_>,
        ) -> crate::Result<()> {
            unreachable!("the decoder does not prefill")
        }
        fn start(&mut self, n: usize, positions: usize) -> crate::Result<()> {
            assert!(self.kept.is_empty(), "a batch started with tables pending");
            self.inner.start(n, positions)
        }
        fn step(
            &mut self,
            _: &[(usize, crate::prior::TokenId)],
            _: &crate::prior::TableSpec,
            _: &mut crate::prior::StepVisitor<'_>,
        ) -> crate::Result<()> {
            unreachable!("the decoder steps deferred")
        }
        fn step_groups(&self, windows: usize) -> usize {
            self.groups.min(windows)
        }
        fn step_deferred(
            &mut self,
            inputs: &[(usize, crate::prior::TokenId)],
            spec: &crate::prior::TableSpec,
            visit: &mut crate::prior::StepVisitor<'_>,
        ) -> crate::Result<()> {
            self.calls += 1;
            for &(w, _) in inputs {
                assert!(
                    self.kept.iter().all(|k| k.0 != w),
                    "window {w} stepped twice"
                );
            }
            let mut tables = Vec::new();
            self.inner.step(inputs, spec, &mut |w, t| {
                tables.push((w, t.clone()));
                Ok(())
            })?;
            for (w, t) in std::mem::replace(&mut self.kept, tables) {
                visit(w, &t)?;
            }
            Ok(())
        }
        fn finish_steps(
            &mut self,
            _: &crate::prior::TableSpec,
            visit: &mut crate::prior::StepVisitor<'_>,
        ) -> crate::Result<()> {
            for (w, t) in std::mem::take(&mut self.kept) {
                visit(w, &t)?;
            }
            Ok(())
        }
    }

    #[test]
    fn deferred_steps_decode_what_was_encoded() {
        use crate::codec::{Block, Codec, CodedBlock};
        use crate::context_prior::ContextPrior;
        use crate::dtype::DType;
        use crate::prior::Prior;
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 ^ (i % 7) as u8)
            .collect();
        let mut prior = ContextPrior::new(2).unwrap();
        let spec = crate::codec::PriorCodecSpec {
            prior: prior.fingerprint(),
            serializer: "token".parse().unwrap(),
            window: 40,
            precision: crate::cdf::Precision::MAX,
            mask: true,
        };
        let block = Block {
            dtype: DType::U8,
            data: &data,
        };
        let streams = PriorCodec::new(&mut prior, spec.clone(), 64)
            .unwrap()
            .with_lanes(Some(13))
            .encode(&[block], &|_| {})
            .unwrap()
            .remove(0);
        // Batches of 5 windows (the last 3) in 1, 2, 3 and 5 groups.
        for groups in [1, 2, 3, 7] {
            let mut deferring = Deferring {
                inner: ContextPrior::new(2).unwrap(),
                groups,
                kept: Vec::new(),
                calls: 0,
            };
            let coded = CodedBlock {
                dtype: DType::U8,
                len: data.len() as u64,
                streams: streams.iter().map(|s| (s.entry, &s.bytes[..])).collect(),
            };
            let out = PriorCodec::new(&mut deferring, spec.clone(), 5)
                .unwrap()
                .decode(&[coded], &|_| {})
                .unwrap();
            assert_eq!(out, vec![data.clone()], "{groups} groups");
            assert!(deferring.kept.is_empty());
            assert!(deferring.calls > 0);
        }
    }

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
