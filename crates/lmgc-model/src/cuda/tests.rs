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

fn engines(
    c: LlamaConfig,
    seed: u64,
    positions: usize,
) -> Option<(HostEngine<NdArray<f32>>, CudaEngine)> {
    let w = LlamaWeights::random(c, seed).unwrap();
    let gpu = match CudaEngine::new(&w, 0, positions) {
        Ok(g) => g,
        // A setting the engine refuses (an `LMGC_CUDA_*` variable) fails the test instead of
        // passing it as skipped.
        Err(e @ Error::Unsupported(_)) => panic!("{e}"),
        Err(e) => {
            eprintln!("skipped: no usable CUDA device ({e})");
            return None;
        }
    };
    let host = HostEngine::new(ExactModel::new(w.clone(), NdArrayDevice::Cpu, positions).unwrap());
    // Every layer and norm of the test models takes the split scales' 64-bit products, so
    // the tests that leave `split_scales` on reach them (and the one that turns it off, not).
    for l in &gpu.layers {
        let linears = [&l.qkv, &l.wo, &l.gate_up, &l.down];
        assert!(
            linears.iter().all(|x| x.split.is_some()),
            "a layer's scales did not split"
        );
        assert!(l.attn_norm.split.is_some() && l.ffn_norm.split.is_some());
    }
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

/// Prefill of each window in two calls (the second's runs start mid-window), then stepping.
fn run_in_pieces(e: &mut dyn Engine, windows: &[Vec<u32>], first: usize) -> Vec<Vec<i32>> {
    let longest = windows.iter().map(Vec::len).max().unwrap();
    e.open(windows.len(), longest).unwrap();
    let piece = |range: fn(&[u32], usize) -> &[u32]| -> Vec<Row> {
        windows
            .iter()
            .enumerate()
            .flat_map(|(w, win)| {
                range(win, first)
                    .iter()
                    .map(move |&token| Row { cache: w, token })
            })
            .collect()
    };
    let mut out = e.forward(&piece(|w, n| &w[..n.min(w.len())])).unwrap();
    out.extend(e.forward(&piece(|w, n| &w[n.min(w.len())..])).unwrap());
    out
}

/// Windows of 70, 9 and 130 tokens: in prefill the first and last take the runs' attention
/// (att_mma where it loads, else the GEMMs), the middle one (shorter than
/// `ATT_GEMM_MIN_ROWS`) the kernels, in the same call.
fn check(c: LlamaConfig, seed: u64) {
    check_windows(c, seed, &[70, 9, 130], 256, |_| {});
}

fn check_windows(
    c: LlamaConfig,
    seed: u64,
    lens: &[usize],
    positions: usize,
    tweak: impl Fn(&mut CudaEngine),
) {
    check_windows_then(c, seed, lens, positions, tweak, |_| {});
}

/// [`check_windows`], then `after` on the GPU engine.
fn check_windows_then(
    c: LlamaConfig,
    seed: u64,
    lens: &[usize],
    positions: usize,
    tweak: impl Fn(&mut CudaEngine),
    after: impl Fn(&CudaEngine),
) {
    let vocab = c.vocab;
    let Some((mut host, mut gpu)) = engines(c, seed, positions) else {
        return;
    };
    tweak(&mut gpu);
    let windows: Vec<Vec<u32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(seed + 1 + i as u64, n, vocab))
        .collect();
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
    after(&gpu);
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

/// Every group size's decoding kernel (`att_row_g1` to `att_row_g8`; the tests above reach
/// g2, g3 and the generic kernel): 64-wide heads, one and two key/value heads.
#[test]
fn every_group_size_decodes_like_the_host_engine() {
    for (group, kv) in [(1, 2), (4, 1), (5, 2), (6, 1), (7, 1), (8, 2)] {
        let heads = group * kv;
        check_windows(
            config(1, 64 * heads, heads, kv, 160, 300),
            40 + group as u64,
            &[70, 9, 33],
            128,
            |_| {},
        );
    }
}

/// Windows longer than an attention block: prefill runs of several GEMM blocks, the causal
/// zero fill between a row's position and its block's end.
#[test]
fn long_windows_match_the_host_engine() {
    check_windows(
        config(2, 64, 4, 2, 160, 300),
        13,
        &[600, 17, 300],
        640,
        |_| {},
    );
}

/// Groups of 9 query heads per key/value head (wider than the kernels' 8 per pass) with the
/// thread kernel for scores and the warp kernel for probabilities (what groups too wide for
/// shared memory take; the warp kernel also takes every row of up to 512 positions), GEMM
/// and kernel rows alike. The FFN and the attention output pass their mantissas through
/// global memory (`ffn_shifts`, `ffn_act`, `att_out`, `quant_rows`: what rows too wide for
/// shared memory take), including the FFN's one-read quantization: its mantissas' high words
/// decide their shifts (about 2^92 for 31-bit gate and up levels), while the attention
/// output's are zero and take the two-read path. The norms take a warp per row.
#[test]
fn wide_groups_and_warp_probabilities_match_the_host_engine() {
    check_windows(
        config(2, 144, 18, 2, 160, 300),
        14,
        &[70, 9, 40],
        256,
        |g| {
            g.shared_kernels = false;
            g.norm_block_rows = 0;
        },
    );
}

/// The same groups of 9 with the block kernels: the group's queries in shared memory for
/// the scores (the short window's prefill rows and every decoding step), rows longer than
/// 512 positions with their probabilities in shared memory, and the FFN and attention output
/// a block per row (`ffn_row`, `att_out_row`), as every test but the one above.
#[test]
fn wide_groups_in_shared_memory_match_the_host_engine() {
    check_windows(
        config(2, 144, 18, 2, 160, 300),
        16,
        &[600, 9, 40],
        640,
        |_| {},
    );
}

/// `ffn_row`, `norm_rows` and `qk_rope` with their 128-bit products by the scales and gammas,
/// what a layer whose scales don't split into 64-bit products takes (the norms a warp per row).
#[test]
fn ffn_rows_with_128_bit_scale_products_match_the_host_engine() {
    check_windows(
        config(2, 64, 4, 2, 160, 300),
        17,
        &[300, 17, 64],
        512,
        |g| {
            g.split_scales = false;
            g.norm_block_rows = 0;
        },
    );
}

/// `norm_rows_r*` (`LMGC_CUDA_NORM_REGS=on`: the row and its quotients in registers) for
/// rows of 64, 144 and 800 (lanes a slot short), 320, 576 (SmolLM2's) and 1,024, every
/// call's norms a warp per row; the last with 128-bit scale products (no split quotients).
#[test]
fn norms_in_registers_match_the_host_engine() {
    for (c, seed, split) in [
        (config(2, 64, 4, 2, 160, 300), 60, true),
        (config(2, 144, 9, 3, 160, 300), 65, true),
        (config(1, 800, 25, 5, 160, 300), 66, true),
        (config(1, 320, 5, 1, 160, 300), 61, true),
        (config(2, 576, 9, 3, 1536, 1000), 62, true),
        (config(1, 1024, 16, 4, 160, 300), 63, true),
        (config(2, 576, 9, 3, 1536, 1000), 64, false),
    ] {
        check_windows(c, seed, &[130, 9, 33], 256, |g| {
            g.norm_regs = true;
            g.norm_block_rows = 0;
            g.split_scales = split;
        });
    }
}

#[test]
fn norm_kernels_by_row_width() {
    assert_eq!(norm_rows_kernel(false, 576), "norm_rows");
    assert_eq!(norm_rows_kernel(true, 64), "norm_rows_r8");
    assert_eq!(norm_rows_kernel(true, 256), "norm_rows_r8");
    assert_eq!(norm_rows_kernel(true, 257), "norm_rows_r16");
    assert_eq!(norm_rows_kernel(true, 320), "norm_rows_r16");
    assert_eq!(norm_rows_kernel(true, 576), "norm_rows_r24");
    assert_eq!(norm_rows_kernel(true, 1024), "norm_rows_r32");
    assert_eq!(norm_rows_kernel(true, 1025), "norm_rows");
}

/// The same 128-bit products with the norms a block per row.
#[test]
fn norm_blocks_with_128_bit_scale_products_match_the_host_engine() {
    check_windows(
        config(2, 64, 4, 2, 160, 300),
        18,
        &[300, 17, 64],
        512,
        |g| {
            g.split_scales = false;
        },
    );
}

/// Scores, probabilities and P · V as three kernels (`att_scores_block`, `att_probs_block`
/// past 512 positions, `att_pv`), what rows take where `att_row`'s shared memory doesn't fit
/// (and `LMGC_CUDA_FUSED_ATT=off`); every other test with the shared kernels takes
/// `att_row`'s kernel for its group (`att_row_g2`, `att_row_g3`, or the generic `att_row` for
/// groups of 9).
#[test]
fn attention_in_three_kernels_matches_the_host_engine() {
    check_windows(
        config(2, 144, 18, 2, 160, 300),
        19,
        &[600, 9, 40],
        640,
        |g| {
            g.fused_attention = false;
        },
    );
}

/// `att_row` with more than the 48 KiB of shared memory any kernel gets: a window of 2,100
/// positions for groups of three 64-wide heads (SmolLM2's) takes about 52 KiB, from the
/// device's opt-in maximum (a window of 2,048, the codec's default, takes 51). Its prefill
/// runs on att_mma and, the one long window the GEMM path gets, with att_mma off.
#[test]
fn long_decoding_windows_take_opt_in_shared_memory() {
    for mma in [true, false] {
        check_windows(config(1, 192, 3, 1, 160, 300), 20, &[2100, 5], 2112, |g| {
            assert!(g.att_row_shared > SHARED_BYTES, "no opt-in shared memory");
            g.att_mma_on &= mma;
        });
    }
}

/// `att_row` for any group size on SmolLM2's groups of three 64-wide heads: what groups past
/// eight take (`wide_groups_in_shared_memory_match_the_host_engine` reaches it too) and
/// `LMGC_CUDA_ATT_ROW=generic` gives, where the other SmolLM2-shaped tests take `att_row_g3`.
#[test]
fn decoding_attention_for_any_group_matches_the_host_engine() {
    check_windows(
        config(2, 576, 9, 3, 1536, 1000),
        23,
        &[200, 64, 9],
        256,
        |g| {
            g.att_row = "att_row";
        },
    );
}

/// `att_row_g3` with 10-wide heads: head_dim not a multiple of 4 takes its P · V one channel
/// per load instead of four.
#[test]
fn decoding_attention_of_narrow_heads_matches_the_host_engine() {
    check_windows(config(2, 60, 6, 2, 160, 300), 24, &[90, 33, 5], 128, |g| {
        g.att_row = "att_row_g3";
    });
}

/// Scales split into odd parts and powers of two, and refused where a sum times the odd part
/// could pass 2^62.
#[test]
fn scales_split_where_their_products_fit_64_bits() {
    let v = split_scales(&[0, 3 << 40, -5 << 2, 7], sum_max(576)).expect("SmolLM2-sized");
    assert_eq!(v, vec![0, 3 * 128 + 40, -5 * 128 + 2, 7 * 128]);
    // 576 · 32767 · 127 · 2^25 < 2^62, but 2^40 does not fit.
    assert!(split_scales(&[(1 << 25) - 1], sum_max(576)).is_some());
    assert!(split_scales(&[(1 << 40) + 1], sum_max(576)).is_none());
    // Norm gammas: odd parts below 2^26 for quotients below 2^36.
    assert!(split_scales(&[((1 << 26) - 1) << 3], NORM_QUOT_SPLIT).is_some());
    assert!(split_scales(&[(1 << 26) + 1], NORM_QUOT_SPLIT).is_none());
}

/// Many windows of a few lengths: runs of one shape share batched GEMMs (att_mma off).
#[test]
fn windows_of_equal_length_match_the_host_engine() {
    check_windows(
        config(2, 576, 9, 3, 1536, 1000),
        15,
        &[64, 64, 64, 64, 64, 200, 200, 40],
        256,
        |g| g.att_mma_on = false,
    );
}

/// A budget of one position (raised to the windows' 640): the runs go in two batches, keys
/// copied per batch for the scores and values recopied per batch for P · V (head size 16:
/// no att_mma).
#[test]
fn one_run_per_copy_matches_the_host_engine() {
    check_windows(
        config(2, 64, 4, 2, 160, 300),
        16,
        &[70, 70, 9, 130, 600],
        640,
        |g| {
            g.kv_budget = 1;
            g.att_block = 128;
        },
    );
}

/// The runs' whole attention on the int8 tensor cores (`att_mma`, mma.cu; the default
/// where it loads) for head sizes of 32, 64 (SmolLM2's) and 128: runs of one tile
/// and of many, windows of 600 positions (four warps' probabilities past the 48 KiB any
/// kernel gets) and of 2,100 (three warps per block, or one keeping scores); scores kept
/// from the first pass and recomputed in each.
#[test]
fn attention_on_tensor_cores_matches_the_host_engine() {
    for keep in [true, false] {
        attention_on_tensor_cores(keep);
    }
}

fn attention_on_tensor_cores(keep: bool) {
    for (c, seed, lens, positions) in [
        (
            config(2, 128, 4, 2, 160, 300),
            25,
            &[70, 17, 9, 130, 600][..],
            640,
        ),
        (
            config(1, 256, 2, 1, 160, 300),
            26,
            &[70, 17, 9, 130, 600][..],
            640,
        ),
        (
            config(2, 576, 9, 3, 1536, 1000),
            28,
            &[255, 70, 9, 130][..],
            256,
        ),
        (config(1, 192, 3, 1, 160, 300), 29, &[2100, 5][..], 2112),
    ] {
        let tweak = |g: &mut CudaEngine| {
            let Some(mm) = g.att_mma.as_mut() else {
                panic!("att_mma not loaded");
            };
            mm.keep = keep;
            g.att_mma_on = true;
        };
        // att_mma ran, with kept scores where asked and one warp's fit any device's shared
        // memory (48 KiB: windows up to 640 positions), never with them where not asked.
        let after = |g: &CudaEngine| {
            let [recomputed, kept] = g.att_mma_launches.get();
            assert!(recomputed + kept > 0, "att_mma never launched");
            assert!(keep || kept == 0, "kept scores where not asked");
            assert!(!keep || positions > 640 || kept > 0, "scores never kept");
        };
        check_windows_then(c, seed, lens, positions, tweak, after);
    }
}

/// `att_mma` on runs that start mid-window (prefill in two calls), SmolLM2's heads.
#[test]
fn attention_on_tensor_cores_in_pieces_matches_the_host_engine() {
    let c = config(2, 576, 9, 3, 1536, 1000);
    let Some((mut host, mut gpu)) = engines(c.clone(), 27, 640) else {
        return;
    };
    assert!(gpu.att_mma.is_some(), "att_mma not loaded");
    gpu.att_mma_on = true;
    let windows: Vec<Vec<u32>> = [300, 40, 600, 300]
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(50 + i as u64, n, c.vocab))
        .collect();
    for (first, keep) in [(20, true), (100, false), (290, true)] {
        if let Some(mm) = gpu.att_mma.as_mut() {
            mm.keep = keep;
        }
        let before = gpu.att_mma_launches.get();
        let want = run_in_pieces(&mut host, &windows, first);
        let got = run_in_pieces(&mut gpu, &windows, first);
        let differs = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(differs.is_none(), "first {first}: row {differs:?} differs");
        let now = gpu.att_mma_launches.get();
        assert!(
            now[usize::from(keep)] > before[usize::from(keep)],
            "first {first}: no att_mma"
        );
    }
}

