//! `lmgc bench`: every codec on the same files, one table.
//!
//! For each file and codec: the size of the complete `.lmgc` container (every header and
//! length field counted) in % of the file, bits per tensor value, encode and decode
//! throughput, and a byte-for-byte round-trip check; a codec that fails any step is reported
//! as `FAILED` with the reason, never with a number. A reference line gives the order-0
//! entropy of each byte plane of the tensor data, the floor of any codec that codes each
//! byte plane value by value without context. Throughput excludes a codec's setup (a prior
//! codec's model load), which the JSON reports as `setup_seconds`.
//!
//! With `chunk` set, a second measurement reproduces the LM-GC paper's accounting: the tensor
//! data is cut into chunks of that many bytes (within tensors), each chunk is coded on its own,
//! and the sizes of all chunks' streams (each codec's own framing included, no `.lmgc`
//! container) are added up.

use std::time::Instant;

use lmgc_core::codec::{Block, CodedBlock};
use lmgc_core::container::{self, DecodeLimits};
use lmgc_core::io::SourceFile;
use lmgc_core::prior::Prior;
use lmgc_core::{DType, Result};
use serde::Serialize;

use crate::codecs::{CodecChoice, CodecOptions, prior_for};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Codecs, in table order.
    pub codecs: Vec<CodecChoice>,
    /// Their parameters.
    pub codec_options: CodecOptions,
    /// Also measure the paper's chunked accounting with chunks of this many bytes.
    pub chunk: Option<usize>,
    /// Skip decoding (sizes and ideal lengths only): for ablations of slow prior codecs whose
    /// round trip is proven elsewhere. The table says so in its round-trip column.
    pub encode_only: bool,
}

/// Outcome of one measurement.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Round trip was exact.
    Ok {
        /// Compressed bytes, all headers included.
        bytes: u64,
        /// `bytes` over the raw size.
        ratio: f64,
        /// Bits per tensor value.
        bits_per_value: f64,
        /// Raw MB (10^6 bytes) per second, compressing.
        encode_mb_s: f64,
        /// Raw MB per second, decompressing (`None`: not decoded, `--encode-only`).
        decode_mb_s: Option<f64>,
        /// Ideal code length in bits per value (`-Σ log2 p` under the codec's own tables, no
        /// headers or coder overhead), for codecs that model probabilities explicitly.
        #[serde(skip_serializing_if = "Option::is_none")]
        ideal_bits_per_value: Option<f64>,
        /// Seconds spent building the encoding codec outside the timed coding: a prior
        /// codec's model load (the decoder's load is likewise untimed). `None` in the chunked
        /// accounting, which times inside one setup too.
        #[serde(skip_serializing_if = "Option::is_none")]
        setup_seconds: Option<f64>,
    },
    /// Something failed: the codec errored or decoded to different bytes.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// One codec on one file.
#[derive(Debug, Clone, Serialize)]
pub struct CodecResult {
    /// Codec name.
    pub codec: String,
    /// Whole-file measurement.
    pub whole: Outcome,
    /// Chunked accounting, when asked for.
    pub chunked: Option<Outcome>,
}

/// Order-0 entropy of the byte planes of one dtype's tensor data.
#[derive(Debug, Clone, Serialize)]
pub struct PlaneEntropy {
    /// The dtype.
    pub dtype: String,
    /// Bytes of tensor data of this dtype.
    pub bytes: u64,
    /// Entropy of each byte plane in bits, most significant byte first.
    pub bits_per_plane: Vec<f64>,
}

/// Everything measured on one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// The file.
    pub file: String,
    /// Its size.
    pub raw_bytes: u64,
    /// Tensor data bytes (what the chunked accounting covers).
    pub tensor_bytes: u64,
    /// Tensor values.
    pub values: u64,
    /// Per-dtype plane entropies.
    pub entropy: Vec<PlaneEntropy>,
    /// The entropy floor over all tensor data, in % of the file (non-tensor bytes at 8 bits).
    pub entropy_ratio: f64,
    /// One row per codec.
    pub results: Vec<CodecResult>,
}

fn mb_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}

