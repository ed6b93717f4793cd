//! The lookup tables that replace transcendental functions on the exact path.
//!
//! Generated once from the pure-Rust `libm` (the same digits on every machine; no backend's
//! `exp`, `sin` or `cos` is ever called) and pinned by digest tests, so a libm change that moved
//! a single entry would fail the build's tests instead of silently changing every table.

use crate::exact::fixed::fixed_f64;

/// Fraction bits of every table entry: values are Q30.
pub const ONE_BITS: i32 = 30;
/// `2^(-k/1024)` resolution of [`Tables::exp2`]: scores are in 1/1024 of a bit.
pub const SCORE_FRAC_BITS: i32 = 10;
/// Fraction bits of a sigmoid table index (the grid step is 2^-10).
const SIGMOID_STEP_BITS: i32 = 10;
/// The sigmoid table covers `[-SIGMOID_RANGE, SIGMOID_RANGE]`; beyond it σ is 0 or 1 to
/// within 2^-46.
const SIGMOID_RANGE: i64 = 32;

/// Every table of one model shape.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `round(2^30 · 2^(-k/1024))` for `k` in `0..1024`.
    pub exp2: Vec<i64>,
    /// `round(2^30 · σ(i / 1024 - 32))` for `i` in `0..=65536`.
    pub sigmoid: Vec<i64>,
    /// `round(2^30 · cos(p · θ_i))`, `θ_i = base^(-2i/head_dim)`, row `p`, column `i`.
    pub cos: Vec<i32>,
    /// The same with `sin`.
    pub sin: Vec<i32>,
    /// Pairs per head (`head_dim / 2`).
    pub pairs: usize,
    /// Positions covered.
    pub positions: usize,
}

impl Tables {
    /// Builds the tables for heads of `head_dim` values, RoPE base `base`, and positions
    /// `0..positions`.
    pub fn new(head_dim: usize, base: f64, positions: usize) -> Self {
        let exp2 = (0..1 << SCORE_FRAC_BITS)
            .map(|k| {
                fixed_f64(
                    libm::exp2(-(k as f64) / f64::from(1 << SCORE_FRAC_BITS)),
                    ONE_BITS,
                )
            })
            .collect();
        let steps = SIGMOID_RANGE << SIGMOID_STEP_BITS;
        let sigmoid = (-steps..=steps)
            .map(|i| {
                let x = i as f64 / f64::from(1 << SIGMOID_STEP_BITS);
                fixed_f64(1.0 / (1.0 + libm::exp(-x)), ONE_BITS)
            })
            .collect();
        let pairs = head_dim / 2;
        let theta: Vec<f64> = (0..pairs)
            .map(|i| libm::pow(base, -2.0 * i as f64 / head_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(positions * pairs);
        let mut sin = Vec::with_capacity(positions * pairs);
        for p in 0..positions {
            for t in &theta {
                let a = p as f64 * t;
                cos.push(fixed_f64(libm::cos(a), ONE_BITS) as i32);
                sin.push(fixed_f64(libm::sin(a), ONE_BITS) as i32);
            }
        }
        Tables {
            exp2,
            sigmoid,
            cos,
            sin,
            pairs,
            positions,
        }
    }

    /// `2^(-d/1024)` in Q30 for a score difference `d ≥ 0` (in 1/1024 bit); 0 beyond 2^-40.
    #[inline(always)]
    pub fn exp2_neg(&self, d: i64) -> i64 {
        let whole = d >> SCORE_FRAC_BITS;
        if whole > 40 {
            0
        } else {
            self.exp2[(d & ((1 << SCORE_FRAC_BITS) - 1)) as usize] >> whole
        }
    }

    /// `σ(x)` in Q30 for `x` in Q16, linearly interpolated between grid points.
    pub fn sigmoid_q16(&self, x: i64) -> i64 {
        const SUB: i32 = 16 - SIGMOID_STEP_BITS;
        let limit = SIGMOID_RANGE << 16;
        if x <= -limit {
            return 0;
        }
        if x >= limit {
            return 1 << ONE_BITS;
        }
        let shifted = x + limit;
        let i = (shifted >> SUB) as usize;
        let frac = shifted & ((1 << SUB) - 1);
        let (a, b) = (self.sigmoid[i], self.sigmoid[i + 1]);
        a + (((b - a) * frac + (1 << (SUB - 1))) >> SUB)
    }

    /// Number of positions `rope` can rotate.
    pub fn max_positions(&self) -> usize {
        self.positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    fn digest(v: impl Iterator<Item = i64>) -> u64 {
        let bytes: Vec<u8> = v.flat_map(i64::to_le_bytes).collect();
        xxh3_64(&bytes)
    }

    /// Pins every table: a changed entry changes every frequency table the model makes, so it
    /// must change the recipe version too.
    #[test]
    fn tables_are_pinned() {
        let t = Tables::new(64, 100_000.0, 64);
        let got = [
            digest(t.exp2.iter().copied()),
            digest(t.sigmoid.iter().copied()),
            digest(t.cos.iter().map(|&v| i64::from(v))),
            digest(t.sin.iter().map(|&v| i64::from(v))),
        ];
        assert_eq!(got, PINNED, "{got:#x?}");
    }
    const PINNED: [u64; 4] = [
        0x4ad6_0d7f_5cb9_67bb,
        0xfc3c_cbbc_2368_89b5,
        0x7906_2536_77d6_d2a9,
        0xc6a8_11d4_4f06_64d4,
    ];

    #[test]
    fn tables_are_accurate() {
        let t = Tables::new(8, 10_000.0, 100);
        for d in [0i64, 1, 1023, 1024, 5000] {
            let want = 2f64.powf(-(d as f64) / 1024.0) * 2f64.powi(30);
            assert!((t.exp2_neg(d) as f64 - want).abs() <= 1.0, "{d}");
        }
        for x in [-40.0f64, -3.3, -0.001, 0.0, 0.5, 7.25, 40.0] {
            let q16 = (x * 65536.0).round() as i64;
            let want = 1.0 / (1.0 + (-(q16 as f64) / 65536.0).exp());
            let got = t.sigmoid_q16(q16) as f64 / 2f64.powi(30);
            assert!((got - want).abs() < 1e-6, "{x}: {got} vs {want}");
        }
        let (p, i) = (37usize, 1usize);
        let a = p as f64 * 10_000f64.powf(-2.0 * i as f64 / 8.0);
        assert!((f64::from(t.cos[p * t.pairs + i]) / 2f64.powi(30) - a.cos()).abs() < 1e-9);
        assert!((f64::from(t.sin[p * t.pairs + i]) / 2f64.powi(30) - a.sin()).abs() < 1e-9);
    }
}
