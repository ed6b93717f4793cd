//! Low-precision payloads: what an FL client may send instead of a dense `f32` update.
//!
//! The reduction is the client's choice and is lossy; everything after it is lossless. A
//! payload is an ordinary [`Gradient`] whose tensors say what they are by a reserved name
//! suffix, so it goes through every codec and the container unchanged, and [`densify`] turns it
//! back into dense `f32` tensors (an exact function of the payload: every receiver computes the
//! same update). Per `f32` tensor `n` (other dtypes pass through as they are):
//!
//! - `q8` / `q4` ([`PayloadSpec::Quantized`]): `n` becomes `I8` values in `[-q, q]` (`q` = 127
//!   or 7, one value per byte: packing nibbles would hide the symbols from the models) and
//!   `n::scale` holds `F32` scales, one per tensor or one per output channel (first dimension).
//!   A value is `q · scale`. Rounding to nearest, or stochastic (unbiased, seeded) as in QSGD.
//! - `top-k` ([`PayloadSpec::TopK`]): the `k = ceil(density · len)` largest magnitudes, as
//!   `n::gap` (`U32`: first flat index, then differences of ascending indices; small numbers,
//!   which the byte-plane models like) and `n::value` (`F32`, exact), and `n::shape` (`U64`).
//!
//! ```
//! use lmgc_core::payload::{PayloadSpec, reduce, densify};
//! use lmgc_core::{Gradient, Tensor};
//! let g = Gradient::new(vec![Tensor::from_f32("w", &[0.5, -0.25, 0.0, 1.0])])?;
//! let q8: PayloadSpec = "q8".parse()?;
//! let payload = reduce(&g, &q8)?;
//! assert_eq!(payload.get("w").unwrap().data(), &[64u8, 224, 0, 127]);   // i8: 64, -32, 0, 127
//! let back = densify(&payload, u64::MAX)?;
//! let step = 1.0f32 / 127.0;
//! assert_eq!(back.get("w").unwrap().to_f32().unwrap(), vec![64.0 * step, -32.0 * step, 0.0, 127.0 * step]);
//! # Ok::<(), lmgc_core::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{DType, Error, Gradient, Result, Tensor};

/// Suffix of a quantized tensor's scales.
pub const SCALE: &str = "::scale";
/// Suffix of a top-k tensor's index gaps.
pub const GAP: &str = "::gap";
/// Suffix of a top-k tensor's kept values.
pub const VALUE: &str = "::value";
/// Suffix of a top-k tensor's shape.
pub const SHAPE: &str = "::shape";

/// How a quantized tensor is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Granularity {
    /// One scale for the tensor.
    Tensor,
    /// One scale per slice of the first dimension (output channel), for tensors of rank ≥ 2.
    Channel,
}

/// How a value is rounded to its quantization level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rounding {
    /// To the nearest level (ties away from zero): error at most half a step, biased.
    Nearest,
    /// Up with probability equal to the fractional part: unbiased (QSGD), seeded so that a
    /// client can reproduce its payload.
    Stochastic {
        /// Seed of the rounding noise.
        seed: u64,
    },
}

/// The kinds of payload an aggregator's policy names (the bits and rounding of a quantized
/// payload are the client's business: they change nothing for the receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadClass {
    /// Dense `f32` tensors.
    Dense,
    /// `I8` values with `f32` scales.
    Quantized,
    /// Top-k index gaps and values.
    Sparse,
}

impl PayloadClass {
    /// Every class.
    pub const ALL: [PayloadClass; 3] = [
        PayloadClass::Dense,
        PayloadClass::Quantized,
        PayloadClass::Sparse,
    ];
}

impl fmt::Display for PayloadClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadClass::Dense => "dense",
            PayloadClass::Quantized => "quantized",
            PayloadClass::Sparse => "sparse",
        })
    }
}

