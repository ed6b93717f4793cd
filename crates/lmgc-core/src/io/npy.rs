//! NumPy `.npy`, versions 1.0 to 3.0, little-endian C-order arrays.

use std::path::Path;

use super::{Format, Piece, SourceFile};
use crate::{DType, Error, Gradient, Result, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy itself refuses headers above this size in `read_array` (it is generous already).
const MAX_HEADER_LEN: usize = 1 << 20;

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedInput {
        format: "npy",
        reason: reason.into(),
    }
}

pub(super) fn parse(bytes: &[u8]) -> Result<SourceFile> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(malformed("missing the \\x93NUMPY magic"));
    }
    let major = bytes[6];
    let (header_len, prefix) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes
                .get(8..12)
                .ok_or_else(|| malformed("truncated header length"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => {
            return Err(Error::Unsupported(format!(
                "npy format version {v}.{}",
                bytes[7]
            )));
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(malformed(format!(
            "header of {header_len} bytes (limit {MAX_HEADER_LEN})"
        )));
    }
    let header = bytes
        .get(prefix..prefix + header_len)
        .ok_or_else(|| malformed("file ends inside the header"))?;
    let header = std::str::from_utf8(header).map_err(|_| malformed("header is not text"))?;
    let (dtype, shape) = parse_header(header)?;
    let data = &bytes[prefix + header_len..];
    let tensor =
        Tensor::new("array", dtype, shape, data.to_vec()).map_err(|e| malformed(e.to_string()))?;
    Ok(SourceFile {
        format: Format::Npy,
        gradient: Gradient::new(vec![tensor])?,
        pieces: vec![
            Piece::Verbatim(bytes[..prefix + header_len].to_vec()),
            Piece::Tensor(0),
        ],
    })
}

/// Parses the Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_header(header: &str) -> Result<(DType, Vec<u64>)> {
    let value_after = |key: &str| -> Result<&str> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| malformed(format!("header has no '{key}'")))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| malformed(format!("no ':' after '{key}'")))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_after("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| {
            malformed("'descr' is not a plain string (structured dtypes are not supported)")
        })?;
    let dtype = DType::from_npy_descr(descr)?;
    let fortran = value_after("fortran_order")?;
    if fortran.starts_with("True") {
        return Err(Error::Unsupported(
            "Fortran-order npy arrays; save with np.ascontiguousarray(arr)".into(),
        ));
    } else if !fortran.starts_with("False") {
        return Err(malformed("'fortran_order' is neither True nor False"));
    }
    let shape = value_after("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| malformed("'shape' is not a tuple"))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| malformed(format!("bad dimension {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, dims))
}

/// Serializes one tensor as `.npy` version 1.0 (2.0 when the header needs it).
pub fn to_bytes(tensor: &Tensor) -> Result<Vec<u8>> {
    let descr = tensor.dtype().npy_descr().ok_or_else(|| {
        Error::Unsupported(format!(
            "{} has no npy dtype; use safetensors",
            tensor.dtype()
        ))
    })?;
    let dims: Vec<String> = tensor.shape().iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Data starts on a 64-byte boundary; the header ends with '\n'.
    // Version 1.0 stores the padded header length in a u16; longer headers need 2.0.
    let v1 = (10 + header.len() + 1).next_multiple_of(64) - 10 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - prefix - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + tensor.data().len());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(tensor.data());
    Ok(out)
}

/// Reads a `.npy` file as a one-tensor gradient (the tensor is named `array`).
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let file = SourceFile::read(path, Format::Npy)?;
    Ok(file.gradient.into_tensors().remove(0))
}

/// Writes one tensor as `.npy`, atomically.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_bytes(tensor)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numpy_header() {
        let t = Tensor::new("array", DType::F16, vec![2, 3], (0..12).collect()).unwrap();
        let bytes = to_bytes(&t).unwrap();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.gradient.tensors()[0], t);
        assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn numpy_written_headers_parse() {
        // As written by numpy 1.26 for np.zeros(3, '<f4') and a 0-d array.
        for (h, shape) in [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                vec![3],
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                vec![],
            ),
        ] {
            let numel: u64 = shape.iter().product();
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend(std::iter::repeat_n(0u8, 4 * numel as usize));
            assert_eq!(parse(&b).unwrap().gradient.tensors()[0].shape(), &shape[..]);
        }
    }

    #[test]
    fn bad_files_are_errors() {
        let good = to_bytes(&Tensor::from_f32("array", &[1.0, 2.0])).unwrap();
        assert!(parse(&good[..good.len() - 1]).is_err(), "truncated data");
        assert!(
            parse(&[good.clone(), vec![0]].concat()).is_err(),
            "trailing data"
        );
        assert!(parse(&good[..20]).is_err(), "truncated header");
        let mut v9 = good.clone();
        v9[6] = 9;
        assert!(matches!(parse(&v9), Err(Error::Unsupported(_))));
        let mut fortran = good.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(matches!(parse(&fortran), Err(Error::Unsupported(_))));
    }
}
