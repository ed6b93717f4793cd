#!/usr/bin/env bash
# Compiles crates/lmgc-model/src/cuda/kernels.cu as C++ (g++, syntax and types only; with
# NORM_REGS, which adds kernels only) with
# one 32-lane warp and with one thread per warp, against a shim of the CUDA built-ins it
# uses. No GPU needed: this catches what NVRTC would otherwise only report on a GPU host.
# Then runs arith_test.cpp, the fast integer helpers against their definitions,
# attention_test.cpp, the fused attention kernels against the three they replace, and
# mma_test.cpp, mma.cu's tensor-core kernels with a warp of host threads.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/shim.h" <<'SHIM'
#include <cmath>
struct dim3 { unsigned x, y, z; };
extern dim3 threadIdx, blockIdx, blockDim;
struct int4 { int x, y, z, w; };
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__
inline void __syncthreads() {}
template <class T> T __shfl_sync(unsigned, T v, int) { return v; }
template <class T> T __shfl_xor_sync(unsigned, T v, int) { return v; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int atomicExch(int* p, int v) { int o = *p; *p = v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    unsigned long long o = *p; *p += v; return o;
}
inline void __syncwarp() {}
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
    unsigned long long o = *p; if (v > o) *p = v; return o;
}
inline double __longlong_as_double(long long v) { double d; __builtin_memcpy(&d, &v, 8); return d; }
inline long long __double_as_longlong(double d) { long long v; __builtin_memcpy(&v, &d, 8); return v; }
SHIM
{ echo '#include "shim.h"'; cat crates/lmgc-model/src/cuda/kernels.cu; } > "$tmp/k.cpp"
for warp in 32 1; do
    g++ -std=c++17 -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas \
        -Werror -DWARP=$warp -DNORM_REGS -I"$tmp" "$tmp/k.cpp"
done
echo "kernels.cu compiles as C++ with WARP=32 and WARP=1"
# The fast paths of its integer helpers against their definitions (host-run).
{ cat "$tmp/k.cpp"; cat crates/lmgc-model/src/cuda/arith_test.cpp; } > "$tmp/t.cpp"
echo 'dim3 threadIdx, blockIdx, blockDim; i64 sz[1]; int4 sq4[1];' >> "$tmp/t.cpp"
g++ -std=c++17 -O2 -Wno-unused-parameter -Wno-unused-function -DWARP=32 -I"$tmp" "$tmp/t.cpp" \
    -o "$tmp/t"
"$tmp/t"
# The fused decoding attention kernels against the three they replace, a block as one
# thread. Their dynamic shared memory is an int4 array read as ints and i64s, CUDA's idiom:
# g++ may not assume strict aliasing there.
{ cat "$tmp/k.cpp"; cat crates/lmgc-model/src/cuda/attention_test.cpp; } > "$tmp/a.cpp"
g++ -std=c++17 -O2 -fno-strict-aliasing -Wno-unused-parameter -Wno-unused-function -DWARP=1 \
    -I"$tmp" "$tmp/a.cpp" -o "$tmp/a"
"$tmp/a"
# mma.cu's kernels after kernels.cu (as the engine compiles them), a warp as 32 host threads
# and mma.sync and the shuffles emulated between them.
cat > "$tmp/mma_shim.h" <<'SHIM'
#include <cmath>
#include <cstring>
struct dim3 { unsigned x, y, z; };
struct int4 { int x, y, z, w; };
struct short4 { short x, y, z, w; };
struct uint2 { unsigned x, y; };
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__
thread_local dim3 thread_block, thread_index;
const dim3 blockDim = {32, 1, 1};
#define blockIdx thread_block
#define threadIdx thread_index
void mma_emulated(int* c, const unsigned* a, const unsigned* b, bool as, bool bs);
unsigned long long shfl_emulated(unsigned long long v, int m, bool by_xor);
void block_sync_emulated();
template <class T> T shfl_as(T v, int m, bool by_xor) {
    static_assert(sizeof(T) <= 8, "one 64-bit word");
    unsigned long long x = 0;
    std::memcpy(&x, &v, sizeof(T));
    x = shfl_emulated(x, m, by_xor);
    T r;
    std::memcpy(&r, &x, sizeof(T));
    return r;
}
template <class T> T __shfl_sync(unsigned, T v, int src) { return shfl_as(v, src, false); }
template <class T> T __shfl_xor_sync(unsigned, T v, int m) { return shfl_as(v, m, true); }
// A block is one warp here: its barrier is the warp's.
inline void __syncthreads() { block_sync_emulated(); }
inline void __syncwarp() { block_sync_emulated(); }
inline bool __all_sync(unsigned, bool p) {
    unsigned long long v = p;
    for (int m = 1; m < 32; m <<= 1) v &= shfl_emulated(v, m, true);
    return v != 0;
}
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int atomicExch(int* p, int v) { int o = *p; *p = v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    unsigned long long o = *p; *p += v; return o;
}
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) {
    unsigned long long o = *p; if (v > o) *p = v; return o;
}
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline long long __double_as_longlong(double d) { long long v; std::memcpy(&v, &d, 8); return v; }
SHIM
# Alone, as the engine compiles it without att_mma (LMGC_CUDA_ATT_MMA=off).
{ echo '#include "mma_shim.h"'; cat crates/lmgc-model/src/cuda/mma.cu; } > "$tmp/m0.cpp"
g++ -std=c++20 -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -I"$tmp" \
    "$tmp/m0.cpp"
{ echo '#include "mma_shim.h"'; cat crates/lmgc-model/src/cuda/kernels.cu \
    crates/lmgc-model/src/cuda/mma.cu crates/lmgc-model/src/cuda/mma_test.cpp; } > "$tmp/m.cpp"
# att_mma's key loads four tiles at a time (the default), two and one
# (LMGC_CUDA_ATT_MMA_LOADS).
for loads in 4 2 1; do
    g++ -std=c++20 -O1 -pthread -fno-strict-aliasing -DATT_MMA -DATT_MMA_LOADS=$loads -Wall \
        -Wextra -Wno-unused-parameter -Wno-unused-function -Wno-unknown-pragmas -I"$tmp" \
        "$tmp/m.cpp" -o "$tmp/m"
    echo "att_mma with ATT_MMA_LOADS=$loads:"
    "$tmp/m"
done