/// The class of a received payload, from its tensors' names: quantized if any tensor has
/// scales, sparse if any has index gaps, dense otherwise; both at once is an error.
pub fn class_of(payload: &Gradient) -> Result<PayloadClass> {
    let has = |suffix: &str| payload.tensors().iter().any(|t| t.name().ends_with(suffix));
    match (has(SCALE), has(GAP)) {
        (false, false) => Ok(PayloadClass::Dense),
        (true, false) => Ok(PayloadClass::Quantized),
        (false, true) => Ok(PayloadClass::Sparse),
        (true, true) => Err(Error::InvalidArgument {
            what: "payload",
            reason: "it mixes quantized and sparse tensors".into(),
        }),
    }
}

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum PayloadSpec {
    /// The `f32` update as it is.
    Dense,
    /// Uniform symmetric quantization.
    Quantized {
        /// 8 or 4.
        bits: u8,
        /// Per tensor or per channel.
        granularity: Granularity,
        /// Nearest or stochastic.
        rounding: Rounding,
    },
    /// Top-k sparsification by magnitude.
    TopK {
        /// Fraction of each tensor's values kept, in (0, 1].
        density: f32,
    },
}

impl PayloadSpec {
    /// Largest quantization level for `bits` (127 for 8, 7 for 4).
    fn levels(bits: u8) -> i32 {
        (1 << (bits - 1)) - 1
    }

    /// The class a receiver sees.
    pub fn class(&self) -> PayloadClass {
        match self {
            PayloadSpec::Dense => PayloadClass::Dense,
            PayloadSpec::Quantized { .. } => PayloadClass::Quantized,
            PayloadSpec::TopK { .. } => PayloadClass::Sparse,
        }
    }

    /// Whether the spec asks for stochastic rounding.
    pub fn is_stochastic(&self) -> bool {
        matches!(
            self,
            PayloadSpec::Quantized {
                rounding: Rounding::Stochastic { .. },
                ..
            }
        )
    }

    /// The same spec with stochastic rounding seeded by `seed` (quantized specs only).
    pub fn with_stochastic_rounding(self, seed: u64) -> Self {
        match self {
            PayloadSpec::Quantized {
                bits, granularity, ..
            } => PayloadSpec::Quantized {
                bits,
                granularity,
                rounding: Rounding::Stochastic { seed },
            },
            other => other,
        }
    }
}

impl fmt::Display for PayloadSpec {
    /// `dense`, `q8`, `q4-channel`, `q8-stochastic`, `top1%` (the [`FromStr`] syntax; a
    /// stochastic seed is not part of the name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadSpec::Dense => f.write_str("dense"),
            PayloadSpec::Quantized {
                bits,
                granularity,
                rounding,
            } => {
                write!(f, "q{bits}")?;
                if *granularity == Granularity::Channel {
                    f.write_str("-channel")?;
                }
                if matches!(rounding, Rounding::Stochastic { .. }) {
                    f.write_str("-stochastic")?;
                }
                Ok(())
            }
            PayloadSpec::TopK { density } => write!(f, "top{}%", density * 100.0),
        }
    }
}

impl FromStr for PayloadSpec {
    type Err = Error;
    /// `dense`; `q8` or `q4`, optionally `-channel` and/or `-stochastic` (seed 0); `topP%` with
    /// `0 < P <= 100` (e.g. `top1%`, `top0.5%`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument {
            what: "payload",
            reason: format!(
                "{s:?}; use dense, q8 or q4 (optionally -channel, -stochastic), or topP% with 0 < P <= 100"
            ),
        };
        if s == "dense" {
            return Ok(PayloadSpec::Dense);
        }
        if let Some(p) = s.strip_prefix("top").and_then(|p| p.strip_suffix('%')) {
            let p: f32 = p.parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(PayloadSpec::TopK { density: p / 100.0 });
        }
        let mut parts = s.split('-');
        let bits = match parts.next() {
            Some("q8") => 8,
            Some("q4") => 4,
            _ => return Err(bad()),
        };
        let (mut granularity, mut rounding) = (Granularity::Tensor, Rounding::Nearest);
        for p in parts {
            match p {
                "channel" if granularity == Granularity::Tensor => {
                    granularity = Granularity::Channel
                }
                "stochastic" if rounding == Rounding::Nearest => {
                    rounding = Rounding::Stochastic { seed: 0 }
                }
                _ => return Err(bad()),
            }
        }
        Ok(PayloadSpec::Quantized {
            bits,
            granularity,
            rounding,
        })
    }
}

