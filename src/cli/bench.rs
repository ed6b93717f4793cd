use anyhow::Context;
use lmgc::bench::{BenchOptions, FileResult, bench_file, markdown};
use lmgc::codecs::CodecChoice;
use lmgc::core::fsutil;
use lmgc::core::io::{Format, SourceFile};
use serde_json::json;

use super::{BenchArgs, Output, progress};

pub fn run(a: BenchArgs, out: Output) -> anyhow::Result<()> {
    let opts = BenchOptions {
        codecs: CodecChoice::parse_list(&a.codecs)?,
        codec_options: a.codec.options(out.quiet || out.json)?,
        chunk: a.chunked,
        encode_only: a.encode_only,
    };
    if a.chunked == Some(0) {
        anyhow::bail!("--chunked needs a positive number of bytes");
    }
    // Parse every file first, so a bad one fails before minutes of work.
    let sources = a
        .files
        .iter()
        .map(|p| {
            let format = Format::from_path(p)?;
            SourceFile::read(p, format).with_context(|| format!("reading {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let steps = (sources.len() * opts.codecs.len()) as u64;
    let pb = progress::bar(steps, "bench", out);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {pos}/{len} codec runs, {elapsed} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let results: Vec<FileResult> = a
        .files
        .iter()
        .zip(&sources)
        .map(|(path, source)| {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );

            bench_file(&name, source, &opts, &|codec| {
                pb.set_message(format!("{name}: {codec}"));
                pb.inc(1);
            })
        })
        .collect();
    pb.finish_and_clear();
    let table = markdown(&results);
    let report = json!({
        "machine": machine(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "chunk_bytes": a.chunked,
        "files": results,
    });
    let report_text = serde_json::to_string_pretty(&report)?;
    match a.json.as_deref() {
        Some(p) if p == std::path::Path::new("-") => println!("{report_text}"),
        Some(p) => fsutil::write_atomic(p, report_text.as_bytes())?,
        None => {}
    }
    if let Some(p) = &a.markdown {
        fsutil::write_atomic(p, table.as_bytes())?;
    }
    if !out.json {
        print!("{table}");
    }
    Ok(())
}

/// CPU model and core count, for the record.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
    });
    json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "lmgc": env!("CARGO_PKG_VERSION"),
    })
}
