//! The part of LLNL fpzip's C API that lmgc uses (see `fpzip/include/fpzip.h`), over a static
//! build of the vendored sources (BSD-3-Clause, `fpzip/LICENSE`).
//!
//! Note for callers: `fpzip_read_from_buffer` takes no length, and a corrupt stream can make
//! the decoder read without bound. Decode only data you produced.
#![allow(unsafe_code)] // An FFI declaration crate.
#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

/// Single precision (`FPZ::type_`).
pub const FPZIP_TYPE_FLOAT: c_int = 0;
/// Double precision (`FPZ::type_`).
pub const FPZIP_TYPE_DOUBLE: c_int = 1;

/// Array metadata and stream handle (`FPZ` in fpzip.h).
#[repr(C)]
#[derive(Debug)]
pub struct FPZ {
    /// `FPZIP_TYPE_FLOAT` or `FPZIP_TYPE_DOUBLE`.
    pub type_: c_int,
    /// Bits of precision; 0 = full (lossless).
    pub prec: c_int,
    /// Samples along x.
    pub nx: c_int,
    /// Samples along y.
    pub ny: c_int,
    /// Samples along z.
    pub nz: c_int,
    /// Fields.
    pub nf: c_int,
}

unsafe extern "C" {
    /// Opens a compressed input stream over memory (no length: see the crate doc).
    pub fn fpzip_read_from_buffer(buffer: *const c_void) -> *mut FPZ;
    /// Reads the header into `*fpz`; nonzero on success.
    pub fn fpzip_read_header(fpz: *mut FPZ) -> c_int;
    /// Decompresses the array; returns compressed bytes read, 0 on error.
    pub fn fpzip_read(fpz: *mut FPZ, data: *mut c_void) -> usize;
    /// Closes the input stream.
    pub fn fpzip_read_close(fpz: *mut FPZ);
    /// Opens a compressed output stream over `size` bytes of memory.
    pub fn fpzip_write_to_buffer(buffer: *mut c_void, size: usize) -> *mut FPZ;
    /// Writes the header; nonzero on success.
    pub fn fpzip_write_header(fpz: *mut FPZ) -> c_int;
    /// Compresses the array; returns compressed bytes written, 0 on error.
    pub fn fpzip_write(fpz: *mut FPZ, data: *const c_void) -> usize;
    /// Closes the output stream.
    pub fn fpzip_write_close(fpz: *mut FPZ);
}
