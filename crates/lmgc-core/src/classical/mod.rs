//! The classical baselines: general-purpose compressors and the LM-GC paper's media codecs,
//! each coding a block as one self-contained stream.
//!
//! | codec | crate | notes |
//! |---|---|---|
//! | `gzip` | flate2 (miniz_oxide) | level 9 |
//! | `xz6`, `xz9` | liblzma (the reference C library) | presets 6 and 9 |
//! | `zstd` | zstd (the reference C library) | level 19 |
//! | `brotli` | brotli (pure Rust) | quality 11, window 2^22 |
//! | `png` | png | bytes as an 8-bit grayscale image 4096 pixels wide, as the paper did |
//! | `flac` | flacenc + claxon | bytes as 8-bit mono audio, as the paper did |
//! | `pcodec` | pco | numeric blocks; other dtypes stored |
//! | `fpzip` | LLNL's fpzip 1.3.0, vendored in `lmgc-fpzip-sys`, feature `fpzip` | `f32`/`f64` blocks, lossless mode; trusted input only |
//!
//! Every decoder is told the block's length and refuses to produce more or less.

mod lz;
mod media;
mod pcodec;

#[cfg(feature = "fpzip")]
mod fpzip;

use serde::{Deserialize, Serialize};

use crate::codec::{Block, Codec, CodecSpec, CodedBlock, EncodedStream, Progress};
use crate::{DType, Error, Result};

/// A classical codec and its parameters. Recorded in container headers; variants are only
/// ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Classical {
    /// DEFLATE in a gzip frame.
    Gzip {
        /// 0-9.
        level: u8,
    },
    /// LZMA2 in an xz frame.
    Xz {
        /// 0-9.
        preset: u8,
    },
    /// Zstandard.
    Zstd {
        /// 1-22.
        level: i8,
    },
    /// Brotli.
    Brotli {
        /// 0-11.
        quality: u8,
    },
    /// Bytes as an 8-bit grayscale PNG.
    Png,
    /// Bytes as 8-bit mono FLAC.
    Flac,
    /// pcodec on numeric blocks.
    Pcodec,
    /// fpzip on float blocks.
    Fpzip,
}

impl Classical {
    /// Every classical codec with the parameters the benchmark uses.
    pub const ALL: [Classical; 9] = [
        Classical::Gzip { level: 9 },
        Classical::Xz { preset: 6 },
        Classical::Xz { preset: 9 },
        Classical::Zstd { level: 19 },
        Classical::Brotli { quality: 11 },
        Classical::Png,
        Classical::Flac,
        Classical::Pcodec,
        Classical::Fpzip,
    ];

    /// The name used on the command line (`gzip`, `xz9`, ...).
    pub fn name(self) -> String {
        match self {
            Classical::Gzip { level: 9 } => "gzip".into(),
            Classical::Gzip { level } => format!("gzip{level}"),
            Classical::Xz { preset } => format!("xz{preset}"),
            Classical::Zstd { level: 19 } => "zstd".into(),
            Classical::Zstd { level } => format!("zstd{level}"),
            Classical::Brotli { quality: 11 } => "brotli".into(),
            Classical::Brotli { quality } => format!("brotli{quality}"),
            Classical::Png => "png".into(),
            Classical::Flac => "flac".into(),
            Classical::Pcodec => "pcodec".into(),
            Classical::Fpzip => "fpzip".into(),
        }
    }