/// Order-0 entropy of each byte plane, per dtype.
pub fn plane_entropy(source: &SourceFile) -> Vec<PlaneEntropy> {
    let mut groups: Vec<(DType, u64, Vec<[u64; 256]>)> = Vec::new();
    for t in source.gradient.tensors() {
        let w = t.dtype().width();
        let idx = match groups.iter().position(|g| g.0 == t.dtype()) {
            Some(i) => i,
            None => {
                groups.push((t.dtype(), 0, vec![[0; 256]; w]));
                groups.len() - 1
            }
        };
        let g = &mut groups[idx];
        g.1 += t.data().len() as u64;
        for element in t.data().chunks_exact(w) {
            for (plane, &b) in element.iter().rev().enumerate() {
                g.2[plane][b as usize] += 1;
            }
        }
    }
    groups
        .into_iter()
        .map(|(dtype, bytes, hists)| PlaneEntropy {
            dtype: dtype.to_string(),
            bytes,
            bits_per_plane: hists
                .iter()
                .map(|h| {
                    let n: u64 = h.iter().sum();
                    // `+ 0.0` turns the -0.0 of a constant plane into 0.0.
                    h.iter()
                        .filter(|&&c| c > 0)
                        .map(|&c| {
                            let p = c as f64 / n as f64;
                            -p * p.log2()
                        })
                        .sum::<f64>()
                        + 0.0
                })
                .collect(),
        })
        .collect()
}

fn whole_file(
    source: &SourceFile,
    payload: &[u8],
    values: u64,
    choice: CodecChoice,
    opts: &CodecOptions,
    encode_only: bool,
) -> Outcome {
    let run = || -> Result<Outcome> {
        // The codec's setup (a model's load) is not timed, on either side: a sender and a
        // receiver that code every round hold their model, so what they see per update is the
        // coding. `setup_seconds` says what the setup cost.
        let t0 = Instant::now();
        let (packed, ideal_bits, encode) = choice.with(opts, |codec| {
            let t = Instant::now();
            let (packed, ideal) = container::compress_measured(source, codec, &|_| {})?;
            Ok((packed, ideal, t.elapsed().as_secs_f64()))
        })?;
        let setup_seconds = (t0.elapsed().as_secs_f64() - encode).max(0.0);
        let raw = payload.len() as u64;
        let ok = |decode_mb_s| Outcome::Ok {
            bytes: packed.len() as u64,
            ratio: packed.len() as f64 / raw.max(1) as f64,
            bits_per_value: packed.len() as f64 * 8.0 / values.max(1) as f64,
            encode_mb_s: mb_s(raw, encode),
            decode_mb_s,
            ideal_bits_per_value: ideal_bits.map(|b| b / values.max(1) as f64),
            setup_seconds: Some(setup_seconds),
        };
        if encode_only {
            return Ok(ok(None));
        }
        // The bench made this file itself, so every codec may decode it.
        let limits = DecodeLimits {
            max_output: payload.len() as u64,
            trusted_input: true,
        };
        let parsed = container::parse(&packed, &limits)?;
        // A prior codec decodes with a freshly loaded prior, as a receiver would (loading is
        // not timed).
        let mut prior = match parsed.header.codec.prior() {
            Some(spec) => Some(prior_for(
                &spec.prior,
                Some(&opts.model),
                opts.backend,
                &*opts.say,
            )?),
            None => None,
        };
        let t1 = Instant::now();
        let restored = parsed.decode_batched(
            prior.as_mut().map(|p| &mut **p as &mut dyn Prior),
            opts.batch,
            &|_| {},
        )?;
        let decode = t1.elapsed().as_secs_f64();
        if restored != payload {
            return Ok(Outcome::Failed {
                reason: "decoded bytes differ from the input".into(),
            });
        }
        Ok(ok(Some(mb_s(raw, decode))))
    };
    run().unwrap_or_else(|e| Outcome::Failed {
        reason: e.to_string(),
    })
}

