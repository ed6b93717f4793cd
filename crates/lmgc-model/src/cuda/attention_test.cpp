// Host test of att_row and att_row_g* (one per group size), the fused decoding attention,
// against the three kernels they replace (att_scores, att_probs, att_pv), run by
// scripts/check-cuda-kernels.sh: kernels.cu compiled as C++ with WARP=1 and one thread per
// block, so every block's loops and reductions run serially. It checks the indexing and the
// integers; the GPU tests check the same kernels with their threads racing.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

dim3 threadIdx, blockIdx, blockDim;
int4 sq4[1 << 14];
i64 sz[1];

// Runs `k` once per block of a grid of `blocks` blocks of one thread.
template <class K>
static void grid(i64 blocks, K k) {
    blockDim = {1, 1, 1};
    threadIdx = {0, 0, 0};
    for (i64 b = 0; b < blocks; b++) {
        blockIdx = {(unsigned)b, 0, 0};
        k();
    }
}

static int check(int nh, int nkv, int hd, int cap, int M, unsigned seed) {
    std::mt19937_64 rng(seed);
    auto uni = [&](i64 lo, i64 hi) { return lo + (i64)(rng() % (u64)(hi - lo + 1)); };
    const int layers = 2, layer = 1, slots = 3, kvd = nkv * hd, d = nh * hd;
    std::vector<int> q((size_t)M * d), qexp((size_t)M * nh), pos(M), slot(M), zend(M);
    std::vector<i16> kc((size_t)layers * slots * cap * kvd);
    std::vector<int> kexpc((size_t)layers * slots * cap * nkv), vc(kc.size());
    for (auto& x : q) x = (int)uni(-32767, 32767);
    for (auto& x : qexp) x = (int)uni(-14, -2);
    for (auto& x : kc) x = (i16)uni(-4095, 4095);
    for (auto& x : kexpc) x = (int)uni(-14, -2);
    for (auto& x : vc) x = (int)uni(-(1 << 23) + 1, (1 << 23) - 1);
    for (int r = 0; r < M; r++) {
        pos[r] = r == 0 ? cap - 1 : (int)uni(0, cap - 1);
        slot[r] = (int)uni(0, slots - 1);
        // One row of a GEMM run: both paths must leave its sums alone.
        zend[r] = r == 1 ? pos[r] + 1 : 0;
    }
    std::vector<i64> exp2(1024);
    for (int i = 0; i < 1024; i++) exp2[i] = (i64)std::ldexp(std::exp2(-i / 1024.0), 40);
    const i64 score_scale = (i64)1 << 29;
    int err = 0;

    std::vector<i64> want((size_t)M * d, 7), got((size_t)M * d, 7), z((size_t)M * nh * cap);
    for (int r = 0; r < M; r++)
        if (zend[r] == 0)
            for (int t = 0; t < d; t++) want[(size_t)r * d + t] = 0;
    grid((i64)M * nkv * cap, [&] {
        att_scores(M, nh, nkv, hd, q.data(), qexp.data(), kc.data(), kexpc.data(), pos.data(),
                   slot.data(), zend.data(), score_scale, layer, slots, cap, z.data());
    });
    grid((i64)M * nh, [&] {
        att_probs(M, nh, nkv, pos.data(), slot.data(), zend.data(), qexp.data(), kexpc.data(),
                  score_scale, layer, slots, exp2.data(), cap, z.data(), &err, 0);
    });
    const int span = 16, spans = (cap + span - 1) / span;
    grid((i64)M * nkv * hd * spans, [&] {
        att_pv(M, nh, nkv, hd, z.data(), vc.data(), pos.data(), slot.data(), zend.data(), layer,
               slots, cap, span, want.data());
    });
    grid((i64)M * nkv, [&] {
        att_row(M, nh, nkv, hd, q.data(), qexp.data(), kc.data(), kexpc.data(), vc.data(),
                pos.data(), slot.data(), zend.data(), score_scale, exp2.data(), layer, slots,
                cap, got.data());
    });
    // The kernel compiled for this group size, where there is one.
    std::vector<i64> by_group((size_t)M * d, 7);
    const int group = nh / nkv;
    if (group <= 8) {
        grid((i64)M * nkv, [&] {
            auto k = group == 1   ? att_row_g1
                     : group == 2 ? att_row_g2
                     : group == 3 ? att_row_g3
                     : group == 4 ? att_row_g4
                     : group == 5 ? att_row_g5
                     : group == 6 ? att_row_g6
                     : group == 7 ? att_row_g7
                                  : att_row_g8;
            k(M, nh, nkv, hd, q.data(), qexp.data(), kc.data(), kexpc.data(), vc.data(),
              pos.data(), slot.data(), zend.data(), score_scale, exp2.data(), layer, slots, cap,
              by_group.data());
        });
    } else {
        by_group = want;
    }
    int bad = 0;
    for (size_t t = 0; t < want.size(); t++) {
        if (want[t] != got[t] && bad++ < 5)
            std::printf("att_row: nh %d nkv %d hd %d: element %zu is %lld, want %lld\n", nh, nkv,
                        hd, t, (long long)got[t], (long long)want[t]);
        if (want[t] != by_group[t] && bad++ < 5)
            std::printf("att_row_g%d: nh %d nkv %d hd %d: element %zu is %lld, want %lld\n",
                        group, nh, nkv, hd, t, (long long)by_group[t], (long long)want[t]);
    }
    i64 nonzero = 0;
    for (i64 v : want) nonzero += v != 0 && v != 7;
    if (nonzero == 0) {
        std::printf("att_row: nh %d nkv %d hd %d: all sums zero, the test tests nothing\n", nh,
                    nkv, hd);
        bad++;
    }
    return bad + err;
}

int main() {
    int bad = check(9, 3, 64, 40, 6, 1)   // SmolLM2's heads
              + check(18, 2, 16, 33, 5, 2)  // groups of 9: two passes of GMAX
              + check(4, 4, 8, 7, 4, 3)     // no grouping, short rows
              + check(6, 2, 30, 70, 3, 4)   // head_dim not a multiple of 16 (nor of 4)
              + check(8, 8, 12, 50, 4, 5)   // groups of one, head_dim a multiple of 4 only
              + check(16, 2, 32, 45, 3, 6)  // groups of eight
              + check(8, 8, 64, 30, 3, 7)   // groups of one, 64-wide
              + check(16, 2, 64, 20, 2, 8)  // groups of eight, 64-wide
              + check(4, 2, 16, 25, 3, 9)   // groups of two to seven
              + check(8, 2, 16, 25, 3, 10)
              + check(10, 2, 12, 25, 3, 11)
              + check(12, 2, 8, 25, 3, 12)
              + check(14, 2, 16, 25, 3, 13);
    if (bad) {
        std::printf("%d mismatches\n", bad);
        return 1;
    }
    std::printf("att_row and att_row_g* equal att_scores, att_probs and att_pv\n");
    return 0;
}
