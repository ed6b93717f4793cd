// The exact recipe (docs/decisions/0006, v1) as CUDA kernels: every function here is a
// line-by-line port of crates/lmgc-model/src/exact/{mod,fixed,tables}.rs and must give the
// same integers. Compiled at run time by NVRTC with --device-int128.
//
// Layout conventions: row-major; `M` rows per call; a warp-per-row kernel uses blockDim.x
// = 32 * WARPS and one warp per (row[, head]).

typedef long long i64;
typedef unsigned long long u64;
typedef __int128 i128;
typedef unsigned __int128 u128;
typedef short i16;

// WARP may be defined as 1 (one thread per warp) so that scripts/check-cuda-kernels.sh can
// compile this file as C++ both ways; the warp reductions and local arrays are written for
// any WARP, the block reductions (block_max_i64, block_sum_i64, block_sum_u128,
// block_key_shifts) assume blockDim.x / WARP <= WARP.
#ifndef WARP
#define WARP 32
#endif
#define I64_MAX 9223372036854775807LL
#define I64_MIN (-I64_MAX - 1LL)
// Per-lane slots for a head's values (head_dim <= 256).
#define HEAD_SLOTS ((256 + WARP - 1) / WARP)
#define FULL 0xffffffffu

// ---- fixed.rs ----------------------------------------------------------------------------

// floor(v / 2^s + 1/2) for s >= 0; v * 2^-s for s < 0 (bits above 127 dropped, as Rust's <<).
__device__ __forceinline__ i128 round_shift(i128 v, int s) {
    if (s == 0) return v;
    if (s > 0) {
        if (s >= 127) return 0;
        return (i128)((u128)v + ((u128)1 << (s - 1))) >> s;
    }
    int t = -s;
    if (t > 126) t = 126;
    return (i128)((u128)v << t);
}

// An estimate of an i128 as f64 (relative error about 2^-52; exact below 2^53).
__device__ __forceinline__ double approx_f64(i128 n) {
    if (n == (i128)(i64)n) return (double)(i64)n;
    return (double)(i64)(n >> 64) * 18446744073709551616.0 + (double)(u64)n;
}

// floor(n / d) for d > 0. The 128-bit division is a software routine of hundreds of
// instructions; a quotient below 2^53 comes from an f64 estimate instead, accepted only
// when its exact remainder lies in [0, d), so the result is the same integer either way.
__device__ __forceinline__ i128 div_floor(i128 n, i128 d) {
    if (d < ((i128)1 << 62)) {
        double est = floor(approx_f64(n) / (double)(i64)d);
        if (fabs(est) < 9007199254740992.0) {
            i128 q = (i128)(i64)est;
            i128 r = n - q * d;
            if (r < 0) {
                q -= 1;
                r += d;
            } else if (r >= d) {
                q += 1;
                r -= d;
            }
            if (r >= 0 && r < d) return q;
        }
    }
    i128 q = n / d;
    if (n % d < 0) q -= 1;
    return q;
}

// floor(a / b + 1/2) for b > 0 (Rust: (2a + b).div_euclid(2b)).
__device__ __forceinline__ i128 div_round(i128 a, i128 b) {
    return div_floor(2 * a + b, 2 * b);
}

__device__ __forceinline__ int clz128(u128 x) {
    u64 hi = (u64)(x >> 64), lo = (u64)x;
    return hi ? __clzll((i64)hi) : 64 + (lo ? __clzll((i64)lo) : 64);
}

// An estimate of a u128 as f64 (relative error about 2^-52).
__device__ __forceinline__ double approx_u128(u128 n) {
    return (double)(u64)(n >> 64) * 18446744073709551616.0 + (double)(u64)n;
}

// floor(n / d) for 0 < d < 2^32: long division in 32-bit digits with 64-bit arithmetic. NVRTC
// expands a 128-bit division into a loop over its 128 bits; this is four 64-bit ones.
__device__ u128 udiv_small(u128 n, u64 d) {
    u64 r = 0;
    u128 q = 0;
    for (int k = 3; k >= 0; k--) {
        u64 cur = (r << 32) | (u64)(unsigned)(n >> (32 * k));
        u64 qk = cur / d;
        r = cur - qk * d;
        q |= (u128)qk << (32 * k);
    }
    return q;
}

// The largest r with r^2 <= n. Below 2^104 the f64 square root is within a few units of r
// and exact 128-bit squares step it there (the steps decide the result, the estimate only
// how many there are); above, Newton's iteration with 128-bit divisions.
__device__ u128 isqrt(u128 n) {
    if (n < 2) return n;
    if ((n >> 104) == 0) {
        u64 r = (u64)sqrt(approx_u128(n));
        while ((u128)r * r > n) r -= 1;
        while ((u128)(r + 1) * (r + 1) <= n) r += 1;
        return r;
    }
    int bits = 128 - clz128(n);
    u128 x = (u128)1 << ((bits + 1) / 2);
    for (;;) {
        u128 y = (x + n / x) / 2;
        if (y >= x) return x;
        x = y;
    }
}

__device__ __forceinline__ u128 uabs(i128 v) { return v < 0 ? (u128)0 - (u128)v : (u128)v; }

// The shift quantize_row picks for a row whose largest magnitude is `max`.
__device__ int quant_shift(u128 max, i64 levels) {
    int s = 0;
    int bits = 128 - clz128(max);
    int level_bits = 64 - __clzll(levels);
    if (bits > level_bits) s = bits - level_bits - 1;
    while (round_shift((i128)max, s) > (i128)levels) s += 1;
    return s;
}

// quant_shift of a row whose maximum's high 64 bits are hi, when hi >= 2^(bits(levels) + 1):
// then the shift is at least 65, and rounding away 65 or more bits of a 128-bit value
// depends on its high 64 bits alone. -1 when hi is smaller (the row's own maximum decides).
__device__ __forceinline__ int quant_shift_hi(u64 hi, i64 levels) {
    int level_bits = 64 - __clzll(levels);
    if (level_bits > 61 || (hi >> (level_bits + 1)) == 0) return -1;
    return quant_shift((u128)hi << 64, levels);
}

__device__ __forceinline__ int quant_apply(i128 v, int s, i64 levels) {
    i128 q = round_shift(v, s);
    if (q > (i128)levels) q = levels;
    if (q < -(i128)levels) q = -levels;
    return (int)q;
}

// quant_apply for |v| < 2^62 (and s >= 0, as quant_shift gives): in 64-bit arithmetic.
__device__ __forceinline__ int quant_apply64(i64 v, int s, i64 levels) {
    i64 q = s == 0 ? v : (v + ((i64)1 << (s - 1))) >> s;
    if (q > levels) q = levels;
    if (q < -levels) q = -levels;
    return (int)q;
}

// quant_apply(v, s, levels) for s >= 0 in 64-bit arithmetic where it can be: for s >= 64 from
// v's high word (floor((v + 2^(s-1)) / 2^s) with v = hi 2^64 + lo: the low word only carries
// into the rounding when s = 64), for |v| < 2^62 as quant_apply64; else the 128-bit way.
__device__ __forceinline__ int quant_apply_wide(i128 v, int s, i64 levels) {
    i64 hi = (i64)(v >> 64);
    u64 lo = (u64)v;
    const i64 B = (i64)1 << 62;
    i64 q;
    if (s >= 64 && s < 127 && hi > -B && hi < B) {
        int k = s - 64;
        q = k == 0 ? hi + (i64)(lo >> 63) : (hi + ((i64)1 << (k - 1))) >> k;
    } else if (s < 64 && hi == ((i64)lo >> 63) && (i64)lo > -B && (i64)lo < B) {
        return quant_apply64((i64)lo, s, levels);
    } else {
        return quant_apply(v, s, levels);
    }
    if (q > levels) q = levels;
    if (q < -levels) q = -levels;
    return (int)q;
}

// Row maxima as 64-bit keys: a magnitude's bit length e (8 bits) over its top 56 bits. Keys
// order as their magnitudes do but for magnitudes equal in their top 56 bits, and quant_shift
// cannot tell those apart: it reads the bit length and, through the rounding of shifts of at
// least e - 32 bits (levels below 2^31), no bit below e - 33. So quant_shift(key_mag(max key))
// is quant_shift(max), for a key reduction of a single 64-bit word instead of 128-bit ones.
__device__ __forceinline__ u64 mag_key64(u64 a, int z) {
    if (a == 0) return 0;
    int lz = __clzll((i64)a);
    return ((u64)(64 - lz + z) << 56) | ((a << lz) >> 8);
}
__device__ __forceinline__ u64 mag_key(u128 a) {
    u64 hi = (u64)(a >> 64);
    if (hi == 0) return mag_key64((u64)a, 0);
    int lz = __clzll((i64)hi);
    u64 top = lz == 0 ? hi : (hi << lz) | ((u64)a >> (64 - lz));
    return ((u64)(128 - lz) << 56) | (top >> 8);
}
// The magnitude a key stands for: its top 56 bits, the rest zero.
__device__ __forceinline__ u128 key_mag(u64 key) {
    int e = (int)(key >> 56);
    u128 m = key & (((u64)1 << 56) - 1);
    return e >= 56 ? m << (e - 56) : m >> (56 - e);
}

// A scale (a linear layer's per column, a norm's gamma) as its odd part m times 2^z, packed
// m · 128 + z at upload (split_scales in cuda/mod.rs), so that a product with it is p · 2^z
// with p = x · m in 64 bits where |x m| < 2^62: for a linear layer's sums the upload checks
// that bound for the whole layer, for a norm's quotients each value is checked here.
__device__ __forceinline__ i64 split_mant(i64 packed) { return packed >> 7; }
__device__ __forceinline__ int split_shift(i64 packed) { return (int)(packed & 127); }

