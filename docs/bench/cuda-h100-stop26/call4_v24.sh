# Call (2026-12-07 s26 #4): v24 = main candidate: encoder prefill calls of >= 1M tokens,
# decoder steps in groups with each call's tables deferred into the next call, table threads
# one core short (LMGC_TABLE_THREADS), att_dots (prefill q.k on the int8 tensor cores), the
# decoder's batch 4,096 on a GPU by default. Against v20 (stop 25) on the same machine.
set -u
G=$PWD/.gpu4
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v20 v24 t24; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/a128.safetensors $G/a128.v14.cpu.lmgc $G/steps8.safetensors . 2>/dev/null
S=$OUT/summary.txt; L=/root/w/log.txt
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
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem $(grep -o '"load_seconds":[0-9.]*\|"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
timeout 300 /root/b/t24 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v24 v20; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v20.lmgc e_v24.lmgc >> $S 2>&1 && echo "e256: v20 file == v24 file" >> $S
D="decompress e_v20.lmgc --backend cuda --batch 4096 --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
for v in v24 v20; do LMGC_PROFILE=prior run d_$v /root/b/$v $D -o d_$v.st; ck d_$v.st; done
LMGC_PROFILE=prior run d_v24_auto /root/b/v24 decompress e_v20.lmgc --backend cuda --json -o d_auto.st; ck d_auto.st
B=/root/b/v24
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v24 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
for v in v24 v20; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
LMGC_PROFILE=prior run e8_v24 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run e8_v20 /root/b/v20 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_20.lmgc --json
cmp e8.lmgc e8_20.lmgc >> $S 2>&1 && echo "e8: v24 file == v20 file" >> $S
LMGC_PROFILE=prior run d8_v24 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v20 /root/b/v20 decompress e8.lmgc --backend cuda --batch 4096 -o d8_20.st --json
for t in 8; do LMGC_TABLE_THREADS=$t LMGC_PROFILE=prior run d8_v24_t$t $B decompress e8.lmgc --backend cuda --batch 4096 -o d8t$t.st --json
cmp d8t$t.st steps8.safetensors >> $S 2>&1 && echo "d8 t$t: decoded == input" >> $S; done
python3 - >> $S 2>&1 <<'PY'
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(8192, 8192, device='cuda'); b = torch.randn(8192, 8192, device='cuda')
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.time()
for _ in range(20): a @ b
torch.cuda.synchronize(); print('fp32 matmul 8192^3 TFLOP/s', round(2 * 8192**3 * 20 / (time.time() - t) / 1e12, 1))
PY
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . 2>/dev/null
