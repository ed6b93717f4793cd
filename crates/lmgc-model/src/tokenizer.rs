//! The byte-level BPE tokenizer of GPT-2-style models (SmolLM2's `gpt2` / `smollm`), rebuilt
//! from GGUF metadata with the `tokenizers` crate.
//!
//! lmgc's serialized text is latin-1, one byte per character; the tokenizer sees the same
//! characters as a string. Decoding maps each token's characters back to bytes through the
//! GPT-2 byte-to-character table (no lossy UTF-8 step), so `detokenize(tokenize(s)) == s` for
//! every string, and detokenizing windows one after another concatenates exactly — as long as
//! a window does not end inside a multi-byte UTF-8 character, which only text with characters
//! above 0x7F (the `iso` serializations) can do; that case is an error, not wrong data.

use tokenizers::Tokenizer;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use crate::gguf::Gguf;
use crate::{Error, Result};
use lmgc_core::TokenId;

/// GPT-2's reversible map from bytes to printable characters.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("below 0x200");
            next += 1;
            c
        };
    }
    table
}

/// A byte-level BPE tokenizer with BOS.
pub struct BpeTokenizer {
    inner: Tokenizer,
    /// Token id → its bytes.
    token_bytes: Vec<Vec<u8>>,
    bos: TokenId,
    sha256: [u8; 32],
}