// quant_apply(p · 2^z, s, levels) in 64 bits, for |p| < 2^62, 0 <= z <= 63 and s >= 0 (the
// shifts quant_shift picks): the low z bits of p · 2^z are zero, so rounding away s of them
// is rounding away s - z bits of p; a left shift past the levels only clamps.
__device__ __forceinline__ i64 quant_apply_split(i64 p, int z, int s, i64 levels) {
    int k = s - z;
    i64 q;
    if (k >= 63) {
        q = 0;  // |p · 2^z| < 2^(s-1): rounds to 0
    } else if (k > 0) {
        q = (p + ((i64)1 << (k - 1))) >> k;
    } else {
        u64 a = p < 0 ? (u64)0 - (u64)p : (u64)p;
        if (-k < 32 && a < ((u64)1 << 31)) {
            q = p * ((i64)1 << -k);
        } else {
            q = p == 0 ? 0 : (p > 0 ? levels : -levels);  // at least 2^31 > levels
        }
    }
    if (q > levels) q = levels;
    if (q < -levels) q = -levels;
    return q;
}

// ---- warp reductions ---------------------------------------------------------------------

__device__ __forceinline__ u128 shfl_u128(u128 v, int src) {
    u64 hi = __shfl_sync(FULL, (u64)(v >> 64), src);
    u64 lo = __shfl_sync(FULL, (u64)v, src);
    return ((u128)hi << 64) | lo;
}
__device__ __forceinline__ u128 shfl_xor_u128(u128 v, int m) {
    u64 hi = __shfl_xor_sync(FULL, (u64)(v >> 64), m);
    u64 lo = __shfl_xor_sync(FULL, (u64)v, m);
    return ((u128)hi << 64) | lo;
}
__device__ __forceinline__ u128 warp_max_u128(u128 v) {
    for (int m = WARP / 2; m > 0; m >>= 1) {
        u128 o = shfl_xor_u128(v, m);
        if (o > v) v = o;
    }
    return v;
}
__device__ __forceinline__ u128 warp_sum_u128(u128 v) {
    for (int m = WARP / 2; m > 0; m >>= 1) v += shfl_xor_u128(v, m);
    return v;
}
__device__ __forceinline__ i64 warp_max_i64(i64 v) {
    for (int m = WARP / 2; m > 0; m >>= 1) {
        i64 o = __shfl_xor_sync(FULL, v, m);
        if (o > v) v = o;
    }
    return v;
}
__device__ __forceinline__ i64 warp_sum_i64(i64 v) {
    for (int m = WARP / 2; m > 0; m >>= 1) v += __shfl_xor_sync(FULL, v, m);
    return v;
}

__device__ __forceinline__ u64 warp_max_u64(u64 v) {
    for (int m = WARP / 2; m > 0; m >>= 1) {
        u64 o = __shfl_xor_sync(FULL, v, m);
        if (o > v) v = o;
    }
    return v;
}

// quant_shift of the block's largest magnitude of each of two sets, from their keys
// (mag_key), in every thread: the keys are reduced, then one thread takes the shifts
// (blockDim.x a multiple of WARP, at most 1024; red 2 * blockDim.x / WARP words of shared
// memory).
__device__ void block_key_shifts(u64 k0, u64 k1, u64* red, i64 levels, int* s0, int* s1) {
    int tid = threadIdx.x, lane = tid % WARP, wid = tid / WARP, nw = blockDim.x / WARP;
    k0 = warp_max_u64(k0);
    k1 = warp_max_u64(k1);
    __syncthreads();
    if (lane == 0) {
        red[2 * wid] = k0;
        red[2 * wid + 1] = k1;
    }
    __syncthreads();
    if (wid == 0) {
        k0 = lane < nw ? red[2 * lane] : 0;
        k1 = lane < nw ? red[2 * lane + 1] : 0;
        k0 = warp_max_u64(k0);
        k1 = warp_max_u64(k1);
        if (lane == 0) {
            red[0] = (u64)quant_shift(key_mag(k0), levels);
            red[1] = (u64)quant_shift(key_mag(k1), levels);
        }
    }
    __syncthreads();
    *s0 = (int)red[0];
    *s1 = (int)red[1];
}
__device__ int block_key_shift(u64 k, u64* red, i64 levels) {
    int s, unused;
    block_key_shifts(k, 0, red, levels, &s, &unused);
    return s;
}

// Books |v|'s high 64 bits into its row's maximum (rowhi, zeroed before the kernel), for
// quant_rows. With rows of a multiple of WARP values (and every thread of a warp present),
// a warp's lanes hold one row and reduce before one atomic; otherwise each thread's own.
__device__ __forceinline__ void row_max_hi(u64* rowhi, i64 r, int n, i128 v) {
    u64 hi = (u64)(uabs(v) >> 64);
    if (n % WARP == 0) hi = warp_max_u64(hi);
    if (hi != 0 && (n % WARP != 0 || threadIdx.x % WARP == 0)) {
        atomicMax((unsigned long long*)&rowhi[r], (unsigned long long)hi);
    }
}

__device__ __forceinline__ int warp_id() { return (blockIdx.x * blockDim.x + threadIdx.x) / WARP; }
__device__ __forceinline__ i64 thread_id() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }

// ---- GEMM sums in and levels out ---------------------------------------------------------

// A linear layer's exact sum for element t (column col) of an output `half` elements large:
// from an int8 GEMM's two limb products, 256 hi + lo + 128 rowsum (see put_level), read where
// it is used instead of combined into a buffer first; or, with g null, the sums of an f64
// GEMM already in acc.
__device__ __forceinline__ i64 sum_at(const i64* acc, const int* g, const i64* rowsum, i64 half,
                                      i64 t, int col) {
    if (g) return 256 * (i64)g[half + t] + (i64)g[t] + 128 * rowsum[col];
    return acc[t];
}

// A quantized activation x (|x| <= 32767) as the next linear layer reads it: the level into
// h (the f64 GEMM's input) and/or two int8 limbs for the int8 GEMM (either may be null):
// x = 256 hi + lo + 128 with hi, lo in [-128, 127] (hi = floor(x / 256); the +128 comes back
// as 128 times the weight row's sum). Low limbs at t, high ones `half` later.
__device__ __forceinline__ void put_level(int* h, signed char* limbs, i64 half, i64 t, int x) {
    if (h) h[t] = x;
    if (limbs) {
        int hi = x >> 8;
        limbs[t] = (signed char)(x - 256 * hi - 128);
        limbs[half + t] = (signed char)hi;
    }
}

// ---- tables.rs ---------------------------------------------------------------------------

__device__ __forceinline__ i64 exp2_neg(const i64* exp2, i64 d) {
    i64 whole = d >> 10;
    if (whole > 40) return 0;
    return exp2[d & 1023] >> whole;
}

__device__ __forceinline__ i64 sigmoid_q16(const i64* sig, i64 x) {
    const i64 limit = (i64)32 << 16;
    if (x <= -limit) return 0;
    if (x >= limit) return (i64)1 << 30;
    i64 shifted = x + limit;
    i64 i = shifted >> 6;
    i64 frac = shifted & 63;
    i64 a = sig[i], b = sig[i + 1];
    return a + (((b - a) * frac + 32) >> 6);
}

// ---- kernels -----------------------------------------------------------------------------

extern "C" __global__ void embed(int M, int d, const int* tok, const float* emb, i64* x) {
    i64 t = thread_id();
    if (t >= (i64)M * d) return;
    int r = t / d, i = t % d;
    double v = (double)emb[(i64)tok[r] * d + i] * 16777216.0;
    x[t] = (i64)round(v);
}

// div_round(x 2^32, rms) for rms < 2^52 from inv = fl(2^32 / rms), into *q; false when the
// estimate t = x inv is 2^50 or more. Below that, t is within 3 2^-53 |t| < 3/8 of the
// exact x 2^32 / rms and t + 1/2 rounds by at most 1/8, so floor(t + 1/2) is the quotient or
// one off; the remainder (2 x 2^32 + rms) - q (2 rms) then lies in [-2 rms, 4 rms), so it is
// exact in wrapping 64-bit arithmetic and says which.
__device__ __forceinline__ bool norm_quot(i64 x, i64 rms, double inv, i64* q) {
    double t = (double)x * inv;
    if (!(fabs(t) < 1125899906842624.0)) return false;
    i64 e = (i64)floor(t + 0.5);
    i64 d = 2 * rms;
    i64 r = (i64)(((u64)x << 33) + (u64)rms - (u64)e * (u64)d);
    if (r < 0) {
        e -= 1;
    } else if (r >= d) {
        e += 1;
    }
    *q = e;
    return true;
}

// A normalized value's mantissa, div_round(x 2^32, rms) * gamma; `fast` says rms < 2^52
// (inv as norm_quot takes it).
__device__ __forceinline__ i128 norm_mant(i64 x, u128 rms, bool fast, double inv, i64 gamma) {
    i64 q;
    if (fast && norm_quot(x, (i64)rms, inv, &q)) return (i128)q * (i128)gamma;
    return div_round((i128)x << 32, (i128)rms) * (i128)gamma;
}

// norm_mant as p · 2^z with p in 64 bits where it fits (the quotient below 2^36 and gamma
// split with odd parts below 2^26, which the upload checks); false where it does not, and
// the caller takes norm_mant.
__device__ __forceinline__ bool norm_mant_split(i64 x, u128 rms, bool fast, double inv,
                                                i64 packed, i64* p, int* z) {
    i64 q;
    if (!fast || !norm_quot(x, (i64)rms, inv, &q)) return false;
    if (q >= ((i64)1 << 36) || q <= -((i64)1 << 36)) return false;
    *p = q * split_mant(packed);
    *z = split_shift(packed);
    return true;
}