/// SplitMix64: the stochastic rounding's noise, the same on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn reserved(name: &str) -> bool {
    [SCALE, GAP, VALUE, SHAPE].iter().any(|s| name.ends_with(s))
}

/// Reduces every `f32` tensor of `g` to the payload `spec` describes.
///
/// Errors: a non-finite value (no scale or ranking exists), or a tensor name that ends in a
/// reserved suffix (`::scale`, `::gap`, `::value`, `::shape`).
pub fn reduce(g: &Gradient, spec: &PayloadSpec) -> Result<Gradient> {
    if let PayloadSpec::Dense = spec {
        return Ok(g.clone());
    }
    let mut out = Vec::with_capacity(g.tensors().len() * 2);
    for (i, t) in g.tensors().iter().enumerate() {
        if reserved(t.name()) {
            return Err(Error::InvalidArgument {
                what: "tensor name",
                reason: format!(
                    "{:?} ends in a suffix that payloads reserve; rename it",
                    t.name()
                ),
            });
        }
        let Some(x) = t.to_f32().filter(|_| t.dtype() == DType::F32) else {
            out.push(t.clone());
            continue;
        };
        if let Some(j) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument {
                what: "update",
                reason: format!(
                    "{}[{j}] is {}: a low-precision payload needs finite values",
                    t.name(),
                    x[j]
                ),
            });
        }
        match *spec {
            PayloadSpec::Dense => unreachable!("returned above"),
            PayloadSpec::Quantized {
                bits,
                granularity,
                rounding,
            } => {
                let (q, scales) = quantize(&x, t.shape(), bits, granularity, rounding, i as u64);
                out.push(Tensor::new(
                    t.name(),
                    DType::I8,
                    t.shape().to_vec(),
                    q.iter().map(|&v| v as u8).collect(),
                )?);
                out.push(Tensor::from_f32(format!("{}{SCALE}", t.name()), &scales));
            }
            PayloadSpec::TopK { density } => {
                if x.len() as u64 > u64::from(u32::MAX) {
                    return Err(Error::InvalidArgument {
                        what: "update",
                        reason: format!(
                            "{} has {} values; top-k indices are 32-bit",
                            t.name(),
                            x.len()
                        ),
                    });
                }
                let kept = top_k(&x, density);
                let mut gaps = Vec::with_capacity(kept.len());
                let mut prev = 0u32;
                for (j, &idx) in kept.iter().enumerate() {
                    gaps.push(if j == 0 { idx } else { idx - prev });
                    prev = idx;
                }
                let values: Vec<f32> = kept.iter().map(|&k| x[k as usize]).collect();
                out.push(Tensor::new(
                    format!("{}{GAP}", t.name()),
                    DType::U32,
                    vec![gaps.len() as u64],
                    gaps.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )?);
                out.push(Tensor::from_f32(format!("{}{VALUE}", t.name()), &values));
                out.push(Tensor::new(
                    format!("{}{SHAPE}", t.name()),
                    DType::U64,
                    vec![t.shape().len() as u64],
                    t.shape().iter().flat_map(|v| v.to_le_bytes()).collect(),
                )?);
            }
        }
    }
    Gradient::new(out)
}

fn quantize(
    x: &[f32],
    shape: &[u64],
    bits: u8,
    granularity: Granularity,
    rounding: Rounding,
    tensor: u64,
) -> (Vec<i8>, Vec<f32>) {
    let levels = PayloadSpec::levels(bits);
    let groups = match granularity {
        Granularity::Channel if shape.len() >= 2 && shape[0] > 0 => shape[0] as usize,
        _ => 1,
    };
    let per = x.len().div_ceil(groups.max(1)).max(1);
    let mut rng = match rounding {
        Rounding::Stochastic { seed } => {
            Some(SplitMix(seed ^ tensor.wrapping_mul(0xa076_1d64_78bd_642f)))
        }
        Rounding::Nearest => None,
    };
    let mut q = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(groups);
    for chunk in x.chunks(per) {
        let max = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / levels as f32;
        scales.push(scale);
        for &v in chunk {
            let level = if scale == 0.0 {
                0.0
            } else {
                let r = f64::from(v) / f64::from(scale);
                match rng.as_mut() {
                    Some(rng) => (r + rng.next_unit()).floor(),
                    None => r.round(),
                }
            };
            q.push(level.clamp(-f64::from(levels), f64::from(levels)) as i8);
        }
    }
    // An empty tensor still gets its one scale, so densify finds one.
    if scales.is_empty() {
        scales.push(0.0);
    }
    (q, scales)
}

