use std::path::PathBuf;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use lmgc::core::byte_tokens::{ByteTokens, Tokenization};
use lmgc::core::cdf::Precision;
use lmgc::core::io::{Format, SourceFile};
use lmgc::core::prior::TableSpec;
use lmgc::core::serialize::{Encoding, SerializerSpec};
use lmgc::model::backend::{BackendKind, open as open_model};
use lmgc::model::exact::RECIPE_VERSION;
use lmgc::model::fetch::{self, known};
use lmgc::model::gguf::Gguf;
use lmgc::model::reference::{Numerics, Recipe, ReferenceModel};
use lmgc::model::tokenizer::BpeTokenizer;
use serde_json::json;

use super::progress::tokens_bar;
use super::{ModelCommand, Output};

pub fn run(cmd: ModelCommand, quiet: bool) -> anyhow::Result<()> {
    let say = |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    match cmd {
        ModelCommand::Fetch { name } => {
            let path = fetch::fetch(&known(&name)?, &say)?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::Eval {
            file,
            text,
            model,
            tensor,
            values,
            format,
            window,
            mask,
            int8,
            sim_bits,
            exact,
            backend,
            json,
        } => {
            let path = model_path(&model, &say)?;
            let numerics = match (exact, int8, sim_bits) {
                (true, _, _) => Evaluator::Exact(backend.parse()?),
                (_, true, _) => Evaluator::Reference(Numerics::Int8Sim),
                (_, false, Some(bits)) => Evaluator::Reference(Numerics::Sim(parse_recipe(&bits)?)),
                (_, false, None) => Evaluator::Reference(Numerics::F32),
            };
            let opts = EvalOptions {
                text,
                tensor: tensor.as_deref(),
                values,
                format: &format,
                window,
                mask,
                numerics,
                json,
                quiet,
            };
            eval(&file, &path, &opts, &say)
        }
        ModelCommand::Bench {
            model,
            backend,
            window,
            batch,
            file,
            format,
            json,
        } => {
            let path = model_path(&model, &say)?;
            let o = BenchOptions {
                backend: backend.parse()?,
                window,
                batch,
                file: file.as_deref(),
                format: &format,
            };
            let report = bench(&path, &o, &say)?;
            match json.as_deref() {
                Some(p) if p == Path::new("-") => {
                    println!("{}", serde_json::to_string_pretty(&report)?)
                }
                Some(p) => std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
                    .with_context(|| format!("writing {}", p.display()))?,
                None => {}
            }
            if json.as_deref() != Some(Path::new("-")) {
                for (k, v) in report.as_object().expect("an object") {
                    println!("{k:<22} {}", v.to_string().trim_matches('"'));
                }
            }
            Ok(())
        }
        ModelCommand::Info { model, json } => {
            let path = model_path(&model, &say)?;
            let g = Gguf::read(&path)?;
            let arch = g
                .get("general.architecture")?
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = |k: &str| g.get_u64(&format!("{arch}.{k}")).ok();
            let tok = BpeTokenizer::from_gguf(&g)?;
            let hex_tokens = tok.tokens_within(b"0123456789abcdef").len();
            let params: u64 = g.tensors.iter().map(|t| t.numel()).sum();
            let info = json!({
                "file": path, "gguf_version": g.version, "sha256": fetch::sha256_file(&path)?,
                "architecture": arch, "name": g.get("general.name").ok().and_then(|v| v.as_str()),
                "blocks": key("block_count"), "embedding": key("embedding_length"), "ffn": key("feed_forward_length"),
                "heads": key("attention.head_count"), "kv_heads": key("attention.head_count_kv"),
                "context": key("context_length"), "tensors": g.tensors.len(), "parameters": params,
                "vocab": tok.vocab_size(), "bos": tok.bos(), "hex_only_tokens": hex_tokens,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                for (k, v) in info.as_object().expect("an object") {
                    println!("{k:<16} {}", v.to_string().trim_matches('"'));
                }
            }
            Ok(())
        }
    }
}

/// A known model name (fetched if needed), a .gguf file or a Hugging Face directory.
fn model_path(model: &str, say: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
    Ok(if model.ends_with(".gguf") || Path::new(model).exists() {
        PathBuf::from(model)
    } else {
        fetch::fetch(&known(model)?, say)?
    })
}

/// What computes the probabilities.
#[derive(Debug, Clone, Copy)]
enum Evaluator {
    /// The f32 reference pass, possibly simulating a recipe's rounding.
    Reference(Numerics),
    /// The integer-exact model on a backend.
    Exact(BackendKind),
}

struct EvalOptions<'a> {
    text: bool,
    tensor: Option<&'a str>,
    values: Option<usize>,
    format: &'a str,
    window: usize,
    mask: bool,
    numerics: Evaluator,
    json: bool,
    quiet: bool,
}

fn eval(file: &Path, model: &Path, o: &EvalOptions<'_>, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let EvalOptions {
        text: as_text,
        tensor,
        values,
        format,
        window,
        mask,
        numerics,
        json,
        quiet,
    } = *o;
    let out = Output { quiet, json };
    anyhow::ensure!(window >= 2, "--window must be at least 2");
    let spec: SerializerSpec = format.parse()?;
    // The text to score, what it is called, and how many raw bytes and "values" it stands for.
    // Characters per value in the serialized text, separator included (0 for text): the
    // period of the per-position breakdown.
    let mut period = 0usize;
    let (text, name, dtype, n, raw_bytes) = if as_text {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let n = values.unwrap_or(usize::MAX).min(bytes.len());
        anyhow::ensure!(n > 0, "nothing to evaluate: {} is empty", file.display());
        (
            bytes[..n].to_vec(),
            "(text)".to_owned(),
            "text".to_owned(),
            n,
            n,
        )
    } else {
        let source = SourceFile::read(file, Format::from_path(file)?)?;
        let t = match tensor {
            Some(name) => source
                .gradient
                .get(name)
                .with_context(|| format!("no tensor {name:?} in {}", file.display()))?,
            None => source
                .gradient
                .tensors()
                .iter()
                .max_by_key(|t| t.numel())
                .context("the file has no tensors")?,
        };
        let w = t.dtype().width();
        let values = values.unwrap_or(2048);
        let n = values.min(t.numel() as usize);
        anyhow::ensure!(
            n > 0,
            "nothing to evaluate: tensor {:?} has {} values and --values is {values}",
            t.name(),
            t.numel()
        );
        let bytes = &t.data()[..n * w];
        period = spec.text_len(w, w as u64) as usize + spec.separator.text().len();
        (
            spec.serialize(w, bytes),
            t.name().to_owned(),
            t.dtype().to_string(),
            n,
            bytes.len(),
        )
    };
    let charset = if as_text { None } else { Some(spec.charset()) };
    // `token`: one token per byte, the model's own byte tokens, masked to exactly those.
    let by_byte = !as_text && spec.encoding == Encoding::Token;
    // Windows of BOS + up to `window - 1` tokens.
    let split = |ids: &[u32], bos: u32| -> Vec<Vec<u32>> {
        ids.chunks(window - 1)
            .map(|chunk| std::iter::once(bos).chain(chunk.iter().copied()).collect())
            .collect()
    };
    let started;
    let mut bits = 0.0;
    // Bits by the position (within a value's characters) where each token starts.
    let mut by_position = vec![0f64; period];
    let tokens;
    match numerics {
        Evaluator::Reference(numerics) => {
            let g = Gguf::read(model).with_context(
                || "the f32 reference reads GGUF files; use --exact for a directory",
            )?;
            let tok = BpeTokenizer::from_gguf(&g)?;
            let bt = by_byte
                .then(|| {
                    tok.byte_tokens()
                        .map_err(lmgc::core::Error::from)
                        .and_then(ByteTokens::new)
                })
                .transpose()?;
            let ids = match &bt {
                Some(bt) => bt.tokens(&text),
                None => tok.tokenize(&text)?,
            };
            tokens = ids.len();
            let allowed = mask
                .then(|| match &bt {
                    Some(bt) => Some((0..=255u8).map(|b| bt.token(b)).collect()),
                    None => charset.as_deref().map(|c| tok.tokens_within(c)),
                })
                .flatten();
            let windows = split(&ids, tok.bos());
            say(&format!("loading {} as f32 ...", model.display()));
            let m = ReferenceModel::with_numerics(&g, numerics)?;
            drop(g);
            started = Instant::now();
            let pb = tokens_bar(ids.len() as u64, "f32", out);
            for win in &windows {
                bits += m.code_length_bits(win, allowed.as_deref())?;
                pb.inc(win.len() as u64 - 1);
            }
            pb.finish_and_clear();
        }
        Evaluator::Exact(kind) => {
            say(&format!("loading {} on {kind} ...", model.display()));
            let mut prior = open_model(kind, model, "eval")?;
            // Text given as text goes through the tokenizer whatever --format says.
            let tokenization = if as_text {
                Tokenization::Text {
                    charset: Vec::new(),
                }
            } else {
                Tokenization::new(&*prior, &spec)?
            };
            let ids = tokenization.tokenize(&*prior, &text)?;
            tokens = ids.len();
            let windows = split(&ids, prior.bos());
            let mut starts = Vec::with_capacity(ids.len());
            let mut piece = Vec::new();
            let mut at = 0usize;
            for &id in &ids {
                starts.push(at);
                piece.clear();
                tokenization.detokenize(&*prior, &[id], &mut piece)?;
                at += piece.len();
            }
            let spec = TableSpec {
                precision: Precision::MAX,
                // Text given as text has no alphabet to mask to.
                mask: (mask && !as_text).then(|| tokenization.mask(&*prior)),
            };
            started = Instant::now();
            let refs: Vec<&[u32]> = windows.iter().map(Vec::as_slice).collect();
            let pb = tokens_bar(ids.len() as u64, "exact", out);
            prior.prefill(&refs, &spec, &mut |w, t, table| {
                let cost = table.cost_bits(windows[w][t] as usize);
                bits += cost;
                if period > 0 {
                    by_position[starts[w * (window - 1) + t - 1] % period] += cost;
                }
                pb.inc(1);
                Ok(())
            })?;
            pb.finish_and_clear();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = json!({
        "file": file, "tensor": name, "dtype": dtype, "values": n, "format": if as_text { "text".to_owned() } else { spec.to_string() },
        "window": window, "mask": mask, "numerics": match numerics { Evaluator::Reference(n) => format!("{n:?}"), Evaluator::Exact(k) => format!("exact recipe v{RECIPE_VERSION} on {k}") }, "tokens": tokens, "tokens_per_value": tokens as f64 / n as f64,
        "bits_per_token": bits / tokens as f64, "bits_per_value": bits / n as f64,
        "percent_of_raw": bits / (8.0 * raw_bytes as f64) * 100.0, "seconds": seconds,
        "tokens_per_second": tokens as f64 / seconds,
        // With --exact: bits per value by the character (within a value's serialized text,
        // separator last) where each token starts; they add up to bits_per_value.
        "bits_per_value_by_position": (by_position.iter().any(|&b| b > 0.0)).then(|| by_position.iter().map(|b| b / n as f64).collect::<Vec<_>>()),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (k, v) in report.as_object().expect("an object") {
            println!("{k:<18} {}", v.to_string().trim_matches('"'));
        }
    }
    Ok(())
}

fn parse_recipe(s: &str) -> anyhow::Result<Recipe> {
    let bits: Vec<u8> = s
        .split(',')
        .map(|b| b.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--sim-bits takes three numbers W,A,P, e.g. 8,16,12"))?;
    match bits[..] {
        [w, a, p] if [w, a, p].iter().all(|b| (2..=24).contains(b)) => Ok(Recipe {
            weight_bits: w,
            act_bits: a,
            prob_bits: p,
        }),
        _ => anyhow::bail!("--sim-bits takes three widths between 2 and 24, e.g. 8,16,12"),
    }
}

struct BenchOptions<'a> {
    backend: BackendKind,
    window: usize,
    batch: usize,
    file: Option<&'a Path>,
    format: &'a str,
}

/// Seeded gradient-like floats (a few scales, both signs) when no file is given.
fn synthetic_values(n: usize) -> Vec<u8> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .flat_map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            let scale = [1e-4, 1e-3, 1e-2][(s % 3) as usize];
            (((u - 0.5) * scale) as f32).to_le_bytes()
        })
        .collect()
}

