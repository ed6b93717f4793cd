// Host test of mma.cu's att_dots and att_mma, run by scripts/check-cuda-kernels.sh after
// kernels.cu: a warp is 32 host threads, and mma.sync and the shuffles exchanges between them
// at a barrier, mma.sync computed from the fragment layout that mma.cu's comment states.
// att_dots must then write every q · k the f64 GEMM would, as exact integers, and nothing
// else; att_mma every P · V sum of the exact softmax (kernels.cu's helpers, applied here
// position by position). The GPU tests check the tensor cores against the host engine.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

static thread_local int lane_id;
static std::barrier<>* warp_barrier;
static u32 stage_a[32][4], stage_b[32][2];
static unsigned long long stage_s[32];
int4 sq4[1 << 16];
i64 sz[1];

unsigned long long shfl_emulated(unsigned long long v, int m, bool by_xor) {
    stage_s[lane_id] = v;
    warp_barrier->arrive_and_wait();
    unsigned long long got = stage_s[by_xor ? lane_id ^ m : m];
    warp_barrier->arrive_and_wait();
    return got;
}

void block_sync_emulated() { warp_barrier->arrive_and_wait(); }

// Runs `kernel` as `warps` blocks of one warp each, a host thread per lane.
template <class F>
static void run_warps(int warps, F kernel) {
    std::barrier<> bar(32);
    warp_barrier = &bar;
    for (int w = 0; w < warps; w++) {
        std::vector<std::thread> lanes;
        for (int l = 0; l < 32; l++) {
            lanes.emplace_back([&, w, l] {
                lane_id = l;
                thread_block = {(unsigned)w, 0, 0};
                thread_index = {(unsigned)l, 0, 0};
                kernel();
            });
        }
        for (auto& t : lanes) t.join();
    }
}

// C += A · B for one m16n8k32 fragment set per lane; `as`, `bs`: whether A's and B's bytes
// are signed.
void mma_emulated(int* c, const u32* a, const u32* b, bool as, bool bs) {
    int l = lane_id;
    for (int i = 0; i < 4; i++) stage_a[l][i] = a[i];
    for (int i = 0; i < 2; i++) stage_b[l][i] = b[i];
    warp_barrier->arrive_and_wait();
    auto byte = [](u32 reg, int i, bool s) {
        unsigned v = (reg >> (8 * i)) & 255u;
        return s ? (int)(signed char)v : (int)v;
    };
    // A[row][k] and B[k][col] from the lanes holding them.
    auto A = [&](int row, int k) {
        int g = row % 8, t = (k % 16) / 4, reg = (row >= 8 ? 1 : 0) + (k >= 16 ? 2 : 0);
        return byte(stage_a[4 * g + t][reg], k % 4, as);
    };
    auto B = [&](int k, int col) {
        int t = (k % 16) / 4, reg = k >= 16 ? 1 : 0;
        return byte(stage_b[4 * col + t][reg], k % 4, bs);
    };
    int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        int sum = 0;
        for (int k = 0; k < 32; k++) sum += A(row, k) * B(k, col);
        c[i] += sum;
    }
    warp_barrier->arrive_and_wait();
}

static int check(int nh, int nkv, int hd, int cap, std::vector<int> runs, unsigned seed) {
    std::mt19937_64 rng(seed);
    auto uni = [&](long long lo, long long hi) {
        return lo + (long long)(rng() % (unsigned long long)(hi - lo + 1));
    };
    const int layers = 2, layer = 1, slots = 3, kvd = nkv * hd;
    // Rows: each run consecutive positions of one slot from position p0.
    std::vector<int> pos, slot, tile;
    for (size_t i = 0; i < runs.size(); i += 2) {
        int len = runs[i], p0 = runs[i + 1], s = (int)(i / 2) % slots, r0 = (int)pos.size();
        for (int k = 0; k < len; k++) {
            pos.push_back(p0 + k);
            slot.push_back(s);
        }
        for (int t0 = 0; t0 < len; t0 += 16) {
            tile.push_back(r0 + t0);
            tile.push_back(len - t0 < 16 ? len - t0 : 16);
        }
    }
    int M = (int)pos.size(), tiles = (int)tile.size() / 2;
    std::vector<int> q((size_t)M * nh * hd);
    std::vector<i16> kc((size_t)layers * slots * cap * kvd);
    for (auto& x : q) x = (int)uni(-32767, 32767);
    for (auto& x : kc) x = (i16)uni(-32767, 32767);
    for (int i = 0; i < 64; i++) q[(size_t)uni(0, (long long)q.size() - 1)] = i % 2 ? 32767 : -32767;
    const double mark = -0.5;  // never a dot product
    std::vector<double> z((size_t)M * nh * cap, mark);
    run_warps(tiles * nh, [&] {
        att_dots(tiles, tile.data(), nh, nkv, hd, q.data(), kc.data(), pos.data(), slot.data(),
                 layer, slots, cap, z.data());
    });
    int bad = 0;
    for (int r = 0; r < M; r++)
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < cap; j++) {
                double got = z[((size_t)r * nh + h) * cap + j];
                double want = mark;
                if (j <= pos[r]) {
                    const i16* k = kc.data() + (((size_t)layer * slots + slot[r]) * cap + j) * kvd +
                                   (h / (nh / nkv)) * hd;
                    long long dot = 0;
                    for (int i = 0; i < hd; i++) dot += (long long)q[((size_t)r * nh + h) * hd + i] * k[i];
                    want = (double)dot;
                }
                if (got != want && bad++ < 5)
                    std::printf("att_dots: row %d head %d key %d: %.1f, want %.1f\n", r, h, j,
                                got, want);
            }
    return bad;
}

