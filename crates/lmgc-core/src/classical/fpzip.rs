//! fpzip (LLNL) through `lmgc-fpzip-sys`, lossless mode, on `f32`/`f64` blocks; other dtypes are
//! stored as they are.
//!
//! fpzip's C API takes no input length (`fpzip_read_from_buffer(const void*)`) and its range
//! decoder can loop on corrupt data, reading without bound. lmgc therefore runs this decoder
//! only on input the caller declares trusted (`DecodeLimits::trusted_input`), and even then
//! on a copy padded with zeros. It also keeps a global error code, so calls are serialized.
#![allow(unsafe_code)] // FFI to the fpzip C library; each block below says what it relies on.

use std::ffi::c_void;
use std::sync::Mutex;

use lmgc_fpzip_sys::{
    FPZIP_TYPE_DOUBLE, FPZIP_TYPE_FLOAT, fpzip_read, fpzip_read_close, fpzip_read_from_buffer,
    fpzip_read_header, fpzip_write, fpzip_write_close, fpzip_write_header, fpzip_write_to_buffer,
};

use crate::{DType, Error, Result};

static LOCK: Mutex<()> = Mutex::new(());
/// Zero bytes after a trusted stream, in case the decoder reads a little past its end.
const PAD: usize = 1 << 16;

fn kind(dtype: DType) -> Option<(std::ffi::c_int, usize)> {
    match dtype {
        DType::F32 => Some((FPZIP_TYPE_FLOAT, 4)),
        DType::F64 => Some((FPZIP_TYPE_DOUBLE, 8)),
        _ => None,
    }
}

pub fn encode(dtype: DType, data: &[u8]) -> Result<Vec<u8>> {
    let Some((ty, width)) = kind(dtype) else {
        return Ok(data.to_vec());
    };
    let n = i32::try_from(data.len() / width)
        .map_err(|_| Error::Unsupported("fpzip blocks of 2^31 values or more".into()))?;
    // fpzip's worst case is a little above the input size.
    let mut buf = vec![0u8; data.len() * 2 + 1024];
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: `buf` outlives the stream and its size is passed; `data` holds exactly `n`
    // values of the declared type; the stream is closed on every path.
    let written = unsafe {
        let fpz = fpzip_write_to_buffer(buf.as_mut_ptr().cast::<c_void>(), buf.len());
        if fpz.is_null() {
            return Err(Error::Internal("fpzip_write_to_buffer failed".into()));
        }
        (*fpz).type_ = ty;
        (*fpz).prec = 0; // full precision: lossless
        (*fpz).nx = n;
        (*fpz).ny = 1;
        (*fpz).nz = 1;
        (*fpz).nf = 1;
        let ok = fpzip_write_header(fpz) != 0;
        let written = if ok {
            fpzip_write(fpz, data.as_ptr().cast::<c_void>())
        } else {
            0
        };
        fpzip_write_close(fpz);
        written
    };
    if written == 0 {
        return Err(Error::Internal("fpzip could not compress the block".into()));
    }
    buf.truncate(written);
    Ok(buf)
}

pub fn decode(dtype: DType, coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let Some((ty, width)) = kind(dtype) else {
        return Ok(coded.to_vec());
    };
    let mut input = Vec::with_capacity(coded.len() + PAD);
    input.extend_from_slice(coded);
    input.resize(coded.len() + PAD, 0);
    let mut out = vec![0u8; len];
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: only reached for trusted input (see the module doc); the header is checked to
    // describe exactly `len` bytes of the expected type before `fpzip_read` writes into `out`.
    let read = unsafe {
        let fpz = fpzip_read_from_buffer(input.as_ptr().cast::<c_void>());
        if fpz.is_null() {
            return Err(Error::corrupt("fpzip stream: bad header"));
        }
        let header_ok = fpzip_read_header(fpz) != 0;
        let f = &*fpz;
        let matches = header_ok
            && f.type_ == ty
            && f.nx >= 0
            && (f.nx as usize).checked_mul(width) == Some(len)
            && (f.ny, f.nz, f.nf) == (1, 1, 1);
        let read = if matches {
            fpzip_read(fpz, out.as_mut_ptr().cast::<c_void>())
        } else {
            0
        };
        fpzip_read_close(fpz);
        read
    };
    if read == 0 || read > coded.len() {
        return Err(Error::corrupt("fpzip stream does not decode to its block"));
    }
    Ok(out)
}
