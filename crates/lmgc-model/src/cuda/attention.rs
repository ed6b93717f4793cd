//! Prefill attention as batched f64 GEMMs: the runs of consecutive positions of a forward
//! call, planned on the host into as few cuBLAS calls as their shapes allow.
//!
//! A compress call holds many windows of one length (32 runs of 256 rows in 8,192), and each
//! run's causal blocks (`block` rows attending to every position up to the block's last row)
//! have the same shapes as the other runs' blocks. One `cublasDgemmBatched` per shape takes
//! every window and every query head at once; before, each (window, block, key/value head)
//! was its own strided call, 184,000 small GEMMs for 262,000 tokens (docs/perf.md).

use std::collections::BTreeMap;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{Caches, Run, THREADS, addr, blas_dim, blas_op, drv};
use crate::exact::Row;
use crate::{Error, Result};

/// A run of consecutive positions `p0..p0 + len` of window `slot` at rows `r0..r0 + len`
/// of a forward call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AttRun {
    pub slot: usize,
    pub r0: usize,
    pub len: usize,
    pub p0: usize,
}

impl AttRun {
    /// Row ranges (within the run) of its attention GEMMs, `block` rows each.
    pub fn blocks(&self, block: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.len)
            .step_by(block)
            .map(move |b0| (b0, (b0 + block).min(self.len)))
    }

    /// Positions of its window that its rows attend to.
    fn positions(&self) -> usize {
        self.p0 + self.len
    }
}

/// The runs of at least `min` rows: maximal sequences of rows of one window at consecutive
/// positions.
pub(super) fn runs(rows: &[Row], pos: &[i32], min: usize) -> Vec<AttRun> {
    let mut out = Vec::new();
    let mut r0 = 0;
    for r in 1..=rows.len() {
        let continues =
            r < rows.len() && rows[r].cache == rows[r - 1].cache && pos[r] == pos[r - 1] + 1;
        if !continues {
            if r - r0 >= min {
                out.push(AttRun {
                    slot: rows[r0].cache,
                    r0,
                    len: r - r0,
                    p0: pos[r0] as usize,
                });
            }
            r0 = r;
        }
    }
    out
}

/// The attention GEMMs of one forward call: the runs in batches whose keys and values fit
/// the f64 copies together (`budget` positions; a longer run is a batch of its own), each
/// batch's causal blocks grouped by shape.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AttPlan {
    pub batches: Vec<KvBatch>,
}

/// Runs whose keys and values sit in the f64 copies at once.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct KvBatch {
    /// Per run: its index in the call's runs and the first position of its slab.
    pub runs: Vec<(usize, usize)>,
    /// Positions of its slabs together.
    pub positions: usize,
    pub groups: Vec<BlockGroup>,
}

/// Blocks of one shape: `rows` queries against `keys` positions each.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BlockGroup {
    pub keys: usize,
    pub rows: usize,
    /// Per block: its first row in the forward call and its window's slab position.
    pub blocks: Vec<(usize, usize)>,
}

impl AttPlan {
    pub fn new(runs: &[AttRun], block: usize, budget: usize) -> Self {
        let mut batches = Vec::new();
        let mut members: Vec<(usize, usize)> = Vec::new();
        let mut used = 0;
        for (i, r) in runs.iter().enumerate() {
            if used + r.positions() > budget && !members.is_empty() {
                batches.push(KvBatch::new(
                    std::mem::take(&mut members),
                    used,
                    runs,
                    block,
                ));
                used = 0;
            }
            members.push((i, used));
            used += r.positions();
        }
        if !members.is_empty() {
            batches.push(KvBatch::new(members, used, runs, block));
        }
        AttPlan { batches }
    }

    /// The f64 copies' length in positions that the largest batch needs.
    pub fn positions(&self) -> usize {
        self.batches.iter().map(|b| b.positions).max().unwrap_or(0)
    }
}

impl KvBatch {
    fn new(members: Vec<(usize, usize)>, positions: usize, runs: &[AttRun], block: usize) -> Self {
        let mut groups: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
        for &(i, slab) in &members {
            let r = &runs[i];
            for (b0, b1) in r.blocks(block) {
                groups
                    .entry((r.p0 + b1, b1 - b0))
                    .or_default()
                    .push((r.r0 + b0, slab));
            }
        }
        KvBatch {
            runs: members,
            positions,
            groups: groups
                .into_iter()
                .map(|((keys, rows), blocks)| BlockGroup { keys, rows, blocks })
                .collect(),
        }
    }
}

