//! The integer-exact Llama forward pass: frequency tables as a pure function of
//! (model file, token prefix), on every backend, batch and thread count.
//!
//! The recipe (docs/decisions/0006, version [`RECIPE_VERSION`]):
//! - the residual stream is `i64` fixed point with [`RESIDUAL_FRAC`] fraction bits;
//! - matmul weights are int8 with a dyadic scale per output row ([`linear`]); matmul inputs
//!   are 16-bit with a power-of-two scale per token, fed to the backend as two exact limbs;
//! - RMSNorm uses an integer square root; RoPE, softmax and SiLU use `libm`-generated tables
//!   ([`tables`]);
//! - queries are 16-bit and keys 12-bit (for 64-wide heads) per token and head; values are
//!   24-bit fixed point with a static per-channel exponent derived from the weights (so
//!   `P · V` needs no per-position rescaling); attention probabilities are 12-bit;
//! - logits become log2-domain scores for [`lmgc_core::cdf::FrequencyTable::from_scores`].
//!
//! Linear layers run as f32 GEMMs on integer values on the burn backend (exact below 2^24,
//! checked on every result); attention and every elementwise step run in integer arithmetic
//! on the host. Prefill and incremental decoding share one routine, [`ExactModel::forward`],
//! whose rows are independent of each other except through the KV cache.

pub mod fixed;
pub mod linear;
pub mod tables;

use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::config::LlamaConfig;
use crate::weights::LlamaWeights;
use crate::{Error, Result};
use fixed::{div_round, fixed_f64, isqrt, quantize_row, round_shift};
use linear::{QuantLinear, Quantized};
use tables::{ONE_BITS, SCORE_FRAC_BITS, Tables};

/// Version of the numerics recipe; part of every prior fingerprint.
pub const RECIPE_VERSION: u32 = 1;
/// Fraction bits of the residual stream.
pub const RESIDUAL_FRAC: i32 = 24;
/// Levels of a matmul input (16-bit).
pub(crate) const ACT_LEVELS: i64 = 32767;
/// Levels of a cached value (24-bit fixed point).
pub(crate) const V_LEVELS: i64 = (1 << 23) - 1;
/// Levels of an attention probability (12-bit).
pub(crate) const PROB_LEVELS: i64 = 4095;
/// Mantissa budget of the gate and up rows before they are multiplied.
const FFN_LEVELS: i64 = (1 << 31) - 1;

/// RMSNorm weights as dyadic mantissas `G_i · 2^exp`.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub(crate) gamma: Vec<i64>,
    pub(crate) exp: i32,
    pub(crate) eps: i64,
}

impl Norm {
    pub(crate) fn new(gamma: &[f32], eps: f64) -> Self {
        // Norm weights within 2^24 of the largest keep every bit of their f32 value.
        let (gamma, exp) = fixed::dyadic_common(gamma, 24);
        Norm {
            gamma,
            exp,
            eps: fixed_f64(eps, 2 * RESIDUAL_FRAC),
        }
    }

    /// `γ ⊙ x / rms(x)` quantized to 16 bits: levels into `out`, returns the exponent.
    fn apply(&self, x: &[i64], out: &mut Vec<i32>, scratch: &mut Vec<i128>) -> i32 {
        let d = x.len() as u128;
        let sumsq: u128 = x
            .iter()
            .map(|&v| (i128::from(v) * i128::from(v)) as u128)
            .sum();
        let var = sumsq / d + self.eps as u128;
        let rms = isqrt(var).max(1) as i128;
        scratch.clear();
        scratch.extend(
            x.iter()
                .zip(&self.gamma)
                .map(|(&v, &g)| div_round(i128::from(v) << 32, rms) * i128::from(g)),
        );
        quantize_row(scratch, self.exp - 32, ACT_LEVELS, out)
    }
}

#[derive(Debug, Clone)]
struct Layer<B: Backend> {
    attn_norm: Norm,
    /// `[wq; wk; wv]` fused.
    qkv: QuantLinear<B>,
    wo: QuantLinear<B>,
    ffn_norm: Norm,
    /// `[w_gate; w_up]` fused.
    gate_up: QuantLinear<B>,
    down: QuantLinear<B>,
    /// Static exponent of each cached value channel.
    v_exp: Vec<i32>,
    /// Smallest of `v_exp`.
    v_exp_min: i32,
}

