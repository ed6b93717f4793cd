//! General-purpose compressors: gzip, xz, zstd, brotli.

use std::io::Write;

use super::read_exact_len;
use crate::{Error, Result};

fn io_err(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what} encoder: {e}"))
}

pub fn gzip_encode(data: &[u8], level: u8) -> Result<Vec<u8>> {
    let mut e =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(u32::from(level)));
    e.write_all(data).map_err(io_err("gzip"))?;
    e.finish().map_err(io_err("gzip"))
}

pub fn gzip_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    read_exact_len(flate2::read::GzDecoder::new(coded), len, "gzip")
}

/// The xz decoder's memory limit: above preset 9's 64 MiB dictionary, far below what a
/// hostile header could ask for.
const XZ_MEMLIMIT: u64 = 256 << 20;

pub fn xz_encode(data: &[u8], preset: u8) -> Result<Vec<u8>> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), u32::from(preset));
    e.write_all(data).map_err(io_err("xz"))?;
    e.finish().map_err(io_err("xz"))
}

pub fn xz_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
        .map_err(|e| Error::Internal(format!("xz decoder: {e}")))?;
    read_exact_len(
        liblzma::read::XzDecoder::new_stream(coded, stream),
        len,
        "xz",
    )
}

/// Zstandard frames may ask for windows up to 2^31; 2^27 covers level 19 on any input.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

pub fn zstd_encode(data: &[u8], level: i8) -> Result<Vec<u8>> {
    zstd::bulk::compress(data, i32::from(level)).map_err(io_err("zstd"))
}

pub fn zstd_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut d = zstd::stream::read::Decoder::new(coded)
        .map_err(|e| Error::corrupt(format!("zstd stream: {e}")))?;
    d.window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(|e| Error::Internal(format!("zstd decoder: {e}")))?;
    read_exact_len(d, len, "zstd")
}

pub fn brotli_encode(data: &[u8], quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 1 << 16, u32::from(quality), 22);
        w.write_all(data).map_err(io_err("brotli"))?;
        w.flush().map_err(io_err("brotli"))?;
    }
    Ok(out)
}

pub fn brotli_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    read_exact_len(brotli::Decompressor::new(coded, 1 << 16), len, "brotli")
}
