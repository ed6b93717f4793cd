//! The LM-GC paper's media baselines: bytes as a grayscale PNG and as 8-bit mono FLAC.

use std::io::Cursor;

use flacenc::component::BitRepr;
use flacenc::error::Verify;

use crate::{Error, Result};

/// Image width in pixels; the last row is padded with zeros.
const PNG_WIDTH: usize = 4096;

fn png_dims(len: usize) -> (u32, u32) {
    let w = len.clamp(1, PNG_WIDTH);
    (w as u32, len.div_ceil(w).max(1) as u32)
}

pub fn png_encode(data: &[u8]) -> Result<Vec<u8>> {
    let (w, h) = png_dims(data.len());
    let mut pixels = data.to_vec();
    pixels.resize(w as usize * h as usize, 0);
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Grayscale);
    e.set_depth(png::BitDepth::Eight);
    e.set_compression(png::Compression::High);
    let fail = |e: png::EncodingError| Error::Internal(format!("png encoder: {e}"));
    let mut writer = e.write_header().map_err(fail)?;
    writer.write_image_data(&pixels).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

pub fn png_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let (w, h) = png_dims(len);
    let fail = |e: png::DecodingError| Error::corrupt(format!("png stream: {e}"));
    let mut d = png::Decoder::new(Cursor::new(coded));
    // The decoder allocates by the image's declared size; allow just what this block needs.
    d.set_limits(png::Limits {
        bytes: (w as usize * h as usize).saturating_mul(2) + (1 << 16),
    });
    let mut reader = d.read_info().map_err(fail)?;
    let info = reader.info();
    if (info.width, info.height) != (w, h)
        || info.color_type != png::ColorType::Grayscale
        || info.bit_depth != png::BitDepth::Eight
    {
        return Err(Error::corrupt(format!(
            "png stream is {}x{} {:?}, expected {w}x{h} 8-bit grayscale",
            info.width, info.height, info.color_type
        )));
    }
    let mut buf = vec![0u8; w as usize * h as usize];
    reader.next_frame(&mut buf).map_err(fail)?;
    buf.truncate(len);
    Ok(buf)
}

/// FLAC's smallest legal block; shorter blocks are padded with silence.
const FLAC_MIN_SAMPLES: usize = 16;

/// Samples in the stream for `len` bytes: padded with silence so that no block, the last
/// included, is shorter than [`FLAC_MIN_SAMPLES`] (decoders reject such blocks).
fn flac_padded_len(len: usize) -> usize {
    let block = flacenc::config::Encoder::default()
        .block_size
        .max(FLAC_MIN_SAMPLES);
    match len % block {
        _ if len < FLAC_MIN_SAMPLES => FLAC_MIN_SAMPLES,
        tail @ 1..FLAC_MIN_SAMPLES => len + FLAC_MIN_SAMPLES - tail,
        _ => len,
    }
}

pub fn flac_encode(data: &[u8]) -> Result<Vec<u8>> {
    // Offset binary: byte b is the sample b - 128.
    let mut samples: Vec<i32> = data.iter().map(|&b| i32::from(b) - 128).collect();
    samples.resize(flac_padded_len(data.len()), 0);
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|e| Error::Internal(format!("flac config: {e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(&samples, 1, 8, 44_100);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| Error::Internal(format!("flac encoder: {e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| Error::Internal(format!("flac writer: {e:?}")))?;
    Ok(sink.as_slice().to_vec())
}

pub fn flac_decode(coded: &[u8], len: usize) -> Result<Vec<u8>> {
    let fail = |e: claxon::Error| Error::corrupt(format!("flac stream: {e}"));
    let mut reader = claxon::FlacReader::new(Cursor::new(coded)).map_err(fail)?;
    let info = reader.streaminfo();
    let padded = flac_padded_len(len);
    if info.channels != 1
        || info.bits_per_sample != 8
        || info.samples.is_some_and(|n| n != padded as u64)
    {
        return Err(Error::corrupt(format!(
            "flac stream has {} channels of {} bits and {:?} samples, expected 1 x 8 bits x {len}",
            info.channels, info.bits_per_sample, info.samples
        )));
    }
    let mut out = Vec::with_capacity(padded);
    for s in reader.samples() {
        let s = s.map_err(fail)?;
        if out.len() == padded || !(-128..128).contains(&s) {
            return Err(Error::corrupt(
                "flac stream holds more or other samples than its block",
            ));
        }
        out.push((s + 128) as u8);
    }
    out.truncate(len);
    Ok(out)
}