/// Static per-channel exponents for cached values: `|v_o| ≤ s_o · √d · ‖Wq_o ⊙ γ‖₂` by
/// Cauchy–Schwarz (`‖x / rms(x)‖₂ ≤ √d`), plus the input's rounding, with 1% slack. Values
/// then fit 24 bits; the clamp in [`ExactModel::forward`] is a guard, not a path.
pub(crate) fn value_exponents(wv: &Quantized, gamma: &[f32]) -> Vec<i32> {
    let d = wv.inp as f64;
    let gmax = gamma.iter().fold(0f64, |a, &g| a.max(f64::from(g).abs()));
    (0..wv.out)
        .map(|o| {
            let row = &wv.levels[o * wv.inp..(o + 1) * wv.inp];
            let l2: f64 = row
                .iter()
                .zip(gamma)
                .map(|(&w, &g)| (f64::from(w) * f64::from(g)).powi(2))
                .sum::<f64>()
                .sqrt();
            let l1: f64 = row.iter().map(|&w| f64::from(w).abs()).sum();
            let s = f64::from(wv.scale_f32[o]);
            let bound =
                s * (1.01 * d.sqrt() * l2 + l1 * gmax * d.sqrt() / 16383.0) + f64::MIN_POSITIVE;
            let mut e = -160i32;
            while (V_LEVELS as f64) * f64::powi(2.0, e) < bound {
                e += 1;
            }
            e
        })
        .collect()
}

/// Levels of a cached key: 16-bit query limbs (≤128) times keys stay below 2^24 over a head.
pub(crate) fn key_levels(head_dim: usize) -> i64 {
    (((1i64 << 24) - 1) / (head_dim as i64 * 128)).min(ACT_LEVELS)
}

/// `round(2^30 / (√head_dim · ln 2))`: a q·k product to log2-domain score units.
pub(crate) fn score_scale(head_dim: usize) -> i64 {
    fixed_f64(
        1.0 / ((head_dim as f64).sqrt() * std::f64::consts::LN_2),
        ONE_BITS,
    )
}

/// `round(2^30 / ln 2)`: a logit in nats to bits.
pub(crate) fn logit_scale() -> i64 {
    fixed_f64(1.0 / std::f64::consts::LN_2, ONE_BITS)
}

/// One window's keys and values for every layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct LayerCache {
    /// `len × kv_heads × head_dim` key levels (integers, exact in f32).
    k: Vec<f32>,
    /// `len × kv_heads` key exponents.
    k_exp: Vec<i32>,
    /// `len × kv_heads × head_dim` value levels (static exponents per channel; 24-bit
    /// integers, exact in f32).
    v: Vec<f32>,
}

impl KvCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.k.len() * 4 + l.k_exp.len() * 4 + l.v.len() * 4)
            .sum()
    }
}

/// Which output rows to compute: all, or a subset (the alphabet mask).
#[derive(Debug, Clone)]
struct OutputRows<B: Backend> {
    rows: Vec<usize>,
    linear: QuantLinear<B>,
}

/// A Llama model evaluated with the exact integer recipe on backend `B`.
pub struct ExactModel<B: Backend> {
    config: LlamaConfig,
    device: B::Device,
    embedding: Vec<f32>,
    layers: Vec<Layer<B>>,
    out_norm: Norm,
    output: Quantized,
    output_all: QuantLinear<B>,
    output_subset: Option<OutputRows<B>>,
    tables: Tables,
    k_levels: i64,
    /// `round(2^30 / (√head_dim · ln 2))`: a q·k product to log2-domain score units.
    score_scale: i64,
    /// `round(2^30 / ln 2)`: a logit in nats to bits.
    logit_scale: i64,
}

impl<B: Backend> std::fmt::Debug for ExactModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One input row of [`ExactModel::forward`]: a token appended to a window's cache.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Index into the caches passed alongside.
    pub cache: usize,
    /// The token.
    pub token: u32,
}

