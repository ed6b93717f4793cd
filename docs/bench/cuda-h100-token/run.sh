# Call 3 (v12 = version 11 kernels + the token serializer): cross-backend a128, encodes, decodes, bench.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
[ -x /root/b/v12 ] || { xz -dc $G/v12.xz > /root/b/v12 && chmod +x /root/b/v12; }
cp -n $G/step000000.safetensors $G/a128.safetensors $G/a128.tok.cpu.lmgc . 2>/dev/null
S=$OUT/summary.txt; L=$OUT/log.txt; B=/root/b/v12
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
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
run a128 $B compress a128.safetensors --codec hybrid --format token --backend cuda -o a128.tok.gpu.lmgc --json
cmp a128.tok.gpu.lmgc a128.tok.cpu.lmgc >> $S 2>&1 && echo "a128 token: gpu file == cpu file" >> $S
run a128d $B decompress a128.tok.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128 token: cpu file decoded on gpu == input" >> $S
cp a128.tok.gpu.lmgc $OUT/
for W in 256 512 1024 2048; do
  LMGC_PROFILE=prior run t${W} $B compress step000000.safetensors --codec hybrid --format token --backend cuda --lanes 4096 --window $W -o t$W.lmgc --json
done
LMGC_PROFILE=prior run t256L512 $B compress step000000.safetensors --codec hybrid --format token --backend cuda --lanes 512 --window 256 -o t256L512.lmgc --json
LMGC_PROFILE=prior run h256 $B compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 --window 256 -o h256.lmgc --json
LMGC_PROFILE=prior run t256r $B compress step000000.safetensors --codec hybrid --format token --backend cuda --lanes 4096 --window 256 -o t256r.lmgc --json
cmp t256.lmgc t256r.lmgc >> $S 2>&1 && echo "t256 repeat: same file" >> $S
for k in t256 t256L512 t512 t1024 t2048; do
  LMGC_PROFILE=prior run d_$k $B decompress $k.lmgc --backend cuda --batch 4096 -o d_$k.st --json
  cmp d_$k.st step000000.safetensors >> $S 2>&1 && echo "d_$k: decoded == input" >> $S
done
for f in /root/w/t*.out /root/w/h*.out /root/w/d_*.out /root/w/a128*.out; do echo "$(basename $f): $(grep -o '"[a-z_]*": *[0-9.]*' $f | tr '\n' ' ' | head -c 700)" >> $S; done
run bench $B model bench --backend cuda --window 256 --batch 1024 --format token --json bench.json
grep -o '"[a-z_]*": *[0-9.a-z]*' bench.json | tr '\n' ' ' >> $S; echo >> $S
LMGC_PROFILE=1 run p_t256 $B compress step000000.safetensors --codec hybrid --format token --backend cuda --lanes 4096 --window 256 -o p.lmgc --json
LMGC_PROFILE=1 run p_d256 $B decompress t256.lmgc --backend cuda --batch 4096 -o p.st --json
cp /root/w/p_*.out $OUT/ 2>/dev/null
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
