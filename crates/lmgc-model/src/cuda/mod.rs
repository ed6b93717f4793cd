//! The exact forward pass on an NVIDIA GPU: every step of the recipe as a CUDA kernel
//! (`kernels.cu`, compiled by NVRTC at load), GEMMs by cuBLAS, KV caches in device memory.
//!
//! Linear layers are int8 GEMMs with int32 sums on the tensor cores (activations as two int8
//! limbs; exact), or f64 GEMMs where cuBLAS refuses an int8 shape. The attention of a run of
//! consecutive positions of one window (prefill) takes its dot products on the int8 tensor
//! cores (`mma.cu`'s `att_dots`, from compute capability 8.0; else an f64 GEMM) and P · V as
//! f64 GEMMs: every partial sum is an integer below 2^53, so any summation order gives the
//! exact result. Where `mma.cu`'s `att_mma` loads (the same devices and head sizes), it takes
//! the whole of it instead, scores, exact softmax and P · V on the tensor cores (the default
//! since stop 30, docs/perf.md; `LMGC_CUDA_ATT_MMA=off` for the GEMMs, `on` to refuse a
//! device without it). Decoding steps, one row per window, take the attention kernels.
//!
//! Only token ids go to the device and only the scores of the output rows come back. The
//! kernels are ports of [`crate::exact`]'s integer code, so this engine's tables equal the
//! host engine's bit for bit (checked by the `cuda` tests on a GPU host, and by comparing
//! `lmgc model bench` digests across backends: docs/perf.md).
//!
//! Loaded at run time: the CUDA driver, NVRTC and cuBLAS (`cudarc`'s dynamic loading), so a
//! binary built on a machine without CUDA runs on one with it.

use std::sync::Arc;

use cudarc::cublas::{CudaBlas, sys::cublasOperation_t};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchArgs, LaunchConfig,
    PushKernelArg,
};

mod attention;

use attention::{AttPlan, AttRun, Attention, Layout, MmaTables, grid, runs};

use crate::config::LlamaConfig;
use crate::engine::Engine;
use crate::exact::linear::{Quantized, WEIGHT_LEVELS};
use crate::exact::tables::Tables;
use crate::exact::{self, Norm, Row};
use crate::weights::LlamaWeights;
use crate::{Error, Result};

const SOURCE: &str = include_str!("kernels.cu");
/// The tensor-core kernels, compiled for compute_80 apart from `SOURCE` (which targets every
/// GPU) and loaded only on a device that runs them; with `att_mma` (`ATT_MMA`), after
/// `SOURCE`, whose exact helpers it calls.
const MMA_SOURCE: &str = include_str!("mma.cu");
const KERNELS: [&str; 33] = [
    "embed",
    "levels_f64",
    "norm_rows",
    "norm_rows_block",
    "to_f64",
    "from_f64",
    "kv_to_f64",
    "pv_take",
    "from_limbs8",
    "qk_rope",
    "v_store",
    "att_scores",
    "att_scores_block",
    "att_probs",
    "att_probs_block",
    "att_pv",
    "att_row",
    "att_row_g1",
    "att_row_g2",
    "att_row_g3",
    "att_row_g4",
    "att_row_g5",
    "att_row_g6",
    "att_row_g7",
    "att_row_g8",
    "att_out",
    "zero_i64",
    "quant_rows",
    "ffn_shifts",
    "ffn_row",
    "att_out_row",
    "ffn_act",
    "logits",
];
/// Levels of the gate and up rows (`exact`'s FFN_LEVELS).
const FFN_LEVELS: i64 = (1 << 31) - 1;
/// Cache positions per thread of the P · V kernel (default; `LMGC_CUDA_PV_SPAN`).
const PV_SPAN: usize = 128;
/// Calls of at most this many rows (decoding steps, up to a batch of 4,096 windows) take the
/// norms a block per row instead of a warp per row; prefill calls of up to `DEVICE_ROWS` rows
/// keep the warp form (default; `LMGC_CUDA_NORM_BLOCK`, 0 for the warp form always).
const NORM_BLOCK_ROWS: usize = 4096;
/// Threads per row of the norms' block form (default; `LMGC_CUDA_NORM_THREADS`, a multiple of
/// 32 up to 1,024).
const NORM_BLOCK_THREADS: usize = 128;
/// Rows per forward call on the device (prefill); bounds the activation buffers.
pub const DEVICE_ROWS: usize = 8192;
/// Shortest run of consecutive positions of one window whose attention is f64 GEMMs; shorter
/// runs (a decoding step's single rows) take the attention kernels.
const ATT_GEMM_MIN_ROWS: usize = 16;
/// Rows of a run per attention GEMM (default; `LMGC_CUDA_ATT_BLOCK`): each block attends to
/// the positions up to its last row, so the causal triangle costs about half a square plus a
/// block; larger blocks mean fewer, larger GEMM calls.
const ATT_BLOCK: usize = 512;
/// Positions of keys and values the attention GEMMs copy to f64 at once: two calls' worth of
/// rows, 50 MB for SmolLM2 (a prefill call's runs start at position 0 but for a window that
/// continues from the previous call).
const KV_BUDGET: usize = 2 * DEVICE_ROWS;
/// Integers up to 2^53 are exact in f64, so are all the partial sums of a GEMM below it.
const F64_EXACT: f64 = 9_007_199_254_740_992.0;
const THREADS: u32 = 256;
/// Rows of scores up to this long take the warp kernel for probabilities, longer ones a
/// block per (row, head) (measured on an H200: for 256 positions the warp kernel took 121 µs
/// per 8,192 rows where blocks of 128 threads took 179; for 2,048 blocks of 256 threads took
/// 610 µs, the warp kernel 1,570).
const PROB_WARP_MAX: usize = 512;
/// Shared memory a block may take without opting in (48 KiB, static and dynamic together):
/// `att_probs_block` holds one row of `cap` i64 scores plus its 32-entry reduction array,
/// so windows up to 6,112 positions take it; `att_scores_block` one key/value head's group
/// of queries (group × head_dim ints).
const SHARED_BYTES: usize = 48 * 1024;
/// `att_probs_block`'s static shared memory (`red` in kernels.cu).
const PROB_STATIC_SHARED: usize = 8 * 32;
/// Static shared memory of the block-per-row kernels (a 16-byte maximum per warp).
const ROW_STATIC_SHARED: usize = 16 * 32;
/// Warps per block of `att_mma` (default; `LMGC_CUDA_ATT_MMA_WARPS`; fewer where a window's
/// scores or probabilities would not fit that many warps' shared memory).
const ATT_MMA_WARPS: usize = 4;
/// Key tiles `att_mma` loads before their products (`LMGC_CUDA_ATT_MMA_LOADS`: 1, 2 or 4;
/// more loads in flight per warp against fewer registers, mma.cu).
const ATT_MMA_LOADS: usize = 4;
/// `att_mma`'s copy of the exp2 table in shared memory.
const ATT_MMA_TABLE_BYTES: usize = 1024 * 8;
/// Positions `att_mma`'s 32-bit limb sums take (a8's bound, mma.cu).
const ATT_MMA_MAX_POSITIONS: usize = 31_000;
/// `att_row`'s static shared memory (none: its reductions are a warp's).
const ATT_ROW_STATIC_SHARED: usize = 0;
/// Threads per block of `att_row` (default; `LMGC_CUDA_ATT_THREADS`, a multiple of 32 up to
/// 1,024). On an H100, SmolLM2's `att_row_g3` (72 registers) decoded 10 MB 3% faster with 64
/// than with 128 (twice the resident blocks; 96 no better, 32 and 256 slower; docs/perf.md,
/// stop 27); 64-wide heads then take four slices of positions per four value channels.
const ATT_ROW_THREADS: usize = 64;
/// `att_row` compiled for one group size each (query heads per key/value head, 1 to 8):
/// `att_row` itself takes any group, with the registers of its widest slice.
const ATT_ROW_BY_GROUP: [&str; 8] = [
    "att_row_g1",
    "att_row_g2",
    "att_row_g3",
    "att_row_g4",
    "att_row_g5",
    "att_row_g6",
    "att_row_g7",
    "att_row_g8",
];
/// Value loads `att_row`'s P · V issues before its first product (default;
/// `LMGC_CUDA_PV_UNROLL`, 1 to 16, a compile-time constant of the kernels).
const PV_UNROLL: usize = 4;

fn drv(e: impl std::fmt::Debug) -> Error {
    Error::Backend(format!("CUDA: {e:?}"))
}

/// A weight matrix on the device: integer levels, row-major `out × inp`, as int8 for the
/// tensor cores, and as f64 once a GEMM needs them so (a layer too wide for int32 sums or a
/// shape cuBLAS refuses in int8): made on the device then, so a model whose layers all take
/// int8 never holds the eight-times-larger copy (1.1 GB for SmolLM2).
struct DevLinear {
    out: usize,
    inp: usize,
    w: std::cell::OnceCell<CudaSlice<f64>>,
    w8: CudaSlice<i8>,
    /// Each row's sum of levels (the int8 path's limb offset).
    rowsum: CudaSlice<i64>,
    /// Set for layers too wide for int32 sums, and once cuBLAS refused this layer's int8 shape
    /// (per layer, whatever the row count: a later call that it would take goes to f64 too,
    /// which costs speed, never a different integer).
    int8_refused: std::cell::Cell<bool>,
    /// Tests: cuBLAS "refuses" the int8 shape at this layer's next GEMM (after the kernel
    /// before it wrote limbs), as it may a real shape at first use.
    #[cfg(test)]
    refuse_next: std::cell::Cell<bool>,
    scale: CudaSlice<i64>,
    /// The scales as `m · 2^z` packed `m · 128 + z` (the 64-bit products of `qk_rope`,
    /// `ffn_row` and `norm_rows`' residual add), where every sum times `m` fits 62 bits; `None`
    /// leaves the kernels on 128-bit products. The output layer's goes unused.
    split: Option<CudaSlice<i64>>,
    exp: i32,
}

/// Each scale as its odd part `m` and power of two `2^z`, packed `m · 128 + z`, when every
/// factor it multiplies, at most `factor_max` in magnitude, times `m` stays below 2^62: the
/// kernels then multiply in 64 bits (`mag_key64`, `quant_apply_split` in kernels.cu). Scales
/// come from `f32` values (24-bit mantissas), so `m` stays small: SmolLM2's layers and norms
/// all qualify with room to spare.
fn split_scales(scale: &[i64], factor_max: u128) -> Option<Vec<i64>> {
    let split: Vec<(i64, u32)> = scale
        .iter()
        .map(|&s| match s {
            0 => (0, 0),
            s => (s >> s.trailing_zeros(), s.trailing_zeros()),
        })
        .collect();
    let m_max = split
        .iter()
        .map(|&(m, _)| m.unsigned_abs())
        .max()
        .unwrap_or(0);
    (factor_max.saturating_mul(u128::from(m_max)) < 1 << 62 && split.iter().all(|&(_, z)| z < 64))
        .then(|| split.iter().map(|&(m, z)| m * 128 + i64::from(z)).collect())
}

/// The largest magnitude of a linear layer's exact sum over `inp` inputs.
fn sum_max(inp: usize) -> u128 {
    inp as u128 * exact::ACT_LEVELS as u128 * WEIGHT_LEVELS as u128
}

