//! The built-in prior: an adaptive order-k context model over bytes.
//!
//! It needs no model file, so the whole LM-GC pipeline (serializer, tokens, windows,
//! tables, range coder, container) runs and is tested without `lmgc-model`. Tokens are
//! bytes (ids 0-255) plus BOS (256). Within a window, the table for the next byte comes from
//! counts of what followed the last `k` bytes earlier in the same window.

use std::collections::HashMap;

use crate::byte_tokens::ByteTokens;
use crate::cdf::FrequencyTable;
use crate::prior::{PrefillVisitor, Prior, PriorFingerprint, StepVisitor, TableSpec, TokenId};
use crate::{Error, Result};

const BOS: TokenId = 256;
const VOCAB: usize = 257;
/// Count added per occurrence; the prior count of every allowed symbol is 1.
const INCREMENT: u64 = 16;
/// Name prefix that marks the built-in prior in a fingerprint.
const NAME_PREFIX: &str = "context-o";
const RECIPE_VERSION: u32 = 1;

/// Adaptive order-`k` byte context model.
#[derive(Debug, Clone)]
pub struct ContextPrior {
    order: usize,
    windows: Vec<WindowState>,
}

#[derive(Debug, Clone, Default)]
struct WindowState {
    history: Vec<u8>,
    counts: HashMap<u64, Vec<u64>>,
}

impl WindowState {
    fn key(&self, order: usize) -> u64 {
        let n = self.history.len().min(order);
        let mut key = n as u64;
        for &b in &self.history[self.history.len() - n..] {
            key = (key << 8) | u64::from(b);
        }
        key
    }

    fn table(
        &self,
        order: usize,
        mask: &[bool],
        spec: &TableSpec,
        scratch: &mut Vec<u64>,
    ) -> Result<FrequencyTable> {
        scratch.clear();
        match self.counts.get(&self.key(order)) {
            Some(c) => scratch.extend(c.iter().map(|&c| c + 1)),
            None => scratch.resize(VOCAB, 1),
        }
        FrequencyTable::from_weights(scratch, Some(mask), spec.precision)
    }

    fn push(&mut self, order: usize, token: TokenId) -> Result<()> {
        if token == BOS {
            return Ok(());
        }
        let byte = u8::try_from(token)
            .map_err(|_| Error::Prior(format!("token {token} outside the byte vocabulary")))?;
        let key = self.key(order);
        self.counts.entry(key).or_insert_with(|| vec![0; VOCAB])[byte as usize] += INCREMENT;
        self.history.push(byte);
        Ok(())
    }
}

/// The spec's mask with BOS (never predicted) masked too.
fn effective_mask(spec: &TableSpec) -> Vec<bool> {
    let mut mask = spec.mask.clone().unwrap_or_else(|| vec![true; VOCAB]);
    mask.resize(VOCAB, false);
    mask[BOS as usize] = false;
    mask
}

impl ContextPrior {
    /// Largest supported context order.
    pub const MAX_ORDER: usize = 7;

    /// An order-`k` model, `0 <= k <= 7`.
    pub fn new(order: usize) -> Result<Self> {
        if order > Self::MAX_ORDER {
            return Err(Error::InvalidArgument {
                what: "context order",
                reason: format!("{order}; use 0 to {}", Self::MAX_ORDER),
            });
        }
        Ok(ContextPrior {
            order,
            windows: Vec::new(),
        })
    }

    /// Rebuilds the built-in prior a fingerprint names, if it names one.
    pub fn from_fingerprint(fp: &PriorFingerprint) -> Option<Self> {
        let order = fp.name.strip_prefix(NAME_PREFIX)?.parse().ok()?;
        let prior = Self::new(order).ok()?;
        (prior.fingerprint() == *fp).then_some(prior)
    }
}

impl Prior for ContextPrior {
    fn fingerprint(&self) -> PriorFingerprint {
        PriorFingerprint {
            name: format!("{NAME_PREFIX}{}", self.order),
            model_sha256: PriorFingerprint::sha256(
                format!(
                    "lmgc built-in context prior: order {}, increment {INCREMENT}",
                    self.order
                )
                .as_bytes(),
            ),
            recipe_version: RECIPE_VERSION,
            tokenizer_sha256: PriorFingerprint::sha256(b"lmgc byte tokenizer: 256 bytes, BOS 256"),
        }
    }

