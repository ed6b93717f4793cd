//! The `Prior` trait: the one boundary between the coder and a probability model.
//!
//! A prior owns a tokenizer and predicts, for every position of a window of tokens, a
//! [`FrequencyTable`] over its vocabulary. The encoder scores whole windows at once
//! ([`Prior::prefill`]); the decoder, which learns each token only after decoding it, steps
//! windows forward one token at a time ([`Prior::step`]). The two must produce identical
//! tables; for an LLM that is the integer-exact numerics contract of `lmgc-model`.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cdf::{FrequencyTable, Precision};
use crate::{Error, Result};

/// A token id in a prior's vocabulary.
pub type TokenId = u32;

/// What identifies a prior: the same fingerprint means the same tables for the same tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PriorFingerprint {
    /// Human-readable name (`context-o3`, `smollm2-135m`).
    pub name: String,
    /// SHA-256 of the model file (or of the built-in model's parameters).
    pub model_sha256: [u8; 32],
    /// Version of the quantization/evaluation recipe that turns the file into integer tables.
    pub recipe_version: u32,
    /// SHA-256 of the tokenizer definition.
    pub tokenizer_sha256: [u8; 32],
}

impl PriorFingerprint {
    /// SHA-256 helper for building fingerprints.
    pub fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }
}

impl fmt::Display for PriorFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |h: &[u8; 32]| {
            h[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        write!(
            f,
            "{} (model {}, recipe v{}, tokenizer {})",
            self.name,
            short(&self.model_sha256),
            self.recipe_version,
            short(&self.tokenizer_sha256)
        )
    }
}

/// How tables are built: their precision and which tokens may occur at all.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Bits of table resolution.
    pub precision: Precision,
    /// `mask[token]` is false for tokens that cannot occur (they get frequency 0); `None`
    /// allows the whole vocabulary.
    pub mask: Option<Vec<bool>>,
}

/// Receives one table: `(window, position, table)` from [`Prior::prefill`]. `Send`, so that a
/// prior may build and hand over one batch's tables on another thread while its model computes
/// the next batch (still in order, one call at a time).
pub type PrefillVisitor<'a> = dyn FnMut(usize, usize, &FrequencyTable) -> Result<()> + Send + 'a;
/// Receives one table: `(window, table)` from [`Prior::step`]. `Send`, so that a prior may
/// hand over one call's tables while its model computes the next call ([`Prior::step_deferred`]).
pub type StepVisitor<'a> = dyn FnMut(usize, &FrequencyTable) -> Result<()> + Send + 'a;

/// A probability model over token sequences, evaluated window by window.
///
/// Every window starts with [`Prior::bos`] and is independent of all others. Implementations
/// must be deterministic: the tables for a window depend only on the fingerprint and on the
/// window's tokens so far — not on batch composition, thread count or hardware.
pub trait Prior: Send {
    /// Identity; recorded in every container this prior encodes.
    fn fingerprint(&self) -> PriorFingerprint;
    /// Number of token ids.
    fn vocab_size(&self) -> usize;
    /// The token every window starts with.
    fn bos(&self) -> TokenId;
    /// Splits text (latin-1, one byte per character) into tokens.
    fn tokenize(&self, text: &[u8]) -> Result<Vec<TokenId>>;
    /// Appends the text of `tokens` to `out`. Must be concatenative:
    /// `detokenize(a ++ b) == detokenize(a) ++ detokenize(b)`.
    fn detokenize(&self, tokens: &[TokenId], out: &mut Vec<u8>) -> Result<()>;
    /// Tokens whose text is non-empty and made only of characters in `charset`.
    fn tokens_within(&self, charset: &[u8]) -> Vec<TokenId>;
    /// One distinct token per byte value, for the `token` serializer
    /// ([`crate::byte_tokens`]); a prior without such a set answers with an error.
    fn byte_tokens(&self) -> Result<crate::byte_tokens::ByteTokens> {
        Err(Error::Unsupported(
            "this prior has no token per byte; use a text serializer such as hex-space".into(),
        ))
    }
    /// Encoder side: for every window `w` and position `t` in `1..windows[w].len()`, calls
    /// `visit(w, t, table)` with the table that predicts `windows[w][t]` from `windows[w][..t]`.
    /// Calls for one window come in increasing `t`. The windows may be many (an encoder
    /// hands over at least [`Prior::prefill_tokens`] tokens): the prior bounds its own state.
    fn prefill(
        &mut self,
        windows: &[&[TokenId]],
        spec: &TableSpec,
        visit: &mut PrefillVisitor<'_>,
    ) -> Result<()>;
    /// Fewest tokens an encoder should hand one [`Prior::prefill`] call (0, the default: no
    /// minimum). A device prior that builds one forward call's tables while it computes the
    /// next exposes only each prefill's last, so it asks for many.
    fn prefill_tokens(&self) -> usize {
        0
    }
    /// Bytes of state (an LLM's KV cache) each window holds per position; a decoder bounds
    /// how many windows run at once with it. 0 for priors whose state does not grow.
    fn state_bytes_per_position(&self) -> usize {
        0
    }
    /// Bytes of state all windows of one batch may hold together; a GPU prior answers with
    /// what its device memory allows.
    fn state_budget(&self) -> usize {
        crate::prior_codec::STATE_BUDGET
    }
    /// Seconds spent so far per stage of the prior's work (e.g. `model`, `tables`), for
    /// profiles; empty when the prior does not measure.
    fn profile(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Windows a decoder steps in lockstep when its caller leaves the choice to the prior
    /// ([`crate::prior_codec::PriorCodec::new`] with a batch of 0): a device prior wants
    /// thousands, so that each step fills the device.
    fn preferred_batch(&self) -> usize {
        crate::prior_codec::DEFAULT_BATCH
    }
    /// Decoder side: forgets all windows and opens `n` empty ones of at most `positions`
    /// tokens (BOS included).
    fn start(&mut self, n: usize, positions: usize) -> Result<()>;
    /// Decoder side: appends `token` to each listed window (the first call passes BOS) and
    /// calls `visit(w, table)` with the table for each window's next position.
    fn step(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> Result<()>;
    /// Decoder side: into how many groups a decoder should deal `windows` windows for
    /// [`Prior::step_deferred`], so that one group's tables are coded while the model computes
    /// another's step. 1 (the default) when that hides nothing worth its smaller calls.
    fn step_groups(&self, windows: usize) -> usize {
        let _ = windows;
        1
    }
    /// Decoder side: [`Prior::step`], except that the tables of this call's windows may reach
    /// `visit` only during the next `step_deferred` call or [`Prior::finish_steps`], while this
    /// call may hand over the tables the previous one kept. Every table reaches `visit` exactly
    /// once and each window's in order; the windows of one call must have no table pending, and
    /// `spec` must be the same in every call until [`Prior::finish_steps`]. The default keeps
    /// nothing.
    fn step_deferred(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> Result<()> {
        self.step(inputs, spec, visit)
    }
    /// Decoder side: hands `visit` the tables [`Prior::step_deferred`] kept, if any.
    fn finish_steps(&mut self, spec: &TableSpec, visit: &mut StepVisitor<'_>) -> Result<()> {
        let _ = (spec, visit);
        Ok(())
    }
}
