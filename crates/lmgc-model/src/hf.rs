//! Llama models in the Hugging Face layout: a directory with `config.json`, the weights as
//! `model.safetensors` or shards listed in `model.safetensors.index.json`, and
//! `tokenizer.json` (the paper's TinyLlama, OpenLLaMA and Llama-2 come this way).
//!
//! Hugging Face stores Q and K rows for "rotate-half" RoPE; lmgc's forward passes rotate
//! adjacent pairs (the GGUF convention), so Q and K rows are permuted on load the way
//! llama.cpp's converter does. Both conventions then compute the same model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::LlamaConfig;
use crate::quant::f16_to_f32;
use crate::tokenizer::BpeTokenizer;
use crate::weights::{LayerWeights, LlamaWeights, Matrix};
use crate::{Error, Result};

/// Largest weight file read (a shard is read whole).
const MAX_SHARD_BYTES: u64 = 32 << 30;

/// `config.json` fields lmgc reads.
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    num_hidden_layers: usize,
    vocab_size: usize,
    rms_norm_eps: f64,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
    #[serde(default)]
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    bos_token_id: Option<u64>,
}

/// A model directory, loaded.
pub struct HfModel {
    /// The weights as `f32`.
    pub weights: LlamaWeights,
    /// The tokenizer of `tokenizer.json`.
    pub tokenizer: BpeTokenizer,
    /// SHA-256 over the directory's `config.json`, `tokenizer.json` and weight files, in
    /// name order: the model's identity in prior fingerprints.
    pub sha256: [u8; 32],
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if len > MAX_SHARD_BYTES {
        return Err(Error::Unsupported(format!(
            "{} is {len} bytes; lmgc reads files up to {MAX_SHARD_BYTES}",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn hf_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("{}: {what}", path.display()))
}

/// The weight files of a directory: one `model.safetensors`, or the shards an index names.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(Error::Missing(format!(
            "model.safetensors or model.safetensors.index.json in {}",
            dir.display()
        )));
    }
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let idx: Index = serde_json::from_slice(&read(&index)?).map_err(|e| hf_err(&index, e))?;
    let mut files: Vec<String> = idx.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|f| {
            // Shard names are plain file names inside the directory, nothing else.
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                Err(hf_err(
                    &index,
                    format!("shard name {f:?} leaves the directory"),
                ))
            } else {
                Ok(dir.join(f))
            }
        })
        .collect()
}

/// Reads a model directory.
pub fn load_dir(dir: &Path) -> Result<HfModel> {
    let config_path = dir.join("config.json");
    let config_bytes = read(&config_path)?;
    let hc: HfConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| hf_err(&config_path, e))?;
    if let Some(t) = hc.model_type.as_deref().filter(|t| *t != "llama") {
        return Err(hf_err(
            &config_path,
            format!("model_type {t:?} (lmgc runs llama)"),
        ));
    }
    if hc.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(hf_err(&config_path, "rope_scaling is not supported"));
    }
    let config = LlamaConfig {
        n_layers: hc.num_hidden_layers,
        d_model: hc.hidden_size,
        n_heads: hc.num_attention_heads,
        n_kv_heads: hc.num_key_value_heads.unwrap_or(hc.num_attention_heads),
        d_ffn: hc.intermediate_size,
        vocab: hc.vocab_size,
        rope_base: hc.rope_theta.unwrap_or(10_000.0),
        rms_eps: hc.rms_norm_eps,
        context_len: hc.max_position_embeddings.unwrap_or(2048),
    };
    config.validate()?;
    let tok_path = dir.join("tokenizer.json");
    let tok_bytes = read(&tok_path)?;
    let tokenizer = BpeTokenizer::from_hf_json(&tok_bytes, hc.bos_token_id.unwrap_or(1))
        .map_err(|e| hf_err(&tok_path, e))?;
    let mut sha = Sha256::new();
    sha.update(&config_bytes);
    sha.update(&tok_bytes);
    let mut tensors: BTreeMap<String, Matrix> = BTreeMap::new();
    for file in weight_files(dir)? {
        let bytes = read(&file)?;
        sha.update(&bytes);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| hf_err(&file, e))?;
        for (name, view) in st.tensors() {
            let shape = view.shape();
            let (rows, cols) = match shape {
                [n] => (*n, 1),
                [r, c] => (*r, *c),
                _ => continue,
            };
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                    .collect(),
                other => return Err(hf_err(&file, format!("tensor {name} has dtype {other:?}"))),
            };
            tensors.insert(name, Matrix::new(rows, cols, values)?);
        }
    }
    let weights = assemble(config, tensors, hc.tie_word_embeddings.unwrap_or(false))?;
    Ok(HfModel {
        weights,
        tokenizer,
        sha256: sha.finalize().into(),
    })
}