/// Flat indices of the `ceil(density · len)` largest magnitudes, ascending (ties: lower index).
fn top_k(x: &[f32], density: f32) -> Vec<u32> {
    let k = ((f64::from(density) * x.len() as f64).ceil() as usize).min(x.len());
    let mut idx: Vec<u32> = (0..x.len() as u32).collect();
    let key = |&i: &u32| (std::cmp::Reverse(x[i as usize].abs().to_bits()), i);
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by_key(k - 1, key);
    }
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// Error feedback (EF-SGD): reduces `update + residual` and returns the payload with the new
/// residual, what the payload left out, to be added to the next round's update. Without it,
/// top-k and coarse quantization drop the same small coordinates round after round.
///
/// `residual` must have `update`'s `f32` tensors (names and shapes), as the previous call
/// returned it.
pub fn reduce_with_feedback(
    update: &Gradient,
    residual: Option<&Gradient>,
    spec: &PayloadSpec,
) -> Result<(Gradient, Gradient)> {
    let corrected = match residual {
        None => update.clone(),
        Some(r) => combine(update, r, |u, r| u + r)?,
    };
    let payload = reduce(&corrected, spec)?;
    let sent = densify(&payload, u64::MAX)?;
    let left = combine(&corrected, &sent, |c, s| c - s)?;
    Ok((payload, left))
}

/// `f(a, b)` over the `f32` tensors of `a` (others pass through); `b` must match them.
fn combine(a: &Gradient, b: &Gradient, f: impl Fn(f32, f32) -> f32) -> Result<Gradient> {
    let tensors = a
        .tensors()
        .iter()
        .map(|t| {
            let Some(x) = t.to_f32().filter(|_| t.dtype() == DType::F32) else {
                return Ok(t.clone());
            };
            let y = b
                .get(t.name())
                .filter(|o| o.dtype() == DType::F32 && o.shape() == t.shape())
                .and_then(Tensor::to_f32)
                .ok_or_else(|| Error::InvalidArgument {
                    what: "residual",
                    reason: format!("no f32 tensor {:?} of shape {:?}", t.name(), t.shape()),
                })?;
            let data = x
                .iter()
                .zip(&y)
                .flat_map(|(&x, &y)| f(x, y).to_le_bytes())
                .collect();
            Tensor::new(t.name(), DType::F32, t.shape().to_vec(), data)
        })
        .collect::<Result<Vec<_>>>()?;
    Gradient::new(tensors)
}