/// The norm kernel's quotients take the split gammas' 64-bit path below this magnitude
/// (`norm_mant_split`).
const NORM_QUOT_SPLIT: u128 = 1 << 36;

impl DevLinear {
    fn upload(stream: &Arc<CudaStream>, q: &Quantized) -> Result<Self> {
        if q.inp as f64 * exact::ACT_LEVELS as f64 * f64::from(WEIGHT_LEVELS) >= F64_EXACT {
            return Err(Error::Unsupported(format!(
                "a linear layer {} wide: its f64 GEMM sums could pass 2^53",
                q.inp
            )));
        }
        // Wider than int32 sums allow (K · 128 · 127 < 2^31): the f64 GEMM from the start.
        let int8_fits = q.inp * 128 * 127 < 1 << 31;
        let rowsum: Vec<i64> = q
            .levels
            .chunks(q.inp.max(1))
            .map(|r| r.iter().map(|&v| i64::from(v)).sum())
            .collect();
        Ok(DevLinear {
            out: q.out,
            inp: q.inp,
            w: std::cell::OnceCell::new(),
            w8: stream.clone_htod(&q.levels).map_err(drv)?,
            rowsum: stream.clone_htod(&rowsum).map_err(drv)?,
            int8_refused: std::cell::Cell::new(!int8_fits),
            #[cfg(test)]
            refuse_next: std::cell::Cell::new(false),
            scale: stream.clone_htod(&q.scale).map_err(drv)?,
            split: match split_scales(&q.scale, sum_max(q.inp)) {
                Some(v) => Some(stream.clone_htod(&v).map_err(drv)?),
                None => None,
            },
            exp: q.exp,
        })
    }
}

struct DevNorm {
    gamma: CudaSlice<i64>,
    /// `gamma` split as `split_scales` does, for quotients below `NORM_QUOT_SPLIT`.
    split: Option<CudaSlice<i64>>,
    exp: i32,
    eps: i64,
}

impl DevNorm {
    fn upload(stream: &Arc<CudaStream>, gamma: &[f32], eps: f64) -> Result<Self> {
        let n = Norm::new(gamma, eps);
        Ok(DevNorm {
            gamma: stream.clone_htod(&n.gamma).map_err(drv)?,
            split: match split_scales(&n.gamma, NORM_QUOT_SPLIT) {
                Some(v) => Some(stream.clone_htod(&v).map_err(drv)?),
                None => None,
            },
            exp: n.exp,
            eps: n.eps,
        })
    }
}

struct DevLayer {
    attn_norm: DevNorm,
    qkv: DevLinear,
    wo: DevLinear,
    ffn_norm: DevNorm,
    gate_up: DevLinear,
    down: DevLinear,
    v_exp: CudaSlice<i32>,
    v_exp_min: i32,
}

/// `kernels.cu`'s norms with the row in registers, compiled with `NORM_REGS` only
/// (`LMGC_CUDA_NORM_REGS=on`, and the tests).
const NORM_REGS_KERNELS: [&str; 4] = [
    "norm_rows_r8",
    "norm_rows_r16",
    "norm_rows_r24",
    "norm_rows_r32",
];

struct Kernels {
    f: Vec<CudaFunction>,
    /// `NORM_REGS_KERNELS`, where compiled (else empty).
    norm_regs: Vec<CudaFunction>,
}

impl Kernels {
    fn get(&self, name: &str) -> &CudaFunction {
        self.find(name).expect("a listed kernel that was compiled")
    }

    fn find(&self, name: &str) -> Option<&CudaFunction> {
        match KERNELS.iter().position(|k| *k == name) {
            Some(i) => self.f.get(i),
            None => NORM_REGS_KERNELS
                .iter()
                .position(|k| *k == name)
                .and_then(|i| self.norm_regs.get(i)),
        }
    }
}

/// Activation buffers for up to `rows` rows.
struct Workspace {
    rows: usize,
    /// Widest GEMM output.
    n_max: usize,
    x: CudaSlice<i64>,
    h: CudaSlice<i32>,
    hexp: CudaSlice<i32>,
    ebase: CudaSlice<i32>,
    sg: CudaSlice<i32>,
    su: CudaSlice<i32>,
    /// GEMM inputs (levels as f64), rows × widest input.
    hf: CudaSlice<f64>,
    /// int8 GEMM inputs (two limbs) and outputs: 2·rows × widest input / output; the
    /// kernels after a GEMM read its sums from the two limb products.
    limbs8: CudaSlice<i8>,
    gout32: CudaSlice<i32>,
    /// f64 GEMM outputs, rows × widest output, and as integers.
    gout: CudaSlice<f64>,
    acc: CudaSlice<i64>,
    q: CudaSlice<i32>,
    /// Queries as f64 for the attention GEMMs, rows × d.
    qf: CudaSlice<f64>,
    /// Keys and values of the attention GEMMs' windows as f64, `kv_positions` × kv width
    /// each (one slab per run of a batch, see `attention::AttPlan`).
    kf: CudaSlice<f64>,
    vf: CudaSlice<f64>,
    kv_positions: usize,
    /// Per row: 0 for the attention kernels, else the inner length of its attention GEMMs.
    zend: CudaSlice<i32>,
    qexp: CudaSlice<i32>,
    /// Mantissas before quantization: attention output (rows × d), FFN product (rows × f),
    /// for rows too wide for `ffn_row` / `att_out_row` (and the test that turns those off);
    /// allocated either way (SmolLM2 at 8,192 rows: 192 MiB unused on the fused path).
    narrow: CudaSlice<i128>,
    /// Per row, the high 64 bits of its largest mantissa in `narrow` (zeroed before the
    /// kernel that writes them books them; read by `quant_rows`).
    rowhi: CudaSlice<i64>,
    scores: CudaSlice<i32>,
    tok: CudaSlice<i32>,
    slot: CudaSlice<i32>,
    pos: CudaSlice<i32>,
    /// Attention scores, then probabilities: rows × heads × cache positions.
    z: CudaSlice<i64>,
    z_cap: usize,
    /// P · V sums, rows × d.
    pv: CudaSlice<i64>,
}

impl Workspace {
    fn new(
        stream: &Arc<CudaStream>,
        c: &LlamaConfig,
        rows: usize,
        n_max: usize,
        cap: usize,
        kv_positions: usize,
    ) -> Result<Self> {
        let (d, f) = (c.d_model, c.d_ffn);
        let k_max = d.max(f);
        let kvd = c.n_kv_heads * c.head_dim();
        let z = |n: usize| -> Result<CudaSlice<i32>> { stream.alloc_zeros(n.max(1)).map_err(drv) };
        Ok(Workspace {
            rows,
            n_max,
            x: stream.alloc_zeros(rows * d).map_err(drv)?,
            h: z(rows * k_max)?,
            hexp: z(rows)?,
            ebase: z(rows)?,
            sg: z(rows)?,
            su: z(rows)?,
            hf: stream.alloc_zeros(rows * k_max).map_err(drv)?,
            limbs8: stream.alloc_zeros(2 * rows * k_max).map_err(drv)?,
            gout32: stream.alloc_zeros(2 * rows * n_max).map_err(drv)?,
            gout: stream.alloc_zeros(rows * n_max).map_err(drv)?,
            acc: stream.alloc_zeros(rows * n_max).map_err(drv)?,
            q: z(rows * d)?,
            qf: stream.alloc_zeros(rows * d).map_err(drv)?,
            kf: stream.alloc_zeros(kv_positions.max(1) * kvd).map_err(drv)?,
            vf: stream.alloc_zeros(kv_positions.max(1) * kvd).map_err(drv)?,
            kv_positions,
            zend: z(rows)?,
            qexp: z(rows * c.n_heads)?,
            narrow: stream.alloc_zeros(rows * f.max(d)).map_err(drv)?,
            rowhi: stream.alloc_zeros(rows).map_err(drv)?,
            scores: z(rows * n_max)?,
            tok: z(rows)?,
            slot: z(rows)?,
            pos: z(rows)?,
            z: stream.alloc_zeros(rows * c.n_heads * cap).map_err(drv)?,
            z_cap: cap,
            pv: stream.alloc_zeros(rows * c.d_model).map_err(drv)?,
        })
    }
}

/// Key/value caches of `slots` windows of up to `cap` positions, every layer.
struct Caches {
    slots: usize,
    cap: usize,
    k: CudaSlice<i16>,
    kexp: CudaSlice<i32>,
    v: CudaSlice<i32>,
    len: Vec<usize>,
}

