// Host test of mma.cu's att_dots, run by scripts/check-cuda-kernels.sh: a warp is 32 host
// threads and mma.sync an exchange between them at a barrier, computed from the fragment
// layout that mma.cu's comment states; att_dots must then write every q · k the f64 GEMM
// would, as exact integers, and nothing else. The GPU tests check the tensor cores against the
// host engine.
#include <barrier>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

static thread_local int lane_id;
static std::barrier<>* warp_barrier;
static u32 stage_a[32][4], stage_b[32][2];

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
    int warps = tiles * nh;
    std::barrier<> bar(32);
    warp_barrier = &bar;
    for (int w = 0; w < warps; w++) {
        std::vector<std::thread> lanes;
        for (int l = 0; l < 32; l++) {
            lanes.emplace_back([&, w, l] {
                lane_id = l;
                // One warp per block: blockIdx.x = w, threadIdx.x = l.
                thread_block = {(unsigned)w, 0, 0};
                thread_index = {(unsigned)l, 0, 0};
                att_dots(tiles, tile.data(), nh, nkv, hd, q.data(), kc.data(), pos.data(),
                         slot.data(), layer, slots, cap, z.data());
            });
        }
        for (auto& t : lanes) t.join();
    }
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
    return 0;
}
