//! Integer primitives of the exact recipe: dyadic rows, rounding shifts, quantization, limbs.
//!
//! Every value on the exact path is an integer mantissa times a power of two. These helpers
//! are the only places where precision is dropped, and each drops it the same way on every
//! machine: round half up (`floor(v / 2^s + 1/2)`), which is what an arithmetic shift of
//! `v + 2^(s-1)` computes for negative and positive values alike.

/// `floor(v / 2^s + 1/2)` for `s ≥ 0`; `v · 2^-s` (exact) for `s < 0`.
pub fn round_shift(v: i128, s: i32) -> i128 {
    match s {
        0 => v,
        s if s > 0 => {
            if s >= 127 {
                // |v| < 2^127 ≤ 2^(s-1)·2: rounds to 0 (or stays 0).
                0
            } else {
                (v + (1i128 << (s - 1))) >> s
            }
        }
        s => v << (-s).min(126),
    }
}

/// `floor(a / b + 1/2)` for `b > 0`.
pub fn div_round(a: i128, b: i128) -> i128 {
    debug_assert!(b > 0);
    (2 * a + b).div_euclid(2 * b)
}

/// Integer square root: the largest `r` with `r² ≤ n`.
pub fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton from an over-estimate converges monotonically down to floor(sqrt(n)).
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Quantizes a row `v · 2^exp` to integers in `[-levels, levels]` times `2^exp'`, with the
/// smallest non-negative right shift that makes the row's largest value fit.
///
/// The shift depends on this row alone, so batching never changes a row's quantization.
pub fn quantize_row(v: &[i128], exp: i32, levels: i64, out: &mut Vec<i32>) -> i32 {
    let max = v.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
    let levels128 = i128::from(levels);
    let mut s = 0i32;
    // Lower bound from the bit lengths, then step until the rounded maximum fits.
    let bits = 128 - max.leading_zeros() as i32;
    let level_bits = 64 - levels.leading_zeros() as i32;
    if bits > level_bits {
        s = bits - level_bits - 1;
    }
    while round_shift(max as i128, s) > levels128 {
        s += 1;
    }
    out.clear();
    out.extend(
        v.iter()
            .map(|&x| round_shift(x, s).clamp(-levels128, levels128) as i32),
    );
    exp + s
}

/// Largest magnitude of a signed limb: limbs lie in `[-LIMB_MAX, LIMB_MAX]`.
pub const LIMB_MAX: i32 = 128;

/// Splits `x` (|x| ≤ 2^(8·n) / 2 - 1) into `n` base-256 digits in `[-128, 128]`, least
/// significant first: `x = Σ limb[i] · 256^i`. A limb is exact in f32 and in the 11
/// significant bits of TF32, so a GPU GEMM over limbs stays an integer GEMM.
pub fn limbs<const N: usize>(mut x: i64) -> [i32; N] {
    let mut out = [0i32; N];
    for (i, l) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *l = x as i32;
        } else {
            let lo = (x + 128).rem_euclid(256) - 128;
            *l = lo as i32;
            x = (x - lo) / 256;
        }
    }
    out
}

/// `x · 2^e` as a dyadic pair, from an `f32` (exact: every finite `f32` is one).
pub fn dyadic_f32(x: f32) -> (i64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (0, 0);
    }
    let bits = x.to_bits();
    let sign = if bits >> 31 == 1 { -1 } else { 1 };
    let exp = ((bits >> 23) & 0xff) as i32;
    let frac = i64::from(bits & 0x7f_ffff);
    let (m, e) = if exp == 0 {
        (frac, -149)
    } else {
        (frac | 0x80_0000, exp - 150)
    };
    (sign * m, e)
}

/// Integer mantissas `M_i` and one exponent `E` with `M_i · 2^E` equal to each value: exactly
/// for values within `2^spread_bits` of the largest, rounded (half up) for smaller ones, so
/// mantissas stay below `2^(24 + spread_bits)`.
pub fn dyadic_common(values: &[f32], spread_bits: i32) -> (Vec<i64>, i32) {
    let dy: Vec<(i64, i32)> = values.iter().map(|&v| dyadic_f32(v)).collect();
    let top = dy
        .iter()
        .filter(|d| d.0 != 0)
        .map(|d| d.1)
        .max()
        .unwrap_or(0);
    let exp = top - spread_bits;
    let mantissas = dy
        .iter()
        .map(|&(m, e)| round_shift(i128::from(m), exp - e) as i64)
        .collect();
    (mantissas, exp)
}

