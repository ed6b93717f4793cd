// Prefill attention's dot products q · k on the int8 tensor cores (mma.sync m16n8k32, sm_80
// and later), for the rows of the attention GEMM runs: the same integers as the f64 GEMM they
// replace (docs/decisions/0012). Compiled by NVRTC for compute_80 apart from kernels.cu, which
// targets every GPU (with att_mma, below, after a copy of kernels.cu); the engine loads it
// only on a device that runs it.
//
// A 16-bit level x (|x| <= 32767: queries, and keys up to 2^15) is two 8-bit limbs,
// x = 256 hi + lo with hi = x >> 8 signed and lo = x & 255 unsigned, so
//   q · k = 65536 (qh · kh) + 256 (qh · kl + ql · kh) + ql · kl,
// four int8 products with int32 sums: over head_dim <= 256 terms each is below 2^24 in
// magnitude, and the i64 combination is exact. Integer arithmetic has no rounding, so the
// result cannot depend on the order the tensor cores add in.

typedef long long i64;
typedef unsigned int u32;
typedef short i16;

// One m16n8k32 product-accumulate, A (16 x 32, row) and B (32 x 8, col) of the given byte
// signedness. The fragments (PTX ISA, "matrix fragments for mma.m16n8k32" with .s8/.u8),
// lane = 4 g + t:
//   A: a[0] = A[g][4t..4t+3], a[1] = A[g+8][4t..], a[2] = A[g][16+4t..], a[3] = A[g+8][16+4t..]
//   B: b[0] = B[4t..4t+3][g], b[1] = B[16+4t..16+4t+3][g]
//   C: c[0] = C[g][2t], c[1] = C[g][2t+1], c[2] = C[g+8][2t], c[3] = C[g+8][2t+1]
// with the lowest-indexed element in the lowest byte of a register.
#if defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)
#define MMA_S32(AT, BT)                                                                     \
    __device__ __forceinline__ void mma_##AT##_##BT(int* c, const u32* a, const u32* b) {   \
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." #AT "." #BT ".s32 "            \
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"                 \
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])                        \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));    \
    }
#else
// Host builds (scripts/check-cuda-kernels.sh): mma_test.cpp's emulation across lane threads.
#define MMA_S32(AT, BT)                                                                     \
    __device__ __forceinline__ void mma_##AT##_##BT(int* c, const u32* a, const u32* b) {   \
        mma_emulated(c, a, b, #AT[0] == 's', #BT[0] == 's');                                 \
    }
#endif
MMA_S32(s8, s8)
MMA_S32(s8, u8)
MMA_S32(u8, s8)
MMA_S32(u8, u8)

// Four consecutive levels as their high and low limb bytes, lowest index lowest.
__device__ __forceinline__ void limbs4(int x0, int x1, int x2, int x3, u32* hi, u32* lo) {
    *hi = ((u32)(x0 >> 8) & 255u) | (((u32)(x1 >> 8) & 255u) << 8) |
          (((u32)(x2 >> 8) & 255u) << 16) | ((u32)(x3 >> 8) << 24);
    *lo = ((u32)x0 & 255u) | (((u32)x1 & 255u) << 8) | (((u32)x2 & 255u) << 16) |
          ((u32)x3 << 24);
}

