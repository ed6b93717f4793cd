# Call 3 (2026-12-07 s24): v12 (stop 22 token binary) against v18 (branch: load overlapped,
# norms a block per row in decoding steps (LMGC_CUDA_NORM_BLOCK=0 for warps),
# split scales, hybrid tails on a thread; LMGC_CUDA_SPLIT=off for the 128-bit products), one
# call; GPU tests; cross-backend a128; bench (resident) row; profile.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v12 v18 t18; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/a128.safetensors $G/a128.v14.cpu.lmgc . 2>/dev/null
S=$OUT/summary.txt; L=$OUT/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> $S
run() { # name cmd...
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /root/w/mem.$name 2>/dev/null &
  local sp=$!
  local t0=$(date +%s%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s%N)
  kill $sp 2>/dev/null; wait $sp 2>/dev/null
  local mem=$(sort -n /root/w/mem.$name | tail -1)
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem $(grep -o 'load_seconds[^}]*\|"model":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
  cp /root/w/$name.out $OUT/ 2>/dev/null
}
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v12 v18; do LMGC_PROFILE=prior run e_${v}_a /root/b/$v $E -o e_${v}_a.lmgc; done
LMGC_CUDA_SPLIT=off LMGC_PROFILE=prior run e_v18_nosplit /root/b/v18 $E -o e_v18_nosplit.lmgc
cmp e_v12_a.lmgc e_v18_a.lmgc >> $S 2>&1 && echo "e256: v12 file == v18 file" >> $S
cmp e_v18_a.lmgc e_v18_nosplit.lmgc >> $S 2>&1 && echo "e256: v18 split off == on" >> $S
B=/root/b/v18
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.v18.gpu.lmgc --json
cmp a128.v18.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v18 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
cp a128.v18.gpu.lmgc $OUT/
for v in v12 v18; do
  LMGC_PROFILE=prior run d_$v /root/b/$v decompress e_v12_a.lmgc --backend cuda --batch 4096 -o d_$v.st --json
  cmp d_$v.st step000000.safetensors >> $S 2>&1 && echo "d_$v: decoded == input" >> $S
done
python3 - >> $S 2>&1 <<'PY'
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
def bench(f, flops):
    for _ in range(3): f()
    torch.cuda.synchronize(); t = time.time(); n = 20
    for _ in range(n): f()
    torch.cuda.synchronize(); return flops * n / (time.time() - t) / 1e12
a = torch.randn(8192, 8192, device='cuda'); b = torch.randn(8192, 8192, device='cuda')
print('fp32 matmul TFLOP/s', round(bench(lambda: a @ b, 2 * 8192**3), 1))
ai = torch.randint(-128, 127, (8192, 8192), device='cuda', dtype=torch.int8)
bi = torch.randint(-128, 127, (8192, 8192), device='cuda', dtype=torch.int8)
print('int8 _int_mm TOP/s', round(bench(lambda: torch._int_mm(ai, bi), 2 * 8192**3), 1))
PY
timeout 120 /root/b/t18 cuda:: --test-threads 1 > $OUT/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' $OUT/tests.txt | head -20 >> $S
for v in v12 v18; do LMGC_PROFILE=prior run e_${v}_b /root/b/$v $E -o e_${v}_b.lmgc; done
LMGC_CUDA_NORM_BLOCK=0 LMGC_PROFILE=prior run d_v18_warpnorm /root/b/v18 decompress e_v12_a.lmgc --backend cuda --batch 4096 -o d_w.st --json
cmp d_w.st step000000.safetensors >> $S 2>&1 && echo "d_v18_warpnorm: decoded == input" >> $S
LMGC_PROFILE=prior run d_v18_b /root/b/v18 decompress e_v12_a.lmgc --backend cuda --batch 4096 -o d_b.st --json
cp -n $G/steps8.safetensors . 2>/dev/null
LMGC_PROFILE=prior run e8 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
run bench $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench.json
cp bench.json $OUT/ 2>/dev/null
python3 - > $OUT/gemm_shapes.txt 2>&1 <<'PY'
# The engine's GEMM shapes (SmolLM2: K 576 or 1536): int8 _int_mm against fp16 and fp32.
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
def rate(f, flops, n=50):
    for _ in range(5): f()
    torch.cuda.synchronize(); t = time.time()
    for _ in range(n): f()
    torch.cuda.synchronize(); return flops * n / (time.time() - t) / 1e12
for M in (1264, 4096, 8192):
    for K, N in ((576, 960), (576, 576), (576, 3072), (1536, 576), (576, 49152)):
        ai = torch.randint(-128, 127, (M, K), device='cuda', dtype=torch.int8)
        bi = torch.randint(-128, 127, (K, N), device='cuda', dtype=torch.int8)
        bt = bi.t().contiguous().t()
        ah, bh = ai.half(), bi.half(); af, bf = ai.float(), bi.float()
        fl = 2 * M * K * N
        def tr(f):
            try: return round(rate(f, fl), 1)
            except Exception as e: return str(e)[:40]
        r = [tr(lambda: torch._int_mm(ai, bi)), tr(lambda: torch._int_mm(ai, bt)),
             tr(lambda: ah @ bh), tr(lambda: af @ bf)]
        try:
            o = torch.mm(ah, bh, out_dtype=torch.float32)
            ok = torch.equal(o, af @ bf) and torch.equal(o.long(), torch._int_mm(ai, bi).long())
            r.append(tr(lambda: torch.mm(ah, bh, out_dtype=torch.float32)))
        except Exception as e:
            ok = str(e)[:60]
        print(f'M {M} K {K} N {N}: int8 {r[0]} int8(B col-major) {r[1]} fp16 {r[2]} fp32 {r[3]} fp16->fp32 {r[4:]} TOP/s; fp16->fp32 exact: {ok}', flush=True)
PY
LMGC_PROFILE=1 run p_e256 $B $E -o p.lmgc
LMGC_PROFILE=1 run p_d256 $B decompress e_v12_a.lmgc --backend cuda --batch 4096 -o pd.st --json
cp /root/w/*.out $L $OUT/ 2>/dev/null; true
