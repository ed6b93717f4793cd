//! Linear layers as exact integer GEMMs on a burn backend.
//!
//! Weights are int8 with one scale per output row; inputs are 16-bit integers split into two
//! base-256 limbs in `[-128, 128]`. Every GEMM piece has `K ≤ 1024`, so each partial sum is
//! below `1024 · 128 · 127 < 2^24` whatever order the backend adds in: f32 (and TF32) GEMM
//! returns the exact integer on ndarray, wgpu and CUDA alike. The pieces are recombined in
//! `i64` on the host.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::exact::fixed::{dyadic_common, limbs};
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
    pieces: Pieces<B>,
    /// Row scales `M_o · 2^exp`.
    scale: Vec<i64>,
    exp: i32,
    /// Host copy of the levels (row-major `out × in`), kept only when asked for.
    levels: Option<Vec<i8>>,
}

/// Where the weight pieces live.
#[derive(Debug, Clone)]
enum Pieces<B: Backend> {
    /// On the backend's device.
    Device(Vec<Tensor<B, 2>>),
    /// In host memory, `(k, values)` with values row-major `out × k`, for the CPU backend: burn-ndarray 0.21's matmul copies
    /// both operands on every call (its reshape turns a view into a new shared array), which
    /// for a decoding step of a few rows costs more than the arithmetic. The host path calls
    /// `matrixmultiply::sgemm`, the kernel burn-ndarray itself ends in; being an exact
    /// integer GEMM, it gives the same integers as any other backend.
    Host(Vec<HostPiece>),
}

/// One K-piece of a weight on the host: row-major `out × k`, as f32 for sgemm and as i8 for
/// the dot kernel (a decoding step reads every weight once; a quarter of the bytes is most of
/// the speed).
#[derive(Debug, Clone)]
struct HostPiece {
    k: usize,
    f32: Vec<f32>,
    i8: Vec<i8>,
}

/// True for burn's CPU backend, whose matmul the host path replaces.
fn is_ndarray<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<burn::backend::NdArray<f32>>()
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

/// `x.round().clamp(-127.0, 127.0) as i8` (halves away from zero; NaN gives 0), bit for bit,
/// without the `roundf` library call that the baseline x86-64 target makes of `round`: this
/// runs once per weight at every model load (135 M times for SmolLM2).
fn weight_level(x: f32) -> i8 {
    // Within ±128 every fractional part is exact in f32; beyond, the result clamps anyway.
    let c = x.clamp(-WEIGHT_LEVELS - 1.0, WEIGHT_LEVELS + 1.0);
    let t = c as i32;
    let frac = c - t as f32;
    let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
    r.clamp(-127, 127) as i8
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
            levels.extend(
                row.iter()
                    .map(|&v| if s > 0.0 { weight_level(v / s) } else { 0 }),
            );
        }
        let (scale, exp) = dyadic_common(&scale_f32, SCALE_SPREAD_BITS);
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
        let (scale, exp) = dyadic_common(&scale_f32, SCALE_SPREAD_BITS);
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
        let host = is_ndarray::<B>();
        let (mut device_pieces, mut host_pieces) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < q.inp {
            let end = (start + K_PIECE).min(q.inp);
            if host {
                let mut i8s = Vec::with_capacity((end - start) * q.out);
                for o in 0..q.out {
                    i8s.extend_from_slice(&q.levels[o * q.inp + start..o * q.inp + end]);
                }
                host_pieces.push(HostPiece {
                    k: end - start,
                    f32: i8s.iter().map(|&v| f32::from(v)).collect(),
                    i8: i8s,
                });
            } else {
                // Transposed piece: (end - start) × out.
                let mut t = vec![0f32; (end - start) * q.out];
                for o in 0..q.out {
                    let row = &q.levels[o * q.inp..];
                    for (i, v) in row[start..end].iter().enumerate() {
                        t[i * q.out + o] = f32::from(*v);
                    }
                }
                device_pieces.push(Tensor::from_data(
                    TensorData::new(t, [end - start, q.out]),
                    device,
                ));
            }
            start = end;
        }
        let pieces = if host {
            Pieces::Host(host_pieces)
        } else {
            Pieces::Device(device_pieces)
        };
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
        let ks: Vec<usize> = match &self.pieces {
            Pieces::Device(p) => p.iter().map(|t| t.dims()[0]).collect(),
            Pieces::Host(p) => p.iter().map(|h| h.k).collect(),
        };
        let mut start = 0;
        for (i, &k) in ks.iter().enumerate() {
            // Rows 0..m hold the low limbs, m..2m the high limbs.
            let mut buf = vec![0f32; 2 * m * k];
            for r in 0..m {
                for (j, &v) in x[r * self.inp + start..][..k].iter().enumerate() {
                    let [lo, hi] = limbs::<2>(i64::from(v));
                    buf[r * k + j] = lo as f32;
                    buf[(m + r) * k + j] = hi as f32;
                }
            }
            let y = match &self.pieces {
                Pieces::Device(p) => {
                    let input = Tensor::<B, 2>::from_data(TensorData::new(buf, [2 * m, k]), device);
                    input
                        .matmul(p[i].clone())
                        .into_data()
                        .into_vec::<f32>()
                        .map_err(|e| Error::Backend(format!("reading a GEMM result: {e:?}")))?
                }
                Pieces::Host(p) => host_gemm(&buf, 2 * m, k, &p[i], self.out),
            };
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
    // `as i32` truncates exactly below 2^24 (NaN fails the bound); `fract` would be a `truncf`
    // library call per GEMM output on the baseline x86-64 target.
    if v.abs() < (1 << 24) as f32 && (v as i32) as f32 == v {
        Ok(v as i64)
    } else {
        Err(Error::Backend(format!(
            "a GEMM returned {v}, not an integer below 2^24: this backend is not exact \
             (fused or reduced-precision arithmetic?); report it with the backend's name"
        )))
    }
}

