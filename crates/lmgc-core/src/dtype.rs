//! Element types of tensors and how their bytes are laid out.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Element type of a tensor. Values are stored as raw little-endian bytes; lmgc never
/// converts them, so every bit (NaN payloads, -0.0, subnormals) survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DType {
    /// IEEE-754 binary64.
    F64,
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16.
    F16,
    /// bfloat16 (the top half of a binary32).
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer (also used for opaque bytes).
    U8,
    /// Boolean, one byte each.
    Bool,
}

impl DType {
    /// All element types, in a fixed order.
    pub const ALL: [DType; 13] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub const fn width(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Number of exponent bits for floating-point types, `None` for the others.
    pub const fn exponent_bits(self) -> Option<u32> {
        match self {
            DType::F64 => Some(11),
            DType::F32 | DType::BF16 => Some(8),
            DType::F16 => Some(5),
            _ => None,
        }
    }

    /// The safetensors spelling (`F32`, `BF16`, ...).
    pub const fn safetensors_name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }

    /// Parses the safetensors spelling.
    pub fn from_safetensors_name(name: &str) -> Result<Self> {
        DType::ALL
            .into_iter()
            .find(|d| d.safetensors_name() == name)
            .ok_or_else(|| Error::Unsupported(format!("safetensors dtype {name:?}")))
    }

    /// The numpy `descr` string for little-endian data (`<f4`, `|u1`, ...); bfloat16 has none.
    pub const fn npy_descr(self) -> Option<&'static str> {
        Some(match self {
            DType::F64 => "<f8",
            DType::F32 => "<f4",
            DType::F16 => "<f2",
            DType::BF16 => return None,
            DType::I64 => "<i8",
            DType::I32 => "<i4",
            DType::I16 => "<i2",
            DType::I8 => "|i1",
            DType::U64 => "<u8",
            DType::U32 => "<u4",
            DType::U16 => "<u2",
            DType::U8 => "|u1",
            DType::Bool => "|b1",
        })
    }

    /// Parses a numpy `descr`; big-endian data is refused rather than silently swapped.
    pub fn from_npy_descr(descr: &str) -> Result<Self> {
        let normalized = match descr.as_bytes().first() {
            Some(b'=') => format!("<{}", &descr[1..]),
            _ => descr.to_owned(),
        };
        let normalized = match normalized.as_str() {
            "<i1" | "<u1" | "<b1" => format!("|{}", &normalized[1..]),
            _ => normalized,
        };
        if let Some(d) = DType::ALL
            .into_iter()
            .find(|d| d.npy_descr() == Some(normalized.as_str()))
        {
            return Ok(d);
        }
        if descr.starts_with('>') {
            return Err(Error::Unsupported(format!(
                "big-endian npy data ({descr}); convert it with `arr.astype(arr.dtype.newbyteorder('<'))`"
            )));
        }
        Err(Error::Unsupported(format!("npy dtype {descr:?}")))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.safetensors_name().to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(
                DType::from_safetensors_name(d.safetensors_name()).unwrap(),
                d
            );
            if let Some(descr) = d.npy_descr() {
                assert_eq!(DType::from_npy_descr(descr).unwrap(), d);
            }
        }
        assert!(matches!(
            DType::from_npy_descr(">f4"),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(DType::from_npy_descr("=f4").unwrap(), DType::F32);
    }
}