impl<B: Backend> ExactModel<B> {
    /// Quantizes `w` with the exact recipe and uploads the matrices to `device`.
    /// `max_positions` bounds the window length (RoPE tables are built for it). Each layer's
    /// `f32` weights are dropped once quantized, so the load does not hold the `f32` model
    /// and the engine's copy at once.
    pub fn new(w: LlamaWeights, device: B::Device, max_positions: usize) -> Result<Self> {
        let c = w.config.clone();
        c.validate()?;
        let hd = c.head_dim();
        let LlamaWeights {
            embedding,
            out_norm,
            layers,
            output,
            ..
        } = w;
        let layers = layers
            .into_iter()
            .map(|l| {
                let wv = Quantized::new(&l.wv);
                let v_exp = value_exponents(&wv, &l.attn_norm);
                let qkv = Quantized::stack(&[Quantized::new(&l.wq), Quantized::new(&l.wk), wv]);
                let gate_up =
                    Quantized::stack(&[Quantized::new(&l.w_gate), Quantized::new(&l.w_up)]);
                Layer {
                    attn_norm: Norm::new(&l.attn_norm, c.rms_eps),
                    qkv: QuantLinear::upload(qkv, &device, false),
                    wo: QuantLinear::upload(Quantized::new(&l.wo), &device, false),
                    ffn_norm: Norm::new(&l.ffn_norm, c.rms_eps),
                    gate_up: QuantLinear::upload(gate_up, &device, false),
                    down: QuantLinear::upload(Quantized::new(&l.w_down), &device, false),
                    v_exp_min: v_exp.iter().copied().min().unwrap_or(0),
                    v_exp,
                }
            })
            .collect();
        let output = Quantized::new(output.as_ref().unwrap_or(&embedding));
        let output_all = QuantLinear::upload(output.clone(), &device, false);
        let k_levels = key_levels(hd);
        Ok(ExactModel {
            embedding: embedding.into_data(),
            out_norm: Norm::new(&out_norm, c.rms_eps),
            tables: Tables::new(hd, c.rope_base, max_positions),
            score_scale: score_scale(hd),
            logit_scale: logit_scale(),
            k_levels,
            layers,
            output,
            output_all,
            output_subset: None,
            device,
            config: c,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The longest window this model was built for.
    pub fn max_positions(&self) -> usize {
        self.tables.max_positions()
    }

    /// KV-cache bytes per window position: `layers · kv_heads · (8 · head_dim + 4)`.
    pub fn cache_bytes_per_position(&self) -> usize {
        let c = &self.config;
        c.n_layers * c.n_kv_heads * (8 * c.head_dim() + 4)
    }

    /// A fresh cache for one window.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![LayerCache::default(); self.layers.len()],
            len: 0,
        }
    }

    /// Restricts the output to `rows` (sorted token ids); `None` computes every logit.
    pub fn set_output_rows(&mut self, rows: Option<&[usize]>) {
        match rows {
            None => self.output_subset = None,
            Some(r) if self.output_subset.as_ref().is_some_and(|s| s.rows == r) => {}
            Some(r) => {
                self.output_subset = Some(OutputRows {
                    rows: r.to_vec(),
                    linear: QuantLinear::upload(self.output.select_rows(r), &self.device, false),
                })
            }
        }
    }

    /// The output rows scored by [`ExactModel::forward`].
    pub fn output_rows(&self) -> Option<&[usize]> {
        self.output_subset.as_ref().map(|s| s.rows.as_slice())
    }

    /// Appends each row's token to its cache (rows of one cache in order) and returns, per
    /// row, the log2-domain scores (1/1024 bit) of the next token over the output rows.
    ///
    /// A row's result depends only on its window's tokens so far: never on the other rows,
    /// their number, or the backend.
    pub fn forward(&self, rows: &[Row], caches: &mut [KvCache]) -> Result<Vec<Vec<i32>>> {
        let c = &self.config;
        let (d, hd, nh, nkv) = (c.d_model, c.head_dim(), c.n_heads, c.n_kv_heads);
        let kvd = nkv * hd;
        let m = rows.len();
        // Positions, checked before anything is appended.
        let mut next = caches.iter().map(|k| k.len).collect::<Vec<_>>();
        let mut pos = Vec::with_capacity(m);
        for r in rows {
            let p = next.get_mut(r.cache).ok_or_else(|| {
                Error::Backend(format!("row names cache {} of {}", r.cache, caches.len()))
            })?;
            if caches[r.cache].layers.len() != self.layers.len() {
                return Err(Error::Backend(format!(
                    "cache {} was not made by this model (KvCache::default() or another model)",
                    r.cache
                )));
            }
            if *p >= self.max_positions() {
                return Err(Error::Unsupported(format!(
                    "window longer than the {} positions this model was built for",
                    self.max_positions()
                )));
            }
            if r.token as usize >= c.vocab {
                return Err(Error::Tokenizer(format!(
                    "token {} outside the vocabulary",
                    r.token
                )));
            }
            pos.push(*p);
            *p += 1;
        }
        let mut x: Vec<i64> = rows
            .iter()
            .flat_map(|r| {
                self.embedding[r.token as usize * d..][..d]
                    .iter()
                    .map(|&v| fixed_f64(f64::from(v), RESIDUAL_FRAC))
            })
            .collect();
        let mut h = vec![0i32; m * d];
        let mut h_exp = vec![0i32; m];
        for (li, layer) in self.layers.iter().enumerate() {
            self.norm_rows(&layer.attn_norm, &x, d, &mut h, &mut h_exp);
            let acc = layer.qkv.matmul(&h, m, &self.device)?;
            let width = layer.qkv.out();
            // Queries per row and head; keys and values straight into the caches.
            let mut q = vec![0i32; m * d];
            let mut q_exp = vec![0i32; m * nh];
            let mut mant = Vec::new();
            let mut levels = Vec::new();
            for r in 0..m {
                let e = h_exp[r] + layer.qkv.exp();
                let row = &acc[r * width..(r + 1) * width];
                let scale = layer.qkv.scale();
                for head in 0..nh {
                    let o = head * hd;
                    let er = self.rope(&row[o..o + hd], &scale[o..o + hd], e, pos[r], &mut mant);
                    q_exp[r * nh + head] = quantize_row(&mant, er, ACT_LEVELS, &mut levels);
                    q[r * d + o..r * d + o + hd].copy_from_slice(&levels);
                }
                let cache = &mut caches[rows[r].cache].layers[li];
                for kvh in 0..nkv {
                    let o = d + kvh * hd;
                    let er = self.rope(&row[o..o + hd], &scale[o..o + hd], e, pos[r], &mut mant);
                    let ek = quantize_row(&mant, er, self.k_levels, &mut levels);
                    cache.k.extend(levels.iter().map(|&v| v as f32));
                    cache.k_exp.push(ek);
                }
                for ch in 0..kvd {
                    let o = d + kvd + ch;
                    let v = i128::from(row[o]) * i128::from(scale[o]);
                    let fixed = round_shift(v, layer.v_exp[ch] - e);
                    cache
                        .v
                        .push(fixed.clamp(-i128::from(V_LEVELS), i128::from(V_LEVELS)) as f32);
                }
            }
            // Attention, row by row (rows are independent given the caches).
            let cache_refs: Vec<Option<&LayerCache>> =
                caches.iter().map(|k| k.layers.get(li)).collect();
            let attn: Vec<(Vec<i32>, i32)> = (0..m)
                .into_par_iter()
                .map(|r| {
                    self.attend(
                        layer,
                        cache_refs[rows[r].cache].expect("checked on entry"),
                        pos[r],
                        &q[r * d..(r + 1) * d],
                        &q_exp[r * nh..(r + 1) * nh],
                    )
                })
                .collect();
            let mut a = vec![0i32; m * d];
            let mut a_exp = vec![0i32; m];
            for (r, (lv, e)) in attn.into_iter().enumerate() {
                a[r * d..(r + 1) * d].copy_from_slice(&lv);
                a_exp[r] = e;
            }
            let acc = layer.wo.matmul(&a, m, &self.device)?;
            add_residual(&mut x, &acc, &a_exp, &layer.wo, d);
            // Feed-forward.
            self.norm_rows(&layer.ffn_norm, &x, d, &mut h, &mut h_exp);
            let acc = layer.gate_up.matmul(&h, m, &self.device)?;
            let f = c.d_ffn;
            let mut act = vec![0i32; m * f];
            let mut act_exp = vec![0i32; m];
            let scale = layer.gate_up.scale();
            let (mut g, mut u, mut gl, mut ul) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for r in 0..m {
                let row = &acc[r * 2 * f..(r + 1) * 2 * f];
                let e = h_exp[r] + layer.gate_up.exp();
                g.clear();
                g.extend((0..f).map(|o| i128::from(row[o]) * i128::from(scale[o])));
                u.clear();
                u.extend((f..2 * f).map(|o| i128::from(row[o]) * i128::from(scale[o])));
                let eg = quantize_row(&g, e, FFN_LEVELS, &mut gl);
                let eu = quantize_row(&u, e, FFN_LEVELS, &mut ul);
                mant.clear();
                mant.extend(gl.iter().zip(&ul).map(|(&gv, &uv)| {
                    let x16 = round_shift(i128::from(gv), -(eg + 16)) as i64;
                    let sig = self.tables.sigmoid_q16(x16.clamp(-(1 << 40), 1 << 40));
                    i128::from(gv) * i128::from(sig) * i128::from(uv)
                }));
                act_exp[r] = quantize_row(&mant, eg + eu - ONE_BITS, ACT_LEVELS, &mut levels);
                act[r * f..(r + 1) * f].copy_from_slice(&levels);
            }
            let acc = layer.down.matmul(&act, m, &self.device)?;
            add_residual(&mut x, &acc, &act_exp, &layer.down, d);
        }
        for r in rows {
            caches[r.cache].len += 1;
        }
        // Output scores.
        self.norm_rows(&self.out_norm, &x, d, &mut h, &mut h_exp);
        let out = match &self.output_subset {
            Some(s) => &s.linear,
            None => &self.output_all,
        };
        let acc = out.matmul(&h, m, &self.device)?;
        let n = out.out();
        Ok((0..m)
            .map(|r| {
                let shift = -(h_exp[r] + out.exp() + SCORE_FRAC_BITS - ONE_BITS);
                acc[r * n..(r + 1) * n]
                    .iter()
                    .zip(out.scale())
                    .map(|(&a, &s)| {
                        let v = i128::from(a) * i128::from(s) * i128::from(self.logit_scale);
                        round_shift(v, shift)
                            .clamp(i128::from(i32::MIN / 2), i128::from(i32::MAX / 2))
                            as i32
                    })
                    .collect()
            })
            .collect())
    }

    fn norm_rows(&self, norm: &Norm, x: &[i64], d: usize, h: &mut [i32], h_exp: &mut [i32]) {
        let (mut lv, mut scratch) = (Vec::new(), Vec::new());
        for (r, row) in x.chunks_exact(d).enumerate() {
            h_exp[r] = norm.apply(row, &mut lv, &mut scratch);
            h[r * d..(r + 1) * d].copy_from_slice(&lv);
        }
    }

    /// Rotates one head, given as `acc_i · scale_i · 2^e`, by position `p`: the mantissas are
    /// first rounded to 30 bits, then turned by the Q30 tables. Returns the exponent of `out`.
    fn rope(&self, acc: &[i64], scale: &[i64], e: i32, p: usize, out: &mut Vec<i128>) -> i32 {
        let full: Vec<i128> = acc
            .iter()
            .zip(scale)
            .map(|(&a, &s)| i128::from(a) * i128::from(s))
            .collect();
        let mut v = Vec::with_capacity(full.len());
        let e1 = quantize_row(&full, e, 1 << ONE_BITS, &mut v);
        let t = &self.tables;
        let (cos, sin) = (
            &t.cos[p * t.pairs..][..t.pairs],
            &t.sin[p * t.pairs..][..t.pairs],
        );
        out.clear();
        for (i, pair) in v.chunks_exact(2).enumerate() {
            let (a, b) = (i128::from(pair[0]), i128::from(pair[1]));
            let (c, s) = (i128::from(cos[i]), i128::from(sin[i]));
            out.push(a * c - b * s);
            out.push(a * s + b * c);
        }
        e1 - ONE_BITS
    }

    /// Attention of one row at position `p` over its cache positions `0..=p`: all heads,
    /// quantized to 16 bits. Returns the levels and their exponent.
    ///
    /// Compiled twice, for the baseline CPU and for AVX2+FMA, chosen at run time: the
    /// arithmetic is exact either way, so the choice changes speed, never a result.
    fn attend(
        &self,
        layer: &Layer<B>,
        cache: &LayerCache,
        p: usize,
        q: &[i32],
        q_exp: &[i32],
    ) -> (Vec<i32>, i32) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            #[allow(unsafe_code)]
            // SAFETY: the CPU was just checked for both features the function is built with.
            return unsafe { self.attend_avx2(layer, cache, p, q, q_exp) };
        }
        self.attend_impl(layer, cache, p, q, q_exp)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn attend_avx2(
        &self,
        layer: &Layer<B>,
        cache: &LayerCache,
        p: usize,
        q: &[i32],
        q_exp: &[i32],
    ) -> (Vec<i32>, i32) {
        self.attend_impl(layer, cache, p, q, q_exp)
    }

