use std::path::PathBuf;

use lmgc::model::fetch::{self, known};
use lmgc::model::gguf::Gguf;
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
        ModelCommand::Info { model, json } => {
            let path = if model.ends_with(".gguf") || PathBuf::from(&model).is_file() {
                PathBuf::from(&model)
            } else {
                fetch::fetch(&known(&model)?, &say)?
            };
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