// att_mma and v_pack against the exact softmax and P · V position by position, for runs
// given as (rows, first position) pairs; rows outside the runs (a `gap` of them before each
// run) must keep their entries.
static int check_attention(int nh, int nkv, int hd, int cap, std::vector<int> runs, int gap,
                           unsigned seed, bool wide = false) {
    std::mt19937_64 rng(seed);
    auto uni = [&](long long lo, long long hi) {
        return lo + (long long)(rng() % (unsigned long long)(hi - lo + 1));
    };
    const int layers = 2, layer = 1, slots = 3, kvd = nkv * hd;
    const long long k_levels = std::min<long long>(((1 << 24) - 1) / (hd * 128), 32767);
    const long long score_scale = (long long)std::llround(std::ldexp(1.0, 30) / (std::sqrt((double)hd) * std::log(2.0)));
    std::vector<i64> exp2(1024);
    for (int k = 0; k < 1024; k++) exp2[k] = (i64)std::llround(std::ldexp(std::exp2(-k / 1024.0), 30));
    std::vector<int> pos, slot, tile, table;
    int chunks = 0;
    for (size_t i = 0; i < runs.size(); i += 2) {
        int len = runs[i], p0 = runs[i + 1], s = (int)(i / 2) % slots;
        for (int k = 0; k < gap; k++) {
            pos.push_back(k);
            slot.push_back(s);
        }
        int r0 = (int)pos.size();
        for (int k = 0; k < len; k++) {
            pos.push_back(p0 + k);
            slot.push_back(s);
        }
        for (int t0 = 0; t0 < len; t0 += 16) {
            tile.push_back(r0 + t0);
            tile.push_back(len - t0 < 16 ? len - t0 : 16);
            tile.push_back(chunks);
        }
        table.push_back(s);
        table.push_back(p0 + len);
        table.push_back(chunks);
        chunks += (p0 + len + 31) / 32;
    }
    int M = (int)pos.size(), tiles = (int)tile.size() / 3;
    std::vector<int> q((size_t)M * nh * hd), qexp((size_t)M * nh);
    std::vector<i16> kc((size_t)layers * slots * cap * kvd);
    std::vector<int> kexp((size_t)layers * slots * cap * nkv), vc((size_t)layers * slots * cap * kvd);
    for (auto& x : q) x = (int)uni(-32767, 32767);
    for (auto& x : kc) x = (i16)uni(-k_levels, k_levels);
    for (auto& x : vc) x = (int)uni(-(1 << 23) + 1, (1 << 23) - 1);
    for (int i = 0; i < 64; i++) vc[(size_t)uni(0, (long long)vc.size() - 1)] = i % 2 ? (1 << 23) - 1 : -(1 << 23) + 1;
    // Exponents that spread the scores over a few bits (flat rows) to many (peaked ones).
    // `wide`: head 0's query exponents push its scores past 32 bits (its warps recompute
    // them), while the other heads' warps keep theirs, in the same launch.
    for (size_t i = 0; i < qexp.size(); i++)
        qexp[i] = wide && i % nh == 0 ? (int)uni(8, 16) : (int)uni(-20, -10);
    for (auto& x : kexp) x = (int)uni(-18, -10);
    // Every word written (v_pack zeroes positions past a window), none past the runs' chunks.
    std::vector<uint2> vp((size_t)chunks * 12 * kvd + 1, uint2{0xa5a5a5a5u, 0xa5a5a5a5u});
    int runs_n = (int)table.size() / 3;
    for (int y = 0; y < runs_n; y++) {
        int blocks = (table[3 * y + 1] + 31) / 32 * nkv * (hd / 8);
        for (int b = 0; b < blocks; b++)
            for (int l = 0; l < 32; l++) {
                thread_block = {(unsigned)b, (unsigned)y, 0};
                thread_index = {(unsigned)l, 0, 0};
                v_pack(nkv, hd, table.data(), vc.data(), layer, slots, cap, vp.data());
            }
    }
    int unwritten = 0;
    for (size_t i = 0; i + 1 < vp.size(); i++)
        unwritten += vp[i].x == 0xa5a5a5a5u && vp[i].y == 0xa5a5a5a5u;
    if (unwritten || vp.back().x != 0xa5a5a5a5u) {
        std::printf("v_pack: %d words unwritten, or one past the end written\n", unwritten);
        return 1;
    }
    const double mark = -0.5;
    // Scores recomputed in every pass (keep 0) and kept from the first (keep 1).
    std::vector<double> pvs[2];
    for (int keep = 0; keep < 2; keep++) {
        pvs[keep].assign((size_t)M * nh * hd, mark);
        double* pv = pvs[keep].data();
        run_warps(tiles * nh, [&] {
            auto kernel = hd == 32 ? att_mma_h32 : hd == 64 ? att_mma_h64
                        : hd == 96 ? att_mma_h96 : att_mma_h128;
            kernel(tiles, tile.data(), nh, nkv, q.data(), qexp.data(), kc.data(), kexp.data(),
                   pos.data(), slot.data(), score_scale, exp2.data(), (const u32*)vp.data(),
                   layer, slots, cap, pv, keep);
        });
    }
    // Run rows' (row, head) pairs with a score past 32 bits, and with none.
    int over = 0, narrow = 0;
    std::vector<bool> in_run(M, false);
    for (int i = 0; i < tiles; i++)
        for (int r = tile[3 * i]; r < tile[3 * i] + tile[3 * i + 1]; r++) in_run[r] = true;
    int bad = 0;
    for (int r = 0; r < M; r++)
        for (int h = 0; h < nh; h++) {
            int kvh = h / (nh / nkv), n = pos[r] + 1;
            size_t cache = (size_t)layer * slots + slot[r];
            std::vector<i64> s(n);
            i64 mx = I64_MIN, total = 0;
            bool wide_row = false;
            for (int j = 0; j < n; j++) {
                const i16* k = kc.data() + (cache * cap + j) * kvd + kvh * hd;
                i64 dot = 0;
                for (int i = 0; i < hd; i++) dot += (i64)q[((size_t)r * nh + h) * hd + i] * k[i];
                s[j] = score_of(dot, qexp[r * nh + h], kexp[(cache * cap + j) * nkv + kvh], score_scale);
                wide_row = wide_row || s[j] != (i64)(int)s[j];
                mx = std::max(mx, s[j]);
            }
            if (in_run[r]) (wide_row ? over : narrow) += 1;
            for (int j = 0; j < n; j++) total += exp2_neg(exp2.data(), mx - s[j]);
            double inv = 1.0 / (double)(2 * total);
            std::vector<i64> sum(hd, 0);
            for (int j = 0; j < n; j++) {
                i64 p = prob_level(exp2_neg(exp2.data(), mx - s[j]), total, inv);
                for (int i = 0; i < hd; i++) sum[i] += p * vc[(cache * cap + j) * kvd + kvh * hd + i];
            }
            for (int keep = 0; keep < 2; keep++)
                for (int i = 0; i < hd; i++) {
                    double got = pvs[keep][((size_t)r * nh + h) * hd + i];
                    double want = in_run[r] ? (double)sum[i] : mark;
                    if (got != want && bad++ < 5)
                        std::printf("att_mma (keep %d): row %d head %d channel %d: %.1f, want "
                                    "%.1f\n", keep, r, h, i, got, want);
                }
        }
    if (wide != (over > 0) || narrow == 0) {
        std::printf("att_mma: %d (row, head) pairs with scores past 32 bits and %d without, "
                    "where the case wants %s\n", over, narrow,
                    wide ? "both" : "only the latter");
        return bad + 1;
    }
    return bad;
}