// x + round(sum * scale * 2^-shift) in the residual's fixed point, saturating (the residual
// add after a linear layer, for one value).
__device__ __forceinline__ i64 residual_add(i64 x, i64 sum, i64 scale, const i64* split,
                                            int col, int shift) {
    i128 delta;
    int k = split ? shift - split_shift(split[col]) : -64;
    if (k >= 0) {
        // sum · scale = p · 2^z, and rounding away shift >= z bits of it rounds p; the sum
        // saturates in 64 bits (it overflows where x and delta share a sign it lacks).
        i64 p = sum * split_mant(split[col]);
        i64 d = k >= 63 ? 0 : (k == 0 ? p : (p + ((i64)1 << (k - 1))) >> k);
        i64 t = (i64)((u64)x + (u64)d);
        if (((x ^ t) & (d ^ t)) < 0) t = x < 0 ? I64_MIN : I64_MAX;
        return t;
    } else {
        delta = round_shift((i128)sum * (i128)scale, shift);
    }
    if (delta > (i128)I64_MAX) delta = I64_MAX;
    if (delta < (i128)I64_MIN) delta = I64_MIN;
    i128 s = (i128)x + delta;
    if (s > (i128)I64_MAX) s = I64_MAX;
    if (s < (i128)I64_MIN) s = I64_MIN;
    return (i64)s;
}