/// The exact model as CUDA kernels on one GPU.
pub struct CudaEngine {
    config: LlamaConfig,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    k: Kernels,
    err: CudaSlice<i32>,
    embedding: CudaSlice<f32>,
    layers: Vec<DevLayer>,
    out_norm: DevNorm,
    output: Quantized,
    output_all: DevLinear,
    output_subset: Option<(Vec<usize>, DevLinear)>,
    exp2: CudaSlice<i64>,
    sigmoid: CudaSlice<i64>,
    cos: CudaSlice<i32>,
    sin: CudaSlice<i32>,
    positions: usize,
    k_levels: i64,
    score_scale: i64,
    logit_scale: i64,
    /// Whether runs of a window's rows take the attention GEMMs (exact for this model's
    /// shapes; `LMGC_CUDA_ATTENTION=kernels` turns them off, for comparison).
    att_gemm: bool,
    /// Rows per attention GEMM block and positions per P · V thread: speed only, the
    /// integers are the same for any value.
    att_block: usize,
    /// Cache positions whose keys and values the attention GEMMs copy to f64 at once (a run
    /// longer than this is copied alone): bounds the copies' memory, speed only otherwise.
    kv_budget: usize,
    pv_span: usize,
    /// Scores and probabilities with their operands in shared memory where they fit (off:
    /// the thread and warp kernels always; the tests switch it to reach those).
    shared_kernels: bool,
    /// `qk_rope`, `norm_rows` and `ffn_row` multiply by the split scales and gammas in 64 bits
    /// where a layer has them (off: the 128-bit products always; a test switches it to reach
    /// those, and `LMGC_CUDA_SPLIT=off` turns it off, for comparison).
    split_scales: bool,
    /// Calls of at most this many rows take `norm_rows_block` (0: `norm_rows` always; a test
    /// sets it to reach that).
    norm_block_rows: usize,
    /// Threads per row of `norm_rows_block`.
    norm_block_threads: u32,
    /// `LMGC_CUDA_NORM_REGS=on`: calls that take `norm_rows` take `norm_rows_r{8,16,24,32}`
    /// instead (the row and its quotients in registers) where a row fits 32 slots a lane.
    norm_regs: bool,
    /// Rows outside the attention GEMMs take `att_row` (scores, probabilities and P · V in
    /// one kernel) where its shared memory fits (off: the three kernels; a test switches it
    /// to reach those, and `LMGC_CUDA_FUSED_ATT=off` turns it off, for comparison).
    fused_attention: bool,
    /// `mma.cu`'s `att_dots`, for the dot products of the attention GEMM runs on the int8
    /// tensor cores instead of an f64 GEMM: on devices of compute capability 8.0 and later,
    /// for head_dim a multiple of 32 up to 128 (`LMGC_CUDA_QK_MMA=off`: the f64 GEMMs).
    att_dots: Option<CudaFunction>,
    /// `mma.cu`'s `att_mma` and `v_pack` (the runs' whole attention on the int8 tensor
    /// cores), where compiled and `att_dots` is loaded.
    att_mma: Option<AttMma>,
    /// Whether the runs take `att_mma` instead of `att_dots` and the f64 GEMM for P · V:
    /// wherever it loaded unless `LMGC_CUDA_ATT_MMA=off` (the tests switch it per engine).
    att_mma_on: bool,
    /// The runs' values as `att_mma`'s B fragments (`v_pack`), grown to a call's runs.
    vpack: Option<CudaSlice<u8>>,
    /// Tests: `att_mma`'s launches with kept scores and without (that the tests reached it).
    #[cfg(test)]
    att_mma_launches: std::cell::Cell<[usize; 2]>,
    /// Dynamic shared memory `att_row` may take: the device's opt-in maximum.
    att_row_shared: usize,
    att_row_threads: u32,
    /// The `att_row` kernel for this model's group size (`att_row_kernel`).
    att_row: &'static str,
    /// Most threads per row of `ffn_row` and `att_out_row`.
    row_threads: usize,
    ws: Option<Workspace>,
    caches: Option<Caches>,
    device_name: String,
    total_mem: usize,
    /// With `LMGC_PROFILE=1`: seconds and launches per kernel, each launch synchronized.
    profile: Option<Profile>,
    /// Seconds of the load's phases (`load_*`), and with `LMGC_PROFILE=1` the registers and
    /// resident blocks per SM of the `att_row` kernel taken, reported with the profile.
    load_phases: Vec<(&'static str, f64)>,
}

type Profile = std::cell::RefCell<std::collections::BTreeMap<&'static str, (u64, f64)>>;

/// Seconds of consecutive phases, each named when it ends.
struct Phases(Vec<(&'static str, f64)>, std::time::Instant);

impl Phases {
    fn new() -> Self {
        Phases(Vec::new(), std::time::Instant::now())
    }

    fn done(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.0.push((name, (now - self.1).as_secs_f64()));
        self.1 = now;
    }
}

// SAFETY-relevant note for `Send`: the engine's CUDA handles are used from one thread at a
// time (`&mut self` on every call that launches work).
#[allow(unsafe_code)]
// SAFETY: cudarc's context, stream and cuBLAS handle may move between threads; the engine
// never shares them concurrently (every launching method takes `&mut self`).
unsafe impl Send for CudaEngine {}

impl std::fmt::Debug for CudaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaEngine")
            .field("device", &self.device_name)
            .finish_non_exhaustive()
    }
}

/// cudarc panics when it cannot load the driver, NVRTC or cuBLAS library: makes that the
/// error it is.
fn unless_cuda_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(Error::Backend(format!(
            "CUDA is not usable here ({why}): the cuda backend needs the NVIDIA driver, and \
             NVRTC and cuBLAS on the library path"
        )))
    })
}

/// The engine's kernels compiled to PTX by NVRTC. Compiling takes a noticeable part of a
/// load, and needs neither a GPU context nor the weights, so a caller can run it beside the
/// model file's reading ([`crate::backend::open`] does).
pub struct CompiledKernels {
    ptx: cudarc::nvrtc::Ptx,
    /// `mma.cu`, or `None` where NVRTC cannot compile it (the f64 GEMMs remain; with
    /// `LMGC_CUDA_ATT_MMA=on` that is an error instead). Where `att_mma` fails to compile
    /// and was not insisted on, `mma.cu` without it.
    mma: Option<cudarc::nvrtc::Ptx>,
    /// Whether `mma` holds `att_mma`.
    att_mma: bool,
    /// Whether `ptx` holds `NORM_REGS_KERNELS`.
    norm_regs: bool,
    seconds: f64,
}

/// `LMGC_CUDA_ATT_MMA`: `None` (unset or `auto`, the default) takes `att_mma` wherever it
/// loads; `on` makes a device without it an error; `off` keeps the GEMMs. att_mma keeping
/// its scores encoded 9% faster than the GEMMs on an H100 (docs/perf.md, stop 30).
fn att_mma_setting() -> Result<Option<bool>> {
    match std::env::var("LMGC_CUDA_ATT_MMA").as_deref() {
        Err(_) | Ok("auto") => Ok(None),
        Ok("on") => Ok(Some(true)),
        Ok("off") => Ok(Some(false)),
        Ok(v) => Err(Error::Unsupported(format!(
            "LMGC_CUDA_ATT_MMA={v}: set auto (the default: att_mma where it loads), on (an \
             error where it does not) or off (the GEMMs)"
        ))),
    }
}

/// An on/off setting, `default` where unset; other values are refused.
fn switch(var: &str, default: bool) -> Result<bool> {
    match std::env::var(var).as_deref() {
        Err(_) => Ok(default),
        Ok("off") => Ok(false),
        Ok("on") => Ok(true),
        Ok(v) => Err(Error::Unsupported(format!(
            "{var}={v}: set on or off (default {})",
            if default { "on" } else { "off" }
        ))),
    }
}

impl CompiledKernels {
    /// Compiles `kernels.cu`.
    pub fn compile() -> Result<Self> {
        let started = std::time::Instant::now();
        let pv_unroll = match std::env::var("LMGC_CUDA_PV_UNROLL") {
            Err(_) => PV_UNROLL,
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(u @ 1..=16) => u,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "LMGC_CUDA_PV_UNROLL={v}: set a whole number from 1 to 16 (default \
                         {PV_UNROLL})"
                    )));
                }
            },
        };
        let options = vec![
            "--device-int128".into(),
            "-std=c++17".into(),
            format!("-DPV_UNROLL={pv_unroll}"),
        ];
        let setting = att_mma_setting()?;
        let asked = setting == Some(true);
        // Compiled unless switched off, and always in the tests, which switch it per engine.
        let with_att_mma = cfg!(test) || setting != Some(false);
        // att_mma calls kernels.cu's helpers: compiled after it, with its options.
        let (mma_source, mma_options) = if with_att_mma {
            let mut o = options.clone();
            o.push("-DATT_MMA".into());
            let loads = match std::env::var("LMGC_CUDA_ATT_MMA_LOADS").as_deref() {
                Err(_) => ATT_MMA_LOADS,
                Ok("1") => 1,
                Ok("2") => 2,
                Ok("4") => 4,
                Ok(v) => {
                    return Err(Error::Unsupported(format!(
                        "LMGC_CUDA_ATT_MMA_LOADS={v}: set 1, 2 or 4 (default {ATT_MMA_LOADS})"
                    )));
                }
            };
            o.push(format!("-DATT_MMA_LOADS={loads}"));
            (format!("{SOURCE}{MMA_SOURCE}"), o)
        } else {
            (MMA_SOURCE.to_string(), Vec::new())
        };
        // The norms in registers: where asked for, and in the tests (not in mma.cu's copy).
        let norm_regs = cfg!(test) || switch("LMGC_CUDA_NORM_REGS", false)?;
        let mut options = options;
        if norm_regs {
            options.push("-DNORM_REGS".into());
        }
        let compile_mma = |source: String, options: Vec<String>| {
            cudarc::nvrtc::compile_ptx_with_opts(
                source,
                cudarc::nvrtc::CompileOptions {
                    arch: Some("compute_80"),
                    options,
                    ..Default::default()
                },
            )
        };
        unless_cuda_panics(|| {
            let (ptx, mma) = rayon::join(
                || {
                    cudarc::nvrtc::compile_ptx_with_opts(
                        SOURCE,
                        cudarc::nvrtc::CompileOptions {
                            options,
                            ..Default::default()
                        },
                    )
                },
                || compile_mma(mma_source, mma_options),
            );
            // att_mma that fails to compile by default leaves att_dots (an older NVRTC, say),
            // said where the profile is on, since the prefill then runs slower.
            let (mma, with_att_mma) = match mma {
                Err(e) if with_att_mma && !asked => {
                    if std::env::var("LMGC_PROFILE").is_ok_and(|v| !v.is_empty()) {
                        eprintln!(
                            "lmgc: att_mma did not compile ({e}); the prefill takes the GEMMs"
                        );
                    }
                    (compile_mma(MMA_SOURCE.to_string(), Vec::new()), false)
                }
                m => (m, with_att_mma),
            };
            // Without att_mma a failed mma.cu leaves the f64 GEMMs; asked for, it is an error.
            let mma = match mma {
                Ok(p) => Some(p),
                Err(e) if asked => {
                    return Err(Error::Backend(format!(
                        "compiling mma.cu with att_mma (LMGC_CUDA_ATT_MMA=on) with NVRTC: {e}; \
                         unset LMGC_CUDA_ATT_MMA to fall back to the GEMMs where it does not \
                         compile, or set it off"
                    )));
                }
                Err(_) => None,
            };
            ptx.map(|ptx| CompiledKernels {
                ptx,
                att_mma: with_att_mma && mma.is_some(),
                mma,
                norm_regs,
                seconds: started.elapsed().as_secs_f64(),
            })
            .map_err(|e| Error::Backend(format!("compiling the CUDA kernels with NVRTC: {e}")))
        })
    }
}

impl CudaEngine {
    /// Quantizes `w` with the exact recipe and uploads it to GPU `ordinal`; `max_positions`
    /// bounds the window length.
    pub fn new(w: &LlamaWeights, ordinal: usize, max_positions: usize) -> Result<Self> {
        Self::with_kernels(w, ordinal, max_positions, CompiledKernels::compile()?)
    }

    /// [`CudaEngine::new`] with kernels compiled beforehand.
    pub fn with_kernels(
        w: &LlamaWeights,
        ordinal: usize,
        max_positions: usize,
        kernels: CompiledKernels,
    ) -> Result<Self> {
        unless_cuda_panics(|| Self::build(w, ordinal, max_positions, kernels))
    }