/// Rows of a Q or K projection reordered from rotate-half to adjacent pairs, head by head:
/// new row `2i` is old row `i`, new row `2i + 1` is old row `head_dim/2 + i`.
pub fn permute_rotary(m: &Matrix, heads: usize) -> Matrix {
    let (rows, cols) = (m.rows(), m.cols());
    let hd = rows / heads;
    let mut data = Vec::with_capacity(rows * cols);
    for h in 0..heads {
        for i in 0..hd / 2 {
            data.extend_from_slice(m.row(h * hd + i));
            data.extend_from_slice(m.row(h * hd + hd / 2 + i));
        }
    }
    Matrix::new(rows, cols, data).expect("same shape")
}

fn assemble(
    config: LlamaConfig,
    mut t: BTreeMap<String, Matrix>,
    tied: bool,
) -> Result<LlamaWeights> {
    let c = &config;
    let kv = c.n_kv_heads * c.head_dim();
    let has_head = t.contains_key("lm_head.weight");
    let mut take = |name: &str, rows: usize, cols: usize| -> Result<Matrix> {
        let m = t
            .remove(name)
            .ok_or_else(|| Error::Missing(format!("tensor {name}")))?;
        if (m.rows(), m.cols()) != (rows, cols) {
            return Err(Error::Unsupported(format!(
                "{name} is {}x{}, expected {rows}x{cols}",
                m.rows(),
                m.cols()
            )));
        }
        Ok(m)
    };
    let d = c.d_model;
    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let p = format!("model.layers.{i}");
        layers.push(LayerWeights {
            attn_norm: take(&format!("{p}.input_layernorm.weight"), d, 1)?
                .data()
                .to_vec(),
            wq: permute_rotary(
                &take(&format!("{p}.self_attn.q_proj.weight"), d, d)?,
                c.n_heads,
            ),
            wk: permute_rotary(
                &take(&format!("{p}.self_attn.k_proj.weight"), kv, d)?,
                c.n_kv_heads,
            ),
            wv: take(&format!("{p}.self_attn.v_proj.weight"), kv, d)?,
            wo: take(&format!("{p}.self_attn.o_proj.weight"), d, d)?,
            ffn_norm: take(&format!("{p}.post_attention_layernorm.weight"), d, 1)?
                .data()
                .to_vec(),
            w_gate: take(&format!("{p}.mlp.gate_proj.weight"), c.d_ffn, d)?,
            w_up: take(&format!("{p}.mlp.up_proj.weight"), c.d_ffn, d)?,
            w_down: take(&format!("{p}.mlp.down_proj.weight"), d, c.d_ffn)?,
        });
    }
    let embedding = take("model.embed_tokens.weight", c.vocab, d)?;
    let out_norm = take("model.norm.weight", d, 1)?.data().to_vec();
    // A tied model may still ship lm_head (a copy of the embedding); if present it must
    // have the right shape either way.
    let output = if tied && !has_head {
        None
    } else {
        Some(take("lm_head.weight", c.vocab, d)?)
    };
    Ok(LlamaWeights {
        config,
        embedding,
        layers,
        out_norm,
        output,
    })
}
