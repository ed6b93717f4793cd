//! Linear layers as exact integer GEMMs on a burn backend.
//!
//! Weights are int8 with one scale per output row; inputs are 16-bit integers split into two
//! base-256 limbs in `[-128, 128]`. Every GEMM piece has `K ≤ 1024`, so each partial sum is
//! below `1024 · 128 · 127 < 2^24` whatever order the backend adds in: f32 (and TF32) GEMM
//! returns the exact integer on ndarray, wgpu and CUDA alike. The pieces are recombined in
//! `i64` on the host.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::exact::fixed::{dyadic_f32, limbs, round_shift};
use crate::weights::Matrix;
use crate::{Error, Result};

/// Largest `K` of one GEMM piece: `K · 128 · 127 < 2^24`.
pub const K_PIECE: usize = 1024;
/// Weight levels: int8 without -128, so negation stays in range.
pub const WEIGHT_LEVELS: f32 = 127.0;
/// The largest row-scale spread kept exactly; rows scaled below it are rounded.
const SCALE_SPREAD_BITS: i32 = 24;

/// An `out × in` weight as int8 levels and dyadic per-row scales, resident on a device.
#[derive(Debug, Clone)]
pub struct QuantLinear<B: Backend> {
    out: usize,
    inp: usize,
    /// `Wqᵀ` split along `in` into pieces of at most [`K_PIECE`] rows, as f32 integers.
    pieces: Vec<Tensor<B, 2>>,
    /// Row scales `M_o · 2^exp`.
    scale: Vec<i64>,
    exp: i32,
    /// Host copy of the levels (row-major `out × in`), kept only when asked for.
    levels: Option<Vec<i8>>,
}

/// Int8 levels and dyadic scales of a matrix, before upload.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// Rows.
    pub out: usize,
    /// Columns.
    pub inp: usize,
    /// Row-major levels in `[-127, 127]`.
    pub levels: Vec<i8>,
    /// Row scale mantissas.
    pub scale: Vec<i64>,
    /// Common exponent of the scales.
    pub exp: i32,
    /// Each row's scale as `f32` (for load-time bounds only).
    pub scale_f32: Vec<f32>,
}

/// Mantissas `M_o` and one exponent with `M_o · 2^exp` = each scale: exactly for scales within
/// `2^SCALE_SPREAD_BITS` of the largest, rounded for smaller ones (mantissas stay below 2^48).
fn dyadic_scales(scales: &[f32]) -> (Vec<i64>, i32) {
    let dy: Vec<(i64, i32)> = scales.iter().map(|&s| dyadic_f32(s)).collect();
    let top = dy
        .iter()
        .filter(|d| d.0 != 0)
        .map(|d| d.1)
        .max()
        .unwrap_or(0);
    let exp = top - SCALE_SPREAD_BITS;
    let scale = dy
        .iter()
        .map(|&(m, e)| round_shift(i128::from(m), exp - e) as i64)
        .collect();
    (scale, exp)
}

impl Quantized {
    /// Rounds each row to int8 with scale `max|row| / 127`, in `f32` (IEEE arithmetic, the
    /// same on every machine).
    pub fn new(w: &Matrix) -> Self {
        let (out, inp) = (w.rows(), w.cols());
        let mut levels = Vec::with_capacity(out * inp);
        let mut scale_f32 = Vec::with_capacity(out);
        for r in 0..out {
            let row = w.row(r);
            let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let s = max / WEIGHT_LEVELS;
            scale_f32.push(s);
            levels.extend(row.iter().map(|&v| {
                if s > 0.0 {
                    (v / s).round().clamp(-WEIGHT_LEVELS, WEIGHT_LEVELS) as i8
                } else {
                    0
                }
            }));
        }
        let (scale, exp) = dyadic_scales(&scale_f32);
        Quantized {
            out,
            inp,
            levels,
            scale,
            exp,
            scale_f32,
        }
    }

    /// Stacks matrices with the same input width row-wise (fused projections); every row
    /// keeps its levels and scale.
    pub fn stack(parts: &[Quantized]) -> Quantized {
        let scale_f32: Vec<f32> = parts
            .iter()
            .flat_map(|p| p.scale_f32.iter().copied())
            .collect();
        let (scale, exp) = dyadic_scales(&scale_f32);
        Quantized {
            out: parts.iter().map(|p| p.out).sum(),
            inp: parts.first().map_or(0, |p| p.inp),
            levels: parts
                .iter()
                .flat_map(|p| p.levels.iter().copied())
                .collect(),
            scale,
            exp,
            scale_f32,
        }
    }