fn bench(
    model: &Path,
    o: &BenchOptions<'_>,
    say: &dyn Fn(&str),
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        o.window >= 2 && o.batch >= 1,
        "--window must be at least 2 and --batch at least 1"
    );
    let spec: SerializerSpec = o.format.parse()?;
    let load = Instant::now();
    say(&format!("loading {} on {} ...", model.display(), o.backend));
    let mut prior = open_model(o.backend, model, "bench")?;
    let load_s = load.elapsed().as_secs_f64();
    // Enough text for batch windows.
    let need = o.batch * (o.window - 1);
    let values = match o.file {
        Some(f) => {
            let source = SourceFile::read(f, Format::from_path(f)?)?;
            let t = source
                .gradient
                .tensors()
                .iter()
                .max_by_key(|t| t.numel())
                .context("the file has no tensors")?;
            t.data().to_vec()
        }
        None => synthetic_values(need),
    };
    // Serializations take at least two tokens per float: a quarter of `need` floats is ample.
    let floats = (values.len() / 4).min(need / 2 + 16);
    let tokenization = Tokenization::new(&*prior, &spec)?;
    let ids = tokenization.tokenize(&*prior, &spec.serialize(4, &values[..floats * 4]))?;
    anyhow::ensure!(
        ids.len() >= need,
        "the input serializes to {} tokens; {need} are needed for {} windows of {}",
        ids.len(),
        o.batch,
        o.window
    );
    let windows: Vec<Vec<u32>> = ids[..need]
        .chunks(o.window - 1)
        .map(|c| {
            std::iter::once(prior.bos())
                .chain(c.iter().copied())
                .collect()
        })
        .collect();
    let mask = tokenization.mask(&*prior);
    let table_spec = TableSpec {
        precision: Precision::MAX,
        mask: Some(mask),
    };
    let refs: Vec<&[u32]> = windows.iter().map(Vec::as_slice).collect();
    // Prefill: one digest per (window, position), combined in that order.
    let mut digests = vec![vec![0u64; o.window]; o.batch];
    let mut bits = 0.0;
    let started = Instant::now();
    prior.prefill(&refs, &table_spec, &mut |w, t, table| {
        digests[w][t] = table_digest(table);
        bits += table.cost_bits(windows[w][t] as usize);
        Ok(())
    })?;
    let prefill_s = started.elapsed().as_secs_f64();
    let prefill_profile: serde_json::Map<String, serde_json::Value> = prior
        .profile()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    say(&format!("prefill: {:.1} tokens/s", need as f64 / prefill_s));
    // Decode: all windows in lockstep, one token each per step.
    let mut stepped = vec![vec![0u64; o.window]; o.batch];
    prior.start(o.batch, o.window)?;
    let started = Instant::now();
    for t in 0..o.window - 1 {
        let inputs: Vec<(usize, u32)> = (0..o.batch).map(|w| (w, windows[w][t])).collect();
        prior.step(&inputs, &table_spec, &mut |w, table| {
            stepped[w][t + 1] = table_digest(table);
            Ok(())
        })?;
    }
    let decode_s = started.elapsed().as_secs_f64();
    let profile: serde_json::Map<String, serde_json::Value> = prior
        .profile()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    say(&format!(
        "decode: {:.1} tokens/s; seconds by stage {profile:?}",
        need as f64 / decode_s
    ));
    let contract = digests == stepped;
    let combined = xxhash_rust::xxh3::xxh3_64(
        &digests
            .iter()
            .flatten()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    Ok(json!({
        "backend": o.backend.to_string(), "model": model, "recipe": RECIPE_VERSION,
        "window": o.window, "batch": o.batch, "format": spec.to_string(),
        "input": o.file.map_or("synthetic".into(), |f| f.display().to_string()),
        "tokens": need, "load_seconds": load_s,
        "prefill_seconds": prefill_s, "prefill_tokens_per_second": need as f64 / prefill_s,
        "decode_seconds": decode_s, "decode_tokens_per_second": need as f64 / decode_s,
        "bits_per_token": bits / need as f64,
        "prefill_equals_decode": contract,
        "tables_xxh3": format!("{combined:016x}"),
        "peak_rss_mib": peak_rss_mib(),
        "profile_seconds": profile,
        "prefill_profile_seconds": prefill_profile,
    }))
}

fn table_digest(t: &lmgc::core::cdf::FrequencyTable) -> u64 {
    let f: Vec<u8> = t
        .frequencies()
        .into_iter()
        .flat_map(u32::to_le_bytes)
        .collect();
    xxhash_rust::xxh3::xxh3_64(&f)
}

/// Peak resident memory of this process (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