/// Turns a payload back into dense `f32` tensors (other tensors pass through), refusing to
/// produce more than `max_bytes` of tensor data: a top-k payload's shape is a claim of the
/// sender, and a few bytes of it must not make the receiver allocate gigabytes (an aggregator
/// passes the size of its model).
///
/// Errors: a payload whose parts disagree (a scale count that fits no granularity, gaps that
/// run past the shape, a missing part) or that densifies past `max_bytes`.
pub fn densify(payload: &Gradient, max_bytes: u64) -> Result<Gradient> {
    let bad = |reason: String| Error::InvalidArgument {
        what: "payload",
        reason,
    };
    let mut out = Vec::with_capacity(payload.tensors().len());
    let mut used = 0u64;
    let mut spend = |bytes: u64| {
        used = used.saturating_add(bytes);
        if used > max_bytes {
            return Err(Error::LimitExceeded {
                what: "dense update bytes",
                value: used,
                limit: max_bytes,
            });
        }
        Ok(())
    };
    for t in payload.tensors() {
        let name = t.name();
        if name.ends_with(SCALE) || name.ends_with(VALUE) || name.ends_with(SHAPE) {
            continue;
        }
        if let Some(base) = name.strip_suffix(GAP) {
            let part = |suffix: &str, dtype: DType| {
                payload
                    .get(&format!("{base}{suffix}"))
                    .filter(|p| p.dtype() == dtype)
                    .ok_or_else(|| {
                        bad(format!(
                            "{base}: top-k payload without {dtype} {base}{suffix}"
                        ))
                    })
            };
            let values = part(VALUE, DType::F32)?.to_f32().unwrap_or_default();
            let shape_t = part(SHAPE, DType::U64)?;
            let shape: Vec<u64> = shape_t
                .data()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            let len = shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= u64::from(u32::MAX) + 1)
                .ok_or_else(|| bad(format!("{base}: shape {shape:?} too large for u32 indices")))?;
            let gaps: Vec<u32> = t
                .data()
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            if gaps.len() != values.len() || t.dtype() != DType::U32 {
                return Err(bad(format!(
                    "{base}: {} gaps for {} values",
                    gaps.len(),
                    values.len()
                )));
            }
            spend(len.saturating_mul(4))?;
            let mut dense = vec![0f32; len as usize];
            let mut at: Option<u64> = None;
            for (g, v) in gaps.iter().zip(&values) {
                let i = match at {
                    None => u64::from(*g),
                    Some(_) if *g == 0 => {
                        return Err(bad(format!("{base}: repeated index")));
                    }
                    Some(p) => p + u64::from(*g),
                };
                let slot = dense
                    .get_mut(i as usize)
                    .ok_or_else(|| bad(format!("{base}: index {i} outside shape {shape:?}")))?;
                *slot = *v;
                at = Some(i);
            }
            out.push(Tensor::new(
                base,
                DType::F32,
                shape,
                dense.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )?);
            continue;
        }
        let scales = payload.get(&format!("{name}{SCALE}"));
        match scales {
            Some(s) if t.dtype() == DType::I8 && s.dtype() == DType::F32 => {
                let scales = s.to_f32().unwrap_or_default();
                let n = t.data().len();
                let groups = scales.len();
                let per = n.div_ceil(groups.max(1)).max(1);
                if groups == 0 || n.div_ceil(per).max(1) != groups {
                    return Err(bad(format!(
                        "{name}: {groups} scales for {n} values fit no granularity"
                    )));
                }
                spend(n as u64 * 4)?;
                let values: Vec<u8> = t
                    .data()
                    .iter()
                    .enumerate()
                    .flat_map(|(j, &q)| (f32::from(q as i8) * scales[j / per]).to_le_bytes())
                    .collect();
                out.push(Tensor::new(name, DType::F32, t.shape().to_vec(), values)?);
            }
            Some(_) => {
                return Err(bad(format!(
                    "{name}: quantized values must be i8 with f32 scales"
                )));
            }
            None => {
                spend(t.data().len() as u64)?;
                out.push(t.clone());
            }
        }
    }
    Gradient::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grad(values: &[f32], shape: Vec<u64>) -> Gradient {
        Gradient::new(vec![
            Tensor::new(
                "w",
                DType::F32,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
            .unwrap(),
            Tensor::new("steps", DType::I64, vec![1], 7i64.to_le_bytes().to_vec()).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn names_parse_and_print() {
        for s in [
            "dense",
            "q8",
            "q4",
            "q8-channel",
            "q4-stochastic",
            "q8-channel-stochastic",
            "top1%",
            "top0.5%",
            "top100%",
        ] {
            let p: PayloadSpec = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for s in [
            "q16",
            "q8-channel-channel",
            "top0%",
            "top101%",
            "top%",
            "topx%",
            "q8-",
            "",
        ] {
            assert!(s.parse::<PayloadSpec>().is_err(), "{s}");
        }
    }

    #[test]
    fn per_channel_scales_follow_the_first_dimension() {
        let g = grad(&[1.5, 2.0, -4.0, 0.5, 0.0, 0.0], vec![3, 2]);
        let spec: PayloadSpec = "q4-channel".parse().unwrap();
        let p = reduce(&g, &spec).unwrap();
        assert_eq!(
            p.get("w::scale").unwrap().to_f32().unwrap(),
            vec![2.0 / 7.0, 4.0 / 7.0, 0.0]
        );
        assert_eq!(p.get("w").unwrap().data(), &[5u8, 7, 249, 1, 0, 0]);
        assert_eq!(p.get("steps").unwrap(), g.get("steps").unwrap());
        let d = densify(&p, u64::MAX).unwrap();
        assert_eq!(d.tensors().len(), 2);
        assert_eq!(d.get("w").unwrap().shape(), &[3, 2]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let spec: PayloadSpec = "q8".parse().unwrap();
        assert!(reduce(&grad(&[1.0, f32::NAN], vec![2]), &spec).is_err());
        let clash = Gradient::new(vec![Tensor::from_f32("a::scale", &[1.0])]).unwrap();
        assert!(reduce(&clash, &spec).is_err());
        // Quantized values without scales of the right count.
        let p = Gradient::new(vec![
            Tensor::new("w", DType::I8, vec![4], vec![1, 2, 3, 4]).unwrap(),
            Tensor::from_f32("w::scale", &[1.0, 1.0, 1.0]),
        ])
        .unwrap();
        assert!(densify(&p, u64::MAX).is_err());
        // Top-k parts that disagree or point outside the shape.
        let topk = |gaps: &[u32], values: &[f32], shape: &[u64]| {
            Gradient::new(vec![
                Tensor::new(
                    "w::gap",
                    DType::U32,
                    vec![gaps.len() as u64],
                    gaps.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
                .unwrap(),
                Tensor::from_f32("w::value", values),
                Tensor::new(
                    "w::shape",
                    DType::U64,
                    vec![shape.len() as u64],
                    shape.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
                .unwrap(),
            ])
            .unwrap()
        };
        let limit = 1 << 20;
        assert!(densify(&topk(&[1, 2], &[1.0, 2.0], &[4]), limit).is_ok());
        assert!(densify(&topk(&[1, 3], &[1.0, 2.0], &[4]), limit).is_err());
        assert!(densify(&topk(&[1, 0], &[1.0, 2.0], &[4]), limit).is_err());
        assert!(densify(&topk(&[1], &[1.0, 2.0], &[4]), limit).is_err());
        assert!(densify(&topk(&[1], &[1.0], &[u64::MAX, 2]), limit).is_err());
        // A shape is a claim: it must not make the receiver allocate past its limit.
        assert!(matches!(
            densify(&topk(&[1], &[1.0], &[1 << 30]), limit),
            Err(Error::LimitExceeded { .. })
        ));
        assert!(densify(&topk(&[1], &[1.0], &[4]), 15).is_err());
    }

    #[test]
    fn classes_are_told_apart() {
        let g = grad(&[1.0, -2.0, 0.5, 0.0], vec![4]);
        for (name, class) in [
            ("dense", PayloadClass::Dense),
            ("q4", PayloadClass::Quantized),
            ("top50%", PayloadClass::Sparse),
        ] {
            let spec: PayloadSpec = name.parse().unwrap();
            assert_eq!(spec.class(), class);
            assert_eq!(class_of(&reduce(&g, &spec).unwrap()).unwrap(), class);
        }
        let mixed = Gradient::new(vec![
            Tensor::from_f32("a::scale", &[1.0]),
            Tensor::from_f32("b::gap", &[1.0]),
        ])
        .unwrap();
        assert!(class_of(&mixed).is_err());
    }

    /// With error feedback, what was sent over the rounds plus the last residual is what the
    /// client meant to send: nothing is lost, only delayed.
    #[test]
    fn error_feedback_loses_nothing() {
        let spec: PayloadSpec = "top10%".parse().unwrap();
        let rounds: Vec<Gradient> = (0..5)
            .map(|r| {
                let v: Vec<f32> = (0..200)
                    .map(|i| (((i * 37 + r * 11) % 101) as f32 - 50.0) / 64.0)
                    .collect();
                grad(&v, vec![200])
            })
            .collect();
        let mut residual: Option<Gradient> = None;
        let mut sent = vec![0f64; 200];
        let mut meant = vec![0f64; 200];
        for u in &rounds {
            let (payload, left) = reduce_with_feedback(u, residual.as_ref(), &spec).unwrap();
            let d = densify(&payload, u64::MAX)
                .unwrap()
                .get("w")
                .unwrap()
                .to_f32()
                .unwrap();
            for (i, x) in u.get("w").unwrap().to_f32().unwrap().iter().enumerate() {
                meant[i] += f64::from(*x);
                sent[i] += f64::from(d[i]);
            }
            residual = Some(left);
        }
        let last = residual.unwrap().get("w").unwrap().to_f32().unwrap();
        for i in 0..200 {
            assert!(
                (sent[i] + f64::from(last[i]) - meant[i]).abs() < 1e-4,
                "{i}"
            );
        }
        // A residual of another shape is refused.
        assert!(reduce_with_feedback(&grad(&[1.0], vec![1]), Some(&rounds[0]), &spec).is_err());
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_seeded() {
        let x = vec![0.3f32; 20_000];
        let mut with_one = x.clone();
        with_one.push(1.0);
        let g = grad(&with_one, vec![with_one.len() as u64]);
        let spec = "q4"
            .parse::<PayloadSpec>()
            .unwrap()
            .with_stochastic_rounding(9);
        let d = densify(&reduce(&g, &spec).unwrap(), u64::MAX).unwrap();
        let v = d.get("w").unwrap().to_f32().unwrap();
        let mean = v[..20_000].iter().map(|&v| f64::from(v)).sum::<f64>() / 20_000.0;
        assert!((mean - 0.3).abs() < 0.005, "{mean}");
        assert_eq!(
            reduce(&g, &spec).unwrap().get("w"),
            reduce(&g, &spec).unwrap().get("w")
        );
        let other = "q4"
            .parse::<PayloadSpec>()
            .unwrap()
            .with_stochastic_rounding(10);
        assert_ne!(
            reduce(&g, &spec).unwrap().get("w"),
            reduce(&g, &other).unwrap().get("w")
        );
    }

    proptest! {
        #[test]
        fn quantization_error_is_bounded(
            values in prop::collection::vec(-1e3f32..1e3, 0..300),
            bits in prop::sample::select(vec![4u8, 8]),
            channel in any::<bool>(),
            stochastic in any::<bool>(),
        ) {
            let rows = if values.len() >= 3 && values.len() % 3 == 0 { 3 } else { 1 };
            let shape = if rows == 3 { vec![3, values.len() as u64 / 3] } else { vec![values.len() as u64] };
            let g = grad(&values, shape);
            let mut spec: PayloadSpec = format!("q{bits}{}", if channel { "-channel" } else { "" }).parse().unwrap();
            if stochastic { spec = spec.with_stochastic_rounding(1); }
            let p = reduce(&g, &spec).unwrap();
            let d = densify(&p, u64::MAX).unwrap();
            let back = d.get("w").unwrap().to_f32().unwrap();
            let scales = p.get("w::scale").unwrap().to_f32().unwrap();
            let per = values.len().div_ceil(scales.len()).max(1);
            for (j, (a, b)) in values.iter().zip(&back).enumerate() {
                let step = scales[j / per];
                let bound = if stochastic { step * 1.0001 } else { step * 0.5001 };
                prop_assert!((a - b).abs() <= bound + 1e-30, "{a} {b} step {step}");
            }
        }

        #[test]
        fn top_k_keeps_the_largest_exactly(values in prop::collection::vec(-1e3f32..1e3, 1..300), pct in 1u32..=100) {
            let g = grad(&values, vec![values.len() as u64]);
            let spec: PayloadSpec = format!("top{pct}%").parse().unwrap();
            let d = densify(&reduce(&g, &spec).unwrap(), u64::MAX).unwrap();
            let back = d.get("w").unwrap().to_f32().unwrap();
            let k = (f64::from(pct as f32 / 100.0) * values.len() as f64).ceil() as usize;
            prop_assert_eq!(back.iter().filter(|v| **v != 0.0).count() <= k, true);
            let kept_min = values.iter().zip(&back).filter(|(_, b)| **b != 0.0).map(|(a, _)| a.abs()).fold(f32::INFINITY, f32::min);
            for (a, b) in values.iter().zip(&back) {
                prop_assert!(*b == 0.0 || a == b);
                if *b == 0.0 && *a != 0.0 { prop_assert!(a.abs() <= kept_min); }
            }
        }
    }
}