/// `round(x · 2^frac)` for an `f64` computed deterministically (an IEEE multiply by a power
/// of two is exact; `round` is correctly rounded).
pub fn fixed_f64(x: f64, frac: i32) -> i64 {
    (x * f64::powi(2.0, frac)).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_shift_rounds_half_up() {
        assert_eq!(round_shift(5, 1), 3); // 2.5 -> 3
        assert_eq!(round_shift(-5, 1), -2); // -2.5 -> -2
        assert_eq!(round_shift(-6, 1), -3);
        assert_eq!(round_shift(7, 2), 2); // 1.75 -> 2
        assert_eq!(round_shift(3, -2), 12);
        assert_eq!(round_shift(i128::MAX, 200), 0);
    }

    #[test]
    fn quantize_row_fits_levels_with_minimal_shift() {
        let mut out = Vec::new();
        let e = quantize_row(&[65534, -3, 0], 4, 32767, &mut out);
        assert_eq!((e, out.as_slice()), (5, &[32767, -1, 0][..]));
        // 65535 / 2 rounds up past the levels, so it needs one more shift.
        let e = quantize_row(&[65535], 0, 32767, &mut out);
        assert_eq!((e, out.as_slice()), (2, &[16384][..]));
        let e = quantize_row(&[100, -7], -3, 32767, &mut out);
        assert_eq!((e, out.as_slice()), (-3, &[100, -7][..]));
        let e = quantize_row(&[], 0, 127, &mut out);
        assert_eq!((e, out.len()), (0, 0));
    }

    #[test]
    fn common_dyadics_are_exact_within_the_spread() {
        let (m, e) = dyadic_common(&[1.5, -0.25, 3.0e-3, 0.0], 24);
        for (v, x) in [1.5f64, -0.25, 3.0e-3f32 as f64, 0.0].iter().zip(&m) {
            assert_eq!(*x as f64 * 2f64.powi(e), *v);
        }
        // A value far below the spread rounds; mantissas stay below 2^48.
        let (m, _) = dyadic_common(&[1.0, 1e-30], 24);
        assert!(m[0] < 1 << 48 && m[1] == 0);
    }

    #[test]
    fn dyadic_f32_is_exact() {
        for x in [1.0f32, -0.1, 3.5e-41, 1e30, f32::MIN_POSITIVE] {
            let (m, e) = dyadic_f32(x);
            assert_eq!(m as f64 * 2f64.powi(e), x as f64, "{x}");
        }
    }

    proptest! {
        #[test]
        fn limbs_recompose(x in -32767i64..=32767) {
            let l = limbs::<2>(x);
            prop_assert_eq!(i64::from(l[0]) + 256 * i64::from(l[1]), x);
            prop_assert!(l.iter().all(|v| v.abs() <= LIMB_MAX));
        }

        #[test]
        fn three_limbs_recompose(x in -(1i64 << 23) + 1..(1i64 << 23)) {
            let l = limbs::<3>(x);
            let back = i64::from(l[0]) + 256 * i64::from(l[1]) + 65536 * i64::from(l[2]);
            prop_assert_eq!(back, x);
            prop_assert!(l.iter().all(|v| v.abs() <= LIMB_MAX));
        }

        #[test]
        fn isqrt_is_floor_sqrt(n in any::<u64>()) {
            let r = isqrt(u128::from(n));
            prop_assert!(r * r <= u128::from(n) && (r + 1) * (r + 1) > u128::from(n));
        }

        #[test]
        fn quantize_row_error_is_half_a_step(
            v in proptest::collection::vec(-(1i128 << 60)..(1i128 << 60), 1..40),
            levels in prop_oneof![Just(127i64), Just(2047), Just(32767)],
        ) {
            let mut out = Vec::new();
            let e = quantize_row(&v, 0, levels, &mut out);
            prop_assert!(e >= 0);
            for (&x, &q) in v.iter().zip(&out) {
                prop_assert!(i64::from(q).abs() <= levels);
                let err = (x - (i128::from(q) << e)).abs();
                prop_assert!(err <= (1i128 << e) / 2 + 1, "x {} q {} e {}", x, q, e);
            }
        }

        #[test]
        fn div_round_matches_float(a in -1i128 << 50..1i128 << 50, b in 1i128..1 << 20) {
            let want = (a as f64 / b as f64 + 0.5).floor() as i128;
            prop_assert!((div_round(a, b) - want).abs() <= 1);
            prop_assert!((2 * a - 2 * b * div_round(a, b)).abs() <= b);
        }
    }
}