    /// The listed rows only (a masked output projection); values and scales unchanged.
    pub fn select_rows(&self, rows: &[usize]) -> Quantized {
        Quantized {
            out: rows.len(),
            inp: self.inp,
            levels: rows
                .iter()
                .flat_map(|&r| {
                    self.levels[r * self.inp..(r + 1) * self.inp]
                        .iter()
                        .copied()
                })
                .collect(),
            scale: rows.iter().map(|&r| self.scale[r]).collect(),
            exp: self.exp,
            scale_f32: rows.iter().map(|&r| self.scale_f32[r]).collect(),
        }
    }
}

impl<B: Backend> QuantLinear<B> {
    /// Uploads `q` to `device`; keeps the host levels when `keep_levels`.
    pub fn upload(q: Quantized, device: &B::Device, keep_levels: bool) -> Self {
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < q.inp {
            let end = (start + K_PIECE).min(q.inp);
            // Transposed piece: (end - start) × out.
            let mut t = vec![0f32; (end - start) * q.out];
            for o in 0..q.out {
                let row = &q.levels[o * q.inp..];
                for (i, v) in row[start..end].iter().enumerate() {
                    t[i * q.out + o] = f32::from(*v);
                }
            }
            pieces.push(Tensor::from_data(
                TensorData::new(t, [end - start, q.out]),
                device,
            ));
            start = end;
        }
        QuantLinear {
            out: q.out,
            inp: q.inp,
            pieces,
            scale: q.scale,
            exp: q.exp,
            levels: keep_levels.then_some(q.levels),
        }
    }

    /// Output rows.
    pub fn out(&self) -> usize {
        self.out
    }

    /// Common exponent of the row scales.
    pub fn exp(&self) -> i32 {
        self.exp
    }

    /// Row scale mantissas.
    pub fn scale(&self) -> &[i64] {
        &self.scale
    }

    /// Host copy of the levels, if kept.
    pub fn levels(&self) -> Option<&[i8]> {
        self.levels.as_deref()
    }

    /// `x · Wqᵀ` exactly, for `m` rows of 16-bit integers (`|x| ≤ 32767`): `m × out` sums.
    pub fn matmul(&self, x: &[i32], m: usize, device: &B::Device) -> Result<Vec<i64>> {
        debug_assert_eq!(x.len(), m * self.inp);
        let mut acc = vec![0i64; m * self.out];
        if m == 0 {
            return Ok(acc);
        }
        let mut start = 0;
        for piece in &self.pieces {
            let k = piece.dims()[0];
            // Rows 0..m hold the low limbs, m..2m the high limbs.
            let mut buf = vec![0f32; 2 * m * k];
            for r in 0..m {
                for (i, &v) in x[r * self.inp + start..][..k].iter().enumerate() {
                    let [lo, hi] = limbs::<2>(i64::from(v));
                    buf[r * k + i] = lo as f32;
                    buf[(m + r) * k + i] = hi as f32;
                }
            }
            let input = Tensor::<B, 2>::from_data(TensorData::new(buf, [2 * m, k]), device);
            let y = input
                .matmul(piece.clone())
                .into_data()
                .into_vec::<f32>()
                .map_err(|e| Error::Backend(format!("reading a GEMM result: {e:?}")))?;
            let (lo, hi) = y.split_at(m * self.out);
            for ((a, &l), &h) in acc.iter_mut().zip(lo).zip(hi) {
                *a += exact_integer(l)? + 256 * exact_integer(h)?;
            }
            start += k;
        }
        Ok(acc)
    }
}

/// The integer an exact GEMM returned; anything else means the backend broke the contract.
fn exact_integer(v: f32) -> Result<i64> {
    if v.fract() == 0.0 && v.abs() < (1 << 24) as f32 {
        Ok(v as i64)
    } else {
        Err(Error::Backend(format!(
            "a GEMM returned {v}, not an integer below 2^24: this backend is not exact \
             (fused or reduced-precision arithmetic?); report it with the backend's name"
        )))
    }
}
