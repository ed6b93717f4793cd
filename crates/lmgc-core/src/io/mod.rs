//! Tensor files: safetensors, `.npy` and raw little-endian `f32`.
//!
//! Reading a file yields a [`SourceFile`]: the [`Gradient`] it holds plus the bytes around
//! the tensor data (headers, padding), so that [`SourceFile::to_bytes`] reproduces the input
//! file bit for bit. The `.lmgc` container relies on that: `decompress` gives back the very
//! file that was compressed, whatever wrote it.

mod npy;
mod raw;
mod safetensors;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Gradient, Result};

pub use self::npy::{read_npy, to_bytes as npy_bytes, write_npy};
pub use self::raw::{read_raw_f32, write_raw_f32};
pub use self::safetensors::{read_safetensors, to_bytes as safetensors_bytes, write_safetensors};

/// Tensor file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Format {
    /// Hugging Face safetensors.
    Safetensors,
    /// NumPy `.npy` (versions 1.0, 2.0, 3.0; little-endian, C order).
    Npy,
    /// Headerless little-endian `f32` values.
    RawF32,
}

impl Format {
    /// Guesses the format from a file name's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("safetensors") => Ok(Format::Safetensors),
            Some("npy") => Ok(Format::Npy),
            Some("f32" | "raw" | "bin") => Ok(Format::RawF32),
            _ => Err(Error::InvalidArgument {
                what: "input format",
                reason: format!(
                    "cannot tell the format of {} from its extension; use .safetensors, .npy or .f32/.raw/.bin, or pass --input-format",
                    path.display()
                ),
            }),
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Npy => "npy",
            Format::RawF32 => "raw-f32",
        }
    }
}

/// One piece of a source file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes that are not tensor data (a header, padding, a tensor of a dtype lmgc skips).
    Verbatim(Vec<u8>),
    /// The data of `gradient.tensors()[i]`.
    Tensor(usize),
}

/// A parsed tensor file that can be written back byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file's format.
    pub format: Format,
    /// Its tensors.
    pub gradient: Gradient,
    /// The file as a sequence of pieces.
    pub pieces: Vec<Piece>,
}

impl SourceFile {
    /// Parses bytes in the given format.
    pub fn parse(format: Format, bytes: &[u8]) -> Result<Self> {
        match format {
            Format::Safetensors => safetensors::parse(bytes),
            Format::Npy => npy::parse(bytes),
            Format::RawF32 => raw::parse(bytes),
        }
    }

    /// Reads and parses a file.
    pub fn read(path: &Path, format: Format) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(format, &bytes)
    }

    /// The exact bytes of the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for piece in &self.pieces {
            match piece {
                Piece::Verbatim(b) => out.extend_from_slice(b),
                Piece::Tensor(i) => out.extend_from_slice(self.gradient.tensors()[*i].data()),
            }
        }
        out
    }

    /// File length in bytes.
    pub fn len(&self) -> u64 {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Verbatim(b) => b.len() as u64,
                Piece::Tensor(i) => self.gradient.tensors()[*i].data().len() as u64,
            })
            .sum()
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