// One warp's dot products for a tile (see att_dots), KS = hd / 32 steps of 32 dimensions:
// the queries' limbs stay in registers while eight keys at a time pass as B.
template <int KS>
__device__ __forceinline__ void tile_dots(int lane, int rows, const int* qa, const int* qb,
                                          const i16* kbase, int kvd, int n, int na, int nb,
                                          double* za, double* zb) {
    int g = lane / 4, t = lane % 4;
    bool va = g < rows, vb = g + 8 < rows;
    u32 ah[KS][4], al[KS][4];
    for (int s = 0; s < KS; s++) {
        for (int half = 0; half < 2; half++) {
            int d = 32 * s + 16 * half + 4 * t;
            int4 x = {0, 0, 0, 0}, y = {0, 0, 0, 0};
            if (va) x = *(const int4*)(qa + d);
            if (vb) y = *(const int4*)(qb + d);
            limbs4(x.x, x.y, x.z, x.w, &ah[s][2 * half], &al[s][2 * half]);
            limbs4(y.x, y.y, y.z, y.w, &ah[s][2 * half + 1], &al[s][2 * half + 1]);
        }
    }
    for (int j0 = 0; j0 < n; j0 += 8) {
        int hh[4] = {0, 0, 0, 0}, hl[4] = {0, 0, 0, 0}, lh[4] = {0, 0, 0, 0},
            ll[4] = {0, 0, 0, 0};
        int key = j0 + g;
        const i16* kr = kbase + (i64)key * kvd;
        for (int s = 0; s < KS; s++) {
            // Key j0 + g's levels at dims 32 s + 4t.. and 32 s + 16 + 4t.. (zero past the
            // tile's last position: those products are not written).
            u32 bh[2], bl[2];
            for (int half = 0; half < 2; half++) {
                short4 k = {0, 0, 0, 0};
                if (key < n) k = *(const short4*)(kr + 32 * s + 16 * half + 4 * t);
                limbs4(k.x, k.y, k.z, k.w, &bh[half], &bl[half]);
            }
            mma_s8_s8(hh, ah[s], bh);
            mma_s8_u8(hl, ah[s], bl);
            mma_u8_s8(lh, al[s], bh);
            mma_u8_u8(ll, al[s], bl);
        }
        for (int c = 0; c < 4; c++) {
            int j = j0 + 2 * t + (c & 1);
            i64 dot = 65536 * (i64)hh[c] + 256 * ((i64)hl[c] + (i64)lh[c]) + (i64)ll[c];
            if (c < 2) {
                if (j < na) za[j] = (double)dot;
            } else if (j < nb) {
                zb[j] = (double)dot;
            }
        }
    }
}

// Dot products for tiles of up to 16 consecutive rows of one attention run (tile[2 i] its
// first row, tile[2 i + 1] its rows) and one query head: a warp per (tile, head), its rows'
// queries as A, eight keys of the window at a time as B. Writes z[(r nh + head) cap + j] as an
// f64 for every key j <= pos[r] of each row r, where the f64 GEMM wrote them: att_probs
// reads those and zeroes the rest of the row's block. hd = 32 KS for KS <= 4; the queries
// are levels (q, rows x nh hd), the keys the cache's i16 levels.
extern "C" __global__ void att_dots(int tiles, const int* tile, int nh, int nkv, int hd,
                                    const int* q, const i16* kc, const int* pos,
                                    const int* slot, int layer, int slots, int cap, double* z) {
    int w = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= tiles * nh) return;
    int ti = w / nh, head = w % nh;
    int lane = threadIdx.x % 32, g = lane / 4;
    int r0 = tile[2 * ti], rows = tile[2 * ti + 1];
    int kvh = head / (nh / nkv), kvd = nkv * hd;
    int ra = r0 + g, rb = r0 + g + 8;
    int na = g < rows ? pos[ra] + 1 : 0, nb = g + 8 < rows ? pos[rb] + 1 : 0;
    int n = pos[r0 + rows - 1] + 1;
    const i16* kbase = kc + ((i64)layer * slots + slot[r0]) * cap * kvd + kvh * hd;
    const int* qa = q + ((i64)ra * nh + head) * hd;
    const int* qb = q + ((i64)rb * nh + head) * hd;
    double* za = z + ((i64)ra * nh + head) * cap;
    double* zb = z + ((i64)rb * nh + head) * cap;
    switch (hd / 32) {
        case 1: tile_dots<1>(lane, rows, qa, qb, kbase, kvd, n, na, nb, za, zb); break;
        case 2: tile_dots<2>(lane, rows, qa, qb, kbase, kvd, n, na, nb, za, zb); break;
        case 3: tile_dots<3>(lane, rows, qa, qb, kbase, kvd, n, na, nb, za, zb); break;
        case 4: tile_dots<4>(lane, rows, qa, qb, kbase, kvd, n, na, nb, za, zb); break;
    }
}

