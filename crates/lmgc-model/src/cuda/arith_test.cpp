// Host test of kernels.cu's fast integer helpers against their plain definitions, run by
// scripts/check-cuda-kernels.sh (g++, the CUDA built-ins shimmed): every fast path must give
// the integer the slow one gives, on edge values and on random ones of every magnitude.
#include <cstdio>
#include <cstdlib>
#include <random>

static int failures = 0;
#define CHECK(cond, ...)                   \
    do {                                   \
        if (!(cond) && failures++ < 10) {  \
            std::printf(__VA_ARGS__);      \
            std::printf("\n");             \
        }                                  \
    } while (0)

static i128 slow_floor(i128 n, i128 d) {
    i128 q = n / d;
    if (n % d < 0) q -= 1;
    return q;
}

static i64 slow_score(i64 dot, int qe, int ke, i64 scale) {
    return (i64)round_shift((i128)dot * (i128)scale, 30 - 10 - qe - ke);
}

int main() {
    std::mt19937_64 rng(7);
    auto any = [&](int bits) -> i128 {
        if (bits <= 0) return 0;
        u128 v = ((u128)rng() << 64) | rng();
        v >>= 128 - bits;
        return (rng() & 1) ? -(i128)v : (i128)v;
    };
    i128 edges[] = {0, 1, -1, 2, -2, 3, 4095, -4095, 8190, ((i128)1 << 52) - 1, (i128)1 << 53,
                    -((i128)1 << 53), ((i128)1 << 62) - 1, (i128)I64_MAX, (i128)I64_MIN,
                    ((i128)1 << 100) + 12345, -((i128)1 << 100) - 7};
    for (i128 n : edges)
        for (i128 d : edges)
            if (d > 0) {
                CHECK(div_floor(n, d) == slow_floor(n, d), "div_floor edge");
                CHECK(div_round(n, d) == slow_floor(2 * n + d, 2 * d), "div_round edge");
            }
    for (int i = 0; i < 2000000; i++) {
        int nb = rng() % 120, db = 1 + rng() % 70;
        i128 n = any(nb), d = any(db);
        if (d < 0) d = -d;
        if (d == 0) d = 1;
        CHECK(div_floor(n, d) == slow_floor(n, d), "div_floor %d %d", nb, db);
        // Quotients at integer boundaries: n = q d + {-1, 0, 1}.
        i128 q = any(rng() % 53);
        i128 m = q * d + (i128)(rng() % 3) - 1;
        CHECK(div_floor(m, d) == slow_floor(m, d), "div_floor boundary");
        i64 w = (i64)(rng() >> (64 - 1 - rng() % 31)), total = w + (i64)(rng() >> (64 - 43));
        if (total > 0) CHECK(prob_level(w, total) == (2 * w * 4095 + total) / (2 * total), "prob");
        i64 dot = (i64)any(1 + rng() % 34);
        i64 scale = (i64)(rng() >> (64 - 31));
        if (i % 7 == 0) scale = -scale - (i64)(rng() >> 16);
        int qe = (int)(rng() % 80) - 40, ke = (int)(rng() % 80) - 40;
        CHECK(score_of(dot, qe, ke, scale) == slow_score(dot, qe, ke, scale), "score_of");
    }
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("fast integer helpers equal their definitions\n");
    return 0;
}
