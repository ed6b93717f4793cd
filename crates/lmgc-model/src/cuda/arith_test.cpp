// Host test of kernels.cu's fast integer helpers against their plain definitions, run by
// scripts/check-cuda-kernels.sh (g++, the CUDA built-ins shimmed): every fast path must give
// the integer the slow one gives, on edge values and on random ones of every magnitude.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

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

// The Newton iteration alone (fixed.rs's isqrt).
static u128 slow_isqrt(u128 n) {
    if (n < 2) return n;
    int bits = 128 - clz128(n);
    u128 x = (u128)1 << ((bits + 1) / 2);
    for (;;) {
        u128 y = (x + n / x) / 2;
        if (y >= x) return x;
        x = y;
    }
}

static i64 slow_score(i64 dot, int qe, int ke, i64 scale) {
    return (i64)round_shift((i128)dot * (i128)scale, 30 - 10 - qe - ke);
}

// norm_row_regs against norm_row on lane 0 (one thread: the shim's shuffles are the
// identity and only lane 0 computes the rms, so the other lanes cannot run here; the GPU
// test covers them and rows with a short tail), with and without the residual add and the
// split gammas, on rows whose norms take the split quotients and rows of huge values (rms
// past 2^52: no fast path, every element norm_mant's). One thread cannot make a row mix the
// two (a quotient past 2^36 needs an element 16 times the rms of a lane's 18).
static void check_norm_regs(std::mt19937_64& rng) {
    const int M = 3, d = 560;
    std::vector<i64> x0(M * d), gamma(d), gsplit(d), scale(d), acc(M * d);
    for (int i = 0; i < d; i++) {
        i64 gm = 1 + (i64)(rng() % ((1u << 25) - 1)) * 2, gz = (i64)(rng() % 20);
        gsplit[i] = gm * 128 + gz;
        gamma[i] = gm << gz;
        scale[i] = 1 + (i64)(rng() >> 40);
    }
    for (int kind = 0; kind < 3; kind++) {
        for (int t = 0; t < M * d; t++) {
            int bits = kind == 0 ? 30 : kind == 1 ? (t % 7 == 0 ? 62 : 34) : 61;
            x0[t] = (i64)(rng() >> (64 - bits)) - ((i64)1 << (bits - 1));
            acc[t] = (i64)(rng() >> 36) - ((i64)1 << 27);
        }
        for (int add = 0; add < 2; add++)
            for (int split = 0; split < 2; split++) {
                std::vector<i64> xa = x0, xb = x0;
                std::vector<int> ha(M * d, 7), hb(M * d, 7), ea(M, -3), eb(M, -3);
                std::vector<signed char> la(2 * M * d, 1), lb(2 * M * d, 1);
                const i64* sc = add ? scale.data() : nullptr;
                const i64* gs = split ? gsplit.data() : nullptr;
                for (int r = 0; r < M; r++) {
                    norm_row<false>(r, 0, WARP, nullptr, M, d, acc.data(), nullptr, nullptr, sc,
                                    nullptr, -20, xa.data(), gamma.data(), gs, 5, 1 << 10,
                                    ha.data(), la.data(), ea.data());
                    norm_row_regs<24>(r, 0, M, d, acc.data(), nullptr, nullptr, sc, nullptr, -20,
                                      xb.data(), gamma.data(), gs, 5, 1 << 10, hb.data(),
                                      lb.data(), eb.data());
                }
                CHECK(xa == xb && ha == hb && la == lb && ea == eb,
                      "norm_row_regs differs from norm_row (kind %d, add %d, split %d)", kind,
                      add, split);
            }
    }
}

