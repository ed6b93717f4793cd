# The kernel lab of docs/perf.md's version 10 section: version 9's kernels (k9.cu) against
# version 10's (k10.cu) on synthetic inputs of SmolLM2's shapes, every output buffer compared
# and each kernel timed (CUDA events, median of repeats). A record of that comparison, tied
# to those two versions' kernel signatures, not a maintained tool. On a GPU host with CuPy:
#   git show 11476d1:crates/lmgc-model/src/cuda/kernels.cu > DIR/k9.cu
#   git show 875f3a1:crates/lmgc-model/src/cuda/kernels.cu > DIR/k10.cu
#   python3 docs/bench/cuda-lab-v9-v10.py DIR          # ONLY=pv: decoding attention only
import os, sys, numpy as np, cupy as cp
here = sys.argv[1]
mods = {}
for v in ("k9", "k10"):
    src = open(f"{here}/{v}.cu").read()
    mods[v] = cp.RawModule(code=src, options=("--device-int128", "-std=c++17"))
extra = {u: cp.RawModule(code=open(f"{here}/k10.cu").read(), options=("--device-int128", "-std=c++17", f"-DPV_UNROLL={u}")) for u in (2, 8)}
rng = np.random.default_rng(1)
i32, i64 = np.int32, np.int64
T = 256