fn chunked(
    source: &SourceFile,
    chunk: usize,
    values: u64,
    choice: CodecChoice,
    opts: &CodecOptions,
) -> Outcome {
    let blocks: Vec<Block<'_>> = source
        .gradient
        .tensors()
        .iter()
        .flat_map(|t| {
            // Whole elements per chunk.
            let step = (chunk / t.dtype().width()).max(1) * t.dtype().width();
            t.data().chunks(step).map(move |data| Block {
                dtype: t.dtype(),
                data,
            })
        })
        .collect();
    let raw: u64 = blocks.iter().map(|b| b.data.len() as u64).sum();
    let run = || -> Result<Outcome> {
        choice.with(opts, |codec| {
            let t0 = Instant::now();
            let encoded = codec.encode(&blocks, &|_| {})?;
            let encode = t0.elapsed().as_secs_f64();
            let bytes: u64 = encoded.iter().flatten().map(|s| s.bytes.len() as u64).sum();
            let ideal: Option<f64> = encoded.iter().flatten().map(|s| s.ideal_bits).sum();
            let coded: Vec<CodedBlock<'_>> = blocks
                .iter()
                .zip(&encoded)
                .map(|(b, streams)| CodedBlock {
                    dtype: b.dtype,
                    len: b.data.len() as u64,
                    streams: streams.iter().map(|s| (s.entry, &s.bytes[..])).collect(),
                })
                .collect();
            let t1 = Instant::now();
            let decoded = codec.decode(&coded, &|_| {})?;
            let decode = t1.elapsed().as_secs_f64();
            if decoded.iter().zip(&blocks).any(|(d, b)| d != b.data)
                || decoded.len() != blocks.len()
            {
                return Ok(Outcome::Failed {
                    reason: "a chunk decoded to different bytes".into(),
                });
            }
            Ok(Outcome::Ok {
                bytes,
                ratio: bytes as f64 / raw.max(1) as f64,
                bits_per_value: bytes as f64 * 8.0 / values.max(1) as f64,
                encode_mb_s: mb_s(raw, encode),
                decode_mb_s: Some(mb_s(raw, decode)),
                ideal_bits_per_value: ideal.map(|b| b / values.max(1) as f64),
                setup_seconds: None,
            })
        })
    };
    run().unwrap_or_else(|e| Outcome::Failed {
        reason: e.to_string(),
    })
}

/// Benchmarks one parsed file. `tick` is called after each codec.
pub fn bench_file(
    name: &str,
    source: &SourceFile,
    opts: &BenchOptions,
    tick: &dyn Fn(&str),
) -> FileResult {
    let payload = source.to_bytes();
    let values: u64 = source.gradient.tensors().iter().map(|t| t.numel()).sum();
    let entropy = plane_entropy(source);
    let tensor_bytes = source.gradient.data_len();
    let entropy_bits: f64 = entropy
        .iter()
        .map(|e| {
            e.bits_per_plane.iter().sum::<f64>() * (e.bytes as f64 / e.bits_per_plane.len() as f64)
        })
        .sum::<f64>()
        + (payload.len() as u64 - tensor_bytes) as f64 * 8.0;
    let results = opts
        .codecs
        .iter()
        .map(|&choice| {
            tick(&choice.to_string());
            CodecResult {
                codec: choice.to_string(),
                whole: whole_file(
                    source,
                    &payload,
                    values,
                    choice,
                    &opts.codec_options,
                    opts.encode_only,
                ),
                chunked: opts
                    .chunk
                    .map(|c| chunked(source, c, values, choice, &opts.codec_options)),
            }
        })
        .collect();
    FileResult {
        file: name.to_owned(),
        raw_bytes: payload.len() as u64,
        tensor_bytes,
        values,
        entropy_ratio: entropy_bits / 8.0 / payload.len().max(1) as f64,
        entropy,
        results,
    }
}

fn cells(o: &Outcome) -> [String; 5] {
    match o {
        Outcome::Ok {
            ratio,
            bits_per_value,
            encode_mb_s,
            decode_mb_s,
            ideal_bits_per_value,
            ..
        } => [
            format!("{:.2}%", ratio * 100.0),
            match ideal_bits_per_value {
                Some(ideal) => format!("{bits_per_value:.2} (ideal {ideal:.2})"),
                None => format!("{bits_per_value:.2}"),
            },
            speed(*encode_mb_s),
            decode_mb_s.map_or("-".into(), speed),
            if decode_mb_s.is_some() {
                "ok".into()
            } else {
                "not run (--encode-only)".into()
            },
        ],
        Outcome::Failed { reason } => [
            "FAILED".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("FAILED: {reason}"),
        ],
    }
}

