//! A plain `f32` forward pass of a Llama model: the yardstick for the integer-exact model.
//!
//! It is not exact across machines (float summation order differs) and is never used to
//! code; it measures what exactness costs, in bits per token, and checks the loader
//! (weight layout, RoPE convention, tokenizer) end to end.
//!
//! Conventions of GGUF llama files: a weight of dims `[in, out]` is `out` rows of `in`
//! values; RoPE rotates adjacent pairs `(x[2i], x[2i+1])` by `pos · base^(-2i/head_dim)`
//! (llama.cpp's converter permutes Q and K so this matches the original model); the output
//! projection is the token embedding when `output.weight` is absent.

use crate::config::LlamaConfig;
use crate::gguf::Gguf;
use crate::weights::{LlamaWeights, Matrix};
use crate::{Error, Result};

/// How the reference pass rounds, to measure what a quantization recipe costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// Plain f32 throughout.
    #[default]
    F32,
    /// Simulates an integer recipe (docs/decisions/0006): every matmul weight rounded to
    /// `weight_bits` signed levels with one scale per output row, every matmul input rounded to
    /// `act_bits` signed levels with one power-of-two scale per row (token, or token and head
    /// for attention), attention probabilities rounded to `prob_bits` bits. Arithmetic stays
    /// f32; only the rounding is modelled.
    Sim(Recipe),
}

/// Bit widths of a simulated integer recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipe {
    /// Signed bits per weight (8: levels -127..=127).
    pub weight_bits: u8,
    /// Signed bits per activation.
    pub act_bits: u8,
    /// Bits per attention probability.
    pub prob_bits: u8,
}

impl Recipe {
    /// The first proposal: int8 everywhere.
    pub const INT8: Recipe = Recipe {
        weight_bits: 8,
        act_bits: 8,
        prob_bits: 8,
    };
}

impl Numerics {
    /// The first proposed recipe, int8 everywhere.
    #[allow(non_upper_case_globals)]
    pub const Int8Sim: Numerics = Numerics::Sim(Recipe::INT8);
}

fn max_level(bits: u8) -> f32 {
    ((1u32 << (bits.clamp(2, 24) - 1)) - 1) as f32
}

/// Rounds each row of `w` to signed `bits` levels with a per-row scale `max|row| / max_level`.
fn quantize_rows(w: &mut Matrix, bits: u8) {
    let cols = w.cols;
    let levels = max_level(bits);
    for row in w.data.chunks_exact_mut(cols) {
        let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        if max > 0.0 {
            let s = max / levels;
            row.iter_mut()
                .for_each(|v| *v = (*v / s).round().clamp(-levels, levels) * s);
        }
    }
}

/// Rounds each `width`-wide row of `x` to signed `bits` levels with a power-of-two scale.
fn quantize_activations(x: &mut [f32], width: usize, bits: u8) {
    let levels = max_level(bits);
    for row in x.chunks_exact_mut(width) {
        let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        if max > 0.0 {
            let s = (max / levels).log2().ceil().exp2();
            row.iter_mut()
                .for_each(|v| *v = (*v / s).round().clamp(-levels, levels) * s);
        }
    }
}

/// `x (t × in) · wᵀ` for `w` of shape `out × in`: `t × out`.
fn linear(x: &[f32], t: usize, w: &Matrix) -> Vec<f32> {
    let (out_f, in_f) = (w.rows, w.cols);
    debug_assert_eq!(x.len(), t * in_f);
    let mut y = vec![0f32; t * out_f];
    // Row-major x and y, w read transposed through its strides.
    gemm(
        t,
        in_f,
        out_f,
        x,
        in_f as isize,
        1,
        &w.data,
        1,
        in_f as isize,
        &mut y,
        out_f as isize,
    );
    y
}

/// `c (m × n) = a (m × k) · b (k × n)` with arbitrary strides.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)] // matrixmultiply's sgemm takes raw pointers; the slices below bound them.
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    c: &mut [f32],
    rsc: isize,
) {
    assert!(
        m == 0 || k == 0 || n == 0 || (a.len() > (m - 1) * rsa as usize + (k - 1) * csa as usize)
    );
    assert!(
        m == 0 || k == 0 || n == 0 || (b.len() > (k - 1) * rsb as usize + (n - 1) * csb as usize)
    );
    assert!(m == 0 || n == 0 || c.len() >= (m - 1) * rsc as usize + n);
    // SAFETY: the asserts above keep every index the kernel touches inside the slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            rsc,
            1,
        );
    }
}