impl BpeTokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.model = gpt2`).
    pub fn from_gguf(file: &Gguf) -> Result<Self> {
        let model = file
            .get("tokenizer.ggml.model")?
            .as_str()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(Error::Unsupported(format!(
                "tokenizer model {model:?} (lmgc reads gpt2-style byte-level BPE)"
            )));
        }
        let pre = file
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let tokens = file.get_strings("tokenizer.ggml.tokens")?;
        let merges = file.get_strings("tokenizer.ggml.merges")?;
        let bos = file.get_u64("tokenizer.ggml.bos_token_id")?;
        Self::new(&tokens, &merges, bos, pre)
    }

    /// Builds a tokenizer from its vocabulary (index = id), merges (`"a b"`), BOS id and
    /// llama.cpp pre-tokenizer name.
    pub fn new(tokens: &[&str], merges: &[&str], bos: u64, pre: &str) -> Result<Self> {
        let sha256 = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for part in [&[pre][..], tokens, merges] {
                h.update((part.len() as u64).to_le_bytes());
                for s in part {
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
            h.update(bos.to_le_bytes());
            h.finalize().into()
        };
        let bos = TokenId::try_from(bos)
            .ok()
            .filter(|&b| (b as usize) < tokens.len())
            .ok_or_else(|| {
                Error::Tokenizer(format!(
                    "BOS id {bos} outside a vocabulary of {}",
                    tokens.len()
                ))
            })?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| ((*t).to_owned(), i as u32))
            .collect();
        let merges: Merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| Error::Tokenizer(format!("merge {m:?} is not two tokens")))
            })
            .collect::<Result<_>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        match pre {
            // SmolLM's pre-tokenizer isolates every digit before the GPT-2 split.
            "smollm" => inner.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ]))),
            "gpt2" | "default" => inner.with_pre_tokenizer(Some(byte_level)),
            other => {
                return Err(Error::Unsupported(format!(
                    "pre-tokenizer {other:?} (lmgc knows smollm and gpt2)"
                )));
            }
        };
        let inverse = {
            let mut inv = std::collections::HashMap::new();
            for (b, c) in byte_to_char().iter().enumerate() {
                inv.insert(*c, b as u8);
            }
            inv
        };
        // Tokens with characters outside the byte table (none in byte-level vocabularies but
        // control tokens such as `<|endoftext|>`, which are plain ASCII) decode to their text.
        let token_bytes = tokens
            .iter()
            .map(|t| {
                t.chars()
                    .map(|c| inverse.get(&c).copied().unwrap_or(b'?'))
                    .collect()
            })
            .collect();
        Ok(BpeTokenizer {
            inner,
            token_bytes,
            bos,
            sha256,
        })
    }

    /// SHA-256 of the definition (pre-tokenizer, vocabulary, merges, BOS): two tokenizers with
    /// the same digest split every text the same way.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The BOS token.
    pub fn bos(&self) -> TokenId {
        self.bos
    }

    /// Tokenizes latin-1 text (one byte per character).
    pub fn tokenize(&self, text: &[u8]) -> Result<Vec<TokenId>> {
        let s: String = text.iter().map(|&b| char::from(b)).collect();
        let utf8_len = s.len();
        let enc = self
            .inner
            .encode(s, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        // BPE drops characters its vocabulary cannot spell; lossless coding needs all of them.
        let covered: usize = ids
            .iter()
            .map(|&t| self.token_bytes.get(t as usize).map_or(0, Vec::len))
            .sum();
        if covered != utf8_len {
            return Err(Error::Tokenizer(format!(
                "the vocabulary cannot spell this text ({covered} of {utf8_len} bytes covered); it is not a byte-level vocabulary"
            )));
        }
        Ok(ids)
    }

    /// Appends the latin-1 text of `tokens` to `out`.
    pub fn detokenize(&self, tokens: &[TokenId], out: &mut Vec<u8>) -> Result<()> {
        let mut utf8 = Vec::new();
        for &t in tokens {
            let b = self
                .token_bytes
                .get(t as usize)
                .ok_or_else(|| Error::Tokenizer(format!("token {t} outside the vocabulary")))?;
            utf8.extend_from_slice(b);
        }
        let s = std::str::from_utf8(&utf8).map_err(|_| {
            Error::Tokenizer("these tokens end inside a UTF-8 character (a window boundary in iso text); use a hex serialization".into())
        })?;
        for c in s.chars() {
            out.push(
                u8::try_from(u32::from(c))
                    .map_err(|_| Error::Tokenizer(format!("character {c:?} is not latin-1")))?,
            );
        }
        Ok(())
    }

    /// Tokens whose bytes are non-empty ASCII/latin-1 characters all in `charset`.
    pub fn tokens_within(&self, charset: &[u8]) -> Vec<TokenId> {
        (0..self.token_bytes.len() as TokenId)
            .filter(|&t| {
                let b = &self.token_bytes[t as usize];
                t != self.bos
                    && !b.is_empty()
                    && b.iter().all(|c| c.is_ascii() && charset.contains(c))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary: all 256 byte characters plus a few merges.
    fn tiny() -> BpeTokenizer {
        let table = byte_to_char();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<s>".into()];
        tokens.extend(table.iter().map(|c| c.to_string()));
        tokens.extend(["ff", "fff", "ffff", "de", "dea", "dead"].map(String::from));
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        BpeTokenizer::new(
            &refs,
            &["f f", "ff f", "ff ff", "d e", "de a", "dea d"],
            1,
            "smollm",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lossless_and_digits_split() {
        let t = tiny();
        for text in [
            &b"3fc00000 bf800001 ffff dead"[..],
            b"",
            b"\x00\x01\xff latin-1 \xe9",
            b"12345",
        ] {
            let ids = t.tokenize(text).unwrap();
            let mut back = Vec::new();
            t.detokenize(&ids, &mut back).unwrap();
            assert_eq!(back, text);
        }
        // Digits are isolated: "12345" is five tokens even if merges existed.
        assert_eq!(t.tokenize(b"12345").unwrap().len(), 5);
        let ffff = t.tokenize(b"ffff").unwrap();
        assert_eq!(ffff.len(), 1);
    }

    #[test]
    fn a_vocabulary_that_cannot_spell_the_text_is_an_error() {
        let t = BpeTokenizer::new(&["a", "b", "ab"], &["a b"], 0, "gpt2").unwrap();
        assert_eq!(t.tokenize(b"abab").unwrap(), vec![2, 2]);
        assert!(matches!(t.tokenize(b"abc"), Err(Error::Tokenizer(_))));
    }

    #[test]
    fn alphabet_of_hex() {
        let t = tiny();
        let hex = t.tokens_within(b"0123456789abcdef");
        // 16 single characters and the six letter runs.
        assert_eq!(hex.len(), 22);
    }
}