/// Rows below which the host GEMM computes dot products directly: sgemm packs the whole
/// weight matrix on every call, which costs more than the products for a few rows.
const DOT_ROWS: usize = 64;

/// `a (m × k) · wᵀ` for `w` row-major `n × k`: `m × n`. Partial sums are integers below 2^24,
/// so every summation order (sgemm's blocking, the dot kernel's eight lanes) gives the same
/// bits.
fn host_gemm(a: &[f32], m: usize, k: usize, piece: &HostPiece, n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (w, w8) = (&piece.f32, &piece.i8);
    assert!(a.len() == m * k && w.len() == k * n && w8.len() == k * n);
    let mut c = vec![0f32; m * n];
    if m == 0 || k == 0 || n == 0 {
        return c;
    }
    if m >= DOT_ROWS {
        sgemm(a, m, k, w, n, &mut c);
        return c;
    }
    // Output-major so each weight row is read once for all input rows, in parallel over
    // blocks of outputs; transposed into c at the end.
    const BLOCK: usize = 64;
    let mut ct = vec![0f32; n * m];
    ct.par_chunks_mut(BLOCK * m)
        .enumerate()
        .for_each(|(b, out)| dot_block(a, m, k, &w8[b * BLOCK * k..], out));
    for o in 0..n {
        for r in 0..m {
            c[r * n + o] = ct[o * m + r];
        }
    }
    c
}