// ---- prefill attention on the tensor cores ------------------------------------------------
//
// Compiled with ATT_MMA defined (unless LMGC_CUDA_ATT_MMA=off; always in the tests), after
// kernels.cu, whose helpers it calls: a second compile of kernels.cu, beside the first. Keeping
// its scores, it took the prefill's attention in 0.28 s against att_dots and the f64 GEMMs'
// 0.51 s on an H100 (docs/perf.md, stop 30), and is the default since.
#ifdef ATT_MMA
//
// att_mma does a run's whole attention for a tile of up to 16 rows and one query head: the
// scores, the exact softmax and P · V, with the scores and probabilities in registers and the
// warp's probabilities (and, with keep, first its scores) in shared memory, where att_dots,
// att_probs and an f64 GEMM wrote and
// read three rows × heads × positions buffers of f64. It needs kernels.cu's exact helpers
// (score_of, exp2_neg, prob_level): the engine compiles this file after kernels.cu.
//
// P · V on the int8 tensor cores: a probability p <= 4095 is two unsigned limbs, p = 256 p1
// + p0 (p1 <= 15), a value |v| < 2^23 three, v = 65536 v2 + 256 v1 + v0 (v2 signed), and
// the six limb products add into four int32 sums by weight,
//   P · V = a0 + 256 a8 + 65536 a16 + 2^24 a24,
//   a0 = p0 · v0, a8 = p0 · v1 + p1 · v0, a16 = p0 · v2 + p1 · v1, a24 = p1 · v2,
// each below 2^31 for up to 31,000 positions (a8: (255 · 255 + 15 · 255) per position).
//
// Positions take the K dimension in an order that lets the scores' C fragments become the
// probabilities' A fragment without an exchange between lanes: within 32 positions, K index
// 4t + b (and 16 + 4t + b) is position 2t + b for b < 2 and 8 + 2t + b - 2 for b >= 2 (plus
// 16); v_pack lays the values out in the same order, B fragments ready to load.

// tile_dots' steps as functions, so that a pass can issue several keys' loads before their
// products (tile_dots keeps its own inline form: the default path's code, as measured).

// A tile's queries as the A operand: rows g and g + 8 (zero where absent), KS = hd / 32
// steps of 32 dimensions, as high and low limbs.
template <int KS>
__device__ __forceinline__ void query_limbs(int t, bool va, bool vb, const int* qa,
                                            const int* qb, u32 (*ah)[4], u32 (*al)[4]) {
    #pragma unroll
    for (int s = 0; s < KS; s++) {
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            int d = 32 * s + 16 * half + 4 * t;
            int4 x = {0, 0, 0, 0}, y = {0, 0, 0, 0};
            if (va) x = *(const int4*)(qa + d);
            if (vb) y = *(const int4*)(qb + d);
            limbs4(x.x, x.y, x.z, x.w, &ah[s][2 * half], &al[s][2 * half]);
            limbs4(y.x, y.y, y.z, y.w, &ah[s][2 * half + 1], &al[s][2 * half + 1]);
        }
    }
}

// Key j0 + g's levels as B fragments (zero past position n): dims 32 s + 4t.. and
// 32 s + 16 + 4t.. of step s in k[s][0] and k[s][1].
template <int KS>
__device__ __forceinline__ void key_frags(int g, int t, const i16* kbase, int kvd, int n,
                                          int j0, short4 (*k)[2]) {
    int key = j0 + g;
    const i16* kr = kbase + (i64)key * kvd;
    #pragma unroll
    for (int s = 0; s < KS; s++)
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            k[s][half] = {0, 0, 0, 0};
            if (key < n) k[s][half] = *(const short4*)(kr + 32 * s + 16 * half + 4 * t);
        }
}

// q · k of the tile's rows against the keys key_frags loaded, as mma's C fragment: dot[c] is
// row g + 8 (c / 2) against key j0 + 2t + (c % 2).
template <int KS>
__device__ __forceinline__ void dots_of(const u32 (*ah)[4], const u32 (*al)[4],
                                        const short4 (*k)[2], i64* dot) {
    int hh[4] = {0, 0, 0, 0}, hl[4] = {0, 0, 0, 0}, lh[4] = {0, 0, 0, 0}, ll[4] = {0, 0, 0, 0};
    #pragma unroll
    for (int s = 0; s < KS; s++) {
        u32 bh[2], bl[2];
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            const short4& x = k[s][half];
            limbs4(x.x, x.y, x.z, x.w, &bh[half], &bl[half]);
        }
        mma_s8_s8(hh, ah[s], bh);
        mma_s8_u8(hl, ah[s], bl);
        mma_u8_s8(lh, al[s], bh);
        mma_u8_u8(ll, al[s], bl);
    }
    #pragma unroll
    for (int c = 0; c < 4; c++)
        dot[c] = 65536 * (i64)hh[c] + 256 * ((i64)hl[c] + (i64)lh[c]) + (i64)ll[c];
}

