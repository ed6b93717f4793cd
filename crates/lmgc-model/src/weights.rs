//! The weights of a Llama-architecture model as `f32`, whatever file they came from.
//!
//! Conventions of GGUF llama files: a weight of dims `[in, out]` is `out` rows of `in`
//! values; the output projection is the token embedding when `output.weight` is absent.

use rayon::prelude::*;

use crate::config::LlamaConfig;
use crate::gguf::Gguf;
use crate::quant::dequantize;
use crate::{Error, Result};

/// A row-major matrix `rows × cols`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Vec<f32>,
}

impl Matrix {
    /// From row-major data.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(Error::Unsupported(format!(
                "{rows}x{cols} matrix from {} values",
                data.len()
            )));
        }
        Ok(Matrix { rows, cols, data })
    }
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row-major values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, row-major, by value.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// One row.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// One transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection, `d_model` rows.
    pub wq: Matrix,
    /// Key projection, `n_kv_heads · head_dim` rows.
    pub wk: Matrix,
    /// Value projection, `n_kv_heads · head_dim` rows.
    pub wv: Matrix,
    /// Attention output projection.
    pub wo: Matrix,
    /// RMSNorm weight before the feed-forward block.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate, `d_ffn` rows.
    pub w_gate: Matrix,
    /// SwiGLU up projection, `d_ffn` rows.
    pub w_up: Matrix,
    /// Feed-forward output, `d_model` rows of `d_ffn`.
    pub w_down: Matrix,
}

/// Every weight of a model.
#[derive(Debug, Clone)]
pub struct LlamaWeights {
    /// Shape.
    pub config: LlamaConfig,
    /// Token embedding, `vocab` rows.
    pub embedding: Matrix,
    /// Blocks.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm weight.
    pub out_norm: Vec<f32>,
    /// Untied output projection; `None` when tied to the embedding.
    pub output: Option<Matrix>,
}

impl LlamaWeights {
    /// Random weights for `config`, from a seeded generator: the tiny models of tests and
    /// benchmarks. Matrices follow the usual `1/√fan_in` initialization; norms are near 1.
    pub fn random(config: LlamaConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = SplitMix(seed);
        let c = &config;
        let (d, kv) = (c.d_model, c.n_kv_heads * c.head_dim());
        let mut layers = Vec::with_capacity(c.n_layers);
        for _ in 0..c.n_layers {
            layers.push(LayerWeights {
                attn_norm: rng.norm(d),
                wq: rng.matrix(d, d, 1.0)?,
                wk: rng.matrix(kv, d, 1.0)?,
                wv: rng.matrix(kv, d, 1.0)?,
                wo: rng.matrix(d, d, 0.5)?,
                ffn_norm: rng.norm(d),
                w_gate: rng.matrix(c.d_ffn, d, 1.0)?,
                w_up: rng.matrix(c.d_ffn, d, 1.0)?,
                w_down: rng.matrix(d, c.d_ffn, 0.5)?,
            });
        }
        Ok(LlamaWeights {
            embedding: rng.matrix(c.vocab, d, 1.0)?,
            out_norm: rng.norm(d),
            layers,
            output: None,
            config,
        })
    }

    /// The output projection (the embedding when tied).
    pub fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    /// Dequantizes every weight of a GGUF llama file.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let c = LlamaConfig::from_gguf(g)?;
        let (d, kv) = (c.d_model, c.n_kv_heads * c.head_dim());
        // Dequantizing is most of a load's CPU time; layers are independent.
        let layers = (0..c.n_layers)
            .into_par_iter()
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(LayerWeights {
                    attn_norm: vector(g, &n("attn_norm"), d)?,
                    wq: weight(g, &n("attn_q"), d, d)?,
                    wk: weight(g, &n("attn_k"), kv, d)?,
                    wv: weight(g, &n("attn_v"), kv, d)?,
                    wo: weight(g, &n("attn_output"), d, d)?,
                    ffn_norm: vector(g, &n("ffn_norm"), d)?,
                    w_gate: weight(g, &n("ffn_gate"), c.d_ffn, d)?,
                    w_up: weight(g, &n("ffn_up"), c.d_ffn, d)?,
                    w_down: weight(g, &n("ffn_down"), d, c.d_ffn)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = match g.tensor("output.weight") {
            Ok(_) => Some(weight(g, "output.weight", c.vocab, d)?),
            Err(_) => None,
        };
        Ok(LlamaWeights {
            embedding: weight(g, "token_embd.weight", c.vocab, d)?,
            out_norm: vector(g, "output_norm.weight", d)?,
            layers,
            output,
            config: c,
        })
    }
}

fn weight(g: &Gguf, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
    let t = g.tensor(name)?;
    if t.dims != [cols as u64, rows as u64] {
        return Err(Error::Unsupported(format!(
            "{name} has dims {:?}, expected [{cols}, {rows}]",
            t.dims
        )));
    }
    Matrix::new(rows, cols, dequantize(g, t)?)
}

fn vector(g: &Gguf, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = g.tensor(name)?;
    if t.dims != [n as u64] {
        return Err(Error::Unsupported(format!(
            "{name} has dims {:?}, expected [{n}]",
            t.dims
        )));
    }
    dequantize(g, t)
}

/// splitmix64: a tiny seeded generator for random test models.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in `[-1, 1)`.
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn matrix(&mut self, rows: usize, cols: usize, gain: f32) -> Result<Matrix> {
        let s = gain * 3f32.sqrt() / (cols as f32).sqrt();
        Matrix::new(
            rows,
            cols,
            (0..rows * cols).map(|_| self.next() * s).collect(),
        )
    }
    fn norm(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| 1.0 + 0.2 * self.next()).collect()
    }
}
