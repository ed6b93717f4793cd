//! safetensors: parsed and validated by the `safetensors` crate, written here.
//!
//! The crate's `serialize` re-sorts tensors by dtype and name; a gradient's order is part
//! of its meaning (layer order), so the writer below keeps it. Reading sorts by data offset,
//! which is the writer's order.

use std::path::Path;

use ::safetensors::SafeTensors;

use super::{Format, Piece, SourceFile};
use crate::{DType, Error, Gradient, Result, Tensor};

fn malformed(reason: impl std::fmt::Display) -> Error {
    Error::MalformedInput {
        format: "safetensors",
        reason: reason.to_string(),
    }
}

pub(super) fn parse(bytes: &[u8]) -> Result<SourceFile> {
    let (header_len, metadata) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
    let data_start = 8 + header_len;
    let mut pieces = vec![Piece::Verbatim(bytes[..data_start].to_vec())];
    let mut tensors = Vec::new();
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .ok_or_else(|| malformed(format!("tensor {name:?} listed without info")))?;
        let (start, end) = info.data_offsets;
        let data = bytes
            .get(data_start + start..data_start + end)
            .ok_or_else(|| malformed(format!("tensor {name:?} lies outside the file")))?;
        let dtype_name = format!("{:?}", info.dtype);
        match DType::from_safetensors_name(&dtype_name) {
            Ok(dtype) => {
                let shape = info.shape.iter().map(|&d| d as u64).collect();
                pieces.push(Piece::Tensor(tensors.len()));
                tensors.push(Tensor::new(name, dtype, shape, data.to_vec())?);
            }
            // Kept byte for byte, not modelled as values.
            Err(_) => pieces.push(Piece::Verbatim(data.to_vec())),
        }
    }
    Ok(SourceFile {
        format: Format::Safetensors,
        gradient: Gradient::new(tensors)?,
        pieces,
    })
}

/// Reads a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<Gradient> {
    Ok(SourceFile::read(path, Format::Safetensors)?.gradient)
}

/// Serializes a gradient as safetensors, keeping the tensors' order.
pub fn to_bytes(gradient: &Gradient) -> Vec<u8> {
    let mut header = String::from("{");
    let mut offset = 0u64;
    for (i, t) in gradient.tensors().iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        let end = offset + t.data().len() as u64;
        let name = serde_json::to_string(t.name()).expect("a string always serializes");
        let shape: Vec<String> = t.shape().iter().map(u64::to_string).collect();
        header.push_str(&format!(
            "{name}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            t.dtype().safetensors_name(),
            shape.join(",")
        ));
        offset = end;
    }
    header.push('}');
    // The format pads the header with spaces to a multiple of 8 bytes.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset as usize);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in gradient.tensors() {
        out.extend_from_slice(t.data());
    }
    out
}

/// Writes a gradient as a safetensors file, atomically.
pub fn write_safetensors(path: &Path, gradient: &Gradient) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_bytes(gradient))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_bytes_survive() {
        let g = Gradient::new(vec![
            Tensor::from_f32("z.weight", &[1.0, -0.0, f32::NAN]),
            Tensor::new("a.bias", DType::BF16, vec![2], vec![1, 2, 3, 4]).unwrap(),
            Tensor::new("m", DType::F64, vec![1, 1], vec![7; 8]).unwrap(),
        ])
        .unwrap();
        let bytes = to_bytes(&g);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.gradient, g);
        assert_eq!(parsed.to_bytes(), bytes);
        // The reference parser agrees.
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("a.bias").unwrap().data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn foreign_header_is_reproduced_exactly() {
        // Unsorted keys, metadata, extra padding, an fp8 tensor lmgc does not model.
        let header = br#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},"__metadata__":{"format":"pt"},"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}      "#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[9, 8, 0, 0, 128, 63]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.gradient.tensors().len(), 1);
        assert_eq!(parsed.gradient.tensors()[0].to_f32().unwrap(), vec![1.0]);
        assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn hostile_headers_are_errors() {
        for bytes in [
            vec![],
            vec![1, 2, 3],
            u64::MAX.to_le_bytes().to_vec(),
            [&16u64.to_le_bytes()[..], b"{}"].concat(),
            [&2u64.to_le_bytes()[..], b"{}", &[0]].concat(),
            [&8u64.to_le_bytes()[..], b"not json"].concat(),
        ] {
            assert!(
                matches!(parse(&bytes), Err(Error::MalformedInput { .. })),
                "{bytes:?}"
            );
        }
    }
}
