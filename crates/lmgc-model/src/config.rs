//! Llama-architecture hyperparameters, read from a model file.

use crate::gguf::Gguf;
use crate::{Error, Result};

/// The shape of a Llama-architecture model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks.
    pub n_layers: usize,
    /// Embedding width.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Feed-forward width.
    pub d_ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RoPE base frequency.
    pub rope_base: f64,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Longest sequence the model was trained for.
    pub context_len: usize,
}

impl LlamaConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Reads `llama.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let arch = g.get("general.architecture")?.as_str().unwrap_or_default();
        if arch != "llama" {
            return Err(Error::Unsupported(format!(
                "architecture {arch:?} (lmgc runs llama)"
            )));
        }
        let n = |k: &str| -> Result<usize> { Ok(g.get_u64(&format!("llama.{k}"))? as usize) };
        let f = |k: &str| -> Result<f64> {
            g.get(&format!("llama.{k}"))?
                .as_f64()
                .ok_or_else(|| Error::Missing(format!("float metadata llama.{k}")))
        };
        let vocab = match g.get_u64("llama.vocab_size") {
            Ok(v) => v as usize,
            Err(_) => g.get_strings("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = LlamaConfig {
            n_layers: n("block_count")?,
            d_model: n("embedding_length")?,
            n_heads: n("attention.head_count")?,
            n_kv_heads: n("attention.head_count_kv").unwrap_or(n("attention.head_count")?),
            d_ffn: n("feed_forward_length")?,
            vocab,
            rope_base: f("rope.freq_base").unwrap_or(10_000.0),
            rms_eps: f("attention.layer_norm_rms_epsilon")?,
            context_len: n("context_length").unwrap_or(2048),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the shape is self-consistent and of a sane size.
    pub fn validate(&self) -> Result<()> {
        let ok = self.n_layers > 0
            && self.n_layers <= 1024
            && self.n_heads > 0
            && self.n_kv_heads > 0
            && self.n_heads.is_multiple_of(self.n_kv_heads)
            && self.d_model.is_multiple_of(self.n_heads)
            && self.head_dim().is_multiple_of(2)
            && self.d_model <= 1 << 16
            && self.d_ffn <= 1 << 18
            && self.vocab > 0
            && self.context_len > 0
            && self.context_len <= 1 << 20
            && self.vocab <= 1 << 20;
        if ok {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "inconsistent or oversized llama config {self:?}"
            )))
        }
    }
}
