use std::time::Instant;

use anyhow::Context;
use lmgc_core::cdf::Precision;
use lmgc_core::codec::{BytegroupCodec, PriorCodecSpec, StoreCodec};
use lmgc_core::context_prior::ContextPrior;
use lmgc_core::io::{Format, SourceFile};
use lmgc_core::prior::Prior;
use lmgc_core::prior_codec::PriorCodec;
use lmgc_core::{container, fsutil};
use serde_json::json;

use super::{CodecArg, CompressArgs, Output, progress};

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
    let source = SourceFile::read(&a.input, format)?;
    let started = Instant::now();
    let pb = progress::bar(source.len(), "compress", out);
    let tick = |n: u64| pb.inc(n);
    let packed = match a.codec {
        CodecArg::Store => container::compress(&source, &mut StoreCodec, &tick)?,
        CodecArg::Bytegroup => container::compress(&source, &mut BytegroupCodec, &tick)?,
        CodecArg::Context => {
            let mut prior = ContextPrior::new(a.order)?;
            let spec = PriorCodecSpec {
                prior: prior.fingerprint(),
                serializer: a.format.parse()?,
                window: a.window,
                precision: Precision::new(a.precision)?,
                mask: !a.no_mask,
            };
            let mut codec = PriorCodec::new(&mut prior, spec, a.batch)?;
            container::compress(&source, &mut codec, &tick)?
        }
    };
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    fsutil::write_atomic(&output, &packed)
        .with_context(|| format!("writing {}", output.display()))?;
    let raw = source.len();
    let values: u64 = source.gradient.tensors().iter().map(|t| t.numel()).sum();
    let ratio = packed.len() as f64 / raw.max(1) as f64;
    if out.json {
        super::print_json(&json!({
            "input": a.input, "output": output, "codec": format!("{:?}", a.codec).to_lowercase(),
            "raw_bytes": raw, "compressed_bytes": packed.len(), "ratio": ratio,
            "bits_per_value": if values > 0 { Some(packed.len() as f64 * 8.0 / values as f64) } else { None },
            "seconds": seconds, "mb_per_s": raw as f64 / 1e6 / seconds.max(1e-9),
        }));
    } else if !out.quiet {
        eprintln!(
            "{} -> {}: {raw} -> {} bytes ({:.2}%), {:.1} MB/s",
            a.input.display(),
            output.display(),
            packed.len(),
            ratio * 100.0,
            raw as f64 / 1e6 / seconds.max(1e-9)
        );
    }
    Ok(())
}
