// Prefill attention's dot products q · k on the int8 tensor cores (mma.sync m16n8k32, sm_80
// and later), for the rows of the attention GEMM runs: the same integers as the f64 GEMM they
// replace (docs/decisions/0012). Compiled by NVRTC for compute_80 apart from kernels.cu, which
// targets every GPU; the engine loads it only on a device that runs it.
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
