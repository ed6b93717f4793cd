//! The numerics contract on a tiny random model: prefill equals incremental decoding, any
//! batch packing gives the same scores, the scores are pinned, and the integer model stays
//! close to the f32 reference.

use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use xxhash_rust::xxh3::xxh3_64;

use super::*;
use crate::reference::{Numerics, ReferenceModel};

type Cpu = NdArray<f32>;

pub(crate) fn tiny_config() -> LlamaConfig {
    LlamaConfig {
        n_layers: 2,
        d_model: 64,
        n_heads: 4,
        n_kv_heads: 2,
        d_ffn: 160,
        vocab: 300,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        context_len: 256,
    }
}

fn tiny() -> (LlamaWeights, ExactModel<Cpu>) {
    let w = LlamaWeights::random(tiny_config(), 7).unwrap();
    let m = ExactModel::new(w.clone(), NdArrayDevice::Cpu, 256).unwrap();
    (w, m)
}

fn tokens(seed: u64, n: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 300) as u32
        })
        .collect()
}

fn prefill(m: &ExactModel<Cpu>, window: &[u32]) -> Vec<Vec<i32>> {
    let mut caches = vec![m.new_cache()];
    let rows: Vec<Row> = window
        .iter()
        .map(|&token| Row { cache: 0, token })
        .collect();
    m.forward(&rows, &mut caches).unwrap()
}

fn stepped(m: &ExactModel<Cpu>, window: &[u32]) -> Vec<Vec<i32>> {
    let mut caches = vec![m.new_cache()];
    window
        .iter()
        .map(|&token| {
            m.forward(&[Row { cache: 0, token }], &mut caches)
                .unwrap()
                .remove(0)
        })
        .collect()
}

#[test]
fn prefill_equals_incremental_decoding() {
    let (_, m) = tiny();
    let w = tokens(1, 40);
    assert_eq!(prefill(&m, &w), stepped(&m, &w));
}

#[test]
fn any_packing_of_windows_gives_the_same_scores() {
    let (_, m) = tiny();
    let windows = [tokens(2, 17), tokens(3, 5), tokens(4, 30)];
    let alone: Vec<_> = windows.iter().map(|w| prefill(&m, w)).collect();
    // All three windows interleaved in one call, in a scrambled order of rows.
    let mut caches = vec![m.new_cache(), m.new_cache(), m.new_cache()];
    let mut rows = Vec::new();
    let mut order = Vec::new();
    for t in 0..30 {
        for (w, win) in windows.iter().enumerate().rev() {
            if let Some(&token) = win.get(t) {
                rows.push(Row { cache: w, token });
                order.push(w);
            }
        }
    }
    let out = m.forward(&rows, &mut caches).unwrap();
    let mut packed = vec![Vec::new(); 3];
    for (w, scores) in order.into_iter().zip(out) {
        packed[w].push(scores);
    }
    assert_eq!(packed, alone);
    // Prefill half, then step the rest of each window in lockstep.
    let mut caches = vec![m.new_cache(), m.new_cache(), m.new_cache()];
    let mut mixed = vec![Vec::new(); 3];
    let head: Vec<Row> = (0..3)
        .flat_map(|w| {
            windows[w][..windows[w].len() / 2]
                .iter()
                .map(move |&token| Row { cache: w, token })
        })
        .collect();
    let out = m.forward(&head, &mut caches).unwrap();
    for (r, s) in head.iter().zip(out) {
        mixed[r.cache].push(s);
    }
    for t in 0..30 {
        let step: Vec<Row> = (0..3)
            .filter_map(|w| {
                windows[w]
                    .get(windows[w].len() / 2 + t)
                    .map(|&token| Row { cache: w, token })
            })
            .collect();
        for (r, s) in step.iter().zip(m.forward(&step, &mut caches).unwrap()) {
            mixed[r.cache].push(s);
        }
    }
    assert_eq!(mixed, alone);
}

#[test]
fn thread_count_does_not_change_scores() {
    let (_, m) = tiny();
    let w = tokens(10, 33);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| prefill(&m, &w))
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert_eq!(one, run(8));
}

#[test]
fn a_masked_output_scores_the_same_rows() {
    let (_, mut m) = tiny();
    let w = tokens(5, 12);
    let full = prefill(&m, &w);
    let rows = [3usize, 17, 42, 299];
    m.set_output_rows(Some(&rows));
    let sub = prefill(&m, &w);
    for (f, s) in full.iter().zip(&sub) {
        let picked: Vec<i32> = rows.iter().map(|&r| f[r]).collect();
        assert_eq!(&picked, s);
    }
}

