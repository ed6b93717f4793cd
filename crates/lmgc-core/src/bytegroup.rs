//! `bytegroup`: the fast classical codec, and the bar every LLM result is measured against.
//!
//! ZipNN-style byte grouping: each float's bits are rotated left by one so the sign bit sits
//! below the mantissa and the exponent fills the top byte (all of it for `f32`/`bf16`); then
//! the element is cut into byte planes, most significant first, and each plane is coded with
//! its own adaptive model through the range coder:
//! - plane 0 (exponent) in the context of the previous element's plane 0;
//! - plane 1 (top mantissa bits) in the context of the same element's plane 0;
//! - the lower planes (close to random in gradients) order-0.
//!
//! Large blocks are cut into chunks of [`CHUNK_BYTES`] coded independently (in parallel).

use rayon::prelude::*;

use crate::adaptive::AdaptiveModel;
use crate::coder::{Decoder, Encoder};
use crate::{DType, Result};

/// Bytes per independently coded chunk.
pub const CHUNK_BYTES: usize = 1 << 22;

/// Moves a float's sign bit from the top to the bottom of `bits` (width `w` bytes).
fn rotate_in(bits: u64, w: usize, float: bool) -> u64 {
    if !float {
        return bits;
    }
    let n = 8 * w as u32;
    let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    ((bits << 1) | (bits >> (n - 1))) & mask
}

fn rotate_out(bits: u64, w: usize, float: bool) -> u64 {
    if !float {
        return bits;
    }
    let n = 8 * w as u32;
    (bits >> 1) | ((bits & 1) << (n - 1))
}

/// The models of one chunk.
struct Models {
    /// Plane 0 by previous plane-0 byte, plane 1 by this element's plane-0 byte.
    context: [Vec<Option<Box<AdaptiveModel>>>; 2],
    /// Planes 2.. order-0.
    order0: Vec<AdaptiveModel>,
}

impl Models {
    fn new(w: usize) -> Result<Self> {
        Ok(Models {
            context: [vec_of_none(), vec_of_none()],
            order0: (2..w.max(2))
                .map(|_| AdaptiveModel::new(256))
                .collect::<Result<_>>()?,
        })
    }

    fn model(&mut self, plane: usize, ctx: u8) -> &mut AdaptiveModel {
        if plane < 2 {
            self.context[plane][ctx as usize].get_or_insert_with(|| {
                Box::new(AdaptiveModel::new(256).expect("256 symbols is a valid alphabet"))
            })
        } else {
            &mut self.order0[plane - 2]
        }
    }
}

fn vec_of_none() -> Vec<Option<Box<AdaptiveModel>>> {
    (0..256).map(|_| None).collect()
}

/// Contexts: plane 0 uses the previous element's plane 0; plane 1 this element's plane 0.
fn context(plane: usize, prev_top: u8, this_top: u8) -> u8 {
    if plane == 0 { prev_top } else { this_top }
}

/// Where plane 0 (the exponent byte of a float) comes from.
#[derive(Clone, Copy)]
enum Head<'a> {
    /// Coded in this stream, in the context of the previous element's plane 0.
    Coded,
    /// Coded elsewhere (the hybrid codec's LLM stream): known to both sides, not coded here.
    Given(&'a [u8]),
}

/// Codes planes `first..` of every element (`first` is 1 when plane 0 goes elsewhere).
fn encode_chunk(dtype: DType, data: &[u8], first: usize) -> Result<Vec<u8>> {
    let w = dtype.width();
    let float = dtype.exponent_bits().is_some();
    let mut models = Models::new(w)?;
    let mut enc = Encoder::new();
    let mut prev_top = 0u8;
    for element in data.chunks_exact(w) {
        let mut le = [0u8; 8];
        le[..w].copy_from_slice(element);
        let bits = rotate_in(u64::from_le_bytes(le), w, float);
        let top = (bits >> (8 * (w - 1))) as u8;
        for plane in first..w {
            let byte = (bits >> (8 * (w - 1 - plane))) as u8;
            let m = models.model(plane, context(plane, prev_top, top));
            enc.encode(byte as usize, m.table())?;
            m.update(byte as usize);
        }
        prev_top = top;
    }
    Ok(enc.finish())
}

