mkdir -p /root/m /root/b && cp .gpu1/part.00 /root/m/ && find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null | xargs -n1 dirname | sort -u | grep -v stubs | paste -sd: > /root/m/ldpath; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
xz -dc .gpu1/t11.xz > /root/b/t11 && chmod +x /root/b/t11
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
/root/b/t11 cuda:: --test-threads 1 2>&1 | tee $OUT/tests.txt | grep -E 'test |result'
# call 2: the model second half (see docs/perf.md); call 3:
# Call 3: tests, bench, a128, encodes of v10 and v11 (same call), cmp.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v10 v11 t11; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/a128.safetensors $G/a128.cpu.lmgc . 2>/dev/null
S=$OUT/summary.txt; L=$OUT/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> $S
run() { # name cmd...
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /root/w/mem.$name 2>/dev/null &
  local sp=$!
  local t0=$(date +%s.%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s.%N)
  kill $sp 2>/dev/null; wait $sp 2>/dev/null
  local mem=$(sort -n /root/w/mem.$name | tail -1)
  echo "$name rc=$rc wall=$(echo "$t1 - $t0" | bc) peak_mib=$mem" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
run bench11 /root/b/v11 model bench --backend cuda --window 2048 --batch 64 --json b64.json
grep -o '"digest"[^,]*\|prefill_equals_decode[^,]*\|tokens_per_s[^,]*' /root/w/bench11.out b64.json 2>/dev/null | head -8 >> $S
run a128 /root/b/v11 compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.cpu.lmgc >> $S 2>&1 && echo "a128 gpu == cpu" >> $S
cp a128.gpu.lmgc $OUT/
for v in v10 v11; do
  LMGC_PROFILE=prior run c2048_$v /root/b/$v compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 -o c2048_$v.lmgc --json
  LMGC_PROFILE=prior run c256_$v /root/b/$v compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 --window 256 -o c256_$v.lmgc --json
  [ $v = v11 ] && LMGC_PROFILE=prior run c256L_$v /root/b/$v compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o c256L_$v.lmgc --json
done
LMGC_PROFILE=prior run c256_v11r /root/b/v11 compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 --window 256 -o c256_v11r.lmgc --json
for k in c2048 c256; do cmp ${k}_v10.lmgc ${k}_v11.lmgc >> $S 2>&1 && echo "$k v10 == v11" >> $S; done
grep -h -o '"mb_per_s"[^,]*\|"seconds"[^,]*' /root/w/c*.out | head -0
for f in /root/w/c*_v1*.out; do echo "$(basename $f): $(grep -o '"[a-z_]*s[a-z_]*": *[0-9.]*' $f | tr '\n' ' ' | head -c 600)" >> $S; done
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
# Call 4: decodes (v11, v10 baseline one-lane), profiles.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
cd /root/w
S=$OUT/summary.txt; L=$OUT/log.txt
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /root/w/mem.$name 2>/dev/null &
  local sp=$!
  local t0=$(date +%s.%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s.%N)
  kill $sp 2>/dev/null; wait $sp 2>/dev/null
  local mem=$(sort -n /root/w/mem.$name | tail -1)
  echo "$name rc=$rc wall=$(echo "$t1 - $t0" | bc) peak_mib=$mem" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
LMGC_PROFILE=prior run d256L_v11 /root/b/v11 decompress c256L_v11.lmgc --backend cuda --batch 4096 -o d256L_v11.st --json
cmp d256L_v11.st step000000.safetensors >> $S 2>&1 && echo "d256L_v11 ok" >> $S
LMGC_PROFILE=prior run d256L_v10 /root/b/v10 decompress c256L_v11.lmgc --backend cuda --batch 4096 -o d256L_v10.st --json
cmp d256L_v10.st step000000.safetensors >> $S 2>&1 && echo "d256L_v10 ok" >> $S
LMGC_PROFILE=prior run d2048_v11 /root/b/v11 decompress c2048_v11.lmgc --backend cuda --batch 512 -o d2048_v11.st --json
cmp d2048_v11.st step000000.safetensors >> $S 2>&1 && echo "d2048_v11 ok" >> $S
LMGC_PROFILE=1 run p_c256 /root/b/v11 compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 --window 256 -o p.lmgc --json
LMGC_PROFILE=1 run p_c2048 /root/b/v11 compress step000000.safetensors --codec hybrid --backend cuda --lanes 512 -o p2.lmgc --json
LMGC_PROFILE=1 run p_d256L /root/b/v11 decompress c256L_v11.lmgc --backend cuda --batch 4096 -o p.st --json
for f in /root/w/d*.out; do echo "$(basename $f): $(grep -o '"[a-z_]*s[a-z_]*": *[0-9.]*' $f | tr '\n' ' ' | head -c 600)" >> $S; done
for f in /root/w/p_*.out; do echo "=== $f" >> $OUT/profile.txt; cat $f >> $OUT/profile.txt; done
