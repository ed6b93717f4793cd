//! The Hugging Face loader on a small random Llama that this test writes in that layout:
//! `config.json`, safetensors (single file and sharded), `tokenizer.json`, with Q and K in
//! Hugging Face's rotate-half row order.

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use lmgc_core::cdf::Precision;
use lmgc_core::prior::{Prior, TableSpec};
use lmgc_model::config::LlamaConfig;
use lmgc_model::hf::{load_dir, permute_rotary};
use lmgc_model::prior::LlmPrior;
use lmgc_model::weights::{LlamaWeights, Matrix};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn config() -> LlamaConfig {
    LlamaConfig {
        n_layers: 2,
        d_model: 32,
        n_heads: 4,
        n_kv_heads: 2,
        d_ffn: 48,
        vocab: 270,
        rope_base: 10_000.0,
        rms_eps: 1e-6,
        context_len: 128,
    }
}

/// The inverse of [`permute_rotary`]: adjacent pairs back to rotate-half rows.
fn unpermute(m: &Matrix, heads: usize) -> Matrix {
    let hd = m.rows() / heads;
    let mut rows = vec![Vec::new(); m.rows()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            rows[h * hd + i] = m.row(h * hd + 2 * i).to_vec();
            rows[h * hd + hd / 2 + i] = m.row(h * hd + 2 * i + 1).to_vec();
        }
    }
    Matrix::new(m.rows(), m.cols(), rows.concat()).unwrap()
}

fn tensors(w: &LlamaWeights) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let c = &w.config;
    let mut t = BTreeMap::new();
    let mut put = |name: String, rows: usize, cols: Option<usize>, data: &[f32]| {
        let shape = cols.map_or(vec![rows], |c| vec![rows, c]);
        t.insert(
            name,
            (shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        );
    };
    put(
        "model.embed_tokens.weight".into(),
        c.vocab,
        Some(c.d_model),
        w.embedding.data(),
    );
    put(
        "lm_head.weight".into(),
        c.vocab,
        Some(c.d_model),
        w.output().data(),
    );
    put("model.norm.weight".into(), c.d_model, None, &w.out_norm);
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let m = |x: &Matrix| (x.rows(), Some(x.cols()), x.data().to_vec());
        for (name, (r, cols, data)) in [
            ("self_attn.q_proj", m(&unpermute(&l.wq, c.n_heads))),
            ("self_attn.k_proj", m(&unpermute(&l.wk, c.n_kv_heads))),
            ("self_attn.v_proj", m(&l.wv)),
            ("self_attn.o_proj", m(&l.wo)),
            ("mlp.gate_proj", m(&l.w_gate)),
            ("mlp.up_proj", m(&l.w_up)),
            ("mlp.down_proj", m(&l.w_down)),
            ("input_layernorm", (c.d_model, None, l.attn_norm.clone())),
            (
                "post_attention_layernorm",
                (c.d_model, None, l.ffn_norm.clone()),
            ),
        ] {
            put(format!("{p}.{name}.weight"), r, cols, &data);
        }
    }
    t
}

fn write_safetensors(path: &Path, t: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView<'_>)> = t
        .iter()
        .map(|(n, (shape, data))| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// A byte-level tokenizer.json: every byte character plus a few merges.
fn tokenizer_json(vocab: usize) -> String {
    let mut table = Vec::new();
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        table.push(if printable {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap()
        });
    }
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<s>".into()];
    tokens.extend(table.iter().map(|c| c.to_string()));
    tokens.extend(["ff", "fff", "ĠÄ"].map(String::from));
    tokens.truncate(vocab);
    let v: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    serde_json::json!({
        "model": {"type": "BPE", "vocab": v, "merges": ["f f", "ff f"]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false}]},
        "decoder": {"type": "ByteLevel"},
    })
    .to_string()
}