/// The results as markdown tables, one per file.
pub fn markdown(results: &[FileResult]) -> String {
    let mut out = String::new();
    for f in results {
        out.push_str(&format!(
            "**{}**: {} bytes, {} values\n\n",
            f.file, f.raw_bytes, f.values
        ));
        let chunked = f.results.iter().any(|r| r.chunked.is_some());
        out.push_str("| codec | size | bits/value | encode MB/s | decode MB/s | round trip |");
        if chunked {
            out.push_str(" chunked size | chunked round trip |");
        }
        out.push('\n');
        out.push_str("|---|---|---|---|---|---|");
        if chunked {
            out.push_str("---|---|");
        }
        out.push('\n');
        for r in &f.results {
            let c = cells(&r.whole);
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |",
                r.codec, c[0], c[1], c[2], c[3], c[4]
            ));
            if let Some(ch) = &r.chunked {
                let c = cells(ch);
                out.push_str(&format!(" {} | {} |", c[0], c[4]));
            }
            out.push('\n');
        }
        let planes: Vec<String> = f
            .entropy
            .iter()
            .map(|e| {
                let bits: Vec<String> =
                    e.bits_per_plane.iter().map(|b| format!("{b:.2}")).collect();
                format!("{} planes (MSB first) {} bits", e.dtype, bits.join(" / "))
            })
            .collect();
        out.push_str(&format!(
            "| *order-0 byte-plane entropy* | {:.2}% | {:.2} | | | {} |{}\n\n",
            f.entropy_ratio * 100.0,
            f.entropy_ratio * 8.0 * f.raw_bytes as f64 / f.values.max(1) as f64,
            planes.join("; "),
            if chunked { " | |" } else { "" }
        ));
    }
    out
}

/// MB/s with two decimals, or three significant digits below 0.1 (the LLM codec runs at
/// kilobytes per second on a CPU).
fn speed(mb_s: f64) -> String {
    if mb_s >= 0.1 || mb_s == 0.0 {
        format!("{mb_s:.2}")
    } else {
        format!("{mb_s:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmgc_core::io::{Format, safetensors_bytes};
    use lmgc_core::{Gradient, Tensor};

    fn sample() -> SourceFile {
        let v: Vec<f32> = (0..5000)
            .map(|i| ((i as f32) * 0.01).sin() * 1e-3)
            .collect();
        let g = Gradient::new(vec![Tensor::from_f32("w", &v)]).unwrap();
        SourceFile::parse(Format::Safetensors, &safetensors_bytes(&g)).unwrap()
    }

    #[test]
    fn every_available_codec_round_trips_and_entropy_is_sane() {
        let src = sample();
        let codecs: Vec<CodecChoice> = CodecChoice::all()
            .into_iter()
            .filter(|c| !matches!(c, CodecChoice::Classical(k) if k.available().is_err()))
            .collect();
        let opts = BenchOptions {
            codecs: codecs.clone(),
            codec_options: CodecOptions {
                window: 256,
                ..Default::default()
            },
            chunk: Some(512),
            encode_only: false,
        };
        let r = bench_file("sample", &src, &opts, &|_| {});
        assert_eq!(r.results.len(), codecs.len());
        for c in &r.results {
            assert!(
                matches!(c.whole, Outcome::Ok { .. }),
                "{}: {:?}",
                c.codec,
                c.whole
            );
            assert!(
                matches!(c.chunked, Some(Outcome::Ok { .. })),
                "{}: {:?}",
                c.codec,
                c.chunked
            );
        }
        // The prior codec reports its ideal code length, below what it actually wrote.
        let context = r.results.iter().find(|c| c.codec == "context").unwrap();
        match &context.whole {
            Outcome::Ok {
                bits_per_value,
                ideal_bits_per_value: Some(ideal),
                ..
            } => assert!(
                *ideal > 0.0 && ideal < bits_per_value,
                "{ideal} {bits_per_value}"
            ),
            other => panic!("context: {other:?}"),
        }
        assert!(r.entropy_ratio > 0.0 && r.entropy_ratio < 1.0);
        assert_eq!(r.entropy[0].bits_per_plane.len(), 4);
        let md = markdown(&[r]);
        assert!(
            md.contains("| bytegroup |") && md.contains("order-0 byte-plane entropy"),
            "{md}"
        );
    }

    #[test]
    fn a_failing_codec_is_failed_not_a_number() {
        let src = sample();
        let r = bench_file(
            "sample",
            &src,
            &BenchOptions {
                codecs: vec![CodecChoice::Context],
                codec_options: CodecOptions {
                    window: 1,
                    ..Default::default()
                },
                chunk: None,
                encode_only: false,
            },
            &|_| {},
        );
        assert!(
            matches!(&r.results[0].whole, Outcome::Failed { reason } if reason.contains("window"))
        );
        assert!(markdown(&[r]).contains("FAILED"));
    }
}