    fn build(
        w: &LlamaWeights,
        ordinal: usize,
        max_positions: usize,
        kernels: CompiledKernels,
    ) -> Result<Self> {
        let c = w.config.clone();
        c.validate()?;
        let mut phases = Phases::new();
        phases.0.push(("load_nvrtc", kernels.seconds));
        let hd = c.head_dim();
        if hd > 256 || !hd.is_multiple_of(2) {
            return Err(Error::Unsupported(format!(
                "head dimension {hd}: the CUDA kernels take even head dimensions up to 256"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| {
            Error::Backend(format!(
                "no CUDA device {ordinal} ({e:?}): is the NVIDIA driver installed and a GPU visible?"
            ))
        })?;
        let device_name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        let total_mem = ctx.total_mem().map_err(drv)?;
        #[allow(unsafe_code)]
        // SAFETY: the engine queues all its work, cuBLAS included, on one stream, and frees
        // buffers only from `&mut self` methods after that stream's results were read; the
        // per-argument events cudarc records for cross-stream safety cost more than many
        // of the small decoding kernels they guard.
        unsafe {
            ctx.disable_event_tracking();
        }
        let stream = ctx.default_stream();
        phases.done("load_context");
        // The driver compiles the PTX for this GPU here (its own cache may keep the result).
        let module = ctx.load_module(kernels.ptx).map_err(drv)?;
        let (att_dots, att_mma) = mma_kernels(&ctx, kernels.mma, kernels.att_mma, hd)?;
        let f = KERNELS
            .iter()
            .map(|n| module.load_function(n).map_err(drv))
            .collect::<Result<Vec<_>>>()?;
        let norm_regs = if kernels.norm_regs {
            NORM_REGS_KERNELS
                .iter()
                .map(|n| module.load_function(n).map_err(drv))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let kf = Kernels { f, norm_regs };
        let att_row_shared = att_row_shared(&ctx, &kf.f);
        let att_row = att_row_kernel(c.n_heads / c.n_kv_heads)?;
        let att_row_threads = warps_setting("LMGC_CUDA_ATT_THREADS", ATT_ROW_THREADS)? as u32;
        let profile = std::env::var("LMGC_PROFILE").as_deref() == Ok("1");
        if profile {
            // Registers and resident blocks of the att_row kernel this model takes, for
            // windows of 256 positions: the numbers its speed turns on.
            let group = c.n_heads / c.n_kv_heads;
            let gh = group * hd;
            let bytes = gh.div_ceil(4) * 16 + gh * 8 + group * 256 * 8;
            let i = KERNELS.iter().position(|k| *k == att_row).expect("listed");
            if let Ok(r) = kf.f[i].num_regs() {
                phases.0.push(("att_row_registers", r as f64));
            }
            if let Ok(b) =
                kf.f[i].occupancy_max_active_blocks_per_multiprocessor(att_row_threads, bytes, None)
            {
                phases.0.push(("att_row_blocks_per_sm", b as f64));
            }
            // The registers of the prefill's ALU-bound kernels, which bound their residency.
            for (k, label) in [
                ("norm_rows", "norm_rows_registers"),
                (
                    norm_rows_kernel(true, c.d_model),
                    "norm_rows_regs_registers",
                ),
                ("ffn_row", "ffn_row_registers"),
                ("qk_rope", "qk_rope_registers"),
                ("att_out_row", "att_out_row_registers"),
            ] {
                if let Some(Ok(r)) = kf.find(k).map(|f| f.num_regs()) {
                    phases.0.push((label, r as f64));
                }
            }
            if let Some(a) = &att_mma {
                if let Ok(r) = a.att.num_regs() {
                    phases.0.push(("att_mma_registers", r as f64));
                }
                if let Ok(b) = a.att.local_size_bytes() {
                    phases.0.push(("att_mma_local_bytes", b as f64));
                }
            }
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| {
            Error::Backend(format!(
                "loading cuBLAS ({e:?}): is libcublas on the library path?"
            ))
        })?;
        phases.done("load_module_and_cublas");
        // Quantizing is the host's share of the load: every layer at once, then the uploads.
        let quantized: Vec<_> = {
            use rayon::prelude::*;
            w.layers
                .par_iter()
                .map(|l| {
                    let wv = Quantized::new(&l.wv);
                    let v_exp = exact::value_exponents(&wv, &l.attn_norm);
                    let qkv = Quantized::stack(&[Quantized::new(&l.wq), Quantized::new(&l.wk), wv]);
                    let gate_up =
                        Quantized::stack(&[Quantized::new(&l.w_gate), Quantized::new(&l.w_up)]);
                    let (wo, down) = (Quantized::new(&l.wo), Quantized::new(&l.w_down));
                    (qkv, wo, gate_up, down, v_exp)
                })
                .collect()
        };
        phases.done("load_quantize");
        let layers = w
            .layers
            .iter()
            .zip(quantized)
            .map(|(l, (qkv, wo, gate_up, down, v_exp))| -> Result<DevLayer> {
                Ok(DevLayer {
                    attn_norm: DevNorm::upload(&stream, &l.attn_norm, c.rms_eps)?,
                    qkv: DevLinear::upload(&stream, &qkv)?,
                    wo: DevLinear::upload(&stream, &wo)?,
                    ffn_norm: DevNorm::upload(&stream, &l.ffn_norm, c.rms_eps)?,
                    gate_up: DevLinear::upload(&stream, &gate_up)?,
                    down: DevLinear::upload(&stream, &down)?,
                    v_exp_min: v_exp.iter().copied().min().unwrap_or(0),
                    v_exp: stream.clone_htod(&v_exp).map_err(drv)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = Quantized::new(w.output());
        let embedding = stream.clone_htod(w.embedding.data()).map_err(drv)?;
        let out_norm = DevNorm::upload(&stream, &w.out_norm, c.rms_eps)?;
        let output_all = DevLinear::upload(&stream, &output)?;
        // The copies are asynchronous from pageable memory: wait for the last before timing.
        stream.synchronize().map_err(drv)?;
        phases.done("load_upload");
        let tables = Tables::new(hd, c.rope_base, max_positions);
        let k_levels = exact::key_levels(hd);
        let att_exact = (hd as f64) * (exact::ACT_LEVELS as f64) * (k_levels as f64) < F64_EXACT
            && (max_positions as f64) * (exact::PROB_LEVELS as f64) * (exact::V_LEVELS as f64)
                < F64_EXACT;
        let att_gemm =
            att_exact && std::env::var("LMGC_CUDA_ATTENTION").as_deref() != Ok("kernels");
        Ok(CudaEngine {
            embedding,
            out_norm,
            output_all,
            output,
            output_subset: None,
            exp2: stream.clone_htod(&tables.exp2).map_err(drv)?,
            sigmoid: stream.clone_htod(&tables.sigmoid).map_err(drv)?,
            cos: stream.clone_htod(&tables.cos).map_err(drv)?,
            sin: stream.clone_htod(&tables.sin).map_err(drv)?,
            positions: max_positions,
            k_levels,
            att_gemm,
            att_block: tuning("LMGC_CUDA_ATT_BLOCK", ATT_BLOCK)?,
            kv_budget: KV_BUDGET,
            pv_span: tuning("LMGC_CUDA_PV_SPAN", PV_SPAN)?,
            shared_kernels: true,
            split_scales: std::env::var("LMGC_CUDA_SPLIT").as_deref() != Ok("off"),
            norm_block_rows: match std::env::var("LMGC_CUDA_NORM_BLOCK").as_deref() {
                Ok("0") => 0,
                _ => tuning("LMGC_CUDA_NORM_BLOCK", NORM_BLOCK_ROWS)?,
            },
            norm_block_threads: warps_setting("LMGC_CUDA_NORM_THREADS", NORM_BLOCK_THREADS)? as u32,
            norm_regs: switch("LMGC_CUDA_NORM_REGS", false)? && !kf.norm_regs.is_empty(),
            fused_attention: std::env::var("LMGC_CUDA_FUSED_ATT").as_deref() != Ok("off"),
            att_dots,
            att_mma_on: match (att_mma.is_some(), att_mma_setting()?) {
                (false, Some(true)) => {
                    return Err(Error::Unsupported(format!(
                        "LMGC_CUDA_ATT_MMA=on: att_mma needs compute capability 8.0 or later, a \
                         head size that is a multiple of 32 up to 128 (this model's: {hd}) and \
                         LMGC_CUDA_QK_MMA not off; unset LMGC_CUDA_ATT_MMA"
                    )));
                }
                (loaded, setting) => loaded && setting != Some(false),
            },
            att_mma,
            vpack: None,
            #[cfg(test)]
            att_mma_launches: std::cell::Cell::new([0, 0]),
            att_row_shared,
            att_row_threads,
            att_row,
            row_threads: warps_setting("LMGC_CUDA_ROW_THREADS", THREADS as usize)?,
            score_scale: exact::score_scale(hd),
            logit_scale: exact::logit_scale(),
            err: stream.alloc_zeros(1).map_err(drv)?,
            layers,
            blas,
            k: kf,
            stream,
            ws: None,
            caches: None,
            device_name,
            total_mem,
            profile: profile.then(Default::default),
            load_phases: phases.0,
            config: c,
        })
    }

    /// Books `seconds` of a load phase that ran outside the engine (reported with the
    /// profile as `name`). Phases may overlap in time (the NVRTC compile runs beside the
    /// model file's read), so their sum can exceed the load's wall time.
    pub fn note_load_phase(&mut self, name: &'static str, seconds: f64) {
        self.load_phases.insert(0, (name, seconds));
    }

    /// The GPU's name.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    fn out_linear(&self) -> &DevLinear {
        match &self.output_subset {
            Some((_, l)) => l,
            None => &self.output_all,
        }
    }

    /// Buffers for `rows` rows whose attention GEMMs copy up to `kv_positions` positions of
    /// keys and values (grown to the batch budget at once: prefill calls vary around it).
    fn workspace(&mut self, rows: usize, kv_positions: usize) -> Result<()> {
        let c = &self.config;
        let cap = self.caches.as_ref().map_or(1, |k| k.cap);
        let n_max = (c.d_model + 2 * c.n_kv_heads * c.head_dim())
            .max(2 * c.d_ffn)
            .max(self.out_linear().out);
        if self.ws.as_ref().is_some_and(|w| {
            w.rows >= rows && w.n_max >= n_max && w.z_cap >= cap && w.kv_positions >= kv_positions
        }) {
            return Ok(());
        }
        let kv = if kv_positions == 0 {
            0
        } else {
            kv_positions.max(self.kv_budget)
        };
        self.ws = None;
        self.ws = Some(Workspace::new(&self.stream, c, rows, n_max, cap, kv)?);
        Ok(())
    }

    /// One forward call over at most the workspace's rows.
    fn forward_chunk(&mut self, rows: &[Row], pos: &[i32]) -> Result<Vec<Vec<i32>>> {
        let m = rows.len();
        let att_runs = if self.att_gemm {
            runs(rows, pos, ATT_GEMM_MIN_ROWS)
        } else {
            Vec::new()
        };
        let cap_now = self.caches.as_ref().map_or(1, |k| k.cap);
        let c = self.config.clone();
        let (d, hd, nh, nkv, f) = (c.d_model, c.head_dim(), c.n_heads, c.n_kv_heads, c.d_ffn);
        let kvd = nkv * hd;
        // The runs' attention on the tensor cores where att_mma takes this window length,
        // else (or without runs) the plan's GEMMs.
        let mma_warps = self
            .att_mma
            .as_ref()
            .filter(|_| self.att_mma_on && !att_runs.is_empty())
            .and_then(|a| a.launch(cap_now));
        let mma = mma_warps.map(|_| MmaTables::new(&att_runs));
        let gemm_runs: &[AttRun] = if mma.is_some() { &[] } else { &att_runs };
        let plan = AttPlan::new(gemm_runs, self.att_block, self.kv_budget.max(cap_now));
        if let Some(t) = &mma {
            let bytes = (t.chunks * 32 * kvd * 3).max(1);
            if self.vpack.as_ref().is_none_or(|v| v.len() < bytes) {
                self.vpack = None;
                self.vpack = Some(self.stream.alloc_zeros(bytes).map_err(drv)?);
            }
        }
        // Grow in powers of two so a decoder's steady batch allocates once.
        self.workspace(
            m.next_power_of_two().clamp(64, DEVICE_ROWS),
            plan.positions(),
        )?;
        let caches = self.caches.as_ref().expect("opened before forward");
        let (slots, cap) = (caches.slots as i32, caches.cap as i32);
        let ws = self.ws.as_mut().expect("made above");
        let tok: Vec<i32> = rows.iter().map(|r| r.token as i32).collect();
        let slot: Vec<i32> = rows.iter().map(|r| r.cache as i32).collect();
        self.stream.memcpy_htod(&tok, &mut ws.tok).map_err(drv)?;
        self.stream.memcpy_htod(&slot, &mut ws.slot).map_err(drv)?;
        self.stream.memcpy_htod(pos, &mut ws.pos).map_err(drv)?;
        let mut zend = vec![0i32; m];
        for r in &att_runs {
            for (b0, b1) in r.blocks(self.att_block) {
                zend[r.r0 + b0..r.r0 + b1].fill((r.p0 + b1) as i32);
            }
        }
        self.stream.memcpy_htod(&zend, &mut ws.zend).map_err(drv)?;
        // Positions the attention kernels (not the GEMMs) attend to in the longest of their
        // rows; None when every row is in a GEMM run.
        let kernel_positions = zend
            .iter()
            .zip(pos)
            .filter(|(z, _)| **z == 0)
            .map(|(_, &p)| p as usize + 1)
            .max();
        let ws = self.ws.as_ref().expect("made above");
        let run = Run {
            stream: &self.stream,
            blas: &self.blas,
            k: &self.k,
            err: &self.err,
            ws,
            m,
            profile: self.profile.as_ref(),
            split_scales: self.split_scales,
            norm_block: (m <= self.norm_block_rows).then_some(self.norm_block_threads),
            norm_regs: self.norm_regs,
        };
        let st = &self.stream;
        // Decoding steps (no runs) and att_mma's calls skip the plan's uploads.
        let att = (!gemm_runs.is_empty())
            .then(|| {
                Attention::new(
                    &run,
                    caches,
                    gemm_runs,
                    &plan,
                    Layout {
                        nh,
                        nkv,
                        hd,
                        cap: caches.cap,
                        kf: addr(&ws.kf, st),
                        vf: addr(&ws.vf, st),
                        qf: addr(&ws.qf, st),
                        z: addr(&ws.z, st),
                        pv: addr(&ws.pv, st),
                    },
                )
            })
            .transpose()?;
        // The tensor cores' tiles for the runs' dot products, where att_dots is loaded.
        let dot_tiles = match (&att, &self.att_dots) {
            (Some(_), Some(_)) => {
                let tiles = attention::dot_tiles(gemm_runs);
                let n = tiles.len() / 2;
                Some((st.clone_htod(&tiles).map_err(drv)?, n))
            }
            _ => None,
        };
        // att_row's launch where it takes this call's kernel rows: a block per (row,
        // key/value head), its dynamic shared memory for the longest row's positions.
        let fused = kernel_positions
            .filter(|_| self.shared_kernels && self.fused_attention)
            .and_then(|n| {
                let gh = nh / nkv * hd;
                let bytes = gh.div_ceil(4) * 16 + gh * 8 + nh / nkv * n * 8;
                let blocks = u32::try_from(m * nkv).ok()?;
                (bytes <= self.att_row_shared).then_some(LaunchConfig {
                    grid_dim: (blocks, 1, 1),
                    block_dim: (self.att_row_threads, 1, 1),
                    shared_mem_bytes: bytes as u32,
                })
            });
        // att_mma's tiles and v_pack's runs on the device.
        let mma_dev = match &mma {
            Some(t) => Some((
                st.clone_htod(&t.tiles).map_err(drv)?,
                st.clone_htod(&t.runs).map_err(drv)?,
            )),
            None => None,
        };
        let mi = m as i32;
        let di = d as i32;
        run.launch("embed", threads(m * d)?, |b| {
            b.arg(&mi)
                .arg(&di)
                .arg(&ws.tok)
                .arg(&self.embedding)
                .arg(&ws.x);
        })?;
        // Each layer's last linear layer is added into the residual rows by the next norm.
        let mut residual = None;
        for (li, layer) in self.layers.iter().enumerate() {
            let li = li as i32;
            run.norm(&layer.attn_norm, d, &layer.qkv, residual.take())?;
            let qkv = run.linear(&layer.qkv)?;
            let (nhi, nkvi, hdi) = (nh as i32, nkv as i32, hd as i32);
            let width = layer.qkv.out as i32;
            let qkv_split = run.split(&layer.qkv.split);
            run.launch("qk_rope", warps(m * (nh + nkv))?, |b| {
                b.arg(&mi).arg(&nhi).arg(&nkvi).arg(&hdi);
                qkv.args(b, ws)
                    .arg(&width)
                    .arg(&layer.qkv.scale)
                    .arg(&qkv_split)
                    .arg(&layer.qkv.exp);
                b.arg(&ws.hexp)
                    .arg(&ws.pos)
                    .arg(&ws.slot)
                    .arg(&self.cos)
                    .arg(&self.sin);
                b.arg(&self.k_levels).arg(&ws.q).arg(&ws.qexp);
                b.arg(&caches.k)
                    .arg(&caches.kexp)
                    .arg(&li)
                    .arg(&slots)
                    .arg(&cap);
            })?;
            let (kvdi, voff) = (kvd as i32, (d + kvd) as i32);
            run.launch("v_store", threads(m * kvd)?, |b| {
                b.arg(&mi).arg(&kvdi).arg(&voff);
                qkv.args(b, ws).arg(&width);
                b.arg(&layer.qkv.scale)
                    .arg(&layer.qkv.exp)
                    .arg(&ws.hexp)
                    .arg(&layer.v_exp);
                b.arg(&ws.pos)
                    .arg(&ws.slot)
                    .arg(&caches.v)
                    .arg(&li)
                    .arg(&slots)
                    .arg(&cap);
            })?;
            let z = &ws.z;
            if let Some(att) = &att {
                if let (Some(f), Some((tiles, n_tiles))) = (&self.att_dots, &dot_tiles) {
                    // A warp per (tile, query head), four per block.
                    let cfg = LaunchConfig {
                        grid_dim: (grid((n_tiles * nh).div_ceil(4))?, 1, 1),
                        block_dim: (128, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    let n_tiles = *n_tiles as i32;
                    run.launch_fn("att_dots", f, cfg, |b| {
                        b.arg(&n_tiles).arg(tiles).arg(&nhi).arg(&nkvi).arg(&hdi);
                        b.arg(&ws.q)
                            .arg(&caches.k)
                            .arg(&ws.pos)
                            .arg(&ws.slot)
                            .arg(&li)
                            .arg(&slots)
                            .arg(&cap)
                            .arg(z);
                    })?;
                } else {
                    let n = (m * d) as i64;
                    run.launch("to_f64", threads(m * d)?, |b| {
                        b.arg(&n).arg(&ws.q).arg(&ws.qf);
                    })?;
                    att.scores(li)?;
                }
            }
            if let Some(n) = kernel_positions.filter(|_| fused.is_none()) {
                let group_bytes = nh / nkv * hd * 4;
                let (name, cfg) = if self.shared_kernels && group_bytes <= SHARED_BYTES {
                    let blocks = u32::try_from(m * nkv)
                        .map_err(|_| Error::Unsupported("rows × heads past 2^32".into()))?;
                    // Threads for the longest row's positions, in whole warps.
                    let cfg = LaunchConfig {
                        grid_dim: (blocks, 1, 1),
                        block_dim: ((n.div_ceil(32) * 32).min(THREADS as usize) as u32, 1, 1),
                        shared_mem_bytes: group_bytes as u32,
                    };
                    ("att_scores_block", cfg)
                } else {
                    ("att_scores", threads(m * nkv * cap as usize)?)
                };
                run.launch(name, cfg, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&hdi)
                        .arg(&ws.q)
                        .arg(&ws.qexp);
                    b.arg(&caches.k)
                        .arg(&caches.kexp)
                        .arg(&ws.pos)
                        .arg(&ws.slot)
                        .arg(&ws.zend);
                    b.arg(&self.score_scale)
                        .arg(&li)
                        .arg(&slots)
                        .arg(&cap)
                        .arg(z);
                })?;
            }
            // The GEMM runs' rows and, without att_row, the others (PROBS_* in kernels.cu).
            let kernel_rows = fused.is_none() && kernel_positions.is_some();
            let which: Option<i32> = match (att.is_some(), kernel_rows) {
                (true, true) => Some(0),
                (true, false) => Some(1),
                (false, true) => Some(2),
                (false, false) => None,
            };
            let (probs, cfg) = if self.shared_kernels
                && cap as usize > PROB_WARP_MAX
                && cap as usize * 8 + PROB_STATIC_SHARED <= SHARED_BYTES
            {
                let blocks = u32::try_from(m * nh)
                    .map_err(|_| Error::Unsupported("rows × heads past 2^32".into()))?;
                // About 8 positions per thread, in whole warps.
                let threads = ((cap as u32 / 8).div_ceil(32) * 32).clamp(128, 256);
                let cfg = LaunchConfig {
                    grid_dim: (blocks, 1, 1),
                    block_dim: (threads, 1, 1),
                    shared_mem_bytes: cap as u32 * 8,
                };
                ("att_probs_block", cfg)
            } else {
                ("att_probs", warps(m * nh)?)
            };
            if let Some(which) = which {
                run.launch(probs, cfg, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&ws.pos)
                        .arg(&ws.slot)
                        .arg(&ws.zend);
                    b.arg(&ws.qexp)
                        .arg(&caches.kexp)
                        .arg(&self.score_scale)
                        .arg(&li)
                        .arg(&slots);
                    b.arg(&self.exp2)
                        .arg(&cap)
                        .arg(z)
                        .arg(&self.err)
                        .arg(&which);
                })?;
            }
            // The kernels add into pv; the GEMMs, att_mma and att_row overwrite their rows'
            // entries.
            if kernel_positions.is_some() && fused.is_none() {
                let n_pv = (m * d) as i64;
                run.launch("zero_i64", threads(m * d)?, |b| {
                    b.arg(&n_pv).arg(&ws.pv);
                })?;
            }
            if let Some(att) = &att {
                att.pv(li, dot_tiles.is_none())?;
            }
            if let (Some(t), Some((tiles, table)), Some(mm), Some((warps, keep)), Some(vp)) =
                (&mma, &mma_dev, &self.att_mma, mma_warps, &self.vpack)
            {
                // A thread per (chunk, kv head, eight channels, lane) of the widest run.
                let cfg = LaunchConfig {
                    grid_dim: (
                        grid((t.widest.div_ceil(32) * kvd * 4).div_ceil(THREADS as usize))?,
                        (t.runs.len() / 3) as u32,
                        1,
                    ),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                run.launch_fn("v_pack", &mm.pack, cfg, |b| {
                    b.arg(&nkvi).arg(&hdi).arg(table).arg(&caches.v).arg(&li);
                    b.arg(&slots).arg(&cap).arg(vp);
                })?;
                let n_tiles = t.tiles.len() / 3;
                let cfg = LaunchConfig {
                    grid_dim: (grid((n_tiles * nh).div_ceil(warps))?, 1, 1),
                    block_dim: (32 * warps as u32, 1, 1),
                    shared_mem_bytes: AttMma::shared_bytes(warps, cap as usize, keep) as u32,
                };
                let n_tiles = n_tiles as i32;
                #[cfg(test)]
                {
                    let mut n = self.att_mma_launches.get();
                    n[usize::from(keep)] += 1;
                    self.att_mma_launches.set(n);
                }
                let keep = i32::from(keep);
                run.launch_fn("att_mma", &mm.att, cfg, |b| {
                    b.arg(&n_tiles).arg(tiles).arg(&nhi).arg(&nkvi);
                    b.arg(&ws.q).arg(&ws.qexp).arg(&caches.k).arg(&caches.kexp);
                    b.arg(&ws.pos)
                        .arg(&ws.slot)
                        .arg(&self.score_scale)
                        .arg(&self.exp2);
                    b.arg(vp)
                        .arg(&li)
                        .arg(&slots)
                        .arg(&cap)
                        .arg(&ws.pv)
                        .arg(&keep);
                })?;
            }
            if let Some(cfg) = fused {
                run.launch(self.att_row, cfg, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&hdi)
                        .arg(&ws.q)
                        .arg(&ws.qexp);
                    b.arg(&caches.k)
                        .arg(&caches.kexp)
                        .arg(&caches.v)
                        .arg(&ws.pos)
                        .arg(&ws.slot)
                        .arg(&ws.zend);
                    b.arg(&self.score_scale)
                        .arg(&self.exp2)
                        .arg(&li)
                        .arg(&slots)
                        .arg(&cap)
                        .arg(&ws.pv);
                })?;
            } else if kernel_positions.is_some() {
                let spans = (cap as usize).div_ceil(self.pv_span);
                let span = self.pv_span as i32;
                run.launch("att_pv", threads(m * nkv * hd * spans)?, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&hdi)
                        .arg(z)
                        .arg(&caches.v);
                    b.arg(&ws.pos)
                        .arg(&ws.slot)
                        .arg(&ws.zend)
                        .arg(&li)
                        .arg(&slots)
                        .arg(&cap)
                        .arg(&span)
                        .arg(&ws.pv);
                })?;
            }
            let fused_out = row_block(self.shared_kernels, self.row_threads, m, d)?;
            if !att_runs.is_empty() && fused_out.is_none() {
                run.launch("pv_take", threads(m * d)?, |b| {
                    b.arg(&mi).arg(&di).arg(&ws.zend).arg(&ws.pv).arg(&self.err);
                })?;
            }
            let attn_exp = layer.v_exp_min - 20;
            if let Some(cfg) = fused_out {
                let (h, limbs) = run.levels_out(&layer.wo);
                run.launch("att_out_row", cfg, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&hdi)
                        .arg(&ws.pv)
                        .arg(&ws.zend);
                    b.arg(&layer.v_exp).arg(&layer.v_exp_min).arg(&attn_exp);
                    b.arg(&exact::ACT_LEVELS).arg(&h).arg(&limbs).arg(&ws.hexp);
                    b.arg(&self.err);
                })?;
            } else {
                run.zero_rowhi()?;
                run.launch("att_out", threads(m * d)?, |b| {
                    b.arg(&mi)
                        .arg(&nhi)
                        .arg(&nkvi)
                        .arg(&hdi)
                        .arg(&ws.pv)
                        .arg(&layer.v_exp);
                    b.arg(&layer.v_exp_min).arg(&ws.narrow).arg(&ws.rowhi);
                })?;
                run.quant_rows(d, attn_exp, None, &layer.wo)?;
            }
            let o = run.linear(&layer.wo)?;
            run.norm(&layer.ffn_norm, d, &layer.gate_up, Some((&layer.wo, o)))?;
            let gu = run.linear(&layer.gate_up)?;
            let fi = f as i32;
            if let Some(cfg) = row_block(self.shared_kernels, self.row_threads, m, f)? {
                let (h, limbs) = run.levels_out(&layer.down);
                let split = run.split(&layer.gate_up.split);
                run.launch("ffn_row", cfg, |b| {
                    b.arg(&mi).arg(&fi);
                    gu.args(b, ws)
                        .arg(&layer.gate_up.scale)
                        .arg(&split)
                        .arg(&layer.gate_up.exp);
                    b.arg(&self.sigmoid).arg(&exact::ACT_LEVELS);
                    b.arg(&h).arg(&limbs).arg(&ws.hexp);
                })?;
            } else {
                run.launch("ffn_shifts", warps(m)?, |b| {
                    b.arg(&mi).arg(&fi);
                    gu.args(b, ws).arg(&layer.gate_up.scale).arg(&FFN_LEVELS);
                    b.arg(&ws.sg).arg(&ws.su);
                })?;
                run.zero_rowhi()?;
                run.launch("ffn_act", threads(m * f)?, |b| {
                    b.arg(&mi).arg(&fi);
                    gu.args(b, ws)
                        .arg(&layer.gate_up.scale)
                        .arg(&ws.sg)
                        .arg(&ws.su)
                        .arg(&ws.hexp);
                    b.arg(&layer.gate_up.exp)
                        .arg(&self.sigmoid)
                        .arg(&ws.narrow)
                        .arg(&ws.ebase)
                        .arg(&ws.rowhi);
                })?;
                run.quant_rows(f, 0, Some(&ws.ebase), &layer.down)?;
            }
            let down = run.linear(&layer.down)?;
            residual = Some((&layer.down, down));
        }
        let out = self.out_linear();
        run.norm(&self.out_norm, d, out, residual)?;
        let sums = run.linear(out)?;
        let n = out.out as i32;
        run.launch("logits", threads(m * out.out)?, |b| {
            b.arg(&mi).arg(&n);
            sums.args(b, ws).arg(&out.scale).arg(&out.exp).arg(&ws.hexp);
            b.arg(&self.logit_scale).arg(&ws.scores);
        })?;
        let scores = self
            .stream
            .clone_dtoh(&ws.scores.slice(0..m * out.out))
            .map_err(drv)?;
        let err = self.stream.clone_dtoh(&self.err).map_err(drv)?;
        if err[0] != 0 {
            // Reported once; the next call starts clean.
            self.stream
                .memcpy_htod(&[0i32], &mut self.err)
                .map_err(drv)?;
            return Err(Error::Backend(
                "a cuBLAS GEMM returned a value that is not an exact integer below 2^53: this \
                 GPU or library broke the numerics contract (an emulated or reduced-precision \
                 FP64 GEMM?); report it with the GPU's name"
                    .into(),
            ));
        }
        Ok(scores
            .chunks(out.out.max(1))
            .take(m)
            .map(<[i32]>::to_vec)
            .collect())
    }
}

