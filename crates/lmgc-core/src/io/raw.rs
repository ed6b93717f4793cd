//! Headerless little-endian `f32` values.

use std::path::Path;

use super::{Format, Piece, SourceFile};
use crate::{DType, Error, Gradient, Result, Tensor};

pub(super) fn parse(bytes: &[u8]) -> Result<SourceFile> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::MalformedInput {
            format: "raw",
            reason: format!("{} bytes is not a whole number of f32 values", bytes.len()),
        });
    }
    let tensor = Tensor::new(
        "raw",
        DType::F32,
        vec![bytes.len() as u64 / 4],
        bytes.to_vec(),
    )?;
    Ok(SourceFile {
        format: Format::RawF32,
        gradient: Gradient::new(vec![tensor])?,
        pieces: vec![Piece::Tensor(0)],
    })
}

/// Reads a raw `f32` file as one rank-1 tensor named `raw`.
pub fn read_raw_f32(path: &Path) -> Result<Tensor> {
    Ok(SourceFile::read(path, Format::RawF32)?
        .gradient
        .into_tensors()
        .remove(0))
}

/// Writes a tensor's bytes as a raw file, atomically (any dtype; the shape is not stored).
pub fn write_raw_f32(path: &Path, tensor: &Tensor) -> Result<()> {
    crate::fsutil::write_atomic(path, tensor.data())
}