/// `att_dots`' tiles: (first row, rows) of up to 16 consecutive rows of one run.
pub(super) fn dot_tiles(runs: &[AttRun]) -> Vec<i32> {
    runs.iter()
        .flat_map(|r| {
            (0..r.len)
                .step_by(16)
                .flat_map(move |t0| [(r.r0 + t0) as i32, (r.len - t0).min(16) as i32])
        })
        .collect()
}

/// `att_mma`'s work for a forward call's runs (mma.cu).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MmaTables {
    /// Per tile of up to 16 consecutive rows of one run: its first row, its rows, and its
    /// run's first chunk of 32 positions in the packed values.
    pub tiles: Vec<i32>,
    /// Per run (`v_pack`): its window slot, the positions it attends to, its first chunk.
    pub runs: Vec<i32>,
    /// Chunks of the packed values, every run's together.
    pub chunks: usize,
    /// The most positions one run attends to.
    pub widest: usize,
}

impl MmaTables {
    pub fn new(runs: &[AttRun]) -> Self {
        let (mut tiles, mut table, mut chunks) = (Vec::new(), Vec::new(), 0usize);
        for r in runs {
            for t0 in (0..r.len).step_by(16) {
                tiles.extend([
                    (r.r0 + t0) as i32,
                    (r.len - t0).min(16) as i32,
                    chunks as i32,
                ]);
            }
            table.extend([r.slot as i32, r.positions() as i32, chunks as i32]);
            chunks += r.positions().div_ceil(32);
        }
        MmaTables {
            tiles,
            runs: table,
            chunks,
            widest: runs.iter().map(AttRun::positions).max().unwrap_or(0),
        }
    }
}

/// Shapes and device addresses the GEMM operands are laid out in (f64 elements).
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
    /// Cache positions per row and head of `z`.
    pub cap: usize,
    /// Keys and values of the batch's windows, slab after slab, positions × kv width each.
    pub kf: u64,
    pub vf: u64,
    /// Queries, rows × heads · hd.
    pub qf: u64,
    /// Scores, then probabilities: rows × heads × cap.
    pub z: u64,
    /// P · V sums, rows × heads · hd.
    pub pv: u64,
}

/// The six pointer arrays of one group's GEMMs: scores' A, B, C, then P · V's.
const ARRAYS: usize = 6;

/// Every group's pointer arrays, group after group in the plan's order, each array one
/// entry per (block, query head).
pub(super) fn pointers(plan: &AttPlan, l: &Layout) -> Vec<u64> {
    let (d, kvd, group) = (l.nh * l.hd, l.nkv * l.hd, l.nh / l.nkv);
    let mut out = Vec::new();
    for g in plan.batches.iter().flat_map(|b| &b.groups) {
        let n = g.blocks.len() * l.nh;
        let base = out.len();
        out.resize(base + ARRAYS * n, 0);
        let entries = g
            .blocks
            .iter()
            .flat_map(|&b| (0..l.nh).map(move |h| (b, h)));
        for (e, ((row, slab), h)) in entries.enumerate() {
            let kv = 8 * (slab * kvd + (h / group) * l.hd) as u64;
            let q = 8 * (row * d + h * l.hd) as u64;
            let z = l.z + 8 * ((row * l.nh + h) * l.cap) as u64;
            // Scores: column-major C (keys × rows, ldc = nh·cap) is z's rows at head h; A the
            // keys read transposed (hd × keys, lda = kvd), B the queries (hd × rows, ldb = d).
            // P · V: C (hd × rows, ldc = d) is pv at head h; A the values (hd × keys,
            // lda = kvd), B the probabilities (keys × rows, ldb = nh·cap).
            let at = [l.kf + kv, l.qf + q, z, l.vf + kv, z, l.pv + q];
            for (a, p) in at.into_iter().enumerate() {
                out[base + a * n + e] = p;
            }
        }
    }
    out
}