/// The warp-per-row norm kernel for rows of `d`: with `regs` (`LMGC_CUDA_NORM_REGS=on`),
/// `norm_rows_r*` with the fewest slots that hold a lane's share of a row; else, or for rows
/// past 32 slots a lane, `norm_rows`.
fn norm_rows_kernel(regs: bool, d: usize) -> &'static str {
    match d.div_ceil(32) {
        _ if !regs => "norm_rows",
        0..=8 => "norm_rows_r8",
        9..=16 => "norm_rows_r16",
        17..=24 => "norm_rows_r24",
        25..=32 => "norm_rows_r32",
        _ => "norm_rows",
    }
}

/// `mma.cu`'s kernels: `att_dots` where the device, the head size and the environment allow
/// it, and `att_mma` with it where `mma.cu` was compiled with it (see `CudaEngine::att_dots`,
/// `CudaEngine::att_mma`).
fn mma_kernels(
    ctx: &Arc<CudaContext>,
    ptx: Option<cudarc::nvrtc::Ptx>,
    with_att_mma: bool,
    hd: usize,
) -> Result<(Option<CudaFunction>, Option<AttMma>)> {
    use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
    if std::env::var("LMGC_CUDA_QK_MMA").as_deref() == Ok("off")
        || !hd.is_multiple_of(32)
        || hd > 128
    {
        return Ok((None, None));
    }
    // att_mma's settings are read where it is compiled (unless LMGC_CUDA_ATT_MMA=off), as
    // LMGC_CUDA_ATT_MMA_LOADS is, and only for a model it can run. A block has at most
    // 1,024 threads.
    let max_warps = match with_att_mma.then(|| tuning("LMGC_CUDA_ATT_MMA_WARPS", ATT_MMA_WARPS)) {
        None => ATT_MMA_WARPS,
        Some(Ok(w @ 1..=32)) => w,
        Some(Ok(w)) => {
            return Err(Error::Unsupported(format!(
                "LMGC_CUDA_ATT_MMA_WARPS={w}: give a whole number from 1 to 32 (default \
                 {ATT_MMA_WARPS})"
            )));
        }
        Some(Err(e)) => return Err(e),
    };
    let keep = !with_att_mma || switch("LMGC_CUDA_ATT_MMA_KEEP", true)?;
    let major = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .ok();
    let Some(module) = ptx
        .filter(|_| major.is_some_and(|m| m >= 8))
        .and_then(|p| ctx.load_module(p).ok())
    else {
        return Ok((None, None));
    };
    let dots = module.load_function("att_dots").ok();
    let att_mma = (dots.is_some() && with_att_mma)
        .then(|| {
            // A kernel per head size (hd is a multiple of 32 up to 128 here).
            let att = module.load_function(&format!("att_mma_h{hd}")).ok()?;
            let pack = module.load_function("v_pack").ok()?;
            let optin = ctx
                .attribute(
                    CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                )
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > SHARED_BYTES);
            let shared = optin
                .filter(|&v| {
                    att.set_attribute(
                        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        v as i32,
                    )
                    .is_ok()
                })
                .unwrap_or(SHARED_BYTES);
            Some(AttMma {
                att,
                pack,
                shared,
                max_warps,
                keep,
            })
        })
        .flatten();
    Ok((dots, att_mma))
}

