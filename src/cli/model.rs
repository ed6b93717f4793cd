use std::path::PathBuf;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use lmgc::core::io::{Format, SourceFile};
use lmgc::core::serialize::SerializerSpec;
use lmgc::model::fetch::{self, known};
use lmgc::model::gguf::Gguf;
use lmgc::model::reference::{Numerics, Recipe, ReferenceModel};
use lmgc::model::tokenizer::BpeTokenizer;
use serde_json::json;

use super::ModelCommand;

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
            model,
            tensor,
            values,
            format,
            window,
            mask,
            int8,
            sim_bits,
            json,
        } => {
            let path = model_path(&model, &say)?;
            let numerics = match (int8, sim_bits) {
                (true, _) => Numerics::Int8Sim,
                (false, Some(bits)) => Numerics::Sim(parse_recipe(&bits)?),
                (false, None) => Numerics::F32,
            };
            let opts = EvalOptions {
                tensor: tensor.as_deref(),
                values,
                format: &format,
                window,
                mask,
                numerics,
                json,
            };
            eval(&file, &path, &opts, &say)
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

/// A known model name (fetched if needed) or a path to a file.
fn model_path(model: &str, say: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
    Ok(
        if model.ends_with(".gguf") || PathBuf::from(model).is_file() {
            PathBuf::from(model)
        } else {
            fetch::fetch(&known(model)?, say)?
        },
    )
}

struct EvalOptions<'a> {
    tensor: Option<&'a str>,
    values: usize,
    format: &'a str,
    window: usize,
    mask: bool,
    numerics: Numerics,
    json: bool,
}

fn eval(file: &Path, model: &Path, o: &EvalOptions<'_>, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let EvalOptions {
        tensor,
        values,
        format,
        window,
        mask,
        numerics,
        json,
    } = *o;
    anyhow::ensure!(window >= 2, "--window must be at least 2");
    let spec: SerializerSpec = format.parse()?;
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
    let n = values.min(t.numel() as usize);
    anyhow::ensure!(
        n > 0,
        "nothing to evaluate: tensor {:?} has {} values and --values is {values}",
        t.name(),
        t.numel()
    );
    let bytes = &t.data()[..n * w];
    let g = Gguf::read(model)?;
    let tok = BpeTokenizer::from_gguf(&g)?;
    say(&format!("loading {} as f32 ...", model.display()));
    let m = ReferenceModel::with_numerics(&g, numerics)?;
    let text = spec.serialize(w, bytes);
    let ids = tok.tokenize(&text)?;
    let allowed = mask.then(|| tok.tokens_within(&spec.charset()));
    let started = Instant::now();
    let mut bits = 0.0;
    for (i, chunk) in ids.chunks(window - 1).enumerate() {
        let mut win = vec![tok.bos()];
        win.extend_from_slice(chunk);
        bits += m.code_length_bits(&win, allowed.as_deref())?;
        say(&format!(
            "window {} of {}: {:.3} bits/value so far",
            i + 1,
            ids.len().div_ceil(window - 1),
            bits / n as f64 * (ids.len() as f64 / (i * (window - 1) + chunk.len()) as f64)
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = json!({
        "file": file, "tensor": t.name(), "dtype": t.dtype().to_string(), "values": n, "format": spec.to_string(),
        "window": window, "mask": mask, "numerics": format!("{numerics:?}"), "tokens": ids.len(), "tokens_per_value": ids.len() as f64 / n as f64,
        "bits_per_token": bits / ids.len() as f64, "bits_per_value": bits / n as f64,
        "percent_of_raw": bits / (8.0 * bytes.len() as f64) * 100.0, "seconds": seconds,
        "tokens_per_second": ids.len() as f64 / seconds,
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