fn decode_chunk(dtype: DType, stream: &[u8], out: &mut [u8], head: Head<'_>) -> Result<()> {
    let w = dtype.width();
    let float = dtype.exponent_bits().is_some();
    let mut models = Models::new(w)?;
    let mut dec = Decoder::new(stream)?;
    let mut prev_top = 0u8;
    for (i, element) in out.chunks_exact_mut(w).enumerate() {
        let (first, mut top) = match head {
            Head::Coded => (0, 0u8),
            Head::Given(heads) => (1, heads[i]),
        };
        let mut bits = u64::from(top) << (8 * (w - 1));
        for plane in first..w {
            let m = models.model(plane, context(plane, prev_top, top));
            let byte = dec.decode(m.table())? as u8;
            m.update(byte as usize);
            if plane == 0 {
                top = byte;
            }
            bits |= u64::from(byte) << (8 * (w - 1 - plane));
        }
        element.copy_from_slice(&rotate_out(bits, w, float).to_le_bytes()[..w]);
        prev_top = top;
    }
    Ok(())
}

/// Plane 0 of every element: the byte [`tail`]-coding leaves out. For `f32` and `bf16` it is
/// the exponent (the sign moves to the bottom, as in the codec); for integers the top byte.
pub fn heads(dtype: DType, data: &[u8]) -> Vec<u8> {
    let w = dtype.width();
    let float = dtype.exponent_bits().is_some();
    data.chunks_exact(w)
        .map(|element| {
            let mut le = [0u8; 8];
            le[..w].copy_from_slice(element);
            (rotate_in(u64::from_le_bytes(le), w, float) >> (8 * (w - 1))) as u8
        })
        .collect()
}

/// Chunk boundaries of a block: whole elements, at most [`CHUNK_BYTES`] each.
pub fn chunk_lengths(dtype: DType, len: u64) -> Vec<u64> {
    let step = (CHUNK_BYTES / dtype.width() * dtype.width()) as u64;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(step);
        out.push(n);
        left -= n;
    }
    out
}

