//! The CUDA engine against the host engine, bit for bit. Skipped (with a message) on a
//! machine without a CUDA device; run on a GPU host with the test binary built here.

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;

use super::*;
use crate::engine::HostEngine;
use crate::exact::ExactModel;

fn config(
    layers: usize,
    d: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
    vocab: usize,
) -> LlamaConfig {
    LlamaConfig {
        n_layers: layers,
        d_model: d,
        n_heads: heads,
        n_kv_heads: kv,
        d_ffn: ffn,
        vocab,
        rope_base: 100_000.0,
        rms_eps: 1e-5,
        context_len: 256,
    }
}

fn tokens(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

fn engines(c: LlamaConfig, seed: u64) -> Option<(HostEngine<NdArray<f32>>, CudaEngine)> {
    let w = LlamaWeights::random(c, seed).unwrap();
    let gpu = match CudaEngine::new(&w, 0, 256) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            return None;
        }
    };
    let host = HostEngine::new(ExactModel::new(&w, NdArrayDevice::Cpu, 256).unwrap());
    Some((host, gpu))
}

/// Prefill of several windows in one call, then the same windows stepped in lockstep.
fn run(e: &mut dyn Engine, windows: &[Vec<u32>], mask: Option<&[usize]>) -> Vec<Vec<i32>> {
    e.set_output_rows(mask).unwrap();
    let longest = windows.iter().map(Vec::len).max().unwrap();
    e.open(windows.len(), longest).unwrap();
    let rows: Vec<Row> = windows
        .iter()
        .enumerate()
        .flat_map(|(w, win)| win.iter().map(move |&token| Row { cache: w, token }))
        .collect();
    let mut out = e.forward(&rows).unwrap();
    e.open(windows.len(), longest).unwrap();
    for t in 0..longest {
        let step: Vec<Row> = windows
            .iter()
            .enumerate()
            .filter(|(_, win)| t < win.len())
            .map(|(w, win)| Row {
                cache: w,
                token: win[t],
            })
            .collect();
        out.extend(e.forward(&step).unwrap());
    }
    out
}

fn check(c: LlamaConfig, seed: u64) {
    let vocab = c.vocab;
    let Some((mut host, mut gpu)) = engines(c, seed) else {
        return;
    };
    let windows = vec![
        tokens(seed + 1, 70, vocab),
        tokens(seed + 2, 9, vocab),
        tokens(seed + 3, 130, vocab),
    ];
    let want = run(&mut host, &windows, None);
    let got = run(&mut gpu, &windows, None);
    assert_eq!(got.len(), want.len());
    let first = got.iter().zip(&want).position(|(g, w)| g != w);
    assert!(first.is_none(), "row {first:?} differs");
    let mask: Vec<usize> = (0..vocab).filter(|t| t % 7 == 3).collect();
    assert_eq!(
        run(&mut gpu, &windows, Some(&mask)),
        run(&mut host, &windows, Some(&mask))
    );
}

#[test]
fn tiny_model_matches_the_host_engine() {
    check(config(2, 64, 4, 2, 160, 300), 11);
}

/// SmolLM2's shapes (64-wide heads, 3:1 grouped queries, a 1,536-wide FFN split into two
/// GEMM pieces) on two random layers.
#[test]
fn smollm2_shaped_model_matches_the_host_engine() {
    check(config(2, 576, 9, 3, 1536, 1000), 12);
}
