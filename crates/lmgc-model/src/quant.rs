//! Dequantization of GGUF tensors to `f32`, following ggml's definitions.
//!
//! - Q4_1: blocks of 32 values: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit codes; value
//!   `j` (j < 16) is `(qs[j] & 15) · d + m`, value `j + 16` is `(qs[j] >> 4) · d + m`.
//! - Q8_0: blocks of 32 values: f16 scale `d`, 32 signed bytes; value `j` is `qs[j] · d`.

use crate::Result;
use crate::gguf::{GgmlType, Gguf, TensorInfo};

/// IEEE binary16 to f32, exactly (every f16 is representable in f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalize into an f32 normal.
            let shift = man.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((man << shift) & 0x3ff) << 13
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Dequantizes raw tensor bytes of type `ty` into `out`.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) {
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        GgmlType::Q4_1 => {
            for block in bytes.chunks_exact(20) {
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                let qs = &block[4..20];
                out.extend(qs.iter().map(|&q| f32::from(q & 15) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        GgmlType::Q8_0 => {
            for block in bytes.chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..34].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
    }
}

/// A tensor of a parsed file as `f32` values, in ggml order (rows of `dims[0]`).
pub fn dequantize(file: &Gguf, t: &TensorInfo) -> Result<Vec<f32>> {
    // Sized by the bytes actually present (the parser checked they match the shape).
    let bytes = file.tensor_bytes(t);
    let mut out = Vec::with_capacity(
        bytes.len() / t.ty.block_bytes() as usize * t.ty.block_elements() as usize,
    );
    dequantize_into(t.ty, bytes, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_matches_reference_values() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x8000, -0.0),
            (0x7c00, f32::INFINITY),
        ] {
            assert_eq!(f16_to_f32(h).to_bits(), f.to_bits(), "{h:#x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn q4_1_and_q8_0_blocks() {
        // d = 0.5, m = -1.0, codes 0..15 then 15..0.
        let mut b = vec![0x00, 0x38, 0x00, 0xbc];
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q4_1, &b, &mut out);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[15], 6.5);
        assert_eq!(out[16], 6.5);
        assert_eq!(out[31], -1.0);
        let mut q8 = vec![0x00, 0x40]; // d = 2
        q8.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
        out.clear();
        dequantize_into(GgmlType::Q8_0, &q8, &mut out);
        assert_eq!((out[0], out[16], out[31]), (-32.0, 0.0, 30.0));
    }
}
