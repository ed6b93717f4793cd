//! Tensors and gradients: named, typed, shaped bytes.

use crate::{DType, Error, Result};

/// One named tensor. The data is the raw little-endian bytes of its elements, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    data: Vec<u8>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly `shape.product() * dtype.width()` bytes.
    pub fn new(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        data: Vec<u8>,
    ) -> Result<Self> {
        let name = name.into();
        let expected = byte_len(dtype, &shape).ok_or_else(|| Error::InvalidArgument {
            what: "tensor shape",
            reason: format!("{name}: shape {shape:?} overflows"),
        })?;
        if expected != data.len() as u64 {
            return Err(Error::InvalidArgument {
                what: "tensor data",
                reason: format!(
                    "{name}: shape {shape:?} of {dtype} needs {expected} bytes, got {}",
                    data.len()
                ),
            });
        }
        Ok(Tensor {
            name,
            dtype,
            shape,
            data,
        })
    }

    /// A rank-1 `f32` tensor from values.
    pub fn from_f32(name: impl Into<String>, values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![values.len() as u64],
            data,
        }
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Shape (row-major).
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }
    /// Raw little-endian bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Takes the bytes out.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        (self.data.len() / self.dtype.width()) as u64
    }
    /// The values as `f32`, when the dtype is `F32`.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == DType::F32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

/// Bytes needed by a tensor of this dtype and shape, `None` on overflow.
pub fn byte_len(dtype: DType, shape: &[u64]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))?
        .checked_mul(dtype.width() as u64)
}

/// A gradient or model update: an ordered set of uniquely named tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gradient {
    tensors: Vec<Tensor>,
}

impl Gradient {
    /// Builds a gradient, refusing duplicate names.
    pub fn new(tensors: Vec<Tensor>) -> Result<Self> {
        let mut names = std::collections::HashSet::new();
        for t in &tensors {
            if !names.insert(t.name()) {
                return Err(Error::InvalidArgument {
                    what: "gradient",
                    reason: format!("duplicate tensor name {:?}", t.name()),
                });
            }
        }
        Ok(Gradient { tensors })
    }
    /// The tensors, in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }
    /// Takes the tensors out.
    pub fn into_tensors(self) -> Vec<Tensor> {
        self.tensors
    }
    /// Looks a tensor up by name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name() == name)
    }
    /// Total bytes of tensor data.
    pub fn data_len(&self) -> u64 {
        self.tensors.iter().map(|t| t.data().len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_must_match_data() {
        assert!(Tensor::new("a", DType::F32, vec![2, 3], vec![0; 24]).is_ok());
        assert!(Tensor::new("a", DType::F32, vec![2, 3], vec![0; 23]).is_err());
        assert!(Tensor::new("a", DType::F64, vec![u64::MAX, 2], vec![]).is_err());
        assert!(Tensor::new("a", DType::F32, vec![0, 7], vec![]).is_ok());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let t = Tensor::from_f32("w", &[1.0]);
        assert!(Gradient::new(vec![t.clone(), t]).is_err());
    }
}
