//! GGUF (llama.cpp's model format), versions 2 and 3.
//!
//! ```text
//! "GGUF" | version u32 | tensor_count u64 | kv_count u64
//! kv_count × (key: string, type: u32, value)
//! tensor_count × (name: string, n_dims: u32, dims: n_dims × u64, ggml_type: u32, offset: u64)
//! padding to `general.alignment` (32 by default), then the tensor data
//! ```
//! Strings are a u64 length and UTF-8 bytes; arrays an element type, a u64 count and the
//! elements. Every count is checked against the bytes that remain (each element takes at least
//! one byte) and against the caps below before anything is allocated.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// Longest metadata string (token texts are short; chat templates a few KiB).
pub const MAX_STRING_LEN: u64 = 16 << 20;
/// Most elements in a metadata array (vocabularies of a few hundred thousand tokens fit).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Most metadata entries.
pub const MAX_KV: u64 = 1 << 16;
/// Most tensors.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most tensor dimensions (ggml's limit).
pub const MAX_DIMS: u32 = 4;
/// Nesting depth of arrays of arrays.
const MAX_DEPTH: u32 = 2;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integer (u8, u16, u32, u64).
    U64(u64),
    /// Signed integer (i8, i16, i32, i64).
    I64(i64),
    /// Float (f32 widened, f64).
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// As a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(v) => Some(v),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Tensor element types lmgc reads (ggml numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 4-bit, blocks of 32 with an f16 scale and an f16 minimum.
    Q4_1,
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0,
}

impl GgmlType {
    fn from_id(id: u32) -> Result<Self> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            other => {
                return Err(Error::Unsupported(format!(
                    "ggml tensor type {other} (lmgc reads F32, F16, Q4_1, Q8_0)"
                )));
            }
        })
    }
    /// Elements per block.
    pub const fn block_elements(self) -> u64 {
        match self {
            GgmlType::F32 | GgmlType::F16 => 1,
            GgmlType::Q4_1 | GgmlType::Q8_0 => 32,
        }
    }
    /// Bytes per block.
    pub const fn block_bytes(self) -> u64 {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 => 2,
            GgmlType::Q4_1 => 20,
            GgmlType::Q8_0 => 34,
        }
    }
}

/// One tensor's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, fastest-varying first (ggml order: `dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Byte range within the file.
    pub range: std::ops::Range<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file held in memory.
#[derive(Debug)]
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: HashMap<String, Value>,
    /// Tensors, in file order.
    pub tensors: Vec<TensorInfo>,
    bytes: Vec<u8>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::Gguf(format!("file ends inside {what} at byte {}", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of items that each take at least `min_bytes`, checked before any allocation.
    fn count(&mut self, cap: u64, min_bytes: u64, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        if n > cap {
            return Err(Error::Gguf(format!(
                "{what} declares {n} items, above the cap of {cap}"
            )));
        }
        if n.saturating_mul(min_bytes) > self.remaining() {
            return Err(Error::Gguf(format!(
                "{what} declares {n} items but only {} bytes remain",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(MAX_STRING_LEN, 1, what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::Gguf(format!("{what} is not UTF-8")))
    }
    fn value(&mut self, ty: u32, depth: u32, key: &str) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(u64::from(self.take(1, key)?[0])),
            1 => Value::I64(i64::from(self.take(1, key)?[0] as i8)),
            2 => Value::U64(u64::from(u16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            ))),
            3 => Value::I64(i64::from(i16::from_le_bytes(
                self.take(2, key)?.try_into().expect("2"),
            ))),
            4 => Value::U64(u64::from(self.u32(key)?)),
            5 => Value::I64(i64::from(self.u32(key)? as i32)),
            6 => Value::F64(f64::from(f32::from_bits(self.u32(key)?))),
            7 => match self.take(1, key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Error::Gguf(format!("{key}: bool byte {b}"))),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(Error::Gguf(format!(
                        "{key}: arrays nested deeper than {MAX_DEPTH}"
                    )));
                }
                let elem = self.u32(key)?;
                let n = self.count(MAX_ARRAY_LEN, 1, key)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1, key)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            other => return Err(Error::Gguf(format!("{key}: unknown value type {other}"))),
        })
    }
}