/// The attention GEMMs of one forward call, every layer.
pub(super) struct Attention<'a, 'b> {
    run: &'a Run<'b>,
    caches: &'a Caches,
    plan: &'a AttPlan,
    l: Layout,
    /// Per run, batch after batch: window slot, positions, slab position (`kv_to_f64`).
    table: CudaSlice<i32>,
    ptrs: CudaSlice<u64>,
}

impl<'a, 'b> Attention<'a, 'b> {
    /// Uploads the plan's run table and pointer arrays (once per forward call: the addresses
    /// are the workspace's, the same in every layer).
    pub fn new(
        run: &'a Run<'b>,
        caches: &'a Caches,
        runs: &[AttRun],
        plan: &'a AttPlan,
        l: Layout,
    ) -> Result<Self> {
        let table: Vec<i32> = plan
            .batches
            .iter()
            .flat_map(|b| &b.runs)
            .flat_map(|&(i, slab)| {
                let r = &runs[i];
                [r.slot as i32, r.positions() as i32, slab as i32]
            })
            .collect();
        let ptrs = pointers(plan, &l);
        // Never empty: a zero-length device buffer is no valid kernel argument.
        let table = if table.is_empty() { vec![0] } else { table };
        let ptrs = if ptrs.is_empty() { vec![0] } else { ptrs };
        Ok(Attention {
            table: run.stream.clone_htod(&table).map_err(drv)?,
            ptrs: run.stream.clone_htod(&ptrs).map_err(drv)?,
            run,
            caches,
            plan,
            l,
        })
    }

    /// Dot products of every run's queries with its window's keys into `z` as f64. With one
    /// batch the values are copied now too, for [`Self::pv`].
    pub fn scores(&self, layer: i32) -> Result<()> {
        let which = if self.plan.batches.len() == 1 { 3 } else { 1 };
        self.each_batch(layer, which, |g, at| {
            self.run.gemm_batched(Batched {
                ta: true,
                m: g.keys,
                n: g.rows,
                k: self.l.hd,
                a: at[0],
                lda: self.l.nkv * self.l.hd,
                b: at[1],
                ldb: self.l.nh * self.l.hd,
                c: at[2],
                ldc: self.l.nh * self.l.cap,
                batch: g.blocks.len() * self.l.nh,
            })
        })
    }

    /// P · V of every run into the rows' `pv` entries as f64 (`att_out_row` or `pv_take`
    /// reads them as integers). `after_scores`: [`Self::scores`] ran for this layer (with one
    /// batch it copied the values too).
    pub fn pv(&self, layer: i32, after_scores: bool) -> Result<()> {
        let which = if self.plan.batches.len() == 1 && after_scores {
            0
        } else {
            2
        };
        self.each_batch(layer, which, |g, at| {
            self.run.gemm_batched(Batched {
                ta: false,
                m: self.l.hd,
                n: g.rows,
                k: g.keys,
                a: at[3],
                lda: self.l.nkv * self.l.hd,
                b: at[4],
                ldb: self.l.nh * self.l.cap,
                c: at[5],
                ldc: self.l.nh * self.l.hd,
                batch: g.blocks.len() * self.l.nh,
            })
        })
    }

    /// For each batch: its windows' keys and/or values (`which`) into the f64 copies, then
    /// `gemm` per group with the device addresses of the group's six pointer arrays.
    fn each_batch(
        &self,
        layer: i32,
        which: i32,
        gemm: impl Fn(&BlockGroup, [u64; ARRAYS]) -> Result<()>,
    ) -> Result<()> {
        let (ws, c, st) = (self.run.ws, self.caches, self.run.stream);
        let kvd = self.l.nkv * self.l.hd;
        let (kvdi, slots, cap) = (kvd as i32, c.slots as i32, c.cap as i32);
        let ptrs = addr(&self.ptrs, st);
        let (mut first, mut at) = (0usize, 0usize);
        for b in &self.plan.batches {
            if which != 0 {
                // Grid rows are runs (at most 65,535 of them: 8,192 rows hold at most 512).
                let runs = u32::try_from(b.runs.len())
                    .ok()
                    .filter(|&n| n <= 65_535)
                    .ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{} attention runs in one forward call; use fewer rows per call",
                            b.runs.len()
                        ))
                    })?;
                let cfg = LaunchConfig {
                    grid_dim: (grid((widest(b) * kvd).div_ceil(THREADS as usize))?, runs, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                let firsti = first as i32;
                self.run.launch("kv_to_f64", cfg, |a| {
                    a.arg(&firsti)
                        .arg(&kvdi)
                        .arg(&which)
                        .arg(&self.table)
                        .arg(&c.k)
                        .arg(&c.v)
                        .arg(&layer);
                    a.arg(&slots).arg(&cap).arg(&ws.kf).arg(&ws.vf);
                })?;
            }
            first += b.runs.len();
            for g in &b.groups {
                let n = g.blocks.len() * self.l.nh;
                let arrays = std::array::from_fn(|a| ptrs + 8 * (at + a * n) as u64);
                gemm(g, arrays)?;
                at += ARRAYS * n;
            }
        }
        Ok(())
    }
}

