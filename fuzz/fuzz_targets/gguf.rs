//! Untrusted GGUF bytes: the parser, dequantization of every tensor and the tokenizer built
//! from the metadata must never panic or allocate beyond what the bytes justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lmgc_model::gguf::Gguf;
use lmgc_model::quant::dequantize;
use lmgc_model::tokenizer::BpeTokenizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data.to_vec()) {
        for t in &g.tensors {
            let v = dequantize(&g, t).expect("a parsed tensor dequantizes");
            assert_eq!(v.len() as u64, t.numel());
        }
        if let Ok(tok) = BpeTokenizer::from_gguf(&g) {
            // Whatever tokenizes must come back exactly (tokenize refuses what it cannot spell).
            if let Ok(ids) = tok.tokenize(b"0a1b ab") {
                let mut back = Vec::new();
                tok.detokenize(&ids, &mut back).expect("spelled tokens detokenize");
                assert_eq!(back, b"0a1b ab");
            }
        }
    }
});