/// Encodes a block: one stream per chunk, chunks in parallel.
pub fn encode(
    dtype: DType,
    data: &[u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<(Vec<u8>, u64)>> {
    encode_with(dtype, data, false, progress)
}

/// Encodes every plane but plane 0 ([`heads`]), which the decoder is given: the classical
/// half of the hybrid codec. One stream per chunk, as [`encode`].
pub fn encode_tail(
    dtype: DType,
    data: &[u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<(Vec<u8>, u64)>> {
    encode_with(dtype, data, true, progress)
}

fn encode_with(
    dtype: DType,
    data: &[u8],
    tail: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<(Vec<u8>, u64)>> {
    let lens = chunk_lengths(dtype, data.len() as u64);
    let mut starts = Vec::with_capacity(lens.len());
    let mut at = 0usize;
    for &n in &lens {
        starts.push((at, n as usize));
        at += n as usize;
    }
    starts
        .par_iter()
        .map(|&(s, n)| {
            let stream = encode_chunk(dtype, &data[s..s + n], usize::from(tail))?;
            progress(n as u64);
            Ok((stream, n as u64))
        })
        .collect()
}

/// Decodes a block from its streams (`(stream bytes, chunk length)` pairs) into `out`.
pub fn decode(
    dtype: DType,
    streams: &[(&[u8], u64)],
    out: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    decode_with(dtype, streams, None, out, progress)
}

/// Decodes what [`encode_tail`] wrote, given plane 0 of every element (`heads`, one byte
/// per element of `out`).
pub fn decode_tail(
    dtype: DType,
    streams: &[(&[u8], u64)],
    heads: &[u8],
    out: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    if heads.len() * dtype.width() != out.len() {
        return Err(crate::Error::Internal(format!(
            "{} head bytes for {} bytes of {dtype:?}",
            heads.len(),
            out.len()
        )));
    }
    decode_with(dtype, streams, Some(heads), out, progress)
}

fn decode_with(
    dtype: DType,
    streams: &[(&[u8], u64)],
    heads: Option<&[u8]>,
    out: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let w = dtype.width();
    let mut pieces = Vec::with_capacity(streams.len());
    let mut rest = out;
    let mut element = 0usize;
    for &(s, n) in streams {
        let (head, tail) = rest.split_at_mut(n as usize);
        let given = heads.map(|h| &h[element..element + head.len() / w]);
        element += head.len() / w;
        pieces.push((s, head, given));
        rest = tail;
    }
    pieces.into_par_iter().try_for_each(|(s, out, given)| {
        let n = out.len();
        let head = given.map_or(Head::Coded, Head::Given);
        decode_chunk(dtype, s, out, head)?;
        progress(n as u64);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(dtype: DType, data: &[u8]) -> usize {
        let streams = encode(dtype, data, &|_| {}).unwrap();
        let refs: Vec<(&[u8], u64)> = streams.iter().map(|(s, n)| (&s[..], *n)).collect();
        let mut out = vec![0u8; data.len()];
        decode(dtype, &refs, &mut out, &|_| {}).unwrap();
        assert_eq!(out, data);
        streams.iter().map(|(s, _)| s.len()).sum()
    }

    #[test]
    fn rotation_is_invertible() {
        for (w, bits) in [
            (4usize, 0x8000_0001u64),
            (2, 0xffff),
            (8, u64::MAX - 5),
            (1, 0x80),
        ] {
            assert_eq!(rotate_out(rotate_in(bits, w, true), w, true), bits);
        }
        // f32: the exponent becomes the top byte.
        assert_eq!(
            rotate_in(u64::from((-1.0f32).to_bits()), 4, true) >> 24,
            127
        );
    }

    #[test]
    fn special_floats_survive() {
        let values = [
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 3.0,
            f32::MAX,
            f32::MIN,
        ];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        round_trip(DType::F32, &data);
    }

    #[test]
    fn gradient_like_data_compresses_and_spans_chunks() {
        // Laplace-ish values with a slowly varying scale, over more than one chunk.
        let mut s = 1u64;
        let data: Vec<u8> = (0..(CHUNK_BYTES / 4 + 1000))
            .flat_map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
                let sign = if s & 1 == 0 { 1.0 } else { -1.0 };
                let scale = 1e-3 * (1.0 + (i as f64 / 5e4).sin().abs());
                ((sign * -u.ln() * scale) as f32).to_le_bytes()
            })
            .collect();
        let size = round_trip(DType::F32, &data);
        assert!(size < data.len() * 90 / 100, "{size} of {}", data.len());
        assert_eq!(chunk_lengths(DType::F32, data.len() as u64).len(), 2);
    }

    /// Plane 0 given plus the tail stream reproduce the block, and the tail is the plane-0
    /// stream cheaper than the whole.
    fn tail_round_trip(dtype: DType, data: &[u8]) -> usize {
        let streams = encode_tail(dtype, data, &|_| {}).unwrap();
        let refs: Vec<(&[u8], u64)> = streams.iter().map(|(s, n)| (&s[..], *n)).collect();
        let heads = heads(dtype, data);
        assert_eq!(heads.len() * dtype.width(), data.len());
        let mut out = vec![0u8; data.len()];
        decode_tail(dtype, &refs, &heads, &mut out, &|_| {}).unwrap();
        assert_eq!(out, data);
        assert!(
            decode_tail(
                dtype,
                &refs,
                &heads[..heads.len().saturating_sub(1)],
                &mut out,
                &|_| {}
            )
            .is_err()
                || heads.is_empty()
        );
        streams.iter().map(|(s, _)| s.len()).sum()
    }

    #[test]
    fn heads_are_exponents_of_floats() {
        let data: Vec<u8> = [1.0f32, -2.0, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(heads(DType::F32, &data), vec![127, 128, 126]);
        let ints: Vec<u8> = [0x0102_0304i32, -1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(heads(DType::I32, &ints), vec![1, 255]);
        let whole = round_trip(DType::F32, &data.repeat(200));
        assert!(tail_round_trip(DType::F32, &data.repeat(200)) <= whole);
    }

    proptest! {
        #[test]
        fn tail_and_heads_any_dtype(dtype in prop::sample::select(DType::ALL.to_vec()), elements in prop::collection::vec(any::<u64>(), 0..300)) {
            let w = dtype.width();
            let data: Vec<u8> = elements.iter().flat_map(|e| e.to_le_bytes()[..w].to_vec()).collect();
            tail_round_trip(dtype, &data);
        }

        #[test]
        fn any_bytes_any_dtype(dtype in prop::sample::select(DType::ALL.to_vec()), elements in prop::collection::vec(any::<u64>(), 0..300)) {
            let w = dtype.width();
            let data: Vec<u8> = elements.iter().flat_map(|e| e.to_le_bytes()[..w].to_vec()).collect();
            round_trip(dtype, &data);
        }
    }
}