/// The runs' dot products on the int8 tensor cores (`att_dots`, mma.cu) and P · V as the
/// f64 GEMM (with att_mma off, or where it does not load) for head sizes of 32 and 128,
/// with the runs' values in two copies (a budget of one position).
#[test]
fn dot_products_on_tensor_cores_match_the_host_engine() {
    for (c, seed) in [
        (config(2, 128, 4, 2, 160, 300), 21),
        (config(1, 256, 2, 1, 160, 300), 22),
    ] {
        check_windows(c, seed, &[70, 17, 9, 130, 600], 640, |g| {
            assert!(g.att_dots.is_some(), "att_dots not loaded");
            g.att_mma_on = false;
            g.kv_budget = 1;
        });
    }
}

/// The runs' dot products as the f64 GEMM, what devices before compute capability 8.0 and
/// `LMGC_CUDA_QK_MMA=off` take, on SmolLM2's shapes.
#[test]
fn dot_products_as_an_f64_gemm_match_the_host_engine() {
    check_windows(
        config(2, 576, 9, 3, 1536, 1000),
        23,
        &[70, 9, 130, 255],
        256,
        |g| {
            g.att_dots = None;
            g.att_mma_on = false;
        },
    );
}

/// Every linear layer as the f64 GEMM (what a layer int8 cannot take gets), its f64 weights
/// made on the device at first use.
#[test]
fn f64_linear_layers_match_the_host_engine() {
    check_windows(
        config(2, 576, 9, 3, 1536, 1000),
        18,
        &[70, 9, 130],
        256,
        |g| {
            for l in &g.layers {
                for d in [&l.qkv, &l.wo, &l.gate_up, &l.down] {
                    d.int8_refused.set(true);
                }
            }
            g.output_all.int8_refused.set(true);
        },
    );
}