    fn vocab_size(&self) -> usize {
        VOCAB
    }

    fn bos(&self) -> TokenId {
        BOS
    }

    fn tokenize(&self, text: &[u8]) -> Result<Vec<TokenId>> {
        Ok(text.iter().map(|&b| TokenId::from(b)).collect())
    }

    fn detokenize(&self, tokens: &[TokenId], out: &mut Vec<u8>) -> Result<()> {
        for &t in tokens {
            out.push(u8::try_from(t).map_err(|_| Error::Prior(format!("token {t} has no text")))?);
        }
        Ok(())
    }

    fn tokens_within(&self, charset: &[u8]) -> Vec<TokenId> {
        charset.iter().map(|&b| TokenId::from(b)).collect()
    }

    fn byte_tokens(&self) -> Result<ByteTokens> {
        // Its tokens are bytes already.
        ByteTokens::new(std::array::from_fn(|b| b as TokenId))
    }

    fn prefill(
        &mut self,
        windows: &[&[TokenId]],
        spec: &TableSpec,
        visit: &mut PrefillVisitor<'_>,
    ) -> Result<()> {
        let mut scratch = Vec::with_capacity(VOCAB);
        let mask = effective_mask(spec);
        for (w, tokens) in windows.iter().enumerate() {
            let mut state = WindowState::default();
            for (t, &token) in tokens.iter().enumerate() {
                if t > 0 {
                    visit(w, t, &state.table(self.order, &mask, spec, &mut scratch)?)?;
                }
                state.push(self.order, token)?;
            }
        }
        Ok(())
    }

    fn start(&mut self, n: usize, _positions: usize) -> Result<()> {
        self.windows = vec![WindowState::default(); n];
        Ok(())
    }

    fn step(
        &mut self,
        inputs: &[(usize, TokenId)],
        spec: &TableSpec,
        visit: &mut StepVisitor<'_>,
    ) -> Result<()> {
        let mut scratch = Vec::with_capacity(VOCAB);
        let mask = effective_mask(spec);
        for &(w, token) in inputs {
            let state = self.windows.get_mut(w).ok_or_else(|| {
                Error::Internal(format!("step on window {w} that was not started"))
            })?;
            state.push(self.order, token)?;
            visit(w, &state.table(self.order, &mask, spec, &mut scratch)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdf::Precision;

    /// Prefill (encoder) and stepping (decoder) give identical tables, whatever the batching.
    #[test]
    fn prefill_equals_incremental_steps() {
        let text = b"3fc00000 bf800001 3fc00000 00000000 3fc00001";
        let mut prior = ContextPrior::new(2).unwrap();
        let mut w: Vec<TokenId> = vec![BOS];
        w.extend(prior.tokenize(text).unwrap());
        let short = &w[..9];
        let spec = TableSpec {
            precision: Precision::new(18).unwrap(),
            mask: None,
        };
        let mut prefilled = Vec::new();
        prior
            .prefill(&[&w, short], &spec, &mut |win, t, table| {
                prefilled.push((win, t, table.clone()));
                Ok(())
            })
            .unwrap();
        let mut stepped = Vec::new();
        prior.start(2, w.len()).unwrap();
        for (t, &token) in w[..w.len() - 1].iter().enumerate() {
            let inputs: Vec<(usize, TokenId)> = [(0, token), (1, *short.get(t).unwrap_or(&0))]
                .into_iter()
                .filter(|&(win, _)| win == 0 || t + 1 < short.len())
                .collect();
            prior
                .step(&inputs, &spec, &mut |win, table| {
                    stepped.push((win, t + 1, table.clone()));
                    Ok(())
                })
                .unwrap();
        }
        prefilled.sort_by_key(|(w, t, _)| (*w, *t));
        stepped.sort_by_key(|(w, t, _)| (*w, *t));
        assert_eq!(prefilled.len(), w.len() - 1 + short.len() - 1);
        assert_eq!(prefilled, stepped);
    }

    #[test]
    fn fingerprint_names_the_builtin() {
        let p = ContextPrior::new(4).unwrap();
        assert_eq!(
            ContextPrior::from_fingerprint(&p.fingerprint())
                .unwrap()
                .order,
            4
        );
        let mut other = p.fingerprint();
        other.recipe_version += 1;
        assert!(ContextPrior::from_fingerprint(&other).is_none());
        assert!(ContextPrior::new(8).is_err());
    }
}