/// `att_mma` and `v_pack` (mma.cu), and the dynamic shared memory a block of `att_mma` may
/// take.
struct AttMma {
    att: CudaFunction,
    pack: CudaFunction,
    shared: usize,
    /// Most warps per block (`ATT_MMA_WARPS`; `LMGC_CUDA_ATT_MMA_WARPS`).
    max_warps: usize,
    /// Whether the first pass keeps the scores for the other two instead of their
    /// recomputing q · k (`LMGC_CUDA_ATT_MMA_KEEP`, default on), at twice the shared memory.
    keep: bool,
}

impl AttMma {
    /// Warps per block for windows of `cap` positions and whether they keep their scores
    /// (each warp keeps its rows' probabilities, a KiB per 32 positions, or their scores, two,
    /// beside the block's exp2 table), or `None` where one warp's do not fit. Windows too
    /// long for one warp's scores recompute them instead.
    fn launch(&self, cap: usize) -> Option<(usize, bool)> {
        att_mma_launch(self.shared, self.max_warps, self.keep, cap)
    }

    fn warp_bytes(cap: usize, keep: bool) -> usize {
        cap.div_ceil(32) * if keep { 2048 } else { 1024 }
    }

    /// The dynamic shared memory of a block of `warps` warps.
    fn shared_bytes(warps: usize, cap: usize, keep: bool) -> usize {
        warps * Self::warp_bytes(cap, keep) + ATT_MMA_TABLE_BYTES
    }
}