// Block-wide sum of u128 and a broadcast from thread 0, for norm_row's block form (the
// pattern of block_max_i64: blockDim.x a multiple of WARP, at most 1024).
__device__ u128 block_sum_u128(u128 v, u128* red) {
    int tid = threadIdx.x, lane = tid % WARP, wid = tid / WARP, nw = blockDim.x / WARP;
    v = warp_sum_u128(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = tid < nw ? red[tid] : 0;
    if (wid == 0) {
        v = warp_sum_u128(v);
        if (lane == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}
__device__ u128 block_bcast_u128(u128 v, u128* red) {
    __syncthreads();
    if (threadIdx.x == 0) red[0] = v;
    __syncthreads();
    return red[0];
}

// A row's RMS from its sum of squares: isqrt(sumsq / d + eps), at least 1.
__device__ __forceinline__ u128 norm_rms(u128 sumsq, int d, i64 eps) {
    u128 rms = isqrt(udiv_small(sumsq, (u64)d) + (u128)eps);
    return rms < 1 ? 1 : rms;
}

// RMSNorm of row r by `nt` threads (tid = 0 .. nt - 1: a warp's lanes, or a block's threads
// with BLOCK and `red` its shared scratch), first adding the linear layer before it into the
// residual row x when `scale` is not null (sums as sum_at reads them, input exponents in
// hexp, which the norm then overwrites with its own: every thread has read its row's entry
// before the first reduction). The added values go to x and are read back by the thread that
// wrote them. The 128-bit mantissas are computed twice (for the row's max, then to quantize)
// instead of stored in a rows x d buffer: no slower on an H200, and the buffer's memory is
// saved. Sums and maxima are the same integers in any grouping, so both forms agree.
template <bool BLOCK>
__device__ __forceinline__ void norm_row(int r, int tid, int nt, u128* red, int M, int d,
                                         const i64* acc, const int* g, const i64* rowsum,
                                         const i64* scale, const i64* split, int wexp, i64* x,
                                         const i64* gamma, const i64* gsplit, int gexp,
                                         i64 eps, int* h, signed char* limbs, int* hexp) {
    i64* row = x + (i64)r * d;
    int shift = scale ? -(hexp[r] + wexp + 24) : 0;
    u128 sumsq = 0;
    for (int i = tid; i < d; i += nt) {
        i64 v = row[i];
        if (scale) {
            i64 t = (i64)r * d + i;
            v = residual_add(v, sum_at(acc, g, rowsum, (i64)M * d, t, i), scale[i], split, i,
                             shift);
            row[i] = v;
        }
        u64 a = v < 0 ? (u64)0 - (u64)v : (u64)v;
        sumsq += (u128)a * a;
    }
    sumsq = BLOCK ? block_sum_u128(sumsq, red) : warp_sum_u128(sumsq);
    u128 rms = tid == 0 ? norm_rms(sumsq, d, eps) : 0;
    rms = BLOCK ? block_bcast_u128(rms, red) : shfl_u128(rms, 0);
    bool fast = rms < ((u128)1 << 52);
    double inv = fast ? 4294967296.0 / (double)(i64)rms : 0.0;
    u64 kx = 0;
    i64 p;
    int z;
    for (int i = tid; i < d; i += nt) {
        u64 k = gsplit && norm_mant_split(row[i], rms, fast, inv, gsplit[i], &p, &z)
                    ? mag_key64(p < 0 ? (u64)0 - (u64)p : (u64)p, z)
                    : mag_key(uabs(norm_mant(row[i], rms, fast, inv, gamma[i])));
        if (k > kx) kx = k;
    }
    int s = BLOCK ? block_key_shift(kx, (u64*)red, 32767)
                  : quant_shift(key_mag(warp_max_u64(kx)), 32767);
    i64 half = (i64)M * d;
    for (int i = tid; i < d; i += nt) {
        int q = gsplit && norm_mant_split(row[i], rms, fast, inv, gsplit[i], &p, &z)
                    ? (int)quant_apply_split(p, z, s, 32767)
                    : quant_apply_wide(norm_mant(row[i], rms, fast, inv, gamma[i]), s, 32767);
        put_level(h, limbs, half, (i64)r * d + i, q);
    }
    if (tid == 0) hexp[r] = gexp - 32 + s;
}

// RMSNorm (norm_row): warp per row.
extern "C" __global__ void norm_rows(int M, int d, const i64* acc, const int* g,
                                     const i64* rowsum, const i64* scale, const i64* split,
                                     int wexp, i64* x, const i64* gamma, const i64* gsplit,
                                     int gexp, i64 eps, int* h, signed char* limbs, int* hexp) {
    int r = warp_id();
    if (r >= M) return;
    norm_row<false>(r, threadIdx.x % WARP, WARP, nullptr, M, d, acc, g, rowsum, scale, split,
                    wexp, x, gamma, gsplit, gexp, eps, h, limbs, hexp);
}

// norm_row<false> with the row in registers: lane l keeps elements l + WARP k (k < SLOTS,
// for rows of at most WARP * SLOTS) from the first loop, and the second loop's split
// quotients p in their place, so the second and third loops neither reload the row nor
// divide again. The same integers as norm_row: p is what norm_mant_split gives for the
// same inputs; where it does not apply (bit k of `wide`), v[k] still holds the row's value
// and the third loop takes norm_mant of it, as norm_row does. LMGC_CUDA_NORM_REGS=on
// (unmeasured).
template <int SLOTS>
__device__ __forceinline__ void norm_row_regs(int r, int lane, int M, int d, const i64* acc,
                                              const int* g, const i64* rowsum,
                                              const i64* scale, const i64* split, int wexp,
                                              i64* x, const i64* gamma, const i64* gsplit,
                                              int gexp, i64 eps, int* h, signed char* limbs,
                                              int* hexp) {
    static_assert(SLOTS <= 32, "one bit of `wide` per slot");
    i64* row = x + (i64)r * d;
    int shift = scale ? -(hexp[r] + wexp + 24) : 0;
    i64 v[SLOTS];
    u128 sumsq = 0;
#pragma unroll
    for (int k = 0; k < SLOTS; k++) {
        int i = lane + WARP * k;
        if (i >= d) break;
        i64 t = row[i];
        if (scale) {
            t = residual_add(t, sum_at(acc, g, rowsum, (i64)M * d, (i64)r * d + i, i), scale[i],
                             split, i, shift);
            row[i] = t;
        }
        v[k] = t;
        u64 a = t < 0 ? (u64)0 - (u64)t : (u64)t;
        sumsq += (u128)a * a;
    }
    sumsq = warp_sum_u128(sumsq);
    u128 rms = lane == 0 ? norm_rms(sumsq, d, eps) : 0;
    rms = shfl_u128(rms, 0);
    bool fast = rms < ((u128)1 << 52);
    double inv = fast ? 4294967296.0 / (double)(i64)rms : 0.0;
    u64 kx = 0;
    unsigned wide = 0;
#pragma unroll
    for (int k = 0; k < SLOTS; k++) {
        int i = lane + WARP * k;
        if (i >= d) break;
        i64 p;
        int z;
        u64 key;
        if (gsplit && norm_mant_split(v[k], rms, fast, inv, gsplit[i], &p, &z)) {
            v[k] = p;
            key = mag_key64(p < 0 ? (u64)0 - (u64)p : (u64)p, z);
        } else {
            wide |= 1u << k;
            key = mag_key(uabs(norm_mant(v[k], rms, fast, inv, gamma[i])));
        }
        if (key > kx) kx = key;
    }
    int s = quant_shift(key_mag(warp_max_u64(kx)), 32767);
    i64 half = (i64)M * d;
#pragma unroll
    for (int k = 0; k < SLOTS; k++) {
        int i = lane + WARP * k;
        if (i >= d) break;
        int q = (wide >> k) & 1
                    ? quant_apply_wide(norm_mant(v[k], rms, fast, inv, gamma[i]), s, 32767)
                    : (int)quant_apply_split(v[k], split_shift(gsplit[i]), s, 32767);
        put_level(h, limbs, half, (i64)r * d + i, q);
    }
    if (lane == 0) hexp[r] = gexp - 32 + s;
}

// RMSNorm (norm_row_regs): warp per row, rows of at most WARP * slots. Compiled only with
// NORM_REGS defined (LMGC_CUDA_NORM_REGS=on, and the tests): the default path should not pay
// for four more unrolled kernels in every load's compile.
#ifdef NORM_REGS
#define NORM_ROWS_REGS(name, SLOTS)                                                             \
    extern "C" __global__ void name(int M, int d, const i64* acc, const int* g,                 \
                                    const i64* rowsum, const i64* scale, const i64* split,     \
                                    int wexp, i64* x, const i64* gamma, const i64* gsplit,     \
                                    int gexp, i64 eps, int* h, signed char* limbs, int* hexp) { \
        int r = warp_id();                                                                      \
        if (r >= M) return;                                                                     \
        norm_row_regs<SLOTS>(r, threadIdx.x % WARP, M, d, acc, g, rowsum, scale, split, wexp,  \
                             x, gamma, gsplit, gexp, eps, h, limbs, hexp);                      \
    }
NORM_ROWS_REGS(norm_rows_r8, 8)
NORM_ROWS_REGS(norm_rows_r16, 16)
NORM_ROWS_REGS(norm_rows_r24, 24)
NORM_ROWS_REGS(norm_rows_r32, 32)
#endif

// RMSNorm (norm_row): block per row, for calls of few rows (a decoding step), where a warp
// per row leaves most of the GPU idle behind each row's chain of 128-bit operations.
extern "C" __global__ void norm_rows_block(int M, int d, const i64* acc, const int* g,
                                           const i64* rowsum, const i64* scale,
                                           const i64* split, int wexp, i64* x,
                                           const i64* gamma, const i64* gsplit, int gexp,
                                           i64 eps, int* h, signed char* limbs, int* hexp) {
    __shared__ u128 red[1024 / WARP];
    int r = blockIdx.x;
    if (r >= M) return;
    norm_row<true>(r, threadIdx.x, blockDim.x, red, M, d, acc, g, rowsum, scale, split, wexp,
                   x, gamma, gsplit, gexp, eps, h, limbs, hexp);
}

// Queries and keys: warp per (row, head), heads 0..nh queries, nh..nh+nkv keys. RoPE on
// adjacent pairs; lane l owns pairs l, l + WARP, ... The 30-bit levels and the Q30 table
// entries have products below 2^60, so the rotation is 64-bit; the sums are kept and
// multiplied by their scales again rather than held as 128-bit products.
extern "C" __global__ void qk_rope(int M, int nh, int nkv, int hd, const i64* acc,
                                   const int* g, const i64* rowsum, int width, const i64* scale,
                                   const i64* split, int wexp, const int* hexp, const int* pos,
                                   const int* slot,
                                   const int* cosq, const int* sinq, i64 k_levels, int* q,
                                   int* qexp, i16* kc, int* kexpc, int layer, int slots,
                                   int cap) {
    int w = warp_id();
    int heads = nh + nkv;
    if (w >= M * heads) return;
    int r = w / heads, head = w % heads;
    int lane = threadIdx.x % WARP;
    int pairs = hd / 2;
    int d = nh * hd;
    int o = head < nh ? head * hd : d + (head - nh) * hd;
    int e = hexp[r] + wexp;
    i64 half = (i64)M * width, at = (i64)r * width;
    // A lane's pairs are p = lane + WARP k, k < HEAD_SLOTS / 2, slots 2k and 2k + 1 of sum and
    // rot: loops over k with a constant bound, unrolled, keep both arrays in registers (a
    // loop over p indexed them at run time, in local memory).
    i64 sum[HEAD_SLOTS];
    u64 m = 0;
    #pragma unroll
    for (int k = 0; k < HEAD_SLOTS / 2; k++) {
        int p = lane + WARP * k, n = 2 * k;
        if (p >= pairs) break;
        int c = o + 2 * p;
        sum[n] = sum_at(acc, g, rowsum, half, at + c, c);
        sum[n + 1] = sum_at(acc, g, rowsum, half, at + c + 1, c + 1);
        u64 a, b;
        if (split) {
            // The slots hold sum · m from here on (split scales, 64-bit products).
            sum[n] *= split_mant(split[c]);
            sum[n + 1] *= split_mant(split[c + 1]);
            i64 x = sum[n], y = sum[n + 1];
            a = mag_key64(x < 0 ? (u64)0 - (u64)x : (u64)x, split_shift(split[c]));
            b = mag_key64(y < 0 ? (u64)0 - (u64)y : (u64)y, split_shift(split[c + 1]));
        } else {
            a = mag_key(uabs((i128)sum[n] * (i128)scale[c]));
            b = mag_key(uabs((i128)sum[n + 1] * (i128)scale[c + 1]));
        }
        if (a > m) m = a;
        if (b > m) m = b;
    }
    int s1 = quant_shift(key_mag(warp_max_u64(m)), (i64)1 << 30);
    int e1 = e + s1;
    int p0 = pos[r];
    i64 rot[HEAD_SLOTS];
    u64 m2 = 0;
    #pragma unroll
    for (int k = 0; k < HEAD_SLOTS / 2; k++) {
        int p = lane + WARP * k, n = 2 * k;
        if (p >= pairs) break;
        int c = o + 2 * p;
        const i64 L30 = (i64)1 << 30;
        i64 a, b;
        if (split) {
            a = quant_apply_split(sum[n], split_shift(split[c]), s1, L30);
            b = quant_apply_split(sum[n + 1], split_shift(split[c + 1]), s1, L30);
        } else {
            a = quant_apply((i128)sum[n] * (i128)scale[c], s1, L30);
            b = quant_apply((i128)sum[n + 1] * (i128)scale[c + 1], s1, L30);
        }
        i64 cs = cosq[(i64)p0 * pairs + p], sn = sinq[(i64)p0 * pairs + p];
        rot[n] = a * cs - b * sn;
        rot[n + 1] = a * sn + b * cs;
        u64 x = rot[n] < 0 ? (u64)0 - (u64)rot[n] : (u64)rot[n];
        u64 y = rot[n + 1] < 0 ? (u64)0 - (u64)rot[n + 1] : (u64)rot[n + 1];
        if (x > m2) m2 = x;
        if (y > m2) m2 = y;
    }
    m2 = (u64)warp_max_i64((i64)m2);
    i64 levels = head < nh ? 32767 : k_levels;
    int s2 = quant_shift(m2, levels);
    int er = e1 - 30 + s2;
    if (head < nh) {
        int* out = q + (i64)r * d + head * hd;
        #pragma unroll
        for (int k = 0; k < HEAD_SLOTS / 2; k++) {
            int p = lane + WARP * k, n = 2 * k;
            if (p >= pairs) break;
            out[2 * p] = quant_apply64(rot[n], s2, levels);
            out[2 * p + 1] = quant_apply64(rot[n + 1], s2, levels);
        }
        if (lane == 0) qexp[r * nh + head] = er;
    } else {
        int kvh = head - nh;
        i64 base = (((i64)layer * slots + slot[r]) * cap + p0) * nkv + kvh;
        i16* out = kc + base * hd;
        #pragma unroll
        for (int k = 0; k < HEAD_SLOTS / 2; k++) {
            int p = lane + WARP * k, n = 2 * k;
            if (p >= pairs) break;
            out[2 * p] = (i16)quant_apply64(rot[n], s2, levels);
            out[2 * p + 1] = (i16)quant_apply64(rot[n + 1], s2, levels);
        }
        if (lane == 0) kexpc[base] = er;
    }
}

// Values into the cache at their static per-channel exponents: thread per (row, channel).
extern "C" __global__ void v_store(int M, int kvd, int voff, const i64* acc, const int* g,
                                   const i64* rowsum, int width, const i64* scale, int wexp,
                                   const int* hexp, const int* vexp, const int* pos,
                                   const int* slot, int* vc, int layer, int slots, int cap) {
    i64 t = thread_id();
    if (t >= (i64)M * kvd) return;
    int r = t / kvd, ch = t % kvd;
    int e = hexp[r] + wexp;
    i64 half = (i64)M * width;
    i128 v = (i128)sum_at(acc, g, rowsum, half, (i64)r * width + voff + ch, voff + ch) *
             (i128)scale[voff + ch];
    i128 f = round_shift(v, vexp[ch] - e);
    const i128 L = (1 << 23) - 1;
    if (f > L) f = L;
    if (f < -L) f = -L;
    vc[(((i64)layer * slots + slot[r]) * cap + pos[r]) * kvd + ch] = (int)f;
}

// Query heads per key/value head handled by one thread (grouped-query attention): a key or
// value is read once for all of them. Wider groups are walked in slices of GMAX; a slice's
// head count is a template argument (BY_GROUP), so the loops over heads unroll and an
// iteration issues all its loads before it waits for the first.
#define GMAX 8
#define BY_GROUP(ng, F, ...)            \
    switch (ng) {                       \
        case 1: F<1>(__VA_ARGS__); break; \
        case 2: F<2>(__VA_ARGS__); break; \
        case 3: F<3>(__VA_ARGS__); break; \
        case 4: F<4>(__VA_ARGS__); break; \
        case 5: F<5>(__VA_ARGS__); break; \
        case 6: F<6>(__VA_ARGS__); break; \
        case 7: F<7>(__VA_ARGS__); break; \
        default: F<8>(__VA_ARGS__); break; \
    }

// q·k for NG query heads (rows `qstride` apart) against one key read once, into s[0..NG).
// |q| <= 32767 and |k| <= k_levels <= 4095 for head_dim >= 32: 16 products sum below
// 2^31, exact in 32 bits. Narrower heads have wider keys and take 64-bit products.
template <int NG>
__device__ __forceinline__ void dots(const int* q, int qstride, const i16* k, int hd, i64* s) {
    for (int g = 0; g < NG; g++) s[g] = 0;
    if (hd >= 32 && hd % 16 == 0) {
        // 16-byte loads: rows start on 128-byte boundaries for head_dim a multiple of 16.
        const int4* k8 = (const int4*)k;
        for (int c = 0; c < hd / 16; c++) {
            int4 kk[2] = {k8[2 * c], k8[2 * c + 1]};
            const i16* kv = (const i16*)kk;
            for (int g = 0; g < NG; g++) {
                const int4* q4 = (const int4*)(q + (i64)g * qstride);
                int part = 0;
                for (int u = 0; u < 4; u++) {
                    int4 qq = q4[4 * c + u];
                    part += qq.x * (int)kv[4 * u] + qq.y * (int)kv[4 * u + 1] +
                            qq.z * (int)kv[4 * u + 2] + qq.w * (int)kv[4 * u + 3];
                }
                s[g] += part;
            }
        }
    } else {
        for (int g = 0; g < NG; g++) {
            const int* qh = q + (i64)g * qstride;
            for (int i = 0; i < hd; i++) s[g] += (i64)qh[i] * (i64)k[i];
        }
    }
}

// A q·k dot product to a score in 1/1024 bit. For SmolLM2's shapes |dot| < 2^32 and
// score_scale < 2^30, so the product and its rounding fit 64 bits (the 128-bit path is for
// any other).
__device__ __forceinline__ i64 score_of(i64 dot, int qe, int ke, i64 score_scale) {
    int s = 30 - 10 - qe - ke;
    if (dot < (1LL << 32) && dot > -(1LL << 32) && score_scale >= 0 &&
        score_scale < (1LL << 30) && s > 0 && s < 62) {
        return (dot * score_scale + (1LL << (s - 1))) >> s;
    }
    return (i64)round_shift((i128)dot * (i128)score_scale, s);
}

// A softmax weight w of a row whose weights sum to total, as a 12-bit probability level:
// floor((2 w 4095 + total) / (2 total)) (w <= total < 2^43), with inv = fl(1 / (2 total))
// computed once per row. With both sides below 2^53 the product estimates a quotient below
// 4096 to within 2^-40, so its truncation is the quotient or one off, and the exact
// remainder says which.
__device__ __forceinline__ i64 prob_level(i64 w, i64 total, double inv) {
    i64 n = 2 * w * 4095 + total, d = 2 * total;
    if (n < (1LL << 53) && d < (1LL << 53)) {
        i64 q = (i64)((double)n * inv);
        i64 r = n - q * d;
        if (r < 0) {
            q -= 1;
        } else if (r >= d) {
            q += 1;
        }
        return q;
    }
    return n / d;
}

// Attention in three passes, each parallel over cache positions as well as rows and heads
// (a decoding step has few rows): scores, then per (row, head) the max, the total and every
// probability, then P · V. `z` holds M x nh x cap scores, then probabilities.
//
// Rows with zend[r] != 0 belong to a run of consecutive positions of one window whose scores
// and P · V are f64 GEMMs (cuBLAS; exact: every partial sum is an integer below 2^53): the
// scores kernel and the P · V kernel skip them, att_probs reads their dot products as f64
// and writes their probabilities as f64, zero up to zend[r] (the GEMM's inner length). With
// att_mma (mma.cu) such rows are its own: att_probs skips them too (PROBS_KERNEL).

// The scores of NG query heads (queries q, exponents qe, rows hd apart) against key k
// (exponent ke), into out[g * stride].
template <int NG>
__device__ __forceinline__ void score_slice(const int* q, const int* qe, const i16* k, int ke,
                                            int hd, i64 score_scale, i64* out, int stride) {
    i64 s[NG];
    dots<NG>(q, hd, k, hd, s);
    for (int g = 0; g < NG; g++) out[(i64)g * stride] = score_of(s[g], qe[g], ke, score_scale);
}

// The scores of row r's query heads of key/value head kvh (queries qg, the group's, hd
// apart) against the key at position j, into out[g * stride] for the group's head g.
__device__ __forceinline__ void score_position(const int* qg, int r, int kvh, int j, int nh,
                                               int nkv, int hd, const int* qexp, const i16* kc,
                                               const int* kexpc, const int* slot,
                                               i64 score_scale, int layer, int slots, int cap,
                                               i64* out, int stride) {
    int group = nh / nkv, kvd = nkv * hd;
    i64 sbase = ((i64)layer * slots + slot[r]) * cap + j;
    const i16* k = kc + sbase * kvd + kvh * hd;
    int ke = kexpc[sbase * nkv + kvh];
    for (int g0 = 0; g0 < group; g0 += GMAX) {
        int ng = group - g0 < GMAX ? group - g0 : GMAX;
        BY_GROUP(ng, score_slice, qg + g0 * hd, qexp + r * nh + kvh * group + g0, k, ke, hd,
                 score_scale, out + (i64)g0 * stride, stride);
    }
}

// Row r's scores of the group of key/value head kvh at position j, into z.
__device__ __forceinline__ i64* z_at(i64* z, int r, int kvh, int j, int nh, int nkv, int cap) {
    return z + ((i64)r * nh + (i64)kvh * (nh / nkv)) * cap + j;
}

// Scores: thread per (row, key/value head, position j <= pos) for the group's query heads.
extern "C" __global__ void att_scores(int M, int nh, int nkv, int hd, const int* q,
                                      const int* qexp, const i16* kc, const int* kexpc,
                                      const int* pos, const int* slot, const int* zend,
                                      i64 score_scale, int layer, int slots, int cap, i64* z) {
    i64 t = thread_id();
    if (t >= (i64)M * nkv * cap) return;
    int j = t % cap;
    int rk = t / cap;
    int r = rk / nkv, kvh = rk % nkv;
    if (zend[r] != 0 || j > pos[r]) return;
    const int* qg = q + ((i64)r * nh + (i64)kvh * (nh / nkv)) * hd;
    score_position(qg, r, kvh, j, nh, nkv, hd, qexp, kc, kexpc, slot, score_scale, layer, slots,
                   cap, z_at(z, r, kvh, j, nh, nkv, cap), cap);
}

// att_scores with a block per (row, key/value head): the group's queries are read once into
// shared memory (`group * hd` ints of dynamic shared memory) instead of by every thread, and
// the block's threads walk the positions. Same integers as att_scores.
extern "C" __global__ void att_scores_block(int M, int nh, int nkv, int hd, const int* q,
                                            const int* qexp, const i16* kc, const int* kexpc,
                                            const int* pos, const int* slot, const int* zend,
                                            i64 score_scale, int layer, int slots, int cap,
                                            i64* z) {
    extern __shared__ int4 sq4[];
    int* sq = (int*)sq4;
    int rk = blockIdx.x;
    if (rk >= M * nkv) return;
    int r = rk / nkv, kvh = rk % nkv;
    if (zend[r] != 0) return;
    int group = nh / nkv;
    const int* qr = q + ((i64)r * nh + (i64)kvh * group) * hd;
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x) sq[i] = qr[i];
    __syncthreads();
    int n = pos[r] + 1;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        score_position(sq, r, kvh, j, nh, nkv, hd, qexp, kc, kexpc, slot, score_scale, layer,
                       slots, cap, z_at(z, r, kvh, j, nh, nkv, cap), cap);
    }
}

__device__ __forceinline__ double bits_f64(i64 v) { return __longlong_as_double(v); }
__device__ __forceinline__ i64 f64_bits(double d) { return __double_as_longlong(d); }
// An f64 GEMM result as the integer it must be; flags one that is not.
__device__ __forceinline__ i64 exact_int(double v, int* err) {
    if (v != trunc(v) || fabs(v) >= 9007199254740992.0) atomicExch(err, 1);
    return (i64)v;
}

// The scores of (row r, head) at positions first, first + step, ... below n into dst (zr
// itself or a shared copy); a GEMM row's (end != 0) f64 dot products become scores here.
// Returns their max.
__device__ i64 load_scores(int r, int head, int nh, int nkv, int n, int end, const int* slot,
                           const int* qexp, const int* kexpc, i64 score_scale, int layer,
                           int slots, int cap, const i64* zr, i64* dst, int first, int step,
                           int* err) {
    i64 mx = I64_MIN;
    if (end != 0) {
        int kvh = head / (nh / nkv);
        int qe = qexp[r * nh + head];
        const int* ke = kexpc + ((i64)layer * slots + slot[r]) * cap * nkv + kvh;
        for (int j = first; j < n; j += step) {
            i64 s = score_of(exact_int(bits_f64(zr[j]), err), qe, ke[(i64)j * nkv], score_scale);
            dst[j] = s;
            mx = s > mx ? s : mx;
        }
    } else {
        for (int j = first; j < n; j += step) {
            i64 s = zr[j];
            dst[j] = s;
            mx = s > mx ? s : mx;
        }
    }
    return mx;
}

// Which rows att_probs takes: all, those of the GEMM runs (the others are att_row's), or those
// outside them (the runs are att_mma's).
#define PROBS_ALL 0
#define PROBS_GEMM 1
#define PROBS_KERNEL 2
__device__ __forceinline__ bool probs_skip(int which, int end) {
    return (which == PROBS_GEMM && end == 0) || (which == PROBS_KERNEL && end != 0);
}

// Probabilities: warp per (row, head); overwrites the scores with 12-bit probabilities, for
// the rows `which` says.
extern "C" __global__ void att_probs(int M, int nh, int nkv, const int* pos, const int* slot,
                                     const int* zend, const int* qexp, const int* kexpc,
                                     i64 score_scale, int layer, int slots, const i64* exp2,
                                     int cap, i64* z, int* err, int which) {
    int w = warp_id();
    if (w >= M * nh) return;
    int r = w / nh, head = w % nh;
    int lane = threadIdx.x % WARP;
    int n = pos[r] + 1;
    int end = zend[r];
    if (probs_skip(which, end)) return;
    i64* zr = z + (i64)w * cap;
    i64 mx = load_scores(r, head, nh, nkv, n, end, slot, qexp, kexpc, score_scale, layer, slots,
                         cap, zr, zr, lane, WARP, err);
    mx = warp_max_i64(mx);
    i64 total = 0;
    for (int j = lane; j < n; j += WARP) total += exp2_neg(exp2, mx - zr[j]);
    total = warp_sum_i64(total);
    double inv = 1.0 / (double)(2 * total);
    for (int j = lane; j < n; j += WARP) {
        i64 wj = exp2_neg(exp2, mx - zr[j]);
        i64 p = prob_level(wj, total, inv);
        zr[j] = end != 0 ? f64_bits((double)p) : p;
    }
    for (int j = n + lane; j < end; j += WARP) zr[j] = f64_bits(0.0);
}

// Block-wide max and sum for att_probs_block (blockDim.x a multiple of WARP, at most 1024).
__device__ i64 block_max_i64(i64 v, i64* red) {
    int tid = threadIdx.x, lane = tid % WARP, wid = tid / WARP, nw = blockDim.x / WARP;
    v = warp_max_i64(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = tid < nw ? red[tid] : I64_MIN;
    if (wid == 0) {
        v = warp_max_i64(v);
        if (lane == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}
__device__ i64 block_sum_i64(i64 v, i64* red) {
    int tid = threadIdx.x, lane = tid % WARP, wid = tid / WARP, nw = blockDim.x / WARP;
    v = warp_sum_i64(v);
    __syncthreads();
    if (lane == 0) red[wid] = v;
    __syncthreads();
    v = tid < nw ? red[tid] : 0;
    if (wid == 0) {
        v = warp_sum_i64(v);
        if (lane == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}

// att_probs with a block per (row, head) and the row's scores in shared memory (`cap` i64 of
// dynamic shared memory): z is read once and written once. Same integers as att_probs.
extern "C" __global__ void att_probs_block(int M, int nh, int nkv, const int* pos,
                                           const int* slot, const int* zend, const int* qexp,
                                           const int* kexpc, i64 score_scale, int layer,
                                           int slots, const i64* exp2, int cap, i64* z,
                                           int* err, int which) {
    extern __shared__ i64 sz[];
    __shared__ i64 red[1024 / WARP];
    int w = blockIdx.x;
    if (w >= M * nh) return;
    int r = w / nh, head = w % nh;
    int tid = threadIdx.x, nt = blockDim.x;
    int n = pos[r] + 1;
    int end = zend[r];
    if (probs_skip(which, end)) return;
    i64* zr = z + (i64)w * cap;
    i64 mx = load_scores(r, head, nh, nkv, n, end, slot, qexp, kexpc, score_scale, layer, slots,
                         cap, zr, sz, tid, nt, err);
    mx = block_max_i64(mx, red);
    i64 total = 0;
    for (int j = tid; j < n; j += nt) {
        i64 wj = exp2_neg(exp2, mx - sz[j]);
        sz[j] = wj;
        total += wj;
    }
    total = block_sum_i64(total, red);
    double inv = 1.0 / (double)(2 * total);
    for (int j = tid; j < n; j += nt) {
        i64 p = prob_level(sz[j], total, inv);
        zr[j] = end != 0 ? f64_bits((double)p) : p;
    }
    for (int j = n + tid; j < end; j += nt) zr[j] = f64_bits(0.0);
}

// NG query heads' P · V sums over positions [j0, j1) of one value channel (column vb, rows
// kvd apart) with the heads' probability rows p (cap apart), added into out[g * hd]. Four
// positions per iteration: their loads are all issued before the first product.
// p < 2^12 and |v| < 2^23: each product is one 32 x 32 -> 64-bit multiply-add.
#ifndef PV_UNROLL
#define PV_UNROLL 4
#endif
template <int NG>
__device__ __forceinline__ void pv_slice(const i64* p, int cap, const int* vb, int kvd, int j0,
                                         int j1, i64* out, int hd) {
    i64 a[NG];
    for (int g = 0; g < NG; g++) a[g] = 0;
    int j = j0;
    for (; j + PV_UNROLL <= j1; j += PV_UNROLL) {
        int v[PV_UNROLL], w[PV_UNROLL][NG];
        for (int u = 0; u < PV_UNROLL; u++) {
            v[u] = vb[(i64)(j + u) * kvd];
            for (int g = 0; g < NG; g++) w[u][g] = (int)p[(i64)g * cap + j + u];
        }
        for (int u = 0; u < PV_UNROLL; u++)
            for (int g = 0; g < NG; g++) a[g] += (i64)w[u][g] * (i64)v[u];
    }
    for (; j < j1; j++) {
        i64 v = vb[(i64)j * kvd];
        for (int g = 0; g < NG; g++) a[g] += (i64)(int)p[(i64)g * cap + j] * v;
    }
    for (int g = 0; g < NG; g++) {
        if (a[g] != 0) atomicAdd((unsigned long long*)&out[(i64)g * hd], (unsigned long long)a[g]);
    }
}

// P · V partial sums: thread per (row, key/value head, channel, span of `span` positions)
// for the group's query heads, added into `acc` (zeroed, M x d) with 64-bit atomics:
// integer addition in any order is exact.
extern "C" __global__ void att_pv(int M, int nh, int nkv, int hd, const i64* z, const int* vc,
                                  const int* pos, const int* slot, const int* zend, int layer,
                                  int slots, int cap, int span, i64* acc) {
    int spans = (cap + span - 1) / span;
    i64 t = thread_id();
    if (t >= (i64)M * nkv * hd * spans) return;
    int i = t % hd;
    i64 rest = t / hd;
    int sp = rest % spans;
    int rk = rest / spans;
    int r = rk / nkv, kvh = rk % nkv;
    if (zend[r] != 0) return;
    int group = nh / nkv, kvd = nkv * hd;
    int n = pos[r] + 1;
    int j0 = sp * span, j1 = j0 + span < n ? j0 + span : n;
    if (j0 >= j1) return;
    const int* vb = vc + ((i64)layer * slots + slot[r]) * cap * kvd + kvh * hd + i;
    for (int g0 = 0; g0 < group; g0 += GMAX) {
        int ng = group - g0 < GMAX ? group - g0 : GMAX;
        int h0 = kvh * group + g0;
        BY_GROUP(ng, pv_slice, z + ((i64)r * nh + h0) * cap, cap, vb, kvd, j0, j1,
                 acc + ((i64)r * nh + h0) * hd + i, hd);
    }
}

// NG query heads' P · V sums over positions j0, j0 + step, ... below j1 of one value channel
// (column vb, rows kvd apart) with the heads' probabilities p (rows `stride` apart, shared
// memory, below 2^12 as in pv_slice), added into out[g * hd] (shared memory; several
// threads may add to one sum).
template <int NG>
__device__ __forceinline__ void pv_strided(const i64* p, int stride, const int* vb, int kvd,
                                           int j0, int j1, int step, i64* out, int hd) {
    i64 a[NG];
    for (int g = 0; g < NG; g++) a[g] = 0;
    int j = j0;
    for (; j + (PV_UNROLL - 1) * step < j1; j += PV_UNROLL * step) {
        int v[PV_UNROLL];
        for (int u = 0; u < PV_UNROLL; u++) v[u] = vb[(i64)(j + u * step) * kvd];
        for (int u = 0; u < PV_UNROLL; u++)
            for (int g = 0; g < NG; g++)
                a[g] += (i64)(int)p[(i64)g * stride + j + u * step] * (i64)v[u];
    }
    for (; j < j1; j += step) {
        i64 v = vb[(i64)j * kvd];
        for (int g = 0; g < NG; g++) a[g] += (i64)(int)p[(i64)g * stride + j] * v;
    }
    for (int g = 0; g < NG; g++) {
        if (a[g] != 0) atomicAdd((unsigned long long*)&out[(i64)g * hd], (unsigned long long)a[g]);
    }
}

// NG query heads' P · V sums over positions j0, j0 + step, ... below j1 of four consecutive
// value channels (vb, 16-byte aligned, rows kvd apart) with the heads' probabilities p (as
// in pv_strided), added into out[g * hd + c] for channel c = 0..3 (shared memory). One
// 16-byte load per position serves four channels, so a block's threads walk up to four
// times as many slices of positions as pv_strided's (four where they are at least head_dim),
// each as much shorter, for 4 NG accumulators.
template <int NG>
__device__ __forceinline__ void pv_quads(const i64* p, int stride, const int* vb, int kvd,
                                         int j0, int j1, int step, i64* out, int hd) {
    i64 a[4][NG];
    for (int c = 0; c < 4; c++)
        for (int g = 0; g < NG; g++) a[c][g] = 0;
    int j = j0;
    for (; j + (PV_UNROLL - 1) * step < j1; j += PV_UNROLL * step) {
        int4 v[PV_UNROLL];
        for (int u = 0; u < PV_UNROLL; u++) v[u] = *(const int4*)(vb + (i64)(j + u * step) * kvd);
        for (int u = 0; u < PV_UNROLL; u++) {
            for (int g = 0; g < NG; g++) {
                i64 w = (int)p[(i64)g * stride + j + u * step];
                a[0][g] += w * (i64)v[u].x;
                a[1][g] += w * (i64)v[u].y;
                a[2][g] += w * (i64)v[u].z;
                a[3][g] += w * (i64)v[u].w;
            }
        }
    }
    for (; j < j1; j += step) {
        int4 v = *(const int4*)(vb + (i64)j * kvd);
        for (int g = 0; g < NG; g++) {
            i64 w = (int)p[(i64)g * stride + j];
            a[0][g] += w * (i64)v.x;
            a[1][g] += w * (i64)v.y;
            a[2][g] += w * (i64)v.z;
            a[3][g] += w * (i64)v.w;
        }
    }
    for (int c = 0; c < 4; c++)
        for (int g = 0; g < NG; g++) {
            if (a[c][g] != 0)
                atomicAdd((unsigned long long*)&out[(i64)g * hd + c],
                          (unsigned long long)a[c][g]);
        }
}

// att_scores_block, att_probs and att_pv in one kernel for the rows outside the GEMM runs, a
// block per (row, key/value head): the group's queries, its scores (then softmax weights,
// then probabilities) and its P · V sums stay in shared memory, and the sums go out whole,
// so z is never touched and acc needs no zeroing. Same integers as the three kernels.
// Dynamic shared memory: group·hd ints (queries, rounded up to 16 bytes), group·hd i64
// (sums), group·n i64 (scores), n the longest row's positions in the call.
//
// NG = 0 takes any group, in slices of GMAX heads (att_row); NG > 0 is for groups of exactly
// NG heads (att_row_g1 .. att_row_g8, chosen by the host): only that slice's code is in the
// kernel, so its registers are those of NG heads instead of GMAX's for every group size, and
// with head_dim a multiple of 4 its P · V reads four channels per load (pv_quads).
template <int NG>
__device__ __forceinline__ void att_row_t(int M, int nh, int nkv, int hd, const int* q,
                                          const int* qexp, const i16* kc, const int* kexpc,
                                          const int* vc, const int* pos, const int* slot,
                                          const int* zend, i64 score_scale, const i64* exp2,
                                          int layer, int slots, int cap, i64* acc) {
    extern __shared__ int4 sq4[];
    int rk = blockIdx.x;
    if (rk >= M * nkv) return;
    int r = rk / nkv, kvh = rk % nkv;
    if (zend[r] != 0) return;
    int group = NG > 0 ? NG : nh / nkv, kvd = nkv * hd, gh = group * hd;
    int tid = threadIdx.x, nt = blockDim.x;
    int n = pos[r] + 1;
    int* sq = (int*)sq4;
    i64* spv = (i64*)(sq4 + (gh + 3) / 4);
    i64* sz = spv + gh;
    const int* qr = q + ((i64)r * nh + (i64)kvh * group) * hd;
    for (int i = tid; i < gh; i += nt) {
        sq[i] = qr[i];
        spv[i] = 0;
    }
    __syncthreads();
    for (int j = tid; j < n; j += nt) {
        if constexpr (NG > 0) {
            i64 sbase = ((i64)layer * slots + slot[r]) * cap + j;
            score_slice<NG>(sq, qexp + r * nh + kvh * NG, kc + sbase * kvd + kvh * hd,
                            kexpc[sbase * nkv + kvh], hd, score_scale, sz + j, n);
        } else {
            score_position(sq, r, kvh, j, nh, nkv, hd, qexp, kc, kexpc, slot, score_scale,
                           layer, slots, cap, sz + j, n);
        }
    }
    __syncthreads();
    // att_probs, a warp per head of the group (its reductions need no barrier), each lane
    // reading back only the positions it wrote.
    int lane = tid % WARP;
    for (int g = tid / WARP; g < group; g += nt / WARP) {
        i64* zg = sz + (i64)g * n;
        i64 mx = I64_MIN;
        for (int j = lane; j < n; j += WARP) mx = zg[j] > mx ? zg[j] : mx;
        mx = warp_max_i64(mx);
        i64 total = 0;
        for (int j = lane; j < n; j += WARP) {
            i64 wj = exp2_neg(exp2, mx - zg[j]);
            zg[j] = wj;
            total += wj;
        }
        total = warp_sum_i64(total);
        double inv = 1.0 / (double)(2 * total);
        for (int j = lane; j < n; j += WARP) zg[j] = prob_level(zg[j], total, inv);
    }
    __syncthreads();
    const int* vrow = vc + ((i64)layer * slots + slot[r]) * cap * kvd + kvh * hd;
    if (NG > 0 && hd % 4 == 0) {
        // P · V: work item (channels 4i .. 4i + 3, slice s) sums positions s, s + S, ...:
        // a warp's threads read consecutive 16-byte pieces of one position or more.
        int quads = hd / 4;
        int S = nt >= quads ? nt / quads : 1;
        for (int c = tid; c < quads * S; c += nt) {
            int i = 4 * (c % quads), sl = c / quads;
            if constexpr (NG > 0) pv_quads<NG>(sz, n, vrow + i, kvd, sl, n, S, spv + i, hd);
        }
    } else {
        // P · V: work item (channel i, slice s) sums positions s, s + S, ...: a warp's
        // threads read one position's consecutive channels.
        int S = nt >= hd ? nt / hd : 1;
        for (int c = tid; c < hd * S; c += nt) {
            int i = c % hd, sl = c / hd;
            if constexpr (NG > 0) {
                pv_strided<NG>(sz, n, vrow + i, kvd, sl, n, S, spv + i, hd);
            } else {
                for (int g0 = 0; g0 < group; g0 += GMAX) {
                    int ng = group - g0 < GMAX ? group - g0 : GMAX;
                    BY_GROUP(ng, pv_strided, sz + (i64)g0 * n, n, vrow + i, kvd, sl, n, S,
                             spv + g0 * hd + i, hd);
                }
            }
        }
    }
    __syncthreads();
    i64* out = acc + ((i64)r * nh + (i64)kvh * group) * hd;
    for (int i = tid; i < gh; i += nt) out[i] = spv[i];
}

#define ATT_ROW_KERNEL(name, NG)                                                              \
    extern "C" __global__ void name(int M, int nh, int nkv, int hd, const int* q,            \
                                    const int* qexp, const i16* kc, const int* kexpc,        \
                                    const int* vc, const int* pos, const int* slot,          \
                                    const int* zend, i64 score_scale, const i64* exp2,       \
                                    int layer, int slots, int cap, i64* acc) {               \
        att_row_t<NG>(M, nh, nkv, hd, q, qexp, kc, kexpc, vc, pos, slot, zend, score_scale,  \
                      exp2, layer, slots, cap, acc);                                         \
    }
ATT_ROW_KERNEL(att_row, 0)
ATT_ROW_KERNEL(att_row_g1, 1)
ATT_ROW_KERNEL(att_row_g2, 2)
ATT_ROW_KERNEL(att_row_g3, 3)
ATT_ROW_KERNEL(att_row_g4, 4)
ATT_ROW_KERNEL(att_row_g5, 5)
ATT_ROW_KERNEL(att_row_g6, 6)
ATT_ROW_KERNEL(att_row_g7, 7)
ATT_ROW_KERNEL(att_row_g8, 8)

// The GEMM rows' P · V sums (f64, written over `acc` by cuBLAS) to integers, in place:
// thread per (row, channel).
extern "C" __global__ void pv_take(int M, int d, const int* zend, i64* acc, int* err) {
    i64 t = thread_id();
    if (t >= (i64)M * d) return;
    if (zend[t / d] == 0) return;
    acc[t] = exact_int(bits_f64(acc[t]), err);
}

// A weight matrix's int8 levels to f64, for the f64 GEMM of a layer int8 cannot take.
extern "C" __global__ void levels_f64(i64 n, const signed char* w, double* dst) {
    i64 t = thread_id();
    if (t < n) dst[t] = (double)w[t];
}

// Int levels to f64 (GEMM inputs): thread per value.
extern "C" __global__ void to_f64(i64 n, const int* src, double* dst) {
    i64 t = thread_id();
    if (t < n) dst[t] = (double)src[t];
}

// Cached keys (`which` bit 1) and values (bit 2) of several windows, positions [0, n) of
// each, into consecutive f64 slabs for the attention GEMMs of their runs: block row y is run
// `first + y` of `runs` (three ints each: window slot, n, first position of its slab);
// thread per (position, channel).
extern "C" __global__ void kv_to_f64(int first, int kvd, int which, const int* runs,
                                     const i16* kc, const int* vc, int layer, int slots,
                                     int cap, double* kf, double* vf) {
    const int* r = runs + 3 * (i64)(first + (int)blockIdx.y);
    i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (i64)r[1] * kvd) return;
    i64 base = ((i64)layer * slots + r[0]) * cap * kvd;
    i64 o = (i64)r[2] * kvd + t;
    if (which & 1) kf[o] = (double)kc[base + t];
    if (which & 2) vf[o] = (double)vc[base + t];
}

// The levels of a row block from their int8 limbs (put_level), for an f64 GEMM when cuBLAS
// refuses a layer's int8 shape after the limbs were written: thread per value.
extern "C" __global__ void from_limbs8(int M, int K, const signed char* limbs, int* h) {
    i64 t = thread_id();
    if (t >= (i64)M * K) return;
    h[t] = 256 * (int)limbs[(i64)M * K + t] + (int)limbs[t] + 128;
}

// acc = an f64 GEMM's output as integers; flags any that is not an exact integer.
extern "C" __global__ void from_f64(i64 n, const double* g, i64* acc, int* err) {
    i64 t = thread_id();
    if (t < n) acc[t] = exact_int(g[t], err);
}

// The per-channel rescale of P · V: thread per (row, head, channel); mantissas M x d.
extern "C" __global__ void att_out(int M, int nh, int nkv, int hd, const i64* acc,
                                   const int* vexp, int vexp_min, i128* mant, u64* rowhi) {
    i64 t = thread_id();
    if (t >= (i64)M * nh * hd) return;
    int i = t % hd;
    int head = (t / hd) % nh;
    int kvh = head / (nh / nkv);
    int shift = vexp[kvh * hd + i] - vexp_min + 20;
    i128 m = div_round((i128)acc[t] << shift, (i128)4095);
    mant[t] = m;
    row_max_hi(rowhi, t / (nh * hd), nh * hd, m);
}

extern "C" __global__ void zero_i64(i64 n, i64* v) {
    i64 t = thread_id();
    if (t < n) v[t] = 0;
}

// quantize_row per row of `n` mantissas (exponent `exp + (base ? base[r] : 0)` plus the
// shift) into the next linear layer's input (put_level): warp per row. The kernel that wrote
// the mantissas booked each row's maximum high word in rowhi: where that decides the shift
// (quant_shift_hi), the row is read once instead of twice.
extern "C" __global__ void quant_rows(int M, int n, const i128* v, const u64* rowhi, int exp,
                                      const int* base, i64 levels, int* h, signed char* limbs,
                                      int* out_exp) {
    int r = warp_id();
    if (r >= M) return;
    int lane = threadIdx.x % WARP;
    const i128* row = v + (i64)r * n;
    int s = quant_shift_hi(rowhi[r], levels);
    if (s < 0) {
        u128 mx = 0;
        for (int i = lane; i < n; i += WARP) {
            u128 a = uabs(row[i]);
            if (a > mx) mx = a;
        }
        s = quant_shift(warp_max_u128(mx), levels);
    }
    i64 half = (i64)M * n;
    for (int i = lane; i < n; i += WARP) {
        put_level(h, limbs, half, (i64)r * n + i, quant_apply(row[i], s, levels));
    }
    if (lane == 0) out_exp[r] = exp + (base ? base[r] : 0) + s;
}

// The FFN between its two GEMMs: the gate and up rows are the GEMM's sums times each output's
// weight scale, each quantized to 31 bits at its own per-row shift (ffn_shifts), then
// SiLU(gate) * up as 128-bit mantissas (ffn_act), which quant_rows turns into the down
// projection's input.
struct FfnRow {
    const i64* acc;
    const int* g;
    const i64* rowsum;
    const i64* scale;
    i64 half, at;
    int f;
};

__device__ __forceinline__ i128 ffn_scaled(const FfnRow& w, int col) {
    return (i128)sum_at(w.acc, w.g, w.rowsum, w.half, w.at + col, col) * (i128)w.scale[col];
}

// The shifts quantize_row would use for each row's gate and up halves: warp per row.
extern "C" __global__ void ffn_shifts(int M, int f, const i64* acc, const int* g,
                                      const i64* rowsum, const i64* scale, i64 levels, int* sg,
                                      int* su) {
    int r = warp_id();
    if (r >= M) return;
    int lane = threadIdx.x % WARP;
    FfnRow w = {acc, g, rowsum, scale, (i64)M * 2 * f, (i64)r * 2 * f, f};
    u128 mg = 0, mu = 0;
    for (int o = lane; o < f; o += WARP) {
        u128 a = uabs(ffn_scaled(w, o)), b = uabs(ffn_scaled(w, f + o));
        if (a > mg) mg = a;
        if (b > mu) mu = b;
    }
    mg = warp_max_u128(mg);
    mu = warp_max_u128(mu);
    if (lane == 0) {
        sg[r] = quant_shift(mg, levels);
        su[r] = quant_shift(mu, levels);
    }
}

// round_shift(v, s) as i64 for |v| < 2^31: in 64 bits for |s| <= 31.
__device__ __forceinline__ i64 round_shift31(i64 v, int s) {
    if (s == 0) return v;
    if (s > 0 && s <= 31) return (v + ((i64)1 << (s - 1))) >> s;
    if (s < 0 && s >= -31) return v * ((i64)1 << -s);
    return (i64)round_shift(v, s);
}

// SiLU(gate) * up: thread per (row, channel of f); writes the row's mantissa exponent base.
extern "C" __global__ void ffn_act(int M, int f, const i64* acc, const int* g,
                                   const i64* rowsum, const i64* scale, const int* sg,
                                   const int* su, const int* hexp, int wexp, const i64* sig,
                                   i128* mant, int* ebase, u64* rowhi) {
    i64 t = thread_id();
    if (t >= (i64)M * f) return;
    int r = t / f, o = t % f;
    FfnRow w = {acc, g, rowsum, scale, (i64)M * 2 * f, (i64)r * 2 * f, f};
    const i64 L = 2147483647;
    int e = hexp[r] + wexp;
    int eg = e + sg[r], eu = e + su[r];
    i64 gv = quant_apply(ffn_scaled(w, o), sg[r], L);
    i64 uv = quant_apply(ffn_scaled(w, f + o), su[r], L);
    i64 x16 = round_shift31(gv, -(eg + 16));
    const i64 lim = (i64)1 << 40;
    if (x16 < -lim) x16 = -lim;
    if (x16 > lim) x16 = lim;
    i64 s = sigmoid_q16(sig, x16);
    // |gv s| < 2^61.
    i128 m = (i128)(gv * s) * (i128)uv;
    mant[t] = m;
    row_max_hi(rowhi, r, f, m);
    if (o == 0) ebase[r] = eg + eu - 30;
}

// ffn_shifts, ffn_act and quant_rows in one kernel, a block per row: the row's (gate, up) sum
// pairs go to shared memory (f 16-byte slots of dynamic shared memory), then each pair's
// slot takes its 128-bit mantissa, which the same thread quantizes. The GEMM's sums are read
// once and no mantissa goes to global memory; the same integers as the three kernels. hexp
// holds the input exponents and receives the output's (read before the first barrier). With
// split (the scales as m · 2^z), the products with the scales and their quantization take
// 64 bits instead of 128: the sum pairs' slots hold the products sum · m then.
extern "C" __global__ void ffn_row(int M, int f, const i64* acc, const int* g,
                                   const i64* rowsum, const i64* scale, const i64* split,
                                   int wexp, const i64* sig, i64 levels, int* h,
                                   signed char* limbs, int* hexp) {
    extern __shared__ int4 sq4[];
    __shared__ u64 red[2 * 1024 / WARP];
    int r = blockIdx.x;
    if (r >= M) return;
    int tid = threadIdx.x, nt = blockDim.x;
    i64* gu = (i64*)sq4;
    i128* mant = (i128*)sq4;
    i64 half = (i64)M * 2 * f, at = (i64)r * 2 * f;
    int e = hexp[r] + wexp;
    u64 kg = 0, ku = 0;
    for (int o = tid; o < f; o += nt) {
        i64 a = sum_at(acc, g, rowsum, half, at + o, o);
        i64 b = sum_at(acc, g, rowsum, half, at + f + o, f + o);
        u64 x, y;
        if (split) {
            i64 pg = split[o], pu = split[f + o];
            a *= split_mant(pg);
            b *= split_mant(pu);
            x = mag_key64(a < 0 ? (u64)0 - (u64)a : (u64)a, split_shift(pg));
            y = mag_key64(b < 0 ? (u64)0 - (u64)b : (u64)b, split_shift(pu));
        } else {
            x = mag_key(uabs((i128)a * (i128)scale[o]));
            y = mag_key(uabs((i128)b * (i128)scale[f + o]));
        }
        gu[2 * o] = a;
        gu[2 * o + 1] = b;
        if (x > kg) kg = x;
        if (y > ku) ku = y;
    }
    const i64 L = 2147483647;
    int sg, su;
    block_key_shifts(kg, ku, red, L, &sg, &su);
    int eg = e + sg, eu = e + su;
    u64 kx = 0;
    for (int o = tid; o < f; o += nt) {
        i64 gv, uv;
        if (split) {
            gv = quant_apply_split(gu[2 * o], split_shift(split[o]), sg, L);
            uv = quant_apply_split(gu[2 * o + 1], split_shift(split[f + o]), su, L);
        } else {
            gv = quant_apply((i128)gu[2 * o] * (i128)scale[o], sg, L);
            uv = quant_apply((i128)gu[2 * o + 1] * (i128)scale[f + o], su, L);
        }
        i64 x16 = round_shift31(gv, -(eg + 16));
        const i64 lim = (i64)1 << 40;
        if (x16 < -lim) x16 = -lim;
        if (x16 > lim) x16 = lim;
        // |gv s| < 2^61.
        i128 m = (i128)(gv * sigmoid_q16(sig, x16)) * (i128)uv;
        mant[o] = m;
        u64 k = mag_key(uabs(m));
        if (k > kx) kx = k;
    }
    int s = block_key_shift(kx, red, levels);
    i64 out_half = (i64)M * f;
    for (int o = tid; o < f; o += nt) {
        put_level(h, limbs, out_half, (i64)r * f + o, quant_apply_wide(mant[o], s, levels));
    }
    if (tid == 0) hexp[r] = eg + eu - 30 + s;
}

// pv_take, att_out and quant_rows in one kernel, a block per row: the row's d = nh hd
// mantissas in dynamic shared memory (16 bytes each) instead of global memory; the same
// integers. Rows with a nonzero zend have their P · V sums as an f64 GEMM's output.
extern "C" __global__ void att_out_row(int M, int nh, int nkv, int hd, const i64* acc,
                                       const int* zend, const int* vexp, int vexp_min, int exp,
                                       i64 levels, int* h, signed char* limbs, int* out_exp,
                                       int* err) {
    extern __shared__ int4 sq4[];
    __shared__ u128 red[1024 / WARP];
    int r = blockIdx.x;
    if (r >= M) return;
    int tid = threadIdx.x, nt = blockDim.x;
    int d = nh * hd;
    bool gemm = zend[r] != 0;
    i128* mant = (i128*)sq4;
    u64 kx = 0;
    for (int t = tid; t < d; t += nt) {
        int i = t % hd;
        int kvh = (t / hd) / (nh / nkv);
        int shift = vexp[kvh * hd + i] - vexp_min + 20;
        i64 sum = acc[(i64)r * d + t];
        if (gemm) sum = exact_int(bits_f64(sum), err);
        i128 m = div_round((i128)sum << shift, (i128)4095);
        mant[t] = m;
        u64 k = mag_key(uabs(m));
        if (k > kx) kx = k;
    }
    int s = block_key_shift(kx, (u64*)red, levels);
    i64 half = (i64)M * d;
    for (int t = tid; t < d; t += nt) {
        put_level(h, limbs, half, (i64)r * d + t, quant_apply_wide(mant[t], s, levels));
    }
    if (tid == 0) out_exp[r] = exp + s;
}

// Output scores in 1/1024 bit: thread per (row, output row).
extern "C" __global__ void logits(int M, int N, const i64* acc, const int* g,
                                  const i64* rowsum, const i64* scale, int wexp,
                                  const int* hexp, i64 logit_scale, int* out) {
    i64 t = thread_id();
    if (t >= (i64)M * N) return;
    int r = t / N, o = t % N;
    int shift = -(hexp[r] + wexp + 10 - 30);
    i128 v = (i128)sum_at(acc, g, rowsum, (i64)M * N, t, o) * (i128)scale[o] *
             (i128)logit_scale;
    i128 s = round_shift(v, shift);
    const i128 hi = 1073741823, lo = -1073741824;
    if (s > hi) s = hi;
    if (s < lo) s = lo;
    out[t] = (int)s;
}
