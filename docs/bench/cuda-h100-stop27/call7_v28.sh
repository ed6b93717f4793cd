# Call (2026-12-07 s27 #7): v28 = main's candidate (att_row_g3: att_row compiled per group
# size, P·V four channels per 16-byte load, 64 threads per block), against v24 (stop 26's
# main) on the same machine: the README's table.
set -u
G=$PWD/.gpu5
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v24 v28 t28; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
timeout 300 /root/b/t28 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
# Cross-backend (and the driver's PTX cache warmed for both binaries).
B=/root/b/v28
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v28 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
/root/b/v24 compress a128.safetensors --codec hybrid --backend cuda -o a128.24.lmgc > /dev/null 2>&1
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v28 v24; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v24.lmgc e_v28.lmgc >> $S 2>&1 && echo "e256: v24 file == v28 file" >> $S
D="decompress e_v24.lmgc --backend cuda --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
for rep in 1 2; do for v in v28 v24; do LMGC_PROFILE=prior run d_${v}_$rep /root/b/$v $D -o d.st; ck d.st; done; done
for v in v28 v24; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
for v in v28 v24; do LMGC_PROFILE=prior run e8_$v /root/b/$v compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_$v.lmgc --json; done
cmp e8_v28.lmgc e8_v24.lmgc >> $S 2>&1 && echo "e8: v28 file == v24 file" >> $S
for nv in d8_v28_1:v28 d8_v24:v24 d8_v28_2:v28; do n=${nv%%:*}; v=${nv##*:}
LMGC_PROFILE=prior run $n /root/b/$v decompress e8_v24.lmgc --backend cuda -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "$n: decoded == input" >> $S; done
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