/// [`AttMma::launch`] for a block's `shared` bytes and at most `max_warps` warps.
fn att_mma_launch(
    shared: usize,
    max_warps: usize,
    keep: bool,
    cap: usize,
) -> Option<(usize, bool)> {
    if cap > ATT_MMA_MAX_POSITIONS {
        return None;
    }
    let warps = |keep| {
        let w = (shared.saturating_sub(ATT_MMA_TABLE_BYTES) / AttMma::warp_bytes(cap, keep))
            .min(max_warps);
        (w > 0).then_some((w, keep))
    };
    keep.then(|| warps(true)).flatten().or_else(|| warps(false))
}

/// The dynamic shared memory the `att_row` kernels may take: the device's opt-in maximum per
/// block (a window of 2,048 positions needs about 50 KiB for SmolLM2's groups of three heads,
/// past the 48 KiB any kernel gets), or 48 KiB where the device or driver won't say.
fn att_row_shared(ctx: &CudaContext, f: &[CudaFunction]) -> usize {
    use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
    let optin = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .ok()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v > SHARED_BYTES);
    let base = SHARED_BYTES - ATT_ROW_STATIC_SHARED;
    let Some(optin) = optin else {
        return base;
    };
    let bytes = optin - ATT_ROW_STATIC_SHARED;
    let all_set = KERNELS
        .iter()
        .zip(f)
        .filter(|(k, _)| k.starts_with("att_row"))
        .all(|(_, f)| {
            f.set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
            .is_ok()
        });
    if all_set { bytes } else { base }
}

/// The `att_row` kernel for groups of `group` query heads per key/value head: compiled for
/// the group where there is one (`ATT_ROW_BY_GROUP`), else for any. `LMGC_CUDA_ATT_ROW=generic`
/// takes the one for any group (for comparison).
fn att_row_kernel(group: usize) -> Result<&'static str> {
    let by_group = match std::env::var("LMGC_CUDA_ATT_ROW").as_deref() {
        Err(_) | Ok("group") => true,
        Ok("generic") => false,
        Ok(v) => {
            return Err(Error::Unsupported(format!(
                "LMGC_CUDA_ATT_ROW={v}: set group (the default) or generic"
            )));
        }
    };
    Ok(match group {
        1..=8 if by_group => ATT_ROW_BY_GROUP[group - 1],
        _ => "att_row",
    })
}

/// A block size from the environment: `default` when unset, an error unless it is a multiple
/// of 32 up to 1,024.
fn warps_setting(var: &str, default: usize) -> Result<usize> {
    match tuning(var, default)? {
        t if t % 32 == 0 && t <= 1024 => Ok(t),
        t => Err(Error::Unsupported(format!(
            "{var}={t}: set a multiple of 32 up to 1,024"
        ))),
    }
}

/// A speed setting from the environment: `default` when unset, an error unless it is a whole
/// number from 1 to 65,536.
fn tuning(var: &str, default: usize) -> Result<usize> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=65_536).contains(n))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "{var}={v}: give a whole number from 1 to 65536 (default {default})"
                ))
            }),
    }
}

/// One thread per item; an error past the grid's 2^31 - 1 blocks instead of a silently
/// shortened launch.
fn threads(n: usize) -> Result<LaunchConfig> {
    let blocks = n.div_ceil(THREADS as usize).max(1);
    let blocks = u32::try_from(blocks)
        .ok()
        .filter(|&b| b < 1 << 31)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "{n} GPU threads in one launch; use fewer rows per call or shorter windows"
            ))
        })?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// The launch of a block-per-row kernel (`ffn_row`, `att_out_row`) over `m` rows of `n` values
/// whose 16-byte mantissas stay in shared memory; None where they do not fit (or `shared` is
/// off), for the kernels that pass them through global memory instead. Threads: as few whole
/// warps as leave every thread about the same number of values, at most `max_threads`.
fn row_block(shared: bool, max_threads: usize, m: usize, n: usize) -> Result<Option<LaunchConfig>> {
    let bytes = n * 16;
    if !shared || bytes + ROW_STATIC_SHARED > SHARED_BYTES {
        return Ok(None);
    }
    let blocks = u32::try_from(m).map_err(|_| Error::Unsupported("rows past 2^32".into()))?;
    let per = n.div_ceil(max_threads).max(1);
    let threads = n.div_ceil(per).div_ceil(32) * 32;
    Ok(Some(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: bytes as u32,
    }))
}

fn warps(n: usize) -> Result<LaunchConfig> {
    threads(n * 32)
}

/// The launch context of one forward chunk.
struct Run<'a> {
    stream: &'a Arc<CudaStream>,
    blas: &'a CudaBlas,
    k: &'a Kernels,
    err: &'a CudaSlice<i32>,
    ws: &'a Workspace,
    m: usize,
    profile: Option<&'a Profile>,
    split_scales: bool,
    /// The norms a block per row (`norm_rows_block`) of this many threads, or a warp per row.
    norm_block: Option<u32>,
    /// A warp per row's norms in registers (`norm_rows_r*`; `LMGC_CUDA_NORM_REGS`).
    norm_regs: bool,
}

impl Run<'_> {
    fn launch<'b>(
        &'b self,
        name: &'static str,
        cfg: LaunchConfig,
        args: impl FnOnce(&mut LaunchArgs<'b>),
    ) -> Result<()> {
        self.launch_fn(name, self.k.get(name), cfg, args)
    }

    /// [`Run::launch`] of a kernel from another module (`mma.cu`).
    fn launch_fn<'b>(
        &'b self,
        name: &'static str,
        f: &'b CudaFunction,
        cfg: LaunchConfig,
        args: impl FnOnce(&mut LaunchArgs<'b>),
    ) -> Result<()> {
        let started = self.profile.map(|_| std::time::Instant::now());
        let mut b = self.stream.launch_builder(f);
        args(&mut b);
        #[allow(unsafe_code)]
        // SAFETY: each kernel's arguments are pushed in the order and types of its signature
        // in kernels.cu, every buffer holds the rows and widths the kernel indexes (sized by
        // `Workspace::new` and `CudaEngine::open`, checked in `forward`).
        unsafe { b.launch(cfg) }.map_err(drv)?;
        self.record(name, started)
    }

    /// Under `LMGC_PROFILE=1`, waits for the work just queued and books its time.
    fn record(&self, name: &'static str, started: Option<std::time::Instant>) -> Result<()> {
        if let (Some(p), Some(t)) = (self.profile, started) {
            self.stream.synchronize().map_err(drv)?;
            let mut p = p.borrow_mut();
            let e = p.entry(name).or_default();
            e.0 += 1;
            e.1 += t.elapsed().as_secs_f64();
        }
        Ok(())
    }

    /// RMSNorm of the residual rows into the input of `next`, after adding the linear layer
    /// `add` (its weights and where its sums are) into them.
    fn norm(
        &self,
        n: &DevNorm,
        d: usize,
        next: &DevLinear,
        add: Option<(&DevLinear, Sums)>,
    ) -> Result<()> {
        let ws = self.ws;
        let (mi, di) = (self.m as i32, d as i32);
        let (h, limbs) = self.levels_out(next);
        let lsplit = add.as_ref().map_or(NULL, |(l, _)| self.split(&l.split));
        let gsplit = self.split(&n.split);
        let (kernel, cfg) = if let Some(threads) = self.norm_block {
            let cfg = LaunchConfig {
                grid_dim: (
                    u32::try_from(self.m)
                        .map_err(|_| Error::Unsupported("rows past 2^32".into()))?,
                    1,
                    1,
                ),
                block_dim: (threads, 1, 1),
                shared_mem_bytes: 0,
            };
            ("norm_rows_block", cfg)
        } else {
            (norm_rows_kernel(self.norm_regs, d), warps(self.m)?)
        };
        self.launch(kernel, cfg, |b| {
            b.arg(&mi).arg(&di);
            match &add {
                Some((l, sums)) => sums.args(b, ws).arg(&l.scale).arg(&lsplit).arg(&l.exp),
                None => b
                    .arg(&NULL)
                    .arg(&NULL)
                    .arg(&NULL)
                    .arg(&NULL)
                    .arg(&NULL)
                    .arg(&0i32),
            };
            b.arg(&ws.x)
                .arg(&n.gamma)
                .arg(&gsplit)
                .arg(&n.exp)
                .arg(&n.eps);
            b.arg(&h).arg(&limbs).arg(&ws.hexp);
        })
    }

    /// A split scale's address for a kernel, or null for the 128-bit products.
    fn split(&self, split: &Option<CudaSlice<i64>>) -> u64 {
        match split {
            Some(v) if self.split_scales => addr(v, self.stream),
            _ => NULL,
        }
    }

    /// Clears the row maxima that the next kernel writing `narrow` books.
    fn zero_rowhi(&self) -> Result<()> {
        let n = self.m as i64;
        self.launch("zero_i64", threads(self.m)?, |b| {
            b.arg(&n).arg(&self.ws.rowhi);
        })
    }

    /// quantize_row over each row's `n` mantissas in `narrow` (exponent `exp` plus `base`'s
    /// entry) into the input of `next`.
    fn quant_rows(
        &self,
        n: usize,
        exp: i32,
        base: Option<&CudaSlice<i32>>,
        next: &DevLinear,
    ) -> Result<()> {
        let ws = self.ws;
        let (mi, ni) = (self.m as i32, n as i32);
        let (h, limbs) = self.levels_out(next);
        self.launch("quant_rows", warps(self.m)?, |b| {
            b.arg(&mi).arg(&ni).arg(&ws.narrow).arg(&ws.rowhi).arg(&exp);
            match base {
                Some(s) => b.arg(s),
                None => b.arg(&NULL),
            };
            b.arg(&exact::ACT_LEVELS).arg(&h).arg(&limbs).arg(&ws.hexp);
        })
    }

    /// Where the kernel before `next` writes its quantized activations, as (levels, limbs)
    /// addresses, 0 for none: the int8 limbs for a layer on the int8 path, else the levels.
    fn levels_out(&self, next: &DevLinear) -> (u64, u64) {
        if next.int8_refused.get() {
            (addr(&self.ws.h, self.stream), 0)
        } else {
            (0, addr(&self.ws.limbs8, self.stream))
        }
    }

    /// `h · Wᵀ` exactly: an int8 GEMM on the two limbs of `h` the kernel before wrote, or one
    /// f64 GEMM where cuBLAS refuses the int8 shape. Returns where the sums are.
    fn linear(&self, l: &DevLinear) -> Result<Sums> {
        if !l.int8_refused.get() {
            if self.linear_int8(l)? {
                return Ok(Sums::Limbs(addr(&l.rowsum, self.stream)));
            }
            // Refused just now: the levels are only in the limbs.
            let (mi, ki) = (self.m as i32, l.inp as i32);
            self.launch("from_limbs8", threads(self.m * l.inp)?, |b| {
                b.arg(&mi).arg(&ki).arg(&self.ws.limbs8).arg(&self.ws.h);
            })?;
        }
        self.linear_f64(l)?;
        Ok(Sums::Acc)
    }

    /// The int8 path; false (and the layer marked) when cuBLAS does not take the shape.
    fn linear_int8(&self, l: &DevLinear) -> Result<bool> {
        #[cfg(test)]
        if l.refuse_next.replace(false) {
            l.int8_refused.set(true);
            return Ok(false);
        }
        let ws = self.ws;
        let m = self.m;
        let (ki, ni) = (l.inp as i32, l.out as i32);
        let rows = i32::try_from(2 * m).map_err(|_| Error::Unsupported("rows".into()))?;
        let (one, zero) = (1i32, 0i32);
        let started = self.profile.map(|_| std::time::Instant::now());
        // Row-major `C (2m × out) = L (2m × inp) · Wᵀ` as column-major `Cᵀ = W · Lᵀ`, W read
        // transposed (the TN layout the int8 tensor-core kernels take). |sums| stay below
        // inp · 128 · 127 < 2^31 for inp < 132,000 (checked when the weight is uploaded).
        #[allow(unsafe_code)]
        // SAFETY: W is `out × inp` i8, the limbs `2m × inp` i8, C `2m × out` i32 in buffers of
        // at least those sizes (workspace sized for the widest layer); one stream.
        let status = unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                ni,
                rows,
                ki,
                (&one as *const i32).cast(),
                addr(&l.w8, self.stream) as *const std::ffi::c_void,
                cudarc::cublas::sys::cudaDataType::CUDA_R_8I,
                ki,
                addr(&ws.limbs8, self.stream) as *const std::ffi::c_void,
                cudarc::cublas::sys::cudaDataType::CUDA_R_8I,
                ki,
                (&zero as *const i32).cast(),
                addr(&ws.gout32, self.stream) as *mut std::ffi::c_void,
                cudarc::cublas::sys::cudaDataType::CUDA_R_32I,
                ni,
                cudarc::cublas::sys::cublasComputeType_t::CUBLAS_COMPUTE_32I,
                cudarc::cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        match status {
            Ok(()) => {}
            // A shape (leading dimension, alignment) the int8 kernels do not take.
            Err(cudarc::cublas::result::CublasError(
                cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED
                | cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE,
            )) => {
                l.int8_refused.set(true);
                return Ok(false);
            }
            Err(e) => return Err(drv(e)),
        }
        self.record("gemm_int8", started)?;
        Ok(true)
    }

    fn linear_f64(&self, l: &DevLinear) -> Result<()> {
        let ws = self.ws;
        let m = self.m;
        if l.w.get().is_none() {
            let n = l.out * l.inp;
            let mut w = self.stream.alloc_zeros::<f64>(n.max(1)).map_err(drv)?;
            let ni = n as i64;
            self.launch("levels_f64", threads(n)?, |b| {
                b.arg(&ni).arg(&l.w8).arg(&mut w);
            })?;
            let _ = l.w.set(w);
        }
        let w = l.w.get().expect("set above");
        let n_in = (m * l.inp) as i64;
        self.launch("to_f64", threads(m * l.inp)?, |b| {
            b.arg(&n_in).arg(&ws.h).arg(&ws.hf);
        })?;
        // Row-major `C (m × out) = H (m × inp) · Wᵀ` is column-major `Cᵀ = W · Hᵀ`, with `W`
        // (row-major `out × inp`) read as the transpose of a column-major `inp × out`.
        self.gemm(Gemm {
            ta: true,
            m: l.out,
            n: m,
            k: l.inp,
            a: addr(w, self.stream),
            lda: l.inp,
            sa: 0,
            b: addr(&ws.hf, self.stream),
            ldb: l.inp,
            sb: 0,
            c: addr(&ws.gout, self.stream),
            ldc: l.out,
            sc: 0,
            batch: 1,
        })?;
        let n_out = (m * l.out) as i64;
        self.launch("from_f64", threads(m * l.out)?, |b| {
            b.arg(&n_out).arg(&ws.gout).arg(&ws.acc).arg(self.err);
        })
    }

    /// One f64 GEMM or a strided batch of them (cuBLAS's column-major view; `B` never
    /// transposed). Every operand is an integer matrix whose products sum below 2^53, which
    /// the caller guarantees, so the result is exact whatever cuBLAS does inside.
    fn gemm(&self, g: Gemm) -> Result<()> {
        let started = self.profile.map(|_| std::time::Instant::now());
        let (one, zero) = (1.0f64, 0.0f64);
        #[allow(unsafe_code)]
        // SAFETY: the addresses are device buffers of this engine (workspace and weights) that
        // outlive the call; each caller sizes m, n, k, the leading dimensions and strides so
        // that every element cuBLAS touches lies in its buffer (see the callers' comments);
        // all work is ordered on the one stream.
        unsafe {
            cudarc::cublas::result::dgemm_strided_batched(
                *self.blas.handle(),
                blas_op(g.ta),
                cublasOperation_t::CUBLAS_OP_N,
                blas_dim(g.m)?,
                blas_dim(g.n)?,
                blas_dim(g.k)?,
                &one,
                g.a as *const f64,
                blas_dim(g.lda)?,
                g.sa,
                g.b as *const f64,
                blas_dim(g.ldb)?,
                g.sb,
                &zero,
                g.c as *mut f64,
                blas_dim(g.ldc)?,
                g.sc,
                blas_dim(g.batch)?,
            )
        }
        .map_err(drv)?;
        self.record("dgemm", started)
    }
}