/// `out[j·m + r] = a_r · w_j` for the weight rows of one output block; AVX2 when the CPU
/// has it (exact either way).
fn dot_block(a: &[f32], m: usize, k: usize, w8: &[i8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU was just checked for the feature the function is built with.
        return unsafe { dot_block_avx2(a, m, k, w8, out) };
    }
    dot_block_impl(a, m, k, w8, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_block_avx2(a: &[f32], m: usize, k: usize, w8: &[i8], out: &mut [f32]) {
    dot_block_impl(a, m, k, w8, out)
}

#[inline(always)]
fn dot_block_impl(a: &[f32], m: usize, k: usize, w8: &[i8], out: &mut [f32]) {
    for (j, o) in out.chunks_exact_mut(m).enumerate() {
        let row = &w8[j * k..][..k];
        for (r, v) in o.iter_mut().enumerate() {
            *v = dot(&a[r * k..(r + 1) * k], row);
        }
    }
}

/// Dot product in eight independent lanes (vectorizes without reassociation flags).
#[inline(always)]
fn dot(x: &[f32], y: &[i8]) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += a[l] * f32::from(b[l]);
        }
    }
    let tail: f32 = xr.iter().zip(yr).map(|(a, &b)| a * f32::from(b)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `c = a (m × k) · wᵀ` by `matrixmultiply::sgemm`, reading `w` (row-major `n × k`) transposed.
#[allow(unsafe_code)] // sgemm takes raw pointers; host_gemm asserts every length first.
fn sgemm(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, c: &mut [f32]) {
    assert!(a.len() == m * k && w.len() == k * n && c.len() == m * n);
    // SAFETY: a is m×k row-major, w is n×k row-major read as k×n with strides (1, k), c is
    // m×n row-major; the assert above bounds every index sgemm touches.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The load-time rounding of weights equals `round` + clamp on every value that matters:
    /// every f32 between ±130 whose bits end in a sweep of patterns (all halves, their
    /// neighbours, the clamp edges), and specials.
    #[test]
    fn weight_levels_round_like_round() {
        let reference = |x: f32| x.round().clamp(-WEIGHT_LEVELS, WEIGHT_LEVELS) as i8;
        let mut checked = 0u64;
        let mut check = |x: f32| {
            assert_eq!(weight_level(x), reference(x), "{x:e} ({:#x})", x.to_bits());
            checked += 1;
        };
        for special in [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            8_388_608.5,
            1e30,
        ] {
            check(special);
        }
        // Every half-integer up to 130 and the 64 floats on each side of it.
        for h in 0..=260 {
            let x = h as f32 * 0.5;
            for sign in [1.0f32, -1.0] {
                let b = (sign * x).to_bits();
                for d in 0..64u32 {
                    check(f32::from_bits(b.wrapping_add(d)));
                    check(f32::from_bits(b.wrapping_sub(d)));
                }
            }
        }
        // A stride through every bit pattern of magnitudes below 130.
        let top = 130f32.to_bits();
        for b in (0..top).step_by(997) {
            check(f32::from_bits(b));
            check(-f32::from_bits(b));
        }
        assert!(checked > 2_000_000, "{checked}");
    }

    /// The guard that turns a backend breaking exactness (a fused or reduced-precision path
    /// returning a rounded sum) into an error instead of a different table.
    #[test]
    fn non_integer_or_oversized_sums_are_errors() {
        assert_eq!(exact_integer(-16_777_215.0).unwrap(), -16_777_215);
        assert!(exact_integer(0.5).is_err());
        assert!(exact_integer(16_777_216.0).is_err());
        assert!(exact_integer(f32::NAN).is_err());
        assert!(exact_integer(f32::INFINITY).is_err());
        assert!(exact_integer(-4_194_303.5).is_err());
        assert!(exact_integer(1e-40).is_err());
        assert_eq!(exact_integer(-0.0).unwrap(), 0);
        assert_eq!(exact_integer(16_777_215.0).unwrap(), 16_777_215);
    }

    /// The dot kernel (few rows) and sgemm (many rows) agree bit for bit on integer data at
    /// the 2^24 bound.
    #[test]
    fn host_kernels_agree_at_the_bound() {
        let (k, n) = (1024, 5);
        let w8: Vec<i8> = (0..k * n)
            .map(|i| if i % 3 == 0 { -127 } else { 127 })
            .collect();
        let w = HostPiece {
            k,
            f32: w8.iter().map(|&v| f32::from(v)).collect(),
            i8: w8,
        };
        let row: Vec<f32> = (0..k)
            .map(|i| if i % 3 == 0 { -128.0 } else { 128.0 })
            .collect();
        let few = host_gemm(&row, 1, k, &w, n);
        let many_in: Vec<f32> = row.iter().copied().cycle().take(k * DOT_ROWS).collect();
        let many = host_gemm(&many_in, DOT_ROWS, k, &w, n);
        assert_eq!(&many[..n], &few[..]);
        assert_eq!(few[0], (k * 128 * 127) as f32);
        assert!(few.iter().all(|v| exact_integer(*v).is_ok()));
    }
}
