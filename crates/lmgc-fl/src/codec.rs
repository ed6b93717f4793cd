//! The boundary between the transport and the codecs: what each side can encode and decode.
//!
//! lmgc-fl moves `.lmgc` containers of safetensors files. Which codecs exist (the LLM ones
//! need a model and a backend) is the front end's business: it hands the transport an
//! [`UpdateCodecs`]. [`ClassicalCodecs`] covers the codecs that need no model; the `lmgc`
//! binary adds `lm`, `auto` and `context`.

use std::time::Instant;

use lmgc_core::codec::{BytegroupCodec, StoreCodec};
use lmgc_core::container::{self, DecodeLimits};
use lmgc_core::io::{Format, SourceFile, safetensors_bytes};
use lmgc_core::{Gradient, container::Container};

use crate::wire::CodecOffer;
use crate::{Error, Result};

/// The codecs one side of the transport runs. Implementations are shared between tasks and
/// called from blocking threads; an LLM codec serializes access to its model inside.
pub trait UpdateCodecs: Send + Sync {
    /// The codecs this side can encode and decode, most preferred first.
    fn offers(&self) -> Vec<CodecOffer>;
    /// Compresses a tensor file with `codec` (one of [`UpdateCodecs::offers`]).
    fn encode(&self, codec: &CodecOffer, source: &SourceFile) -> Result<Vec<u8>>;
    /// Decompresses a container of any offered codec; the container's checksum is verified.
    fn decode(&self, container: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>>;
}

/// `bytegroup` and `store`: no model needed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassicalCodecs;

impl UpdateCodecs for ClassicalCodecs {
    fn offers(&self) -> Vec<CodecOffer> {
        vec![
            CodecOffer::classical("bytegroup"),
            CodecOffer::classical("store"),
        ]
    }

    fn encode(&self, codec: &CodecOffer, source: &SourceFile) -> Result<Vec<u8>> {
        match codec.name.as_str() {
            "bytegroup" => Ok(container::compress(source, &mut BytegroupCodec, &|_| {})?),
            "store" => Ok(container::compress(source, &mut StoreCodec, &|_| {})?),
            other => Err(Error::Config(format!(
                "codec {other:?} is not built into the transport; use bytegroup or store"
            ))),
        }
    }

    fn decode(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>> {
        let c: Container<'_> = container::parse(bytes, limits)?;
        if c.header.codec.prior().is_some() {
            return Err(Error::Config(
                "the update was coded with a prior (an LLM codec) this side does not have".into(),
            ));
        }
        Ok(c.decode(None, &|_| {})?)
    }
}

/// A model as broadcast: a `bytegroup` container of its safetensors file (lossless and
/// fast on both sides, whatever codec carries the updates).
pub fn pack_model(model: &Gradient) -> Result<Vec<u8>> {
    let file = safetensors_bytes(model);
    let source = SourceFile::parse(Format::Safetensors, &file)?;
    Ok(container::compress(&source, &mut BytegroupCodec, &|_| {})?)
}

/// Unpacks a broadcast model, at most `max_bytes` of safetensors.
pub fn unpack_model(bytes: &[u8], max_bytes: u64) -> Result<Gradient> {
    let limits = DecodeLimits {
        max_output: max_bytes,
        trusted_input: false,
    };
    let file = ClassicalCodecs.decode(bytes, &limits)?;
    Ok(SourceFile::parse(Format::Safetensors, &file)?.gradient)
}

/// An update encoded for sending, with what the offer reports about it.
#[derive(Debug, Clone)]
pub struct EncodedUpdate {
    /// The container.
    pub bytes: Vec<u8>,
    /// Bytes of the safetensors file.
    pub raw_len: u64,
    /// Seconds spent compressing.
    pub encode_secs: f64,
}

/// Serializes `update` as safetensors and compresses it with `codec`.
pub fn encode_update(
    codecs: &dyn UpdateCodecs,
    codec: &CodecOffer,
    update: &Gradient,
) -> Result<EncodedUpdate> {
    let start = Instant::now();
    let file = safetensors_bytes(update);
    let source = SourceFile::parse(Format::Safetensors, &file)?;
    let bytes = codecs.encode(codec, &source)?;
    Ok(EncodedUpdate {
        bytes,
        raw_len: file.len() as u64,
        encode_secs: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmgc_core::Tensor;

    #[test]
    fn models_and_updates_round_trip() {
        let g = Gradient::new(vec![Tensor::from_f32("w", &[1.0, -2.5, 0.0, 1e-30])]).unwrap();
        let packed = pack_model(&g).unwrap();
        assert_eq!(unpack_model(&packed, 1 << 20).unwrap(), g);
        assert!(unpack_model(&packed, 8).is_err(), "the size limit holds");
        assert!(unpack_model(&packed[..packed.len() - 1], 1 << 20).is_err());
        for c in ClassicalCodecs.offers() {
            let e = encode_update(&ClassicalCodecs, &c, &g).unwrap();
            let raw = ClassicalCodecs
                .decode(&e.bytes, &DecodeLimits::default())
                .unwrap();
            assert_eq!(raw.len() as u64, e.raw_len);
        }
        assert!(
            ClassicalCodecs
                .encode(
                    &CodecOffer::classical("lm"),
                    &SourceFile::parse(Format::Safetensors, &safetensors_bytes(&g)).unwrap()
                )
                .is_err()
        );
    }
}