fn write_dir(dir: &Path, w: &LlamaWeights, shards: usize) {
    let c = &w.config;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": c.d_model, "intermediate_size": c.d_ffn,
        "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads,
        "num_hidden_layers": c.n_layers, "vocab_size": c.vocab, "rms_norm_eps": c.rms_eps,
        "rope_theta": c.rope_base, "max_position_embeddings": c.context_len,
        "tie_word_embeddings": false, "bos_token_id": 1, "rope_scaling": null,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(c.vocab)).unwrap();
    let t = tensors(w);
    if shards == 1 {
        write_safetensors(&dir.join("model.safetensors"), &t);
        return;
    }
    let names: Vec<&String> = t.keys().collect();
    let mut map = serde_json::Map::new();
    for (s, chunk) in names.chunks(names.len().div_ceil(shards)).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", s + 1);
        let part: BTreeMap<String, _> = chunk.iter().map(|&n| (n.clone(), t[n].clone())).collect();
        write_safetensors(&dir.join(&file), &part);
        for n in chunk {
            map.insert((*n).clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn same(a: &Matrix, b: &Matrix) -> bool {
    a.rows() == b.rows() && a.cols() == b.cols() && a.data() == b.data()
}

#[test]
fn round_trips_single_and_sharded() {
    let w = LlamaWeights::random(config(), 11).unwrap();
    for shards in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &w, shards);
        let m = load_dir(dir.path()).unwrap();
        assert_eq!(m.weights.config, w.config);
        assert!(same(&m.weights.embedding, &w.embedding));
        assert!(same(m.weights.output(), w.output()));
        for (a, b) in m.weights.layers.iter().zip(&w.layers) {
            // Q and K come back in adjacent-pair order, the rest untouched.
            assert!(same(&a.wq, &b.wq) && same(&a.wk, &b.wk) && same(&a.wv, &b.wv));
            assert!(same(&a.wo, &b.wo) && same(&a.w_gate, &b.w_gate));
            assert!(same(&a.w_up, &b.w_up) && same(&a.w_down, &b.w_down));
            assert_eq!((&a.attn_norm, &a.ffn_norm), (&b.attn_norm, &b.ffn_norm));
        }
        assert_eq!(m.weights.out_norm, w.out_norm);
    }
}

#[test]
fn permutation_is_per_head() {
    let m = Matrix::new(8, 1, (0..8).map(|v| v as f32).collect()).unwrap();
    // Two heads of 4 rows: [0 1 2 3] -> [0 2 1 3].
    let p = permute_rotary(&m, 2);
    assert_eq!(p.data(), &[0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
}

#[test]
fn a_directory_model_codes_as_a_prior() {
    let w = LlamaWeights::random(config(), 12).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &w, 1);
    let mut p = LlmPrior::open::<NdArray<f32>>(dir.path(), "tiny-hf", NdArrayDevice::Cpu).unwrap();
    let ids = p.tokenize(b"3fc00000 bf800000 fff").unwrap();
    let mut win = vec![p.bos()];
    win.extend(ids);
    let spec = TableSpec {
        precision: Precision::MAX,
        mask: None,
    };
    let mut tables = Vec::new();
    p.prefill(&[&win], &spec, &mut |_, _, t| {
        tables.push(t.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(tables.len(), win.len() - 1);
    let fp = p.fingerprint();
    assert_eq!(fp.name, "tiny-hf");
    // Another directory with other weights is another model.
    let other = tempfile::tempdir().unwrap();
    write_dir(
        other.path(),
        &LlamaWeights::random(config(), 13).unwrap(),
        1,
    );
    let q = LlmPrior::open::<NdArray<f32>>(other.path(), "tiny-hf", NdArrayDevice::Cpu).unwrap();
    assert_ne!(q.fingerprint(), fp);
}

#[test]
fn hostile_directories_are_errors() {
    let w = LlamaWeights::random(config(), 14).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &w, 2);
    // A shard name that leaves the directory.
    let index = dir.path().join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, text.replacen("model-00001", "../model-00001", 1)).unwrap();
    assert!(load_dir(dir.path()).is_err());
    // A missing tensor, a non-llama config, a config that lies about the shape.
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &w, 1);
    let cfg = dir.path().join("config.json");
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("\"num_hidden_layers\":2", "\"num_hidden_layers\":3"),
    )
    .unwrap();
    assert!(load_dir(dir.path()).is_err());
    std::fs::write(&cfg, good.replace("\"llama\"", "\"mistral\"")).unwrap();
    assert!(load_dir(dir.path()).is_err());
    std::fs::write(
        &cfg,
        good.replace("\"hidden_size\":32", "\"hidden_size\":64"),
    )
    .unwrap();
    assert!(load_dir(dir.path()).is_err());
    // Tied but shipping lm_head anyway (a copy): loads, using the shipped head.
    std::fs::write(
        &cfg,
        good.replace(
            "\"tie_word_embeddings\":false",
            "\"tie_word_embeddings\":true",
        ),
    )
    .unwrap();
    assert!(load_dir(dir.path()).unwrap().weights.output.is_some());
    std::fs::write(&cfg, "{not json").unwrap();
    assert!(load_dir(dir.path()).is_err());
}
