use std::time::Instant;

use anyhow::Context;
use lmgc::codecs::{prior_for, report_profile};
use lmgc::core::container::{self, DecodeLimits};
use lmgc::core::prior::Prior;
use lmgc::core::{Error, fsutil};
use serde_json::json;

use super::{DecompressArgs, Output, progress};

pub fn run(a: DecompressArgs, out: Output) -> anyhow::Result<()> {
    let output = match &a.output {
        Some(p) => p.clone(),
        None => match a.input.to_str().and_then(|s| s.strip_suffix(".lmgc")) {
            Some(stem) if !stem.is_empty() => stem.into(),
            _ => anyhow::bail!(
                "cannot derive an output name from {}; pass -o",
                a.input.display()
            ),
        },
    };
    let bytes = std::fs::read(&a.input).map_err(|e| Error::Io {
        path: a.input.clone(),
        source: e,
    })?;
    let started = Instant::now();
    let parsed = container::parse(
        &bytes,
        &DecodeLimits {
            max_output: a.max_output,
            trusted_input: a.trust_input,
        },
    )
    .with_context(|| format!("reading {}", a.input.display()))?;
    // A prior codec other than the built-in one needs its model: the one --model names, or the
    // known model the file's fingerprint names (fetched if missing).
    let mut prior = match parsed.header.codec.prior() {
        Some(spec) => Some(prior_for(
            &spec.prior,
            a.model.model.as_deref(),
            a.model.backend()?,
            &*super::say(out.quiet || out.json),
        )?),
        None => None,
    };
    // Prior codecs: a bar in tokens (tokens/s is what the model's speed is quoted in), moved
    // by decoded bytes scaled with the header's token count.
    let tokens = progress::prior_tokens(&parsed.header);
    let total = parsed.header.payload_len;
    let pb = match tokens {
        Some(t) => progress::tokens_bar(t, "decompress", out),
        None => progress::bar(total, "decompress", out),
    };
    let done = std::sync::atomic::AtomicU64::new(0);
    let payload = parsed
        .decode_batched(
            prior.as_mut().map(|p| &mut **p as &mut dyn Prior),
            a.batch.unwrap_or(0),
            &|n| {
                let so_far = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                match tokens {
                    Some(t) => pb.set_position(
                        (u128::from(so_far) * u128::from(t) / u128::from(total.max(1))) as u64,
                    ),
                    None => pb.inc(n),
                }
            },
        )
        .with_context(|| format!("decoding {}", a.input.display()))?;
    pb.finish_and_clear();
    if let Some(p) = &prior {
        report_profile(&**p);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Only a fully decoded, checksum-verified payload reaches the disk.
    fsutil::write_atomic(&output, &payload)
        .with_context(|| format!("writing {}", output.display()))?;
    if out.json {
        super::print_json(&json!({
            "input": a.input, "output": output, "codec": parsed.header.codec.name(),
            "bytes": payload.len(), "seconds": seconds, "mb_per_s": payload.len() as f64 / 1e6 / seconds.max(1e-9),
            "tokens": tokens, "tokens_per_s": tokens.map(|t| t as f64 / seconds.max(1e-9)),
        }));
    } else if !out.quiet {
        eprintln!(
            "{} -> {}: {} bytes, checksum ok, {:.1} MB/s{}",
            a.input.display(),
            output.display(),
            payload.len(),
            payload.len() as f64 / 1e6 / seconds.max(1e-9),
            tokens.map_or(String::new(), |t| format!(
                ", {t} tokens at {:.0} tokens/s",
                t as f64 / seconds.max(1e-9)
            ))
        );
    }
    Ok(())
}