impl Gguf {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(bytes)
    }

    /// Parses a whole file's bytes.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
        };
        if c.take(4, "the magic").ok() != Some(b"GGUF") {
            return Err(Error::Gguf("missing the GGUF magic".into()));
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!(
                "GGUF version {version} (lmgc reads 2 and 3)"
            )));
        }
        // A tensor info takes at least 8+4+8+4+8 bytes, a kv at least 8+4+1.
        let n_tensors = {
            let n = c.u64("the tensor count")?;
            if n > MAX_TENSORS || n.saturating_mul(32) > c.remaining() {
                return Err(Error::Gguf(format!("{n} tensors declared")));
            }
            n as usize
        };
        let n_kv = c.count(MAX_KV, 13, "the metadata count")?;
        let mut metadata = HashMap::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = c.string("a metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, 0, &key)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(Error::Gguf(format!("duplicate metadata key {key:?}")));
            }
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("a tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::Gguf(format!(
                    "tensor {name:?} has {n_dims} dimensions"
                )));
            }
            let dims = (0..n_dims)
                .map(|_| c.u64(&name))
                .collect::<Result<Vec<_>>>()?;
            let ty = c.u32(&name)?;
            let offset = c.u64(&name)?;
            raw.push((name, dims, ty, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two() && *a <= 1 << 16)
                .ok_or_else(|| Error::Gguf(format!("general.alignment {v:?}")))?,
        };
        let data_start = (c.pos as u64).next_multiple_of(alignment);
        let mut tensors = Vec::with_capacity(raw.len());
        let mut names = std::collections::HashSet::new();
        for (name, dims, ty, offset) in raw {
            let ty = GgmlType::from_id(ty).map_err(|e| match e {
                Error::Unsupported(m) => Error::Unsupported(format!("{name}: {m}")),
                other => other,
            })?;
            let numel = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| {
                    Error::Gguf(format!("tensor {name:?}: dimensions {dims:?} overflow"))
                })?;
            if numel % ty.block_elements() != 0 || dims[0] % ty.block_elements() != 0 {
                return Err(Error::Gguf(format!(
                    "tensor {name:?}: rows of {} are not whole {ty:?} blocks",
                    dims[0]
                )));
            }
            let len = (numel / ty.block_elements())
                .checked_mul(ty.block_bytes())
                .ok_or_else(|| {
                    Error::Gguf(format!(
                        "tensor {name:?}: {numel} elements overflow a byte length"
                    ))
                })?;
            let start = data_start
                .checked_add(offset)
                .filter(|s| offset % alignment == 0 && *s <= bytes.len() as u64)
                .ok_or_else(|| {
                    Error::Gguf(format!(
                        "tensor {name:?}: offset {offset} outside the file or misaligned"
                    ))
                })?;
            let end = start
                .checked_add(len)
                .filter(|&e| e <= bytes.len() as u64)
                .ok_or_else(|| {
                    Error::Gguf(format!(
                        "tensor {name:?}: {len} bytes at {start} run past the end of the file"
                    ))
                })?;
            if !names.insert(name.clone()) {
                return Err(Error::Gguf(format!("duplicate tensor {name:?}")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                range: start as usize..end as usize,
            });
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
            bytes,
        })
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::Missing(format!("tensor {name}")))
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        &self.bytes[t.range.clone()]
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.metadata
            .get(key)
            .ok_or_else(|| Error::Missing(format!("metadata {key}")))
    }

    /// An unsigned integer metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| Error::Missing(format!("integer metadata {key}")))
    }

    /// A string-array metadata value.
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>> {
        self.get(key)?
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| Error::Missing(format!("string array metadata {key}")))
    }
}