def timeit(f, reps=20):
    f(); cp.cuda.Device().synchronize()
    ev = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(reps)]
    for a, b in ev:
        a.record(); f(); b.record()
    b.synchronize()
    ts = sorted(cp.cuda.get_elapsed_time(a, b) for a, b in ev)
    return ts[len(ts) // 2] * 1e3  # us

def grid(n, per=T):
    return ((n + per - 1) // per,), (per,)

def report(name, outs, times):
    same = all(bool((a == b).all()) for a, b in zip(outs["k9"], outs["k10"]))
    print(f"{name:38s} v9 {times['k9']:9.1f} us  v10 {times['k10']:9.1f} us  x{times['k9']/times['k10']:5.2f}  equal={same}", flush=True)
    if not same: print("  MISMATCH", flush=True)

# ---- decode attention: M windows at position p, cap 256
ONLY = os.environ.get('ONLY', '')
M, nh, nkv, hd, cap = 3763, 9, 3, 64, 256
kvd = nkv * hd
for p in ((31, 127, 255) if ONLY in ('', 'pv') else ()):
    pos = cp.full(M, p, dtype=i32); slot = cp.arange(M, dtype=i32); zend = cp.zeros(M, dtype=i32)
    q = cp.asarray(rng.integers(-32767, 32768, (M, nh * hd), dtype=np.int32))
    qexp = cp.asarray(rng.integers(-30, -10, (M, nh), dtype=np.int32))
    kc = cp.asarray(rng.integers(-2047, 2048, (M, cap, kvd), dtype=np.int16))
    kexp = cp.asarray(rng.integers(-30, -10, (M, cap, nkv), dtype=np.int32))
    ss = i64(193635251)
    outs, times = {}, {}
    for v in mods:
        z = cp.zeros((M, nh, cap), dtype=i64)
        k = mods[v].get_function("att_scores")
        g, b = grid(M * nkv * cap)
        f = lambda: k(g, b, (i32(M), i32(nh), i32(nkv), i32(hd), q, qexp, kc, kexp, pos, slot, zend, ss, i32(0), i32(M), i32(cap), z))
        times[v] = timeit(f); outs[v] = [z]
    report(f"att_scores decode p={p}", outs, times)
    zb = cp.zeros((M, nh, cap), dtype=i64)
    kb = mods["k10"].get_function("att_scores_block")
    bt = min(256, (p + 1 + 31) // 32 * 32)
    fb = lambda: kb((M * nkv,), (bt,), (i32(M), i32(nh), i32(nkv), i32(hd), q, qexp, kc, kexp, pos, slot, zend, ss, i32(0), i32(M), i32(cap), zb), shared_mem=(nh // nkv) * hd * 4)
    tb = timeit(fb)
    print(f"{'att_scores_block p=%d bt=%d' % (p, bt):38s} {tb:9.1f} us  equal={bool((zb == outs['k9'][0]).all())}", flush=True)
    zp = cp.asarray(rng.integers(0, 4096, (M, nh, cap), dtype=np.int64))
    vc = cp.asarray(rng.integers(-(1 << 23) + 1, 1 << 23, (M, cap, kvd), dtype=np.int32))
    for span in (128, 64):
        outs, times = {}, {}
        for v in mods:
            acc = cp.zeros((M, nh * hd), dtype=i64)
            k = mods[v].get_function("att_pv")
            spans = (cap + span - 1) // span
            g, b = grid(M * nkv * hd * spans)
            def f():
                acc.fill(0)
                k(g, b, (i32(M), i32(nh), i32(nkv), i32(hd), zp, vc, pos, slot, zend, i32(0), i32(M), i32(cap), i32(span), acc))
            times[v] = timeit(f); outs[v] = [acc]
        report(f"att_pv decode p={p} span={span}", outs, times)
        for u, mod in extra.items():
            acc = cp.zeros((M, nh * hd), dtype=i64)
            k = mod.get_function("att_pv")
            def f():
                acc.fill(0)
                k(g, b, (i32(M), i32(nh), i32(nkv), i32(hd), zp, vc, pos, slot, zend, i32(0), i32(M), i32(cap), i32(span), acc))
            t = timeit(f)
            print(f"{'  unroll %d' % u:38s} {t:9.1f} us  equal={bool((acc == outs['k9'][0]).all())}", flush=True)

# ---- norm_rows: residual rows of d = 576
for M in ((8192, 3763) if not ONLY else ()):
    d = 576
    x = rng.normal(0, 1, (M, d)) * (2.0 ** 24) * rng.choice([0.5, 4, 40], (M, 1))
    x[:, 7] *= 300  # an outlier channel
    x = cp.asarray(x.astype(np.int64))
    gamma = cp.asarray(rng.integers(1 << 40, 1 << 47, d, dtype=np.int64))
    outs, times = {}, {}
    for v in mods:
        limbs = cp.zeros(2 * M * d, dtype=np.int8); hexp = cp.zeros(M, dtype=i32)
        k = mods[v].get_function("norm_rows")
        g, b = grid(M * 32)
        f = lambda: k(g, b, (i32(M), i32(d), x, gamma, i32(-47), i64(1 << 20), np.uint64(0), limbs, hexp))
        times[v] = timeit(f); outs[v] = [limbs, hexp]
    report(f"norm_rows M={M}", outs, times)

# ---- qk_rope from int8 limb products
for M in ((8192, 3763) if not ONLY else ()):
    d, width = 576, 576 + 2 * 192
    gl = cp.asarray(rng.integers(-(1 << 22), 1 << 22, 2 * M * width, dtype=np.int32))
    rowsum = cp.asarray(rng.integers(-5000, 5000, width, dtype=np.int64))
    scale = cp.asarray(rng.integers(1 << 30, 1 << 47, width, dtype=np.int64))
    hexp = cp.asarray(rng.integers(-20, -5, M, dtype=np.int32))
    pos = cp.asarray(rng.integers(0, 256, M, dtype=np.int32)); slot = cp.arange(M, dtype=i32)
    ang = rng.uniform(0, 6.283, (256, 32))
    cosq = cp.asarray(np.round(np.cos(ang) * 2**30).astype(np.int32)); sinq = cp.asarray(np.round(np.sin(ang) * 2**30).astype(np.int32))
    outs, times = {}, {}
    for v in mods:
        qo = cp.zeros((M, d), dtype=i32); qe = cp.zeros((M, nh), dtype=i32)
        kco = cp.zeros((M, 256, kvd), dtype=np.int16); keo = cp.zeros((M, 256, nkv), dtype=i32)
        k = mods[v].get_function("qk_rope")
        g, b = grid(M * (nh + nkv) * 32)
        f = lambda: k(g, b, (i32(M), i32(nh), i32(nkv), i32(hd), np.uint64(0), gl, rowsum, i32(width), scale, i32(-60), hexp, pos, slot, cosq, sinq, i64(2047), qo, qe, kco, keo, i32(0), i32(M), i32(256)))
        times[v] = timeit(f); outs[v] = [qo, qe, kco, keo]
    report(f"qk_rope M={M}", outs, times)

# ---- ffn_act + quant_rows (v10 books row maxima so quant_rows reads once)
for M in ((8192, 3763) if not ONLY else ()):
    f_ = 1536
    gl = cp.asarray(rng.integers(-(1 << 22), 1 << 22, 2 * M * 2 * f_, dtype=np.int32))
    rowsum = cp.asarray(rng.integers(-5000, 5000, 2 * f_, dtype=np.int64))
    scale = cp.asarray(rng.integers(1 << 30, 1 << 47, 2 * f_, dtype=np.int64))
    sig = cp.asarray(np.round(2**30 / (1 + np.exp(-(np.arange(65537) * (64 / 65536) - 32)))).astype(np.int64))
    hexp = cp.full(M, -12, dtype=i32)
    outs, times, tq = {}, {}, {}
    for v in mods:
        sgv = cp.zeros(M, dtype=i32); suv = cp.zeros(M, dtype=i32)
        mod = mods[v]
        mod.get_function("ffn_shifts")(grid(M * 32)[0], (T,), (i32(M), i32(f_), np.uint64(0), gl, rowsum, scale, i64((1 << 31) - 1), sgv, suv))
        mant = cp.zeros((M, f_, 2), dtype=np.int64); eb = cp.zeros(M, dtype=i32); rowhi = cp.zeros(M, dtype=np.uint64)
        limbs = cp.zeros(2 * M * f_, dtype=np.int8); oe = cp.zeros(M, dtype=i32)
        ka, kq = mod.get_function("ffn_act"), mod.get_function("quant_rows")
        ga, ba = grid(M * f_)
        gq, bq = grid(M * 32)
        if v == "k9":
            fa = lambda: ka(ga, ba, (i32(M), i32(f_), np.uint64(0), gl, rowsum, scale, sgv, suv, hexp, i32(-60), sig, mant, eb))
            fq = lambda: kq(gq, bq, (i32(M), i32(f_), mant, i32(0), eb, i64(32767), np.uint64(0), limbs, oe))
        else:
            def fa():
                rowhi.fill(0)
                ka(ga, ba, (i32(M), i32(f_), np.uint64(0), gl, rowsum, scale, sgv, suv, hexp, i32(-60), sig, mant, eb, rowhi))
            fq = lambda: kq(gq, bq, (i32(M), i32(f_), mant, rowhi, i32(0), eb, i64(32767), np.uint64(0), limbs, oe))
        times[v] = timeit(fa); fa(); tq[v] = timeit(fq)
        outs[v] = [mant, eb, sgv, suv, limbs, oe]
    report(f"ffn_act M={M}", outs, times)
    print(f"{'  quant_rows after it':38s} v9 {tq['k9']:9.1f} us  v10 {tq['k10']:9.1f} us", flush=True)

# ---- prefill probabilities (GEMM rows: f64 dot products in, f64 probabilities out)
exp2 = cp.asarray(np.round(2.0 ** (-np.arange(1024) / 1024) * 2**30).astype(np.int64))
for W in ((2048, 256) if not ONLY else ()):
    M, cap = 8192, W
    pos = cp.asarray(np.tile(np.arange(W), M // W).astype(np.int32)); slot = cp.asarray(np.repeat(np.arange(M // W), W).astype(np.int32))
    blk = min(512, W)
    zend = cp.asarray(((np.tile(np.arange(W), M // W) // blk + 1) * blk).astype(np.int32))
    qexp = cp.asarray(rng.integers(-14, -8, (M, nh), dtype=np.int32))
    kexp = cp.asarray(rng.integers(-14, -8, (M // W, cap, nkv), dtype=np.int32))
    dots = rng.integers(-(1 << 26), 1 << 26, (M, nh, cap)).astype(np.float64)
    z0 = cp.asarray(dots.view(np.int64))
    err = cp.zeros(1, dtype=i32)
    outs, times = {}, {}
    for v in mods:
        z = z0.copy()
        k = mods[v].get_function("att_probs_block")
        def f():
            z[...] = z0
            k((M * nh,), (128,), (i32(M), i32(nh), i32(nkv), pos, slot, zend, qexp, kexp, i64(193635251), i32(0), i32(M // W), exp2, i32(cap), z, err), shared_mem=cap * 8)
        times[v] = timeit(f, 5); outs[v] = [z]
    report(f"att_probs_block prefill W={W} (+copy)", outs, times)
    zw = z0.copy()
    kw = mods["k10"].get_function("att_probs")
    def fw():
        zw[...] = z0
        kw(grid(M * nh * 32)[0], (T,), (i32(M), i32(nh), i32(nkv), pos, slot, zend, qexp, kexp, i64(193635251), i32(0), i32(M // W), exp2, i32(cap), zw, err))
    tw = timeit(fw, 5)
    zc = z0.copy()
    def fc(): zc[...] = z0
    print(f"{'  warp kernel; the copy alone':38s} {tw:9.1f} us  equal={bool((zw == outs['k10'][0]).all())}  copy {timeit(fc, 5):9.1f} us", flush=True)
    for bt in (32, 64, 256):
        zb = z0.copy()
        kb = mods["k10"].get_function("att_probs_block")
        def fb():
            zb[...] = z0
            kb((M * nh,), (bt,), (i32(M), i32(nh), i32(nkv), pos, slot, zend, qexp, kexp, i64(193635251), i32(0), i32(M // W), exp2, i32(cap), zb, err), shared_mem=cap * 8)
        print(f"{'  block kernel, %d threads' % bt:38s} {timeit(fb, 5):9.1f} us  equal={bool((zb == outs['k10'][0]).all())}", flush=True)

# ---- add_residual, quant_rows, ffn_shifts
if ONLY: sys.exit(0)
M, d, f_ = 8192, 576, 1536
gl = cp.asarray(rng.integers(-(1 << 22), 1 << 22, 2 * M * d, dtype=np.int32))
rowsum = cp.asarray(rng.integers(-5000, 5000, d, dtype=np.int64))
scale = cp.asarray(rng.integers(1 << 30, 1 << 47, d, dtype=np.int64))
e = cp.asarray(rng.integers(-75, -65, M, dtype=np.int32))
x0 = cp.asarray((rng.normal(0, 1, (M, d)) * 2**26).astype(np.int64))
outs, times = {}, {}
for v in mods:
    x = x0.copy()
    k = mods[v].get_function("add_residual")
    g, b = grid(M * d)
    def f():
        x[...] = x0
        k(g, b, (i32(M), i32(d), np.uint64(0), gl, rowsum, scale, i32(-20), e, x))
    times[v] = timeit(f); outs[v] = [x]
report("add_residual M=8192 (+copy)", outs, times)
gl = cp.asarray(rng.integers(-(1 << 22), 1 << 22, 2 * M * 2 * f_, dtype=np.int32))
rowsum = cp.asarray(rng.integers(-5000, 5000, 2 * f_, dtype=np.int64))
scale = cp.asarray(rng.integers(1 << 30, 1 << 47, 2 * f_, dtype=np.int64))
outs, times = {}, {}
for v in mods:
    sgv = cp.zeros(M, dtype=i32); suv = cp.zeros(M, dtype=i32)
    k = mods[v].get_function("ffn_shifts")
    g, b = grid(M * 32)
    f = lambda: k(g, b, (i32(M), i32(f_), np.uint64(0), gl, rowsum, scale, i64((1 << 31) - 1), sgv, suv))
    times[v] = timeit(f); outs[v] = [sgv, suv]
report("ffn_shifts M=8192", outs, times)
# the copy alone, for the (+copy) rows
zc = cp.zeros((8192, 9, 2048), dtype=np.int64); zc2 = zc.copy()
def fc(): zc2[...] = zc
print(f"{'copy of 8192x9x2048 i64':38s} {timeit(fc, 5):9.1f} us")