    /// Looks a codec up by [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether this build can run the codec (fpzip needs the `fpzip` feature).
    pub fn available(self) -> Result<()> {
        match self {
            #[cfg(not(feature = "fpzip"))]
            Classical::Fpzip => Err(Error::Unsupported(
                "fpzip: this build has no fpzip; rebuild with `--features fpzip` (needs a C++ compiler)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the decoder is safe on hostile input. fpzip's C API reads its input without a
    /// length, and a corrupt stream can make it read without bound.
    pub fn safe_on_untrusted_input(self) -> bool {
        !matches!(self, Classical::Fpzip)
    }

    fn check_params(self) -> Result<()> {
        let ok = match self {
            Classical::Gzip { level } => level <= 9,
            Classical::Xz { preset } => preset <= 9,
            Classical::Zstd { level } => (1..=22).contains(&level),
            Classical::Brotli { quality } => quality <= 11,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "{self:?} has parameters out of range"
            )))
        }
    }

    /// Encodes one block.
    pub fn encode_block(self, dtype: DType, data: &[u8]) -> Result<Vec<u8>> {
        self.check_params()?;
        self.available()?;
        match self {
            Classical::Gzip { level } => lz::gzip_encode(data, level),
            Classical::Xz { preset } => lz::xz_encode(data, preset),
            Classical::Zstd { level } => lz::zstd_encode(data, level),
            Classical::Brotli { quality } => lz::brotli_encode(data, quality),
            Classical::Png => media::png_encode(data),
            Classical::Flac => media::flac_encode(data),
            Classical::Pcodec => pcodec::encode(dtype, data),
            #[cfg(feature = "fpzip")]
            Classical::Fpzip => fpzip::encode(dtype, data),
            #[cfg(not(feature = "fpzip"))]
            Classical::Fpzip => unreachable!("available() refused it"),
        }
    }

    /// Decodes one block of exactly `len` bytes.
    pub fn decode_block(self, dtype: DType, coded: &[u8], len: usize) -> Result<Vec<u8>> {
        self.check_params()?;
        self.available()?;
        let out = match self {
            Classical::Gzip { .. } => lz::gzip_decode(coded, len),
            Classical::Xz { .. } => lz::xz_decode(coded, len),
            Classical::Zstd { .. } => lz::zstd_decode(coded, len),
            Classical::Brotli { .. } => lz::brotli_decode(coded, len),
            Classical::Png => media::png_decode(coded, len),
            Classical::Flac => media::flac_decode(coded, len),
            Classical::Pcodec => pcodec::decode(dtype, coded, len),
            #[cfg(feature = "fpzip")]
            Classical::Fpzip => fpzip::decode(dtype, coded, len),
            #[cfg(not(feature = "fpzip"))]
            Classical::Fpzip => unreachable!("available() refused it"),
        }?;
        if out.len() != len {
            return Err(Error::corrupt(format!(
                "{} stream decoded to {} bytes, expected {len}",
                self.name(),
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Reads at most `len + 1` bytes from a decoder, so a lying stream cannot make it allocate
/// more than the block it claims to be.
pub(crate) fn read_exact_len(mut r: impl std::io::Read, len: usize, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(len.min(1 << 26));
    (&mut r)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt(format!("{what} stream: {e}")))?;
    if out.len() != len {
        return Err(Error::corrupt(format!(
            "{what} stream holds {}{} bytes, expected {len}",
            out.len(),
            if out.len() > len { "+" } else { "" }
        )));
    }
    Ok(out)
}

/// A classical codec as a [`Codec`]: one stream per non-empty block.
#[derive(Debug, Clone, Copy)]
pub struct ClassicalCodec(pub Classical);

impl Codec for ClassicalCodec {
    fn spec(&self) -> CodecSpec {
        CodecSpec::Classical(self.0)
    }

    fn encode(
        &mut self,
        blocks: &[Block<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<EncodedStream>>> {
        self.0.available()?;
        blocks
            .iter()
            .map(|b| {
                let n = b.data.len() as u64;
                if n == 0 {
                    return Ok(vec![]);
                }
                let bytes = self.0.encode_block(b.dtype, b.data)?;
                progress(n);
                Ok(vec![EncodedStream::covering(bytes, n)])
            })
            .collect()
    }

    fn decode(
        &mut self,
        blocks: &[CodedBlock<'_>],
        progress: &Progress<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        blocks
            .iter()
            .map(|b| {
                let out = match b.streams.first() {
                    None => Vec::new(),
                    Some((_, s)) => self.0.decode_block(b.dtype, s, b.len as usize)?,
                };
                progress(b.len);
                Ok(out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usable() -> Vec<Classical> {
        Classical::ALL
            .into_iter()
            .filter(|c| c.available().is_ok())
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for c in Classical::ALL {
            assert_eq!(Classical::from_name(&c.name()), Some(c));
        }
    }

    #[test]
    fn special_values_round_trip() {
        let f: Vec<u8> = [
            f32::NAN,
            f32::from_bits(0x7fa0_0001),
            -0.0,
            f32::INFINITY,
            1e-42,
            -2.5,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
        for c in usable() {
            for (dtype, data) in [
                (DType::F32, &f[..]),
                (DType::U8, &b"{\"a\":1}"[..]),
                (DType::F64, &f[..16]),
                (DType::BF16, &f[..12]),
            ] {
                let coded = c.encode_block(dtype, data).unwrap();
                assert_eq!(
                    c.decode_block(dtype, &coded, data.len()).unwrap(),
                    data,
                    "{c:?} {dtype}"
                );
            }
        }
    }

    #[test]
    fn wrong_length_is_refused() {
        let data = vec![7u8; 4000];
        for c in usable() {
            let coded = c.encode_block(DType::F32, &data).unwrap();
            assert!(c.decode_block(DType::F32, &coded, 3996).is_err(), "{c:?}");
            assert!(c.decode_block(DType::F32, &coded, 4004).is_err(), "{c:?}");
        }
    }

    /// Lengths just past a multiple of FLAC's 4,096-sample block once left a last block
    /// shorter than 16 samples, which decoders reject (found by `lmgc bench` on a top-k payload).
    #[test]
    fn lengths_around_block_boundaries_round_trip() {
        for len in [
            4095,
            4096,
            4097,
            4100,
            4111,
            4112,
            4113,
            8192 + 15,
            3 * 4096 + 1,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for c in usable() {
                let coded = c.encode_block(DType::U8, &data).unwrap();
                assert_eq!(
                    c.decode_block(DType::U8, &coded, len).unwrap(),
                    data,
                    "{c:?} {len}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_block_round_trips(words in prop::collection::vec(any::<u32>(), 1..400)) {
            let data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            for c in usable() {
                let coded = c.encode_block(DType::F32, &data).unwrap();
                prop_assert_eq!(c.decode_block(DType::F32, &coded, data.len()).unwrap(), data.clone(), "{:?}", c);
            }
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), len in 0usize..64) {
            for c in usable().into_iter().filter(|c| c.safe_on_untrusted_input()) {
                let _ = c.decode_block(DType::F32, &bytes, len * 4);
            }
        }
    }
}