// Softmax weights need the row's maximum before any weight and the total before any
// probability, and exp2_neg's floored shifts do not rescale as an online softmax's would;
// so three passes over the keys. The later two recompute q · k on the tensor cores, or
// (tile_attention's keep) read the first's scores back from shared memory as i32.
// Key tiles (of 8) loaded before their products, 1, 2 or 4 (LMGC_CUDA_ATT_MMA_LOADS): more
// loads in flight per warp, or fewer registers and so more warps (SmolLM2's heads of 64: 96,
// 120 and 151 registers for sm_90, scripts/cuda-registers.sh).
#ifndef ATT_MMA_LOADS
#define ATT_MMA_LOADS 4
#endif
static_assert(ATT_MMA_LOADS == 1 || ATT_MMA_LOADS == 2 || ATT_MMA_LOADS == 4,
              "ATT_MMA_LOADS: 1, 2 or 4 key tiles per load");

// The scores of 32 keys from 32 ch (four n8 tiles) against the tile's rows g and g + 8:
// ATT_MMA_LOADS tiles' loads issued before their products, then use(i, c, score, valid) for each
// of the lane's 16, in order, where valid says key 32 ch + 8 i + 2t + (c % 2) is below row
// g + 8 (c / 2)'s positions (the score is 0 where not). Each score goes to `use` as it is
// made, so that no more than a tile's are live.


template <int KS, class Use>
__device__ __forceinline__ void chunk_scores(int g, int t, const u32 (*ah)[4],
                                             const u32 (*al)[4], const i16* kbase,
                                             const int* ke, int nkv, int kvd, int n, int na,
                                             int nb, int qea, int qeb, i64 score_scale, int ch,
                                             Use&& use) {
    #pragma unroll
    for (int i0 = 0; i0 < 4; i0 += ATT_MMA_LOADS) {
        short4 k[ATT_MMA_LOADS][KS][2];
        int kexp[ATT_MMA_LOADS][2];
        #pragma unroll
        for (int l = 0; l < ATT_MMA_LOADS; l++) {
            int j0 = 32 * ch + 8 * (i0 + l);
            key_frags<KS>(g, t, kbase, kvd, n, j0, k[l]);
            #pragma unroll
            for (int b = 0; b < 2; b++) {
                int j = j0 + 2 * t + b;
                kexp[l][b] = j < n ? ke[(i64)j * nkv] : 0;
            }
        }
        #pragma unroll
        for (int l = 0; l < ATT_MMA_LOADS; l++) {
            int i = i0 + l;
            i64 dot[4];
            dots_of<KS>(ah, al, k[l], dot);
            #pragma unroll
            for (int c = 0; c < 4; c++) {
                int j = 32 * ch + 8 * i + 2 * t + (c & 1);
                bool valid = j < (c < 2 ? na : nb);
                use(i, c,
                    valid ? score_of(dot[c], c < 2 ? qea : qeb, kexp[l][c & 1], score_scale)
                          : 0,
                    valid);
            }
        }
    }
}

// A chunk's kept scores (tile_attention with keep) to use(i, c, score, valid) as
// chunk_scores gives them: the lane's 16 i32 of chunk ch, validity recomputed from the rows'
// positions.
template <class Use>
__device__ __forceinline__ void kept_scores(const int4* ss, int ch, int lane, int t, int na,
                                            int nb, Use&& use) {
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        int4 v = ss[4 * (32 * ch + lane) + i];
        int x[4] = {v.x, v.y, v.z, v.w};
        #pragma unroll
        for (int c = 0; c < 4; c++) {
            int j = 32 * ch + 8 * i + 2 * t + (c & 1);
            use(i, c, (i64)x[c], j < (c < 2 ? na : nb));
        }
    }
}