int main() {
    std::mt19937_64 rng(7);
    check_norm_regs(rng);
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
        if (i % 3 == 0) {
            // Exact quotients: total = 8190 u and w = (2k - 1) u give 2 w 4095 + total = 2 k total.
            i64 u = 1 + (i64)(rng() >> (64 - 1 - rng() % 29)), k = 1 + (i64)(rng() % 4095);
            total = 8190 * u;
            w = (2 * k - 1) * u + (i64)(rng() % 3) - 1;
            if (w < 0 || w > total) w = 0;
        }
        if (total > 0)
            CHECK(prob_level(w, total, 1.0 / (double)(2 * total)) ==
                      (2 * w * 4095 + total) / (2 * total),
                  "prob");
        i64 dot = (i64)any(1 + rng() % 34);
        i64 scale = (i64)(rng() >> (64 - 31));
        if (i % 7 == 0) scale = -scale - (i64)(rng() >> 16);
        int qe = (int)(rng() % 80) - 40, ke = (int)(rng() % 80) - 40;
        CHECK(score_of(dot, qe, ke, scale) == slow_score(dot, qe, ke, scale), "score_of");
    }
    // The norm's quotient (exact ties at every magnitude: rms = 2^33 u, x = (2k - 1) u gives
    // x 2^32 / rms + 1/2 = k), square roots and 128-bit by small divisions, 64-bit shifts.
    for (int i = 0; i < 2000000; i++) {
        i64 x = (i64)any(1 + rng() % 63);
        u128 rms = (u128)(u64)any(1 + rng() % 60);
        if (rms == 0) rms = 1;
        if (i % 3 == 0) {
            i64 u = 1 + (i64)(rng() >> (64 - 1 - rng() % 19)), k = (i64)any(1 + rng() % 30);
            rms = (u128)u << 33;
            x = (2 * k - 1) * u + (i64)(rng() % 3) - 1;
        }
        i64 gamma = (i64)any(1 + rng() % 48);
        bool fast = rms < ((u128)1 << 52);
        double inv = fast ? 4294967296.0 / (double)(i64)rms : 0.0;
        CHECK(norm_mant(x, rms, fast, inv, gamma) ==
                  slow_floor(2 * ((i128)x << 32) + (i128)rms, 2 * (i128)rms) * gamma,
              "norm_mant");
        {
            // Gamma split into an odd part below 2^26 and a power of two.
            i64 gm = (i64)any(1 + rng() % 26) | 1;
            int gz = (int)(rng() % 30);
            i64 gp = 0;
            int zz = 0;
            if (norm_mant_split(x, rms, fast, inv, gm * 128 + gz, &gp, &zz))
                CHECK(((i128)gp << zz) == norm_mant(x, rms, fast, inv, gm << gz),
                      "norm_mant_split");
        }
        u128 n = (u128)any(1 + rng() % 127);
        if (i % 5 == 0) {
            u128 root = (u128)(u64)any(1 + rng() % 52);
            n = root * root + (u128)(rng() % 3) - 1;
        }
        CHECK(isqrt(n) == slow_isqrt(n), "isqrt");
        u64 dd = 1 + (rng() >> (64 - 1 - rng() % 32));
        CHECK(udiv_small(n, dd) == n / dd, "udiv_small");
        int s = (int)(rng() % 64);
        i64 v = (i64)any(1 + rng() % 62);
        CHECK(quant_apply64(v, s, 32767) == quant_apply((i128)v, s, 32767), "quant_apply64");
        // A row maximum's shift from its high word, where that decides it.
        u128 mx = (u128)any(1 + rng() % 127);
        if (mx >> 127) mx = -mx;
        i64 lv = i % 2 ? 32767 : (i64)(1 + (rng() >> (64 - 1 - rng() % 40)));
        int hs = quant_shift_hi((u64)(mx >> 64), lv);
        CHECK(hs < 0 || hs == quant_shift(mx, lv), "quant_shift_hi");
        if (i % 4 == 0) {
            // Maxima just below and above a rounding boundary of the shift.
            int sb = 65 + (int)(rng() % 50);
            u128 b = (u128)(1 + (rng() >> 40)) << sb;
            for (u128 m2 : {b - 1, b, b + 1, b - ((u128)1 << (sb - 1)), b + ((u128)1 << (sb - 1)) - 1})
                CHECK(quant_shift_hi((u64)(m2 >> 64), 32767) < 0 ||
                          quant_shift_hi((u64)(m2 >> 64), 32767) == quant_shift(m2, 32767),
                      "quant_shift_hi boundary");
        }
        // ffn_row's split scales: sum · m · 2^z quantized in 64 bits, at every shift a row's
        // maximum could pick (including ones that shift left or clamp).
        {
            i64 p = (i64)any(1 + rng() % 62);
            int z = (int)(rng() % 64), qs = (int)(rng() % 140);
            i64 lv = i % 2 ? 2147483647 : 32767;
            if (i % 5 == 0) qs = z + (int)(rng() % 5) - 2;
            if (qs < 0) qs = 0;
            CHECK(quant_apply_split(p, z, qs, lv) == quant_apply((i128)p << z, qs, lv),
                  "quant_apply_split");
            // The residual add with the scale split (sum · m < 2^62), at shifts either side of z.
            i64 sum = (i64)any(1 + rng() % 33), m = (i64)any(1 + rng() % 28) | 1;
            i64 packed = m * 128 + z, scale = (i64)((i128)m << z);
            if ((i128)scale == ((i128)m << z)) {
                int sh = z + (int)(rng() % 140) - 70;
                i64 xr = (i64)any(1 + rng() % 63);
                CHECK(residual_add(xr, sum, scale, &packed, 0, sh) ==
                          residual_add(xr, sum, scale, nullptr, 0, sh),
                      "residual_add split");
            }
        }
        i64 g = (i64)any(1 + rng() % 31);
        int sh = (int)(rng() % 200) - 100;
        CHECK(round_shift31(g, sh) == (i64)round_shift((i128)g, sh), "round_shift31");
    }
    for (i64 x : {I64_MIN, I64_MAX, (i64)0, (i64)-1, (i64)1})
        for (u128 rms : {(u128)1, (u128)3, ((u128)1 << 52) - 1, (u128)1 << 52, (u128)I64_MAX}) {
            bool fast = rms < ((u128)1 << 52);
            double inv = fast ? 4294967296.0 / (double)(i64)rms : 0.0;
            CHECK(norm_mant(x, rms, fast, inv, 12345) ==
                      slow_floor(2 * ((i128)x << 32) + (i128)rms, 2 * (i128)rms) * 12345,
                  "norm_mant edge");
        }
    for (u64 dd : {(u64)1, (u64)576, (u64)0xffffffffu})
        for (u128 n : {(u128)0, ~(u128)0, ((u128)1 << 64) - 1, (u128)1 << 100})
            CHECK(udiv_small(n, dd) == n / dd, "udiv_small edge");
    for (u128 n : {(u128)0, (u128)1, (u128)2, (u128)3, (u128)4, ((u128)1 << 104) - 1,
                   (u128)1 << 104, ~(u128)0, ((u128)1 << 64) - 1})
        CHECK(isqrt(n) == slow_isqrt(n), "isqrt edge");
    // quant_apply_wide against quant_apply; the key maxima against the 128-bit ones.
    const i64 levels_of[] = {32767, (i64)1 << 30, 2147483647};
    for (int i = 0; i < 1000000; i++) {
        i128 v = any(rng() % 128);
        int sh = (int)(rng() % 131);
        i64 lv = levels_of[rng() % 3];
        CHECK(quant_apply_wide(v, sh, lv) == quant_apply(v, sh, lv), "quant_apply_wide");
        u64 a = (u64)any(1 + rng() % 63);
        int z = (int)(rng() % 64);
        CHECK(mag_key64(a, z) == mag_key((u128)a << z), "mag_key64");
        // A row of magnitudes near one another (equal top bits are the hard case).
        int n = 1 + (int)(rng() % 40), bits = 1 + (int)(rng() % 127);
        u128 base = uabs(any(bits)), mx = 0;
        u64 kmax = 0;
        for (int j = 0; j < n; j++) {
            u128 m = base ^ (u128)(rng() % 1024) ^ ((rng() & 1) ? (u128)1 << (rng() % 128) : 0);
            if (m > mx) mx = m;
            u64 k = mag_key(m);
            if (k > kmax) kmax = k;
        }
        CHECK(quant_shift(key_mag(kmax), lv) == quant_shift(mx, lv), "key maximum");
        // Maxima either side of a rounding boundary of their shift.
        int sb = 1 + (int)(rng() % 110);
        u128 b = (u128)(1 + (rng() >> 33)) << sb;
        for (u128 m2 : {b - 1, b, b + 1, b - ((u128)1 << (sb - 1)), b + ((u128)1 << (sb - 1)) - 1,
                        b + ((u128)1 << (sb - 1))})
            CHECK(quant_shift(key_mag(mag_key(m2)), lv) == quant_shift(m2, lv), "key boundary");
    }
    // The residual add's 64-bit saturation, split and not.
    for (i64 xr : {I64_MAX, I64_MAX - 1, I64_MIN, I64_MIN + 1, (i64)0})
        for (i64 sum : {(i64)1 << 32, -((i64)1 << 32), (i64)1, (i64)-1})
            for (int sh : {0, 3, 40}) {
                i64 m = 3, z = 2, packed = m * 128 + z, scale = m << z;
                CHECK(residual_add(xr, sum, scale, &packed, 0, sh) ==
                          residual_add(xr, sum, scale, nullptr, 0, sh),
                      "residual_add saturation");
            }
    for (u128 m : {(u128)0, (u128)1, ~(u128)0, (u128)1 << 127, ((u128)1 << 56) - 1,
                   (u128)1 << 56, ((u128)1 << 64) - 1})
        for (i64 lv : levels_of)
            CHECK(quant_shift(key_mag(mag_key(m)), lv) == quant_shift(m, lv), "key edge");
    for (i128 v : {(i128)0, (i128)-1, (i128)I64_MAX, (i128)I64_MIN, ((i128)1 << 126),
                   -((i128)1 << 126), ((i128)1 << 62), -((i128)1 << 62) + 1})
        for (int sh : {0, 1, 62, 63, 64, 65, 100, 126, 127, 130})
            CHECK(quant_apply_wide(v, sh, 2147483647) == quant_apply(v, sh, 2147483647),
                  "quant_apply_wide edge");
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("fast integer helpers equal their definitions\n");
    return 0;
}