/// Pins the scores of a fixed input: any change to the recipe, the tables or the loader
/// that moves a single score fails here (and must bump `RECIPE_VERSION`).
#[test]
fn scores_are_pinned() {
    let (_, m) = tiny();
    let scores = prefill(&m, &tokens(6, 24));
    let bytes: Vec<u8> = scores
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(xxh3_64(&bytes), PINNED_SCORES, "{:#x}", xxh3_64(&bytes));
}
const PINNED_SCORES: u64 = 0x6067_1a09_24dd_6e8a;

/// Largest difference, in bits, between the relative scores of two models' rows.
fn max_score_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let mut max = 0f64;
    for (x, y) in a.iter().zip(b) {
        for (&u, &v) in x.iter().zip(y) {
            max = max.max(((u - x[0]) - (v - y[0])).abs());
        }
    }
    max
}

fn in_bits(logits: Vec<Vec<f32>>) -> Vec<Vec<f64>> {
    let ln2 = std::f64::consts::LN_2;
    logits
        .into_iter()
        .map(|r| r.into_iter().map(|x| f64::from(x) / ln2).collect())
        .collect()
}

/// The integer model rounds about where the simulated recipe (8-bit weights, 16-bit
/// activations, 12-bit probabilities) does: it must sit closer to that simulation than the
/// simulation sits to f32 (a wrong shift or sign anywhere would throw it far off), and
/// within 0.5% of f32 in cross-entropy.
#[test]
fn integer_model_tracks_the_f32_reference() {
    let (w, m) = tiny();
    let win = tokens(8, 64);
    let exact: Vec<Vec<f64>> = prefill(&m, &win)
        .into_iter()
        .map(|r| r.into_iter().map(|s| f64::from(s) / 1024.0).collect())
        .collect();
    let recipe = crate::reference::Recipe {
        weight_bits: 8,
        act_bits: 16,
        prob_bits: 12,
    };
    let sim = ReferenceModel::from_weights(w.clone(), Numerics::Sim(recipe));
    let f32 = ReferenceModel::from_weights(w, Numerics::F32);
    let sim_logits = in_bits(sim.forward(&win).unwrap());
    let f32_logits = in_bits(f32.forward(&win).unwrap());
    let (to_sim, sim_to_f32) = (
        max_score_diff(&exact, &sim_logits),
        max_score_diff(&sim_logits, &f32_logits),
    );
    assert!(
        to_sim < sim_to_f32,
        "integer vs simulation {to_sim} bits, simulation vs f32 {sim_to_f32} bits"
    );
    let ce = |rows: &[Vec<f64>]| -> f64 {
        rows[..win.len() - 1]
            .iter()
            .zip(&win[1..])
            .map(|(r, &t)| {
                let max = r.iter().copied().fold(f64::MIN, f64::max);
                r.iter().map(|&v| (v - max).exp2()).sum::<f64>().log2() - (r[t as usize] - max)
            })
            .sum()
    };
    let (ce_exact, ce_f32) = (ce(&exact), ce(&f32_logits));
    assert!(
        (ce_exact - ce_f32).abs() / ce_f32 < 0.005,
        "{ce_exact} vs {ce_f32} bits"
    );
}

/// The same model on wgpu (Mesa's software Vulkan in CI) gives bit-identical scores, for a
/// prefill and for incremental steps.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_ndarray() {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    let (w, cpu) = tiny();
    let gpu = ExactModel::<Wgpu>::new(w.clone(), WgpuDevice::default(), 256).unwrap();
    let win = tokens(9, 48);
    let mut caches = vec![gpu.new_cache()];
    let rows: Vec<Row> = win.iter().map(|&token| Row { cache: 0, token }).collect();
    let on_gpu = gpu.forward(&rows, &mut caches).unwrap();
    assert_eq!(on_gpu, prefill(&cpu, &win));
    // Warm (autotuned kernels, cached pipelines) equals cold.
    let mut caches = vec![gpu.new_cache()];
    assert_eq!(gpu.forward(&rows, &mut caches).unwrap(), on_gpu);
    let mut caches = vec![gpu.new_cache()];
    let steps: Vec<Vec<i32>> = win
        .iter()
        .map(|&token| {
            gpu.forward(&[Row { cache: 0, token }], &mut caches)
                .unwrap()
                .remove(0)
        })
        .collect();
    assert_eq!(steps, on_gpu);
}