template <int KS>
__device__ __forceinline__ void tile_attention(int lane, int rows, const int* qa,
                                               const int* qb, int qea, int qeb,
                                               const i16* kbase, const int* ke, int nkv,
                                               int kvd, int n, int na, int nb,
                                               i64 score_scale, const i64* exp2, const u32* vp,
                                               i64 vchunk, int hd, int4* sp, double* oa,
                                               double* ob, bool keep) {
    int g = lane / 4, t = lane % 4;
    u32 ah[KS][4], al[KS][4];
    query_limbs<KS>(t, g < rows, g + 8 < rows, qa, qb, ah, al);
    int chunks = (n + 31) / 32;
    // Row g's and row g + 8's maxima, over a row's four lanes (the four of one g). With
    // keep, pass 1 also stores the scores as i32 in the warp's shared memory (16 per lane per
    // chunk, twice the probabilities' room) and the later passes read them back instead of
    // recomputing q · k, unless one of the warp's scores does not fit 32 bits.
    i64 ma = I64_MIN, mb = I64_MIN;
    bool fits = true;
    for (int ch = 0; ch < chunks; ch++) {
        int x[4];
        chunk_scores<KS>(g, t, ah, al, kbase, ke, nkv, kvd, n, na, nb, qea, qeb, score_scale,
                         ch, [&](int i, int c, i64 sc, bool valid) {
                             if (keep) {
                                 fits = fits && sc == (i64)(int)sc;
                                 x[c] = (int)sc;
                                 if (c == 3)
                                     sp[4 * (32 * ch + lane) + i] =
                                         make_int4(x[0], x[1], x[2], x[3]);
                             }
                             if (!valid) return;
                             if (c < 2) {
                                 ma = sc > ma ? sc : ma;
                             } else {
                                 mb = sc > mb ? sc : mb;
                             }
                         });
    }
    #pragma unroll
    for (int m = 1; m < 4; m <<= 1) {
        i64 oa_ = __shfl_xor_sync(0xffffffffu, ma, m), ob_ = __shfl_xor_sync(0xffffffffu, mb, m);
        ma = oa_ > ma ? oa_ : ma;
        mb = ob_ > mb ? ob_ : mb;
    }
    bool kept = __all_sync(0xffffffffu, keep && fits);
    // Pass 3 writes probabilities over other lanes' pass-1 scores, kept or not: order them
    // (the shuffles and the vote above are no memory barrier).
    if (keep) __syncwarp();
    i64 ta = 0, tb = 0;
    auto total = [&](int, int c, i64 sc, bool valid) {
        if (!valid) return;
        if (c < 2) {
            ta += exp2_neg(exp2, ma - sc);
        } else {
            tb += exp2_neg(exp2, mb - sc);
        }
    };
    for (int ch = 0; ch < chunks; ch++) {
        if (kept) {
            kept_scores(sp, ch, lane, t, na, nb, total);
        } else {
            chunk_scores<KS>(g, t, ah, al, kbase, ke, nkv, kvd, n, na, nb, qea, qeb,
                             score_scale, ch, total);
        }
    }
    #pragma unroll
    for (int m = 1; m < 4; m <<= 1) {
        ta += __shfl_xor_sync(0xffffffffu, ta, m);
        tb += __shfl_xor_sync(0xffffffffu, tb, m);
    }
    double inva = 1.0 / (double)(2 * ta), invb = 1.0 / (double)(2 * tb);
    // Probabilities, 32 positions at a time, as A fragments (low limbs, then high) into the
    // warp's shared memory: each lane reads back only what it wrote. Kept scores share that
    // memory: chunk ch's probabilities overwrite half of chunk ch / 2's scores, which every
    // lane has read once the warp has read chunk ch's.
    for (int ch = 0; ch < chunks; ch++) {
        u32 lo[4] = {0, 0, 0, 0}, hi[4] = {0, 0, 0, 0};
        auto prob = [&](int i, int c, i64 sc, bool valid) {
            if (!valid) return;
            i64 p = c < 2 ? prob_level(exp2_neg(exp2, ma - sc), ta, inva)
                          : prob_level(exp2_neg(exp2, mb - sc), tb, invb);
            // Position 8 i + 2t + (c % 2) of the chunk is K index 4t + 2 (i % 2) + (c % 2)
            // (plus 16 for i >= 2): register 2 (i / 2) for row g, one more for row g + 8.
            int reg = 2 * (i / 2) + c / 2, sh = 8 * (2 * (i % 2) + (c & 1));
            lo[reg] |= (u32)(p & 255) << sh;
            hi[reg] |= (u32)(p >> 8) << sh;
        };
        if (kept) {
            kept_scores(sp, ch, lane, t, na, nb, prob);
            __syncwarp();
        } else {
            chunk_scores<KS>(g, t, ah, al, kbase, ke, nkv, kvd, n, na, nb, qea, qeb,
                             score_scale, ch, prob);
        }
        sp[2 * (32 * ch + lane)] = make_int4((int)lo[0], (int)lo[1], (int)lo[2], (int)lo[3]);
        sp[2 * (32 * ch + lane) + 1] = make_int4((int)hi[0], (int)hi[1], (int)hi[2], (int)hi[3]);
    }
    // P · V, eight channels at a time: B is v_pack's three limbs of those channels.
    for (int ct = 0; ct < hd / 8; ct++) {
        int a0[4] = {0, 0, 0, 0}, a8[4] = {0, 0, 0, 0}, a16[4] = {0, 0, 0, 0},
            a24[4] = {0, 0, 0, 0};
        const uint2* vt = (const uint2*)(vp + (i64)ct * 3 * 64) + lane;
#pragma unroll 4
        for (int ch = 0; ch < chunks; ch++) {
            int4 l4 = sp[2 * (32 * ch + lane)], h4 = sp[2 * (32 * ch + lane) + 1];
            u32 lo[4] = {(u32)l4.x, (u32)l4.y, (u32)l4.z, (u32)l4.w};
            u32 hi[4] = {(u32)h4.x, (u32)h4.y, (u32)h4.z, (u32)h4.w};
            const uint2* v = vt + ch * (vchunk / 2);
            uint2 w0 = v[0], w1 = v[32], w2 = v[64];
            u32 v0[2] = {w0.x, w0.y}, v1[2] = {w1.x, w1.y}, v2[2] = {w2.x, w2.y};
            mma_u8_u8(a0, lo, v0);
            mma_u8_u8(a8, lo, v1);
            mma_u8_u8(a8, hi, v0);
            mma_u8_u8(a16, hi, v1);
            mma_u8_s8(a16, lo, v2);
            mma_u8_s8(a24, hi, v2);
        }
        #pragma unroll
        for (int c = 0; c < 4; c++) {
            i64 sum = (i64)a0[c] + 256 * (i64)a8[c] + 65536 * (i64)a16[c] +
                      16777216 * (i64)a24[c];
            int i = 8 * ct + 2 * t + (c & 1);
            if (c < 2) {
                if (g < rows) oa[i] = (double)sum;
            } else if (g + 8 < rows) {
                ob[i] = (double)sum;
            }
        }
    }
}

