//! BPE tokenizers with the `tokenizers` crate: the byte-level BPE of GPT-2-style models
//! (SmolLM2's `gpt2` / `smollm`), rebuilt from GGUF metadata or read from a Hugging Face
//! `tokenizer.json`, and the SentencePiece-style BPE with byte fallback of Llama-2, TinyLlama
//! and OpenLLaMA (`tokenizer.json` only).
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
    /// Whether long texts may be cut at [`safe_cut`] points and their pieces tokenized on
    /// separate cores: true for the GPT-2-style split (with or without SmolLM's digits), false
    /// for SentencePiece-style BPE, whose merges may span any point.
    cuttable: bool,
}

/// Text bytes per piece when a long text is tokenized in parallel (about 50 ms of work each).
const PIECE: usize = 1 << 16;

/// Bytes past a piece's nominal end searched for a [`safe_cut`] before that cut is skipped.
const CUT_SEARCH: usize = 4096;

/// The class of a printable, non-space ASCII byte under GPT-2's split: letter, digit or other.
fn class(b: u8) -> Option<u8> {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Some(0),
        b'0'..=b'9' => Some(1),
        b'!'..=b'~' => Some(2),
        _ => None,
    }
}

/// Whether the byte-level pre-tokenizers lmgc builds split every text with `a` then `b` there,
/// whatever comes before or after: both printable ASCII, not spaces, of different classes,
/// and `a` not an apostrophe. Each alternative of GPT-2's split (` ?\p{L}+`, ` ?\p{N}+`,
/// ` ?[^\s\p{L}\p{N}]+`, the whitespace runs) stays within one class, only the
/// contractions (`'s`, `'ll`, ...) start with another character, and the one lookahead
/// (`\s+(?!\S)`) follows whitespace; SmolLM's digit isolation runs first and only adds
/// splits. So the pieces on either side tokenize as they do within the whole text.
fn safe_cut(a: u8, b: u8) -> bool {
    matches!((class(a), class(b)), (Some(x), Some(y)) if x != y) && a != b'\''
}

