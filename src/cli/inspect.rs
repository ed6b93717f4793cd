use anyhow::Context;
use lmgc::core::Error;
use lmgc::core::codec::CodecSpec;
use lmgc::core::container::{self, DecodeLimits};
use serde_json::json;

use super::{InspectArgs, Output};

pub fn run(a: InspectArgs, out: Output) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.input).map_err(|e| Error::Io {
        path: a.input.clone(),
        source: e,
    })?;
    // Inspecting decodes nothing, so any declared size is fine to show.
    let c = container::parse(
        &bytes,
        &DecodeLimits {
            max_output: u64::MAX,
            trusted_input: true,
        },
    )
    .with_context(|| format!("reading {}", a.input.display()))?;
    let h = &c.header;
    let checksum: String = h.checksum.iter().map(|b| format!("{b:02x}")).collect();
    // Prior codecs: a stream (lane) is a run of windows of `window - 1` tokens.
    let per_window = h.codec.prior().map(|p| u64::from(p.window.max(2) - 1));
    let blocks: Vec<serde_json::Value> = h
        .blocks
        .iter()
        .map(|b| {
            let coded: u64 = b.streams.iter().map(|s| s.coded_len).sum();
            let name = b.tensor.map(|i| h.tensors[i as usize].name.clone());
            let values = b.len / b.dtype.width() as u64;
            json!({
                "tensor": name, "dtype": b.dtype.to_string(), "bytes": b.len, "coded_bytes": coded,
                "ratio": coded as f64 / b.len.max(1) as f64,
                "bits_per_value": if values > 0 { Some(coded as f64 * 8.0 / values as f64) } else { None },
                // An `auto` block's first entry is its selector; only a prior-coded block's
                // other streams hold windows.
                "streams": b.streams.iter().enumerate().map(|(i, s)| json!({
                    "coded_bytes": s.coded_len, "symbols": s.symbols, "span": s.span,
                    "windows": per_window
                        .filter(|_| match &h.codec {
                            CodecSpec::Auto(_) => i > 0 && b.streams[0].symbols == lmgc::core::auto_codec::PRIOR,
                            // A hybrid block's last streams are bytegroup chunks.
                            CodecSpec::Hybrid(_) => i + lmgc::core::hybrid::tail_lengths(b.dtype, b.len).len() < b.streams.len(),
                            _ => true,
                        })
                        .map(|w| s.symbols.div_ceil(w)),
                    "bits_per_symbol": if s.symbols > 0 { Some(s.coded_len as f64 * 8.0 / s.symbols as f64) } else { None },
                    "chars_per_symbol": if s.symbols > 0 { Some(s.span as f64 / s.symbols as f64) } else { None },
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let prior = h.codec.prior().map(|p| {
        json!({
            "fingerprint": p.prior.to_string(), "serializer": p.serializer.to_string(), "window": p.window,
            "precision": p.precision.bits(), "mask": p.mask,
        })
    });
    if out.json {
        super::print_json(&json!({
            "file": a.input, "file_bytes": c.file_len, "header_bytes": c.header_bytes, "version": container::VERSION,
            "codec": h.codec.name(), "prior": prior, "source_format": h.source.name(), "payload_bytes": h.payload_len,
            "ratio": c.file_len as f64 / h.payload_len.max(1) as f64, "checksum_xxh3_128": checksum,
            "tensors": h.tensors.len(), "blocks": blocks,
        }));
        return Ok(());
    }
    println!(
        "file      {} ({} bytes, header {} bytes)",
        a.input.display(),
        c.file_len,
        c.header_bytes
    );
    println!("format    .lmgc v{}", container::VERSION);
    println!("codec     {}", h.codec.name());
    if let Some(p) = &prior {
        println!(
            "prior     {}",
            p["fingerprint"].as_str().unwrap_or_default()
        );
        println!(
            "          serializer {}, window {}, precision {}, mask {}",
            p["serializer"].as_str().unwrap_or_default(),
            p["window"],
            p["precision"],
            p["mask"]
        );
    }
    println!(
        "payload   {} file, {} bytes, xxh3-128 {checksum}; {} tensors; whole file {:.2}% of raw",
        h.source.name(),
        h.payload_len,
        h.tensors.len(),
        c.file_len as f64 * 100.0 / h.payload_len.max(1) as f64
    );
    println!();
    println!(
        "{:<40} {:>6} {:>12} {:>12} {:>8} {:>10} {:>8}",
        "block", "dtype", "bytes", "coded", "ratio", "bits/val", "streams"
    );
    for b in &blocks {
        let name = b["tensor"].as_str().unwrap_or("(non-tensor bytes)");
        println!(
            "{:<40} {:>6} {:>12} {:>12} {:>7.2}% {:>10} {:>8}",
            truncate(name, 40),
            b["dtype"].as_str().unwrap_or_default(),
            b["bytes"].as_u64().unwrap_or_default(),
            b["coded_bytes"].as_u64().unwrap_or_default(),
            b["ratio"].as_f64().unwrap_or_default() * 100.0,
            b["bits_per_value"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.3}")),
            b["streams"].as_array().map_or(0, Vec::len),
        );
        if a.streams {
            for (i, s) in b["streams"].as_array().into_iter().flatten().enumerate() {
                let windows = s["windows"]
                    .as_u64()
                    .map_or(String::new(), |w| format!("{w:>4} windows, "));
                println!(
                    "    stream {i:>5}: {windows}{:>10} coded bytes, {:>10} symbols over {:>10} bytes/chars, {} bits/symbol",
                    s["coded_bytes"].as_u64().unwrap_or_default(),
                    s["symbols"].as_u64().unwrap_or_default(),
                    s["span"].as_u64().unwrap_or_default(),
                    s["bits_per_symbol"]
                        .as_f64()
                        .map_or("-".into(), |v| format!("{v:.3}"))
                );
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}