// Attention for tiles of up to 16 consecutive rows of one run (tile[3 i] its first row,
// tile[3 i + 1] its rows, tile[3 i + 2] its run's first chunk in vp): a warp per (tile,
// query head), each warp ((cap + 31) / 32) KiB of dynamic shared memory (twice that with
// keep: tile_attention's kept scores), then the block's copy of the exp2 table (1,024 i64:
// its lookups are random, which a warp's shared memory serves in a few passes where the L1
// cache takes one per line touched). Writes every row's
// P · V sums as f64 (exact: below 2^53) into pv (rows x nh hd), where the f64 GEMM wrote
// them: att_out_row reads them as the GEMM rows' sums. hd = 32 KS for KS <= 4 (a kernel per
// head size, att_mma_h32 to att_mma_h128: each gets the registers its own KS needs, and
// none keeps its arrays in local memory, which one kernel for every size did); queries are
// levels (q, rows x nh hd), keys the cache's i16 levels, values v_pack's limbs.
template <int KS>
__device__ __forceinline__ void att_mma(int tiles, const int* tile, int nh, int nkv,
                                        const int* q, const int* qexp, const i16* kc,
                                        const int* kexpc, const int* pos, const int* slot,
                                        i64 score_scale, const i64* exp2, const u32* vp,
                                        int layer, int slots, int cap, double* pv, int keep) {
    const int hd = 32 * KS;
    extern __shared__ int4 sq4[];
    int per_warp = (cap + 31) / 32 * (keep ? 128 : 64);
    i64* sexp2 = (i64*)(sq4 + (i64)(blockDim.x / 32) * per_warp);
    for (int i = threadIdx.x; i < 1024; i += blockDim.x) sexp2[i] = exp2[i];
    __syncthreads();
    int w = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= tiles * nh) return;
    int ti = w / nh, head = w % nh;
    int lane = threadIdx.x % 32, g = lane / 4;
    int r0 = tile[3 * ti], rows = tile[3 * ti + 1], chunk0 = tile[3 * ti + 2];
    int kvh = head / (nh / nkv), kvd = nkv * hd;
    int ra = r0 + g, rb = r0 + g + 8;
    int na = g < rows ? pos[ra] + 1 : 0, nb = g + 8 < rows ? pos[rb] + 1 : 0;
    int qea = g < rows ? qexp[ra * nh + head] : 0, qeb = g + 8 < rows ? qexp[rb * nh + head] : 0;
    int n = pos[r0 + rows - 1] + 1;
    i64 cache = (i64)layer * slots + slot[r0];
    const i16* kbase = kc + cache * cap * kvd + kvh * hd;
    const int* ke = kexpc + cache * cap * nkv + kvh;
    // v_pack's words: per (chunk, kv head, eight channels, limb), 32 lanes x 2.
    i64 vchunk = (i64)nkv * (hd / 8) * 3 * 64;
    const u32* vp_run = vp + (i64)chunk0 * vchunk + (i64)kvh * (hd / 8) * 3 * 64;
    int4* sp = sq4 + (i64)(threadIdx.x / 32) * per_warp;
    const int* qa = q + ((i64)ra * nh + head) * hd;
    const int* qb = q + ((i64)rb * nh + head) * hd;
    double* oa = pv + ((i64)ra * nh + head) * hd;
    double* ob = pv + ((i64)rb * nh + head) * hd;
    tile_attention<KS>(lane, rows, qa, qb, qea, qeb, kbase, ke, nkv, kvd, n, na, nb,
                       score_scale, sexp2, vp_run, vchunk, hd, sp, oa, ob, keep != 0);
}