fn rms_norm(x: &mut [f32], d: usize, weight: &[f32], eps: f64) {
    for row in x.chunks_exact_mut(d) {
        let ms = row
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            / d as f64;
        let scale = (1.0 / (ms + eps).sqrt()) as f32;
        for (v, w) in row.iter_mut().zip(weight) {
            *v *= scale * w;
        }
    }
}

fn rope(x: &mut [f32], t: usize, heads: usize, head_dim: usize, base: f64, start: usize) {
    for p in 0..t {
        for h in 0..heads {
            let v = &mut x[(p * heads + h) * head_dim..][..head_dim];
            for i in 0..head_dim / 2 {
                let theta = (start + p) as f64 * base.powf(-2.0 * i as f64 / head_dim as f64);
                let (s, c) = (theta.sin() as f32, theta.cos() as f32);
                let (a, b) = (v[2 * i], v[2 * i + 1]);
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

/// The reference model.
pub struct ReferenceModel {
    /// Shape.
    pub config: LlamaConfig,
    /// Rounding model.
    pub numerics: Numerics,
    w: LlamaWeights,
}

impl ReferenceModel {
    /// Loads every weight as `f32`.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        Self::with_numerics(g, Numerics::F32)
    }

    /// Loads every weight, rounded as `numerics` says.
    pub fn with_numerics(g: &Gguf, numerics: Numerics) -> Result<Self> {
        Ok(Self::from_weights(LlamaWeights::from_gguf(g)?, numerics))
    }

    /// A reference pass over `w`, rounded as `numerics` says.
    pub fn from_weights(w: LlamaWeights, numerics: Numerics) -> Self {
        let mut m = ReferenceModel {
            config: w.config.clone(),
            numerics,
            w,
        };
        if let Numerics::Sim(r) = numerics {
            for l in &mut m.w.layers {
                for w in [
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.w_gate,
                    &mut l.w_up,
                    &mut l.w_down,
                ] {
                    quantize_rows(w, r.weight_bits);
                }
            }
            // The embedding is read by lookup and, tied, used as the output projection.
            quantize_rows(
                m.w.output.as_mut().unwrap_or(&mut m.w.embedding),
                r.weight_bits,
            );
        }
        m
    }

    /// Logits for every position of `tokens` (causal): `logits[p]` predicts `tokens[p + 1]`.
    pub fn forward(&self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        let (t, d, hd) = (tokens.len(), c.d_model, c.head_dim());
        let (nh, nkv) = (c.n_heads, c.n_kv_heads);
        let mut x = Vec::with_capacity(t * d);
        for &tok in tokens {
            if tok as usize >= c.vocab {
                return Err(Error::Tokenizer(format!(
                    "token {tok} outside the vocabulary"
                )));
            }
            x.extend_from_slice(self.w.embedding.row(tok as usize));
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let recipe = match self.numerics {
            Numerics::Sim(r) => Some(r),
            Numerics::F32 => None,
        };
        let q8 = |x: &mut [f32], width: usize| {
            if let Some(r) = recipe {
                quantize_activations(x, width, r.act_bits);
            }
        };
        for l in &self.w.layers {
            let mut h = x.clone();
            rms_norm(&mut h, d, &l.attn_norm, c.rms_eps);
            q8(&mut h, d);
            let mut q = linear(&h, t, &l.wq);
            let mut k = linear(&h, t, &l.wk);
            let mut v = linear(&h, t, &l.wv);
            rope(&mut q, t, nh, hd, c.rope_base, 0);
            rope(&mut k, t, nkv, hd, c.rope_base, 0);
            q8(&mut q, hd);
            q8(&mut k, hd);
            q8(&mut v, hd);
            let mut attn = vec![0f32; t * d];
            let mut scores = vec![0f32; t * t];
            for head in 0..nh {
                let kvh = head / (nh / nkv);
                // scores = q_h · k_hᵀ, strided views into the packed [t][heads][hd] layouts.
                gemm(
                    t,
                    hd,
                    t,
                    &q[head * hd..],
                    (nh * hd) as isize,
                    1,
                    &k[kvh * hd..],
                    1,
                    (nkv * hd) as isize,
                    &mut scores,
                    t as isize,
                );
                for p in 0..t {
                    let row = &mut scores[p * t..(p + 1) * t];
                    let m = row[..=p].iter().fold(f32::MIN, |a, &b| a.max(b * scale));
                    let mut sum = 0.0;
                    for (j, s) in row.iter_mut().enumerate() {
                        *s = if j <= p { (*s * scale - m).exp() } else { 0.0 };
                        sum += *s;
                    }
                    row.iter_mut().for_each(|s| *s /= sum);
                    if let Some(r) = recipe {
                        let levels = ((1u32 << r.prob_bits.clamp(1, 24)) - 1) as f32;
                        row.iter_mut()
                            .for_each(|s| *s = (*s * levels).round() / levels);
                    }
                }
                // attn_h = scores · v_h
                gemm(
                    t,
                    t,
                    hd,
                    &scores,
                    t as isize,
                    1,
                    &v[kvh * hd..],
                    (nkv * hd) as isize,
                    1,
                    &mut attn[head * hd..],
                    d as isize,
                );
            }
            q8(&mut attn, d);
            let o = linear(&attn, t, &l.wo);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let mut h = x.clone();
            rms_norm(&mut h, d, &l.ffn_norm, c.rms_eps);
            q8(&mut h, d);
            let gate = linear(&h, t, &l.w_gate);
            let up = linear(&h, t, &l.w_up);
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = linear(&act, t, &l.w_down);
            x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        }
        rms_norm(&mut x, d, &self.w.out_norm, c.rms_eps);
        q8(&mut x, d);
        let logits = linear(&x, t, self.w.output());
        Ok(logits.chunks_exact(c.vocab).map(<[f32]>::to_vec).collect())
    }

    /// Cross-entropy in bits of `tokens[1..]` given their prefixes, summed; with `allowed`,
    /// the softmax is renormalized over those tokens only.
    pub fn code_length_bits(&self, tokens: &[u32], allowed: Option<&[u32]>) -> Result<f64> {
        let logits = self.forward(tokens)?;
        let mut bits = 0.0;
        for (p, row) in logits
            .iter()
            .enumerate()
            .take(tokens.len().saturating_sub(1))
        {
            let next = tokens[p + 1] as usize;
            let (lse, target) = match allowed {
                None => (log_sum_exp(row.iter().copied()), row[next]),
                Some(a) => (log_sum_exp(a.iter().map(|&i| row[i as usize])), row[next]),
            };
            bits += (lse - f64::from(target)) / std::f64::consts::LN_2;
        }
        Ok(bits)
    }
}

fn log_sum_exp(xs: impl Iterator<Item = f32> + Clone) -> f64 {
    let m = xs.clone().fold(f32::MIN, f32::max);
    f64::from(m) + xs.map(|x| f64::from(x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_quantization_uses_int8_levels_of_the_row_max() {
        let mut w = Matrix::new(2, 4, vec![1.0, -0.5, 0.26, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
        quantize_rows(&mut w, 8);
        let s = 1.0 / 127.0;
        for v in w.row(0) {
            let level = v / s;
            assert!(
                (level - level.round()).abs() < 1e-3 && level.abs() <= 127.0,
                "{v}"
            );
        }
        assert_eq!(w.row(0)[0], 1.0);
        assert_eq!(w.row(1), &[0.0; 4]);
    }

    #[test]
    fn activation_scales_are_powers_of_two() {
        let mut x = vec![3.0, -1.0, 0.001, 100.0];
        quantize_activations(&mut x, 4, 8);
        // max 100 -> scale 1.0 (100/127 rounds up to 2^0), so values become integers.
        assert_eq!(x, vec![3.0, -1.0, 0.0, 100.0]);
        let mut y = vec![0.3, 0.1];
        quantize_activations(&mut y, 2, 8);
        let s = (0.3f32 / 127.0).log2().ceil().exp2();
        assert!(y.iter().all(|v| (v / s - (v / s).round()).abs() < 1e-4));
    }
}