    #[inline(always)]
    fn attend_impl(
        &self,
        layer: &Layer<B>,
        cache: &LayerCache,
        p: usize,
        q: &[i32],
        q_exp: &[i32],
    ) -> (Vec<i32>, i32) {
        let c = &self.config;
        let (hd, nh, nkv) = (c.head_dim(), c.n_heads, c.n_kv_heads);
        let group = nh / nkv;
        let n = p + 1;
        let mut mant = vec![0i128; c.d_model];
        let mut z = vec![0i64; n];
        let mut w = vec![0i64; n];
        let mut a = vec![0f64; hd];
        let mut qf = vec![0f64; hd];
        for head in 0..nh {
            let kvh = head / group;
            qf.iter_mut()
                .zip(&q[head * hd..(head + 1) * hd])
                .for_each(|(d, &v)| *d = f64::from(v));
            // Scores. f64 holds every product and sum exactly (|q·k| < 2^33 for these widths),
            // so the lanes of `dot_f64` may add in any order.
            for (j, zj) in z.iter_mut().enumerate() {
                let s = dot_f64(&qf, &cache.k[(j * nkv + kvh) * hd..][..hd]) as i64;
                let shift = ONE_BITS - SCORE_FRAC_BITS - q_exp[head] - cache.k_exp[j * nkv + kvh];
                *zj = match s.checked_mul(self.score_scale) {
                    Some(v) => round_shift(i128::from(v), shift) as i64,
                    None => round_shift(i128::from(s) * i128::from(self.score_scale), shift) as i64,
                };
            }
            let max = z.iter().copied().max().unwrap_or(0);
            for (wj, &zj) in w.iter_mut().zip(&z) {
                *wj = self.tables.exp2_neg(max - zj);
            }
            // Σw ≤ n · 2^30 and w · 4095 < 2^42: i64 throughout.
            let total: i64 = w.iter().sum();
            a.iter_mut().for_each(|v| *v = 0.0);
            for (j, &wj) in w.iter().enumerate() {
                let pj = (2 * wj * PROB_LEVELS + total).div_euclid(2 * total);
                if pj == 0 {
                    continue;
                }
                // p · v < 2^35 and Σ p ≤ 4095 + n/2: the f64 sums stay exact integers.
                let pj = pj as f64;
                let v = &cache.v[(j * nkv + kvh) * hd..][..hd];
                for (acc, &vv) in a.iter_mut().zip(v) {
                    *acc += pj * f64::from(vv);
                }
            }
            for (i, &av) in a.iter().enumerate() {
                let shift = layer.v_exp[kvh * hd + i] - layer.v_exp_min + 20;
                mant[head * hd + i] =
                    div_round(i128::from(av as i64) << shift, i128::from(PROB_LEVELS));
            }
        }
        let mut levels = Vec::with_capacity(c.d_model);
        let e = quantize_row(&mant, layer.v_exp_min - 20, ACT_LEVELS, &mut levels);
        (levels, e)
    }
}

/// `x · y` in four f64 lanes; exact when every partial sum is an integer below 2^53.
#[inline(always)]
fn dot_f64(x: &[f64], y: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let (xc, yc) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, &b)| a * f64::from(b))
        .sum();
    for (a, b) in xc.zip(yc) {
        for l in 0..4 {
            acc[l] += a[l] * f64::from(b[l]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `x += acc · scale · 2^(e + exp)`, rounded into the residual's fixed point.
fn add_residual<B: Backend>(x: &mut [i64], acc: &[i64], e: &[i32], w: &QuantLinear<B>, d: usize) {
    for (r, (xr, ar)) in x.chunks_exact_mut(d).zip(acc.chunks_exact(d)).enumerate() {
        let shift = -(e[r] + w.exp() + RESIDUAL_FRAC);
        for ((xv, &av), &s) in xr.iter_mut().zip(ar).zip(w.scale()) {
            let delta = round_shift(i128::from(av) * i128::from(s), shift);
            *xv = xv.saturating_add(delta.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64);
        }
    }
}

#[cfg(test)]
mod tests;