/// The most positions one run of the batch attends to.
fn widest(b: &KvBatch) -> usize {
    b.groups.iter().map(|g| g.keys).max().unwrap_or(0)
}

pub(super) fn grid(n: usize) -> Result<u32> {
    u32::try_from(n.max(1))
        .ok()
        .filter(|&b| b < 1 << 31)
        .ok_or_else(|| Error::Unsupported(format!("{n} GPU blocks in one launch")))
}

/// A batched GEMM on device arrays of operand addresses (cuBLAS's column-major view; `B`
/// never transposed).
pub(super) struct Batched {
    pub ta: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: u64,
    pub lda: usize,
    pub b: u64,
    pub ldb: usize,
    pub c: u64,
    pub ldc: usize,
    pub batch: usize,
}

impl Run<'_> {
    /// A batch of f64 GEMMs of one shape. Every operand is an integer matrix whose products
    /// sum below 2^53 (the caller's guarantee), so the result is exact in any order.
    fn gemm_batched(&self, g: Batched) -> Result<()> {
        let started = self.profile.map(|_| std::time::Instant::now());
        let (one, zero) = (1.0f64, 0.0f64);
        #[allow(unsafe_code)]
        // SAFETY: `a`, `b`, `c` are device arrays of `batch` addresses (uploaded by
        // `Attention::new`, alive until the call's work is read back), each into a workspace
        // buffer that holds the m × k, k × n and m × n operands at the given leading
        // dimensions (`pointers` derives them from the plan the workspace was sized for);
        // all work is ordered on the one stream.
        unsafe {
            cudarc::cublas::sys::cublasDgemmBatched(
                *self.blas.handle(),
                blas_op(g.ta),
                cublasOperation_t::CUBLAS_OP_N,
                blas_dim(g.m)?,
                blas_dim(g.n)?,
                blas_dim(g.k)?,
                &one,
                g.a as *const *const f64,
                blas_dim(g.lda)?,
                g.b as *const *const f64,
                blas_dim(g.ldb)?,
                &zero,
                g.c as *const *mut f64,
                blas_dim(g.ldc)?,
                blas_dim(g.batch)?,
            )
        }
        .result()
        .map_err(drv)?;
        self.record("dgemm_batched", started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(slot: usize, r0: usize, len: usize, p0: usize) -> AttRun {
        AttRun { slot, r0, len, p0 }
    }

    /// Windows laid out one after another, as a compress call lays them out.
    fn windows(n: usize, len: usize) -> Vec<AttRun> {
        (0..n).map(|w| run(w, w * len, len, 0)).collect()
    }

    /// Tiles of 16 rows (the last shorter) cover each run once and point at their run's
    /// chunks; each run's chunks hold every position it attends to, run after run.
    #[test]
    fn mma_tables_tile_every_run_and_pack_its_positions() {
        let t = MmaTables::new(&[run(2, 0, 40, 0), run(0, 40, 17, 5), run(1, 57, 16, 64)]);
        assert_eq!(
            t.tiles,
            vec![
                0, 16, 0, 16, 16, 0, 32, 8, 0, 40, 16, 2, 56, 1, 2, 57, 16, 3
            ]
        );
        assert_eq!(t.runs, vec![2, 40, 0, 0, 22, 2, 1, 80, 3]);
        assert_eq!((t.chunks, t.widest), (6, 80));
        assert_eq!(MmaTables::new(&[]).chunks, 0);
    }

    #[test]
    fn equal_windows_share_one_gemm_per_block_shape() {
        let p = AttPlan::new(&windows(32, 256), 512, 16_384);
        assert_eq!(p.batches.len(), 1);
        assert_eq!(p.batches[0].groups.len(), 1);
        assert_eq!(p.batches[0].groups[0].blocks.len(), 32);
        assert_eq!(p.positions(), 8192);
        let p = AttPlan::new(&windows(4, 2048), 512, 16_384);
        let shapes: Vec<_> = p.batches[0]
            .groups
            .iter()
            .map(|g| (g.keys, g.rows, g.blocks.len()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (512, 512, 4),
                (1024, 512, 4),
                (1536, 512, 4),
                (2048, 512, 4)
            ]
        );
    }

    /// Every block of every run lands in exactly one group of the batch that copies its
    /// window, at that window's slab; slabs do not overlap; a batch stays in its budget
    /// unless one run alone is longer.
    #[test]
    fn plans_cover_every_block_once_within_budget() {
        let runs = vec![
            run(0, 0, 300, 0),
            run(1, 300, 40, 600),
            run(2, 340, 17, 0),
            run(3, 357, 1000, 24),
            run(4, 1357, 64, 0),
            run(5, 1421, 64, 0),
        ];
        for (block, budget) in [(512, 16_384), (128, 700), (64, 1), (1000, 1100)] {
            let p = AttPlan::new(&runs, block, budget);
            let mut seen = Vec::new();
            for b in &p.batches {
                assert!(b.positions <= budget || b.runs.len() == 1);
                let mut end = 0;
                for &(i, slab) in &b.runs {
                    assert_eq!(slab, end, "slabs in order, no gaps or overlaps");
                    end += runs[i].p0 + runs[i].len;
                    for (b0, b1) in runs[i].blocks(block) {
                        let g = b
                            .groups
                            .iter()
                            .find(|g| g.keys == runs[i].p0 + b1 && g.rows == b1 - b0)
                            .expect("a group of the block's shape");
                        assert!(g.blocks.contains(&(runs[i].r0 + b0, slab)));
                        seen.push(runs[i].r0 + b0);
                    }
                }
                assert_eq!(end, b.positions);
            }
            let blocks: usize = p
                .batches
                .iter()
                .flat_map(|b| &b.groups)
                .map(|g| g.blocks.len())
                .sum();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), blocks, "block {block} budget {budget}");
        }
        assert_eq!(AttPlan::new(&[], 512, 1).batches, vec![]);
    }

    /// The addresses of the per-window strided GEMMs this replaced, for each (block, head).
    #[test]
    fn pointers_address_each_block_and_head() {
        let l = Layout {
            nh: 9,
            nkv: 3,
            hd: 64,
            cap: 300,
            kf: 1 << 40,
            vf: 2 << 40,
            qf: 3 << 40,
            z: 4 << 40,
            pv: 5 << 40,
        };
        let runs = vec![run(0, 0, 100, 0), run(1, 100, 100, 0), run(2, 200, 50, 30)];
        let p = AttPlan::new(&runs, 64, 1000);
        let ptrs = pointers(&p, &l);
        let (d, kvd) = (576u64, 192u64);
        let mut at = 0;
        for g in p.batches.iter().flat_map(|b| &b.groups) {
            let n = g.blocks.len() * l.nh;
            for (bi, &(row, slab)) in g.blocks.iter().enumerate() {
                for h in 0..l.nh {
                    let e = at + bi * l.nh + h;
                    let (row, slab, h) = (row as u64, slab as u64, h as u64);
                    let kv = 8 * (slab * kvd + (h / 3) * 64);
                    let z = l.z + 8 * ((row * 9 + h) * 300);
                    let q = 8 * (row * d + h * 64);
                    assert_eq!(ptrs[e], l.kf + kv);
                    assert_eq!(ptrs[e + n], l.qf + q);
                    assert_eq!(ptrs[e + 2 * n], z);
                    assert_eq!(ptrs[e + 3 * n], l.vf + kv);
                    assert_eq!(ptrs[e + 4 * n], z);
                    assert_eq!(ptrs[e + 5 * n], l.pv + q);
                }
            }
            at += ARRAYS * n;
        }
        assert_eq!(at, ptrs.len());
    }
}
