//! One token per byte: how the `token` serializer codes bytes through a prior.
//!
//! A text serializer leaves the token count to the tokenizer: `hex-space` spends three tokens
//! on a byte (`7`, `a`, ` `). The `token` serializer asks the prior for 256 distinct tokens
//! instead, one per byte value ([`crate::Prior::byte_tokens`]), and codes each byte as its
//! token. The model then runs once per byte and its output is masked to exactly these 256
//! tokens. An LLM picks tokens it has seen as text, so the window still reads as language
//! (for SmolLM2 the exponents of a gradient are ` u w v w x`), and which token a byte gets is
//! a function of the tokenizer alone, which the prior's fingerprint pins.

use crate::serialize::{Encoding, SerializerSpec};
use crate::{Error, Prior, Result, TokenId};

/// How a prior turns one serializer's text into tokens: its tokenizer, or for `token` its
/// byte tokens. Every user of a serializer with a prior (the codec, `model bench`, the
/// federated speed probe) goes through this, so that the two views cannot drift apart.
#[derive(Debug, Clone)]
pub enum Tokenization {
    /// Text through the prior's tokenizer, masked to the tokens within its characters.
    Text {
        /// The serializer's characters.
        charset: Vec<u8>,
    },
    /// One token per byte.
    Bytes(ByteTokens),
}

impl Tokenization {
    /// The view `serializer` needs; an error if the prior cannot provide it.
    pub fn new(prior: &dyn Prior, serializer: &SerializerSpec) -> Result<Self> {
        serializer.check()?;
        Ok(match serializer.encoding {
            Encoding::Token => Tokenization::Bytes(prior.byte_tokens()?),
            Encoding::Hex | Encoding::Iso => Tokenization::Text {
                charset: serializer.charset(),
            },
        })
    }

    /// The tokens of serialized text.
    pub fn tokenize(&self, prior: &dyn Prior, text: &[u8]) -> Result<Vec<TokenId>> {
        match self {
            Tokenization::Text { .. } => prior.tokenize(text),
            Tokenization::Bytes(bt) => Ok(bt.tokens(text)),
        }
    }

    /// Appends the text of `tokens` to `out`.
    pub fn detokenize(
        &self,
        prior: &dyn Prior,
        tokens: &[TokenId],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match self {
            Tokenization::Text { .. } => prior.detokenize(tokens, out),
            Tokenization::Bytes(bt) => bt.bytes(tokens, out),
        }
    }

    /// The alphabet mask: the tokens this view can produce.
    pub fn mask(&self, prior: &dyn Prior) -> Vec<bool> {
        match self {
            Tokenization::Text { charset } => {
                let mut m = vec![false; prior.vocab_size()];
                for t in prior.tokens_within(charset) {
                    if let Some(slot) = m.get_mut(t as usize) {
                        *slot = true;
                    }
                }
                m
            }
            Tokenization::Bytes(bt) => bt.mask(prior.vocab_size()),
        }
    }
}

/// A bijection between the 256 byte values and 256 tokens of a prior's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteTokens {
    /// 256 tokens, indexed by byte (on the heap: the enum above stays small).
    token: Vec<TokenId>,
    /// `(token, byte)` sorted by token: the inverse map.
    byte: Vec<(TokenId, u8)>,
}

impl ByteTokens {
    /// The map byte `b` → `tokens[b]`; the tokens must be distinct.
    ///
    /// ```
    /// use lmgc_core::byte_tokens::ByteTokens;
    /// let bt = ByteTokens::new(std::array::from_fn(|b| 1000 + b as u32))?;
    /// assert_eq!(bt.tokens(b"ab"), [1097, 1098]);
    /// let mut back = Vec::new();
    /// bt.bytes(&[1097, 1098], &mut back)?;
    /// assert_eq!(back, b"ab");
    /// # Ok::<(), lmgc_core::Error>(())
    /// ```
    pub fn new(tokens: [TokenId; 256]) -> Result<Self> {
        let mut byte: Vec<(TokenId, u8)> =
            tokens.iter().zip(0..=255u8).map(|(&t, b)| (t, b)).collect();
        byte.sort_unstable();
        if let Some(w) = byte.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::Prior(format!(
                "bytes {:#04x} and {:#04x} map to the same token {}; the token serializer needs 256 distinct tokens",
                w[0].1, w[1].1, w[0].0
            )));
        }
        Ok(ByteTokens {
            token: tokens.to_vec(),
            byte,
        })
    }

    /// The token of byte `b`.
    pub fn token(&self, b: u8) -> TokenId {
        self.token[b as usize]
    }

    /// The tokens of `bytes`, one each.
    pub fn tokens(&self, bytes: &[u8]) -> Vec<TokenId> {
        bytes.iter().map(|&b| self.token(b)).collect()
    }

    /// Appends the bytes of `tokens` to `out`; a token outside the map is corrupt data.
    pub fn bytes(&self, tokens: &[TokenId], out: &mut Vec<u8>) -> Result<()> {
        out.reserve(tokens.len());
        for &t in tokens {
            match self.byte.binary_search_by_key(&t, |&(t, _)| t) {
                Ok(i) => out.push(self.byte[i].1),
                Err(_) => {
                    return Err(Error::corrupt(format!(
                        "token {t} stands for no byte (corrupt data or a different prior)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// `mask[t]` is true exactly for the 256 byte tokens (those below `vocab`).
    pub fn mask(&self, vocab: usize) -> Vec<bool> {
        let mut m = vec![false; vocab];
        for &t in &self.token {
            if let Some(slot) = m.get_mut(t as usize) {
                *slot = true;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shuffled() -> ByteTokens {
        // A permutation of 0..256 spread over a larger vocabulary.
        ByteTokens::new(std::array::from_fn(|b| ((b as u32 * 167) % 256) * 3 + 7)).unwrap()
    }

    proptest! {
        #[test]
        fn bytes_round_trip(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let bt = shuffled();
            let tokens = bt.tokens(&data);
            prop_assert_eq!(tokens.len(), data.len());
            let mut back = Vec::new();
            bt.bytes(&tokens, &mut back).unwrap();
            prop_assert_eq!(back, data);
        }

        #[test]
        fn any_token_list_is_bytes_or_an_error(tokens in prop::collection::vec(0u32..1000, 0..50)) {
            let _ = shuffled().bytes(&tokens, &mut Vec::new());
        }
    }

    #[test]
    fn duplicate_tokens_are_an_error() {
        let mut t: [TokenId; 256] = std::array::from_fn(|b| b as u32);
        t[200] = 3;
        assert!(ByteTokens::new(t).is_err());
    }

    #[test]
    fn mask_holds_exactly_the_byte_tokens() {
        let bt = shuffled();
        let m = bt.mask(1000);
        assert_eq!(m.iter().filter(|&&x| x).count(), 256);
        assert!((0..=255u8).all(|b| m[bt.token(b) as usize]));
        assert!(bt.bytes(&[8], &mut Vec::new()).is_err());
    }
}