/// Builds GGUF bytes for tests: metadata and F32 tensors.
#[cfg(test)]
pub(crate) mod build {
    pub fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// `kvs`: (key, type id, encoded value); `tensors`: (name, dims, f32 data).
    pub fn file(kvs: &[(&str, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>, Vec<f32>)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in kvs {
            string(&mut out, k);
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(v);
        }
        let mut offset = 0u64;
        for (name, dims, data) in tensors {
            string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset += (data.len() as u64 * 4).next_multiple_of(32);
        }
        out.resize(out.len().next_multiple_of(32), 0);
        for (_, _, data) in tensors {
            for v in data {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.resize(out.len().next_multiple_of(32), 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn sample() -> Vec<u8> {
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&2u64.to_le_bytes());
        string(&mut arr, "a");
        string(&mut arr, "b");
        let mut name = Vec::new();
        string(&mut name, "tiny");
        file(
            &[
                ("general.name", 8, name),
                ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()),
                ("tokens", 9, arr),
            ],
            &[
                ("w", vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                ("b", vec![3], vec![-1.0; 3]),
            ],
        )
    }

    #[test]
    fn parses_metadata_and_tensors() {
        let g = Gguf::parse(sample()).unwrap();
        assert_eq!(g.get_u64("llama.block_count").unwrap(), 2);
        assert_eq!(g.get_strings("tokens").unwrap(), vec!["a", "b"]);
        let w = g.tensor("w").unwrap();
        assert_eq!(
            (w.dims.clone(), w.ty, w.numel()),
            (vec![2, 3], GgmlType::F32, 6)
        );
        assert_eq!(&g.tensor_bytes(w)[..4], &1.0f32.to_le_bytes());
        assert!(matches!(g.tensor("nope"), Err(Error::Missing(_))));
    }

    /// Hand-built hostile headers: each is a typed error, and none allocates by its lie.
    #[test]
    fn hostile_files_are_errors() {
        let good = sample();
        // Cutting into the alignment padding after the last tensor leaves a valid file.
        let data_end = Gguf::parse(good.clone())
            .unwrap()
            .tensors
            .iter()
            .map(|t| t.range.end)
            .max()
            .unwrap();
        for n in 0..data_end {
            assert!(Gguf::parse(good[..n].to_vec()).is_err(), "truncated at {n}");
        }
        let patch = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            b
        };
        let cases = [
            ("bad magic", patch(0, b"GGUG")),
            ("version 1", patch(4, &1u32.to_le_bytes())),
            ("huge tensor count", patch(8, &u64::MAX.to_le_bytes())),
            ("huge kv count", patch(16, &(1u64 << 40).to_le_bytes())),
            ("huge key length", patch(24, &u64::MAX.to_le_bytes())),
        ];
        for (what, bytes) in cases {
            assert!(Gguf::parse(bytes).is_err(), "{what}");
        }
        // A huge array count in an otherwise valid file.
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&(MAX_ARRAY_LEN - 1).to_le_bytes());
        let lying = file(&[("tokens", 9, arr)], &[]);
        assert!(matches!(Gguf::parse(lying), Err(Error::Gguf(m)) if m.contains("remain")));
        // A tensor that runs past the end, and one with overflowing dims.
        let big = file(&[], &[("w", vec![1 << 40, 1 << 30], vec![0.0])]);
        assert!(Gguf::parse(big).is_err());
        // Found by the fuzzer: numel fits u64 but numel * 4 bytes wraps to a small length.
        let wraps = file(&[], &[("w", vec![1 << 62, 4], vec![0.0])]);
        assert!(matches!(Gguf::parse(wraps), Err(Error::Gguf(m)) if m.contains("overflow")));
        let past = file(&[], &[("w", vec![64], vec![0.0; 8])]);
        assert!(matches!(Gguf::parse(past), Err(Error::Gguf(m)) if m.contains("past the end")));
        // Deeply nested arrays.
        let mut nested = 9u32.to_le_bytes().to_vec();
        nested.extend_from_slice(&1u64.to_le_bytes());
        nested.extend_from_slice(&9u32.to_le_bytes());
        nested.extend_from_slice(&1u64.to_le_bytes());
        nested.extend_from_slice(&9u32.to_le_bytes());
        nested.extend_from_slice(&0u64.to_le_bytes());
        assert!(Gguf::parse(file(&[("n", 9, nested)], &[])).is_err());
    }
}