/// Layers cuBLAS refuses at their first GEMM, after the kernel before them wrote int8 limbs:
/// the levels come back from the limbs for the f64 GEMM there, later calls write levels, and
/// int8 and f64 layers alternate within one forward pass.
#[test]
fn layers_refused_at_first_use_match_the_host_engine() {
    check_windows(
        config(2, 576, 9, 3, 1536, 1000),
        19,
        &[70, 9, 130],
        256,
        |g| {
            let (a, b) = (&g.layers[0], &g.layers[1]);
            for d in [&a.qkv, &a.down, &b.wo, &b.gate_up] {
                d.refuse_next.set(true);
            }
            g.output_all.refuse_next.set(true);
        },
    );
}

/// Prefill split across calls: the second call's runs start mid-window, attend to keys
/// the first call cached, and differ in shape from each other (head size 16: the GEMMs;
/// att_mma's is `attention_on_tensor_cores_in_pieces_matches_the_host_engine`).
#[test]
fn prefill_in_pieces_matches_the_host_engine() {
    let c = config(2, 64, 4, 2, 160, 300);
    let Some((mut host, mut gpu)) = engines(c.clone(), 17, 640) else {
        return;
    };
    let windows: Vec<Vec<u32>> = [300, 40, 600, 300]
        .iter()
        .enumerate()
        .map(|(i, &n)| tokens(40 + i as u64, n, c.vocab))
        .collect();
    for first in [20, 100, 290] {
        let want = run_in_pieces(&mut host, &windows, first);
        let got = run_in_pieces(&mut gpu, &windows, first);
        let differs = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(differs.is_none(), "first {first}: row {differs:?} differs");
    }
}