/// Where to cut `text` into pieces of about `piece` bytes: the first [`safe_cut`] at or after
/// each multiple of `piece`, within [`CUT_SEARCH`] bytes (else no cut there). A function of
/// the text alone, so the tokens do not depend on the machine's cores.
fn cut_points(text: &[u8], piece: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut target = piece;
    while target < text.len() {
        let end = (target + CUT_SEARCH).min(text.len());
        if let Some(p) = (target.max(1)..end).find(|&p| safe_cut(text[p - 1], text[p])) {
            cuts.push(p);
            target = p + piece;
        } else {
            target = end + piece;
        }
    }
    cuts
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
            cuttable: true,
        })
    }

    /// Reads a Hugging Face `tokenizer.json`. Byte-level BPE vocabularies become the same
    /// tokenizer [`BpeTokenizer::new`] builds; SentencePiece-style ones (`▁` for spaces,
    /// `<0xNN>` byte-fallback tokens) are run as written, except that the dummy prefix space is
    /// not prepended: lmgc's text must come back exactly, and windows must concatenate.
    pub fn from_hf_json(json: &[u8], bos: u64) -> Result<Self> {
        let err = |m: String| Error::Tokenizer(m);
        let mut v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| err(format!("tokenizer.json: {e}")))?;
        if v["model"]["type"] != "BPE" {
            return Err(Error::Unsupported(format!(
                "tokenizer model {} (lmgc reads BPE)",
                v["model"]["type"]
            )));
        }
        // Dense id → token text, from the vocabulary and the added tokens.
        let mut by_id: Vec<Option<String>> = Vec::new();
        let mut put = |id: u64, text: &str| -> Result<()> {
            let id = usize::try_from(id)
                .ok()
                .filter(|&i| i < 1 << 22)
                .ok_or_else(|| Error::Tokenizer(format!("token id {id} is too large")))?;
            if by_id.len() <= id {
                by_id.resize(id + 1, None);
            }
            by_id[id] = Some(text.to_owned());
            Ok(())
        };
        let vocab = v["model"]["vocab"]
            .as_object()
            .ok_or_else(|| err("tokenizer.json has no model.vocab".into()))?;
        for (text, id) in vocab {
            put(
                id.as_u64().ok_or_else(|| err(format!("id of {text:?}")))?,
                text,
            )?;
        }
        for added in v["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(id), Some(text)) = (added["id"].as_u64(), added["content"].as_str()) {
                put(id, text)?;
            }
        }
        let tokens: Vec<String> = by_id
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.ok_or_else(|| err(format!("no token has id {i}"))))
            .collect::<Result<_>>()?;
        let mentions =
            |v: &serde_json::Value, ty: &str| v.to_string().contains(&format!("\"{ty}\""));
        if mentions(&v["pre_tokenizer"], "ByteLevel") || mentions(&v["decoder"], "ByteLevel") {
            let merges: Vec<String> = v["model"]["merges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| match m {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Array(pair) if pair.len() == 2 => Ok(format!(
                        "{} {}",
                        pair[0].as_str().unwrap_or_default(),
                        pair[1].as_str().unwrap_or_default()
                    )),
                    other => Err(err(format!("merge {other}"))),
                })
                .collect::<Result<_>>()?;
            let digits = v["pre_tokenizer"]
                .to_string()
                .contains("\"individual_digits\":true");
            let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let merge_refs: Vec<&str> = merges.iter().map(String::as_str).collect();
            return Self::new(
                &refs,
                &merge_refs,
                bos,
                if digits { "smollm" } else { "gpt2" },
            );
        }
        if v["model"]["byte_fallback"] != true {
            return Err(Error::Unsupported(
                "a BPE tokenizer that is neither byte-level nor byte-fallback cannot spell arbitrary bytes".into(),
            ));
        }
        strip_dummy_prefix(&mut v);
        let inner: Tokenizer = v
            .to_string()
            .parse()
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;
        let token_bytes = tokens
            .iter()
            .map(|t| match byte_fallback(t) {
                Some(b) => vec![b],
                None => t.replace('\u{2581}', " ").into_bytes(),
            })
            .collect();
        let bos = TokenId::try_from(bos)
            .ok()
            .filter(|&b| (b as usize) < tokens.len())
            .ok_or_else(|| {
                err(format!(
                    "BOS id {bos} outside a vocabulary of {}",
                    tokens.len()
                ))
            })?;
        let sha256 = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(b"hf-tokenizer-json\0");
            h.update(json);
            h.update(u64::from(bos).to_le_bytes());
            h.finalize().into()
        };
        Ok(BpeTokenizer {
            inner,
            token_bytes,
            bos,
            sha256,
            cuttable: false,
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

    /// Tokenizes latin-1 text (one byte per character). Long texts of a GPT-2-style tokenizer
    /// go in pieces on every core, cut where the split is the same ([`safe_cut`]): the same
    /// tokens as in one piece.
    pub fn tokenize(&self, text: &[u8]) -> Result<Vec<TokenId>> {
        let piece = if self.cuttable { PIECE } else { usize::MAX };
        self.tokenize_in_pieces(text, piece)
    }

    fn tokenize_in_pieces(&self, text: &[u8], piece: usize) -> Result<Vec<TokenId>> {
        use rayon::prelude::*;
        let cuts = if text.len() >= piece.saturating_mul(2) {
            cut_points(text, piece)
        } else {
            Vec::new()
        };
        let bounds: Vec<(usize, usize)> = std::iter::once(0)
            .chain(cuts.iter().copied())
            .zip(cuts.iter().copied().chain(std::iter::once(text.len())))
            .collect();
        let ids = bounds
            .par_iter()
            .map(|&(a, b)| self.encode(&text[a..b]))
            .collect::<Result<Vec<_>>>()?
            .concat();
        // BPE drops characters its vocabulary cannot spell; lossless coding needs all of them.
        let covered: usize = ids
            .iter()
            .map(|&t| self.token_bytes.get(t as usize).map_or(0, Vec::len))
            .sum();
        let utf8_len: usize = text.iter().map(|&b| char::from(b).len_utf8()).sum();
        if covered != utf8_len {
            return Err(Error::Tokenizer(format!(
                "the vocabulary cannot spell this text ({covered} of {utf8_len} bytes covered); it is not a byte-level vocabulary"
            )));
        }
        Ok(ids)
    }

    /// One piece's tokens.
    fn encode(&self, text: &[u8]) -> Result<Vec<TokenId>> {
        let s: String = text.iter().map(|&b| char::from(b)).collect();
        let enc = self
            .inner
            .encode(s, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
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

    /// One distinct token per byte value, for the `token` serializer: for byte `b` (the
    /// latin-1 character `c`) the single token that ` c` tokenizes to, as in `iso-space` text
    /// (SmolLM2: ` a` ... ` z`, ` {`); else the one `c` tokenizes to; else the vocabulary's
    /// token of exactly the byte `b` (BOS never counts, and a token counts only if its bytes
    /// spell the text). A byte with none of these (in SmolLM2, control bytes such as 0x04)
    /// gets the lowest unused id: such bytes are as rare as the model finds them surprising.
    pub fn byte_tokens(&self) -> Result<[TokenId; 256]> {
        // The token must spell the text: BPE drops characters it cannot spell (control
        // characters come back as the bare space).
        let single = |text: &[u8]| match self.encode(text) {
            Ok(ids)
                if ids.len() == 1
                    && ids[0] != self.bos
                    && self.token_bytes.get(ids[0] as usize).map(Vec::as_slice)
                        == Some(
                            text.iter()
                                .map(|&b| char::from(b))
                                .collect::<String>()
                                .as_bytes(),
                        ) =>
            {
                Some(ids[0])
            }
            _ => None,
        };
        let raw = |b: u8| {
            (0..self.token_bytes.len())
                .find(|&t| t as TokenId != self.bos && self.token_bytes[t] == [b])
                .map(|t| t as TokenId)
        };
        let chosen: Vec<Option<TokenId>> = (0..=255u8)
            .map(|b| {
                single(&[b' ', b])
                    .or_else(|| single(&[b]))
                    .or_else(|| raw(b))
            })
            .collect();
        let mut used: Vec<TokenId> = chosen.iter().flatten().copied().collect();
        used.push(self.bos);
        used.sort_unstable();
        let mut spare =
            (0..self.token_bytes.len() as TokenId).filter(|t| used.binary_search(t).is_err());
        let mut out = [0; 256];
        for (slot, c) in out.iter_mut().zip(chosen) {
            *slot = match c {
                Some(t) => t,
                None => spare.next().ok_or_else(|| {
                    Error::Unsupported(
                        "the vocabulary has fewer than 257 tokens; use a text serializer such as hex-space".into(),
                    )
                })?,
            };
        }
        Ok(out)
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

/// `<0xNN>` → byte `NN`.
fn byte_fallback(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Removes SentencePiece's dummy prefix: `Prepend` normalizers and Metaspace's prepending.
fn strip_dummy_prefix(v: &mut serde_json::Value) {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("type").and_then(|t| t.as_str()) == Some("Metaspace") {
                    o.insert("prepend_scheme".into(), "never".into());
                    o.insert("add_prefix_space".into(), false.into());
                }
                o.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => {
                a.retain(|x| x.get("type").and_then(|t| t.as_str()) != Some("Prepend"));
                a.iter_mut().for_each(walk);
            }
            _ => {}
        }
    }
    if v["normalizer"]["type"] == "Prepend" {
        v["normalizer"] = serde_json::Value::Null;
    }
    walk(v);
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

    /// A SentencePiece-style tokenizer.json like TinyLlama's: `▁` for spaces, byte fallback,
    /// a dummy prefix that lmgc must not add.
    fn sentencepiece_json() -> String {
        let mut vocab = vec![
            ("<unk>".to_owned(), 0),
            ("<s>".to_owned(), 1),
            ("</s>".to_owned(), 2),
        ];
        for b in 0..256 {
            vocab.push((format!("<0x{b:02X}>"), 3 + b));
        }
        for (i, t) in ["\u{2581}", "f", "c", "0", "3", "ff", "\u{2581}3"]
            .iter()
            .enumerate()
        {
            vocab.push(((*t).to_owned(), 259 + i as i32));
        }
        let vocab_json: Vec<String> = vocab
            .iter()
            .map(|(t, i)| format!("{}: {i}", serde_json::Value::from(t.as_str())))
            .collect();
        format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":{{"type":"Sequence","normalizers":[{{"type":"Prepend","prepend":"\u2581"}},
              {{"type":"Replace","pattern":{{"String":" "}},"content":"\u2581"}}]}},
            "pre_tokenizer":null,"post_processor":null,
            "decoder":{{"type":"Sequence","decoders":[{{"type":"Replace","pattern":{{"String":"\u2581"}},"content":" "}},
              {{"type":"ByteFallback"}},{{"type":"Fuse"}},{{"type":"Strip","content":" ","start":1,"stop":0}}]}},
            "model":{{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,
              "end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"ignore_merges":false,
              "vocab":{{{}}},"merges":["f f","\u2581 3"]}}}}"#,
            vocab_json.join(",")
        )
    }

    #[test]
    fn sentencepiece_style_is_lossless_without_a_dummy_prefix() {
        let t = BpeTokenizer::from_hf_json(sentencepiece_json().as_bytes(), 1).unwrap();
        for text in [&b"3fc0 3ff0 zz"[..], b" 3", b"\x00\xff\xe9 x", b""] {
            let ids = t.tokenize(text).unwrap();
            let mut back = Vec::new();
            t.detokenize(&ids, &mut back).unwrap();
            assert_eq!(back, text, "{ids:?}");
        }
        // No dummy prefix: "3" is the bare digit, " 3" the merged space-digit token.
        assert_eq!(t.tokenize(b"3").unwrap(), vec![263]);
        assert_eq!(t.tokenize(b" 3").unwrap(), vec![265]);
        assert_eq!(t.tokenize(b"ff").unwrap(), vec![264]);
    }

    #[test]
    fn byte_level_tokenizer_json_matches_the_gguf_route() {
        let table = byte_to_char();
        let mut vocab = serde_json::Map::new();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<s>".into()];
        tokens.extend(table.iter().map(|c| c.to_string()));
        tokens.extend(["ff", "fff"].map(String::from));
        for (i, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), i.into());
        }
        let json = serde_json::json!({
            "model": {"type": "BPE", "vocab": vocab, "merges": [["f", "f"], ["ff", "f"]]},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false}]},
            "decoder": {"type": "ByteLevel"},
        });
        let t = BpeTokenizer::from_hf_json(json.to_string().as_bytes(), 1).unwrap();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let g = BpeTokenizer::new(&refs, &["f f", "ff f"], 1, "smollm").unwrap();
        let text = b"3fc00000 fff 12";
        assert_eq!(t.tokenize(text).unwrap(), g.tokenize(text).unwrap());
        assert_eq!(t.sha256(), g.sha256());
    }

    /// `tiny`'s vocabulary with merges across character classes (which a cut in the wrong
    /// place would change) and the given pre-tokenizer.
    fn tiny_with(pre: &str) -> BpeTokenizer {
        let table = byte_to_char();
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<s>".into()];
        tokens.extend(table.iter().map(|c| c.to_string()));
        let g = |c: char| table[c as usize];
        let merges = [
            ('f', 'f'),
            ('1', '2'),
            ('\'', 's'),
            (' ', 'a'),
            (' ', '7'),
            (',', ','),
            (' ', ' '),
        ];
        let merge_strs: Vec<String> = merges
            .iter()
            .map(|&(a, b)| {
                tokens.push(format!("{}{}", g(a), g(b)));
                format!("{} {}", g(a), g(b))
            })
            .collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mrefs: Vec<&str> = merge_strs.iter().map(String::as_str).collect();
        BpeTokenizer::new(&refs, &mrefs, 1, pre).unwrap_or_else(|e| panic!("{e}"))
    }

    proptest::proptest! {
        /// Cutting at `safe_cut` points gives the tokens of the whole text, for both byte-level
        /// splits, however small the pieces.
        #[test]
        fn pieces_tokenize_as_the_whole_text(
            text in proptest::collection::vec(proptest::sample::select(
                b"0123456789abcdeflmrstvXYZ ,.'-_\n\t\xa0\xe9\x85".to_vec()), 0..300),
            piece in 1usize..40,
        ) {
            for pre in ["smollm", "gpt2"] {
                let t = tiny_with(pre);
                let whole = t.encode(&text).unwrap();
                proptest::prop_assert_eq!(&t.tokenize_in_pieces(&text, piece).unwrap(), &whole);
            }
        }
    }

    #[test]
    fn long_hex_text_is_cut_into_pieces() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{:02x},", i.wrapping_mul(2_654_435_761) >> 24).into_bytes())
            .collect();
        let cuts = cut_points(&text, PIECE);
        assert!(cuts.len() >= 8, "{} cuts", cuts.len());
        assert!(cuts.iter().all(|&p| safe_cut(text[p - 1], text[p])));
        let t = tiny();
        assert_eq!(t.tokenize(&text).unwrap(), t.encode(&text).unwrap());
    }

    #[test]
    fn alphabet_of_hex() {
        let t = tiny();
        let hex = t.tokens_within(b"0123456789abcdef");
        // 16 single characters and the six letter runs.
        assert_eq!(hex.len(), 22);
    }
}
