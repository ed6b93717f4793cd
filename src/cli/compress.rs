use std::time::Instant;

use anyhow::Context;
use lmgc::codecs::CodecChoice;
use lmgc::core::io::{Format, SourceFile};
use lmgc::core::{container, fsutil};
use serde_json::json;

use super::{CompressArgs, Output, progress};

pub fn run(a: CompressArgs, out: Output) -> anyhow::Result<()> {
    let format = match a.input_format {
        Some(f) => f.into(),
        None => Format::from_path(&a.input)?,
    };
    let output = a.output.clone().unwrap_or_else(|| {
        let mut p = a.input.clone().into_os_string();
        p.push(".lmgc");
        p.into()
    });
    // Options first: a typo should not cost reading a large file.
    let choice: CodecChoice = a.codec.parse()?;
    let options = a.codec_args.options(out.quiet)?;
    let source = SourceFile::read(&a.input, format)?;
    let started = Instant::now();
    let pb = progress::bar(source.len(), "compress", out);
    let tick = |n: u64| pb.inc(n);
    let packed = choice.with(&options, |codec| container::compress(&source, codec, &tick))?;
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    fsutil::write_atomic(&output, &packed)
        .with_context(|| format!("writing {}", output.display()))?;
    let raw = source.len();
    // Our own output parses; the token count is for the summary.
    let tokens = container::parse(
        &packed,
        &container::DecodeLimits {
            max_output: u64::MAX,
            trusted_input: true,
        },
    )
    .ok()
    .and_then(|c| progress::prior_tokens(&c.header));
    let values: u64 = source.gradient.tensors().iter().map(|t| t.numel()).sum();
    let ratio = packed.len() as f64 / raw.max(1) as f64;
    if out.json {
        super::print_json(&json!({
            "input": a.input, "output": output, "codec": choice.to_string(),
            "raw_bytes": raw, "compressed_bytes": packed.len(), "ratio": ratio,
            "bits_per_value": if values > 0 { Some(packed.len() as f64 * 8.0 / values as f64) } else { None },
            "seconds": seconds, "mb_per_s": raw as f64 / 1e6 / seconds.max(1e-9),
            "tokens": tokens, "tokens_per_s": tokens.map(|t| t as f64 / seconds.max(1e-9)),
        }));
    } else if !out.quiet {
        eprintln!(
            "{} -> {}: {raw} -> {} bytes ({:.2}%), {:.1} MB/s{}",
            a.input.display(),
            output.display(),
            packed.len(),
            ratio * 100.0,
            raw as f64 / 1e6 / seconds.max(1e-9),
            tokens.map_or(String::new(), |t| format!(
                ", {t} tokens at {:.0} tokens/s",
                t as f64 / seconds.max(1e-9)
            ))
        );
    }
    Ok(())
}