int main() {
    // (rows, first position) per run: SmolLM2's heads; a window's 255 rows in 16-row tiles;
    // runs starting mid-window; head_dim 32 and 128.
    int bad = check(9, 3, 64, 48, {40, 0, 17, 5, 3, 30}, 1) +
              check(4, 2, 32, 40, {33, 0, 16, 20}, 2) +
              check(2, 1, 128, 24, {24, 0}, 3);
    if (bad) {
        std::printf("att_dots: %d wrong entries\n", bad);
        return 1;
    }
    std::printf("att_dots equals the exact dot products (mma emulated from its fragment layout)\n");
    // SmolLM2's heads with runs from position 0 and mid-window, a run past one chunk's end
    // by a position, rows outside the runs; head_dim 32, 96 and 128; a 600-position window;
    // scores past 32 bits.
    bad = check_attention(9, 3, 64, 80, {40, 0, 17, 5, 33, 0, 16, 64}, 3, 4) +
          check_attention(4, 2, 32, 40, {33, 0, 16, 20}, 0, 5) +
          check_attention(2, 1, 128, 24, {24, 0}, 1, 6) +
          check_attention(3, 1, 64, 600, {20, 580}, 2, 7) +
          check_attention(2, 1, 96, 40, {33, 0}, 1, 9) +
          check_attention(9, 3, 64, 80, {40, 0, 17, 5, 33, 0}, 1, 8, true);
    if (bad) {
        std::printf("att_mma: %d wrong entries\n", bad);
        return 1;
    }
    std::printf("att_mma equals the exact softmax times the values (mma and shuffles emulated)\n");
    return 0;
}