/// Where a linear layer's sums are for the kernels that read them: the int8 GEMM's two limb
/// products (`gout32`) with the weight rows' sums (device address), or integers in `acc`
/// (the f64 path).
#[derive(Clone, Copy)]
enum Sums {
    Limbs(u64),
    Acc,
}

impl Sums {
    /// Pushes the kernels' `(acc, g, rowsum)` arguments; `g` and `rowsum` null for `Acc`.
    fn args<'a, 'b>(
        &'b self,
        b: &'a mut LaunchArgs<'b>,
        ws: &'b Workspace,
    ) -> &'a mut LaunchArgs<'b> {
        b.arg(&ws.acc);
        match self {
            Sums::Limbs(rowsum) => b.arg(&ws.gout32).arg(rowsum),
            Sums::Acc => b.arg(&NULL).arg(&NULL),
        }
    }
}

/// A null device pointer argument.
const NULL: u64 = 0;

/// A GEMM dimension as cuBLAS's `int`.
fn blas_dim(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::Unsupported(format!("a GEMM dimension of {v} does not fit cuBLAS's int"))
    })
}

/// cuBLAS's operation for an operand read transposed or as it is.
fn blas_op(transposed: bool) -> cublasOperation_t {
    if transposed {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

/// A GEMM on raw device addresses (see [`Run::gemm`]); strides in elements.
struct Gemm {
    ta: bool,
    m: usize,
    n: usize,
    k: usize,
    a: u64,
    lda: usize,
    sa: i64,
    b: u64,
    ldb: usize,
    sb: i64,
    c: u64,
    ldc: usize,
    sc: i64,
    batch: usize,
}

/// A buffer's device address (event tracking is off, so the guard cudarc returns is inert).
fn addr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    let (p, _guard) = s.device_ptr(stream);
    p
}

impl Engine for CudaEngine {
    fn config(&self) -> &LlamaConfig {
        &self.config
    }
    fn max_positions(&self) -> usize {
        self.positions
    }
    fn cache_bytes_per_position(&self) -> usize {
        let c = &self.config;
        c.n_layers * c.n_kv_heads * (6 * c.head_dim() + 4)
    }
    fn cache_budget(&self) -> usize {
        // Half the GPU's memory: weights (~0.5 GB for 135M), workspace and cuBLAS fit in the
        // rest.
        self.total_mem / 2
    }
    fn prefill_rows(&self) -> usize {
        DEVICE_ROWS
    }
    fn frees_host(&self) -> bool {
        true
    }
    fn set_output_rows(&mut self, rows: Option<&[usize]>) -> Result<()> {
        match rows {
            None => self.output_subset = None,
            Some(r) if self.output_subset.as_ref().is_some_and(|s| s.0 == r) => {}
            Some(r) => {
                let q = self.output.select_rows(r);
                self.output_subset = Some((r.to_vec(), DevLinear::upload(&self.stream, &q)?));
            }
        }
        Ok(())
    }
    fn output_rows(&self) -> Option<&[usize]> {
        self.output_subset.as_ref().map(|s| s.0.as_slice())
    }
    fn profile(&self) -> Vec<(&'static str, f64)> {
        let mut v = self.load_phases.clone();
        if let Some(p) = &self.profile {
            v.extend(p.borrow().iter().map(|(&k, &(_, s))| (k, s)));
        }
        v
    }
    fn open(&mut self, n: usize, positions: usize) -> Result<()> {
        let positions = positions.min(self.positions).max(1);
        let n = n.max(1);
        let c = &self.config;
        let kvd = c.n_kv_heads * c.head_dim();
        let fits = self
            .caches
            .as_ref()
            .is_some_and(|k| k.slots * k.cap >= n * positions);
        if fits {
            let k = self.caches.as_mut().expect("checked");
            // Reuse the buffers with this window layout (they hold slots · cap positions).
            let total = k.slots * k.cap;
            k.cap = positions;
            k.slots = total / positions;
            k.len = vec![0; n];
            return Ok(());
        }
        self.caches = None;
        let bytes = n * positions * self.cache_bytes_per_position();
        if bytes > self.total_mem {
            return Err(Error::Unsupported(format!(
                "{n} windows of {positions} positions need {:.1} GB of KV cache; this GPU has \
                 {:.1} GB: decode fewer windows at once (--batch)",
                bytes as f64 / 1e9,
                self.total_mem as f64 / 1e9
            )));
        }
        let cells = c.n_layers * n * positions;
        let s = &self.stream;
        self.caches = Some(Caches {
            slots: n,
            cap: positions,
            k: s.alloc_zeros(cells * kvd).map_err(drv)?,
            kexp: s.alloc_zeros(cells * c.n_kv_heads).map_err(drv)?,
            v: s.alloc_zeros(cells * kvd).map_err(drv)?,
            len: vec![0; n],
        });
        Ok(())
    }

    fn forward(&mut self, rows: &[Row]) -> Result<Vec<Vec<i32>>> {
        let Some(caches) = self.caches.as_mut() else {
            return Err(Error::Backend("forward before open".into()));
        };
        // Positions on a copy: a bad row leaves every window as it was.
        let mut lens = caches.len.clone();
        let mut pos = Vec::with_capacity(rows.len());
        for r in rows {
            let n_open = lens.len();
            let len = lens.get_mut(r.cache).ok_or_else(|| {
                Error::Backend(format!("row names window {} of {n_open}", r.cache))
            })?;
            if *len >= caches.cap {
                return Err(Error::Unsupported(format!(
                    "window longer than the {} positions it was opened with",
                    caches.cap
                )));
            }
            if r.token as usize >= self.config.vocab {
                return Err(Error::Tokenizer(format!(
                    "token {} outside the vocabulary",
                    r.token
                )));
            }
            pos.push(*len as i32);
            *len += 1;
        }
        caches.len = lens;
        let mut out = Vec::with_capacity(rows.len());
        // Rows of one window stay in order across chunks, so a later chunk sees every key and
        // value an earlier one wrote: chunking never changes a result.
        for (rc, pc) in rows.chunks(DEVICE_ROWS).zip(pos.chunks(DEVICE_ROWS)) {
            out.extend(self.forward_chunk(rc, pc)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