#define ATT_MMA_KERNEL(NAME, KS)                                                               \
    extern "C" __global__ void NAME(int tiles, const int* tile, int nh, int nkv,              \
                                    const int* q, const int* qexp, const i16* kc,             \
                                    const int* kexpc, const int* pos, const int* slot,        \
                                    i64 score_scale, const i64* exp2, const u32* vp,          \
                                    int layer, int slots, int cap, double* pv, int keep) {    \
        att_mma<KS>(tiles, tile, nh, nkv, q, qexp, kc, kexpc, pos, slot, score_scale, exp2,   \
                    vp, layer, slots, cap, pv, keep);                                          \
    }
ATT_MMA_KERNEL(att_mma_h32, 1)
ATT_MMA_KERNEL(att_mma_h64, 2)
ATT_MMA_KERNEL(att_mma_h96, 3)
ATT_MMA_KERNEL(att_mma_h128, 4)
#undef ATT_MMA_KERNEL

// The values of the runs' windows as att_mma's B fragments: runs[3 y] is run y's window slot,
// runs[3 y + 1] its positions (from 0), runs[3 y + 2] its first chunk of 32 positions in vp;
// thread per (chunk, kv head, eight channels, lane) of run blockIdx.y, each writing its
// lane's two words of each limb (positions past the window's as zero).
extern "C" __global__ void v_pack(int nkv, int hd, const int* runs, const int* vc, int layer,
                                  int slots, int cap, uint2* vp) {
    const int* r = runs + 3 * (i64)blockIdx.y;
    int n = r[1], cts = hd / 8;
    i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (i64)((n + 31) / 32) * nkv * cts * 32) return;
    int lane = (int)(t % 32);
    i64 rest = t / 32;
    int ct = (int)(rest % cts), kvh = (int)(rest / cts % nkv), ch = (int)(rest / cts / nkv);
    int g = lane / 4, tt = lane % 4;
    const int* col = vc + ((i64)layer * slots + r[0]) * cap * nkv * hd + kvh * hd + 8 * ct + g;
    u32 w[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    for (int reg = 0; reg < 2; reg++)
        #pragma unroll
        for (int b = 0; b < 4; b++) {
            // K index 16 reg + 4 tt + b is position 16 reg + 2 tt + b (b < 2) or
            // 16 reg + 8 + 2 tt + b - 2 (see above).
            int j = 32 * ch + 16 * reg + (b < 2 ? 2 * tt + b : 8 + 2 * tt + b - 2);
            int v = j < n ? col[(i64)j * nkv * hd] : 0;
            w[0][reg] |= (u32)(v & 255) << (8 * b);
            w[1][reg] |= (u32)((v >> 8) & 255) << (8 * b);
            w[2][reg] |= (u32)((v >> 16) & 255) << (8 * b);
        }
    uint2* at = vp + ((((i64)(r[2] + ch) * nkv + kvh) * cts + ct) * 3) * 32 + lane;
    for (int l = 0; l < 3; l++) at[32 * l] = make_uint2(w[l][0], w[l][1]);
}
#endif  // ATT_MMA