#[test]
fn runs_split_where_window_or_position_breaks() {
    let row = |cache| Row { cache, token: 0 };
    let rows = [row(0), row(0), row(0), row(1), row(1), row(0), row(0)];
    let pos = [5, 6, 7, 0, 1, 8, 9];
    let got = runs(&rows, &pos, 2);
    let run = |slot, r0, len, p0| AttRun { slot, r0, len, p0 };
    assert_eq!(got, vec![run(0, 0, 3, 5), run(1, 3, 2, 0), run(0, 5, 2, 8)]);
    assert_eq!(runs(&rows, &pos, 3), vec![run(0, 0, 3, 5)]);
    let long = run(0, 0, ATT_BLOCK + 1, 0);
    assert_eq!(
        long.blocks(ATT_BLOCK).collect::<Vec<_>>(),
        vec![(0, ATT_BLOCK), (ATT_BLOCK, ATT_BLOCK + 1)]
    );
    assert_eq!(runs(&[], &[], 1), vec![]);
}

/// `att_mma`'s blocks: scores kept while one warp's fit beside the exp2 table, recomputed in
/// longer windows, none past what one warp's probabilities or the limb sums take.
#[test]
fn att_mma_launch_keeps_scores_while_they_fit() {
    let h100 = 227 * 1024;
    // Windows of 256: 16 KiB per warp with scores, 8 without.
    assert_eq!(att_mma_launch(h100, 4, true, 256), Some((4, true)));
    assert_eq!(att_mma_launch(h100, 4, false, 256), Some((4, false)));
    assert_eq!(att_mma_launch(h100, 32, true, 256), Some((13, true)));
    // 2,100 positions: one warp keeps its scores (132 KiB), or three recompute them.
    assert_eq!(att_mma_launch(h100, 4, true, 2100), Some((1, true)));
    assert_eq!(att_mma_launch(h100, 4, false, 2100), Some((3, false)));
    // 4,000 positions: 250 KiB of scores do not fit, 125 KiB of probabilities do.
    assert_eq!(att_mma_launch(h100, 4, true, 4000), Some((1, false)));
    // Past one warp's probabilities, and past the limb sums' bound.
    assert_eq!(att_mma_launch(h100, 4, true, 8000), None);
    assert_eq!(
        att_mma_launch(64 << 20, 4, true, ATT_MMA_MAX_POSITIONS + 1),
        None
    );
    assert_eq!(att_mma_launch(48 * 1024, 4, true, 256), Some((2, true)));
}
