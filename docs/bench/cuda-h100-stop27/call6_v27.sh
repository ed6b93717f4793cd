# Call (2026-12-07 s27 #6): v27 = v26 + att_row per head size 64 too (att_row_g3_h64), 64
# threads by default, LMGC_CUDA_NORM_THREADS. Against v24 (main, stop 26) on the same machine.
set -u
G=$PWD/.gpu5
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v24 v27 t27; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/a128.safetensors $G/a128.v14.cpu.lmgc $G/steps8.safetensors . 2>/dev/null
S=$OUT/summary.txt; L=/root/w/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> $S
nproc >> $S
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
secs() { grep -o '"seconds": [0-9.]*' /root/w/$1.out | tail -1 | cut -d' ' -f2; }
timeout 300 /root/b/t27 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v27 v24; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v24.lmgc e_v27.lmgc >> $S 2>&1 && echo "e256: v24 file == v27 file" >> $S
D="decompress e_v24.lmgc --backend cuda --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
# Decode step 0: v27's defaults (att_row_g3_h64, 64 threads) and variants, v24, twice.
for rep in 1 2; do
  LMGC_PROFILE=prior run d_v27_$rep /root/b/v27 $D -o d.st; ck d.st
  LMGC_PROFILE=prior run d_v24_$rep /root/b/v24 $D -o d.st; ck d.st
  ( export LMGC_CUDA_ATT_ROW=group; LMGC_PROFILE=prior run d_v27_group_$rep /root/b/v27 $D -o d.st ); ck d.st
  ( export LMGC_CUDA_NORM_THREADS=64; LMGC_PROFILE=prior run d_v27_n64_$rep /root/b/v27 $D -o d.st ); ck d.st
  ( export LMGC_CUDA_NORM_THREADS=256; LMGC_PROFILE=prior run d_v27_n256_$rep /root/b/v27 $D -o d.st ); ck d.st
  ( export LMGC_CUDA_ATT_THREADS=128; LMGC_PROFILE=prior run d_v27_a128_$rep /root/b/v27 $D -o d.st ); ck d.st
done
LMGC_PROFILE=1 run pd_v27 /root/b/v27 $D -o pd.st; ck pd.st
( export LMGC_CUDA_ATT_ROW=group; LMGC_PROFILE=1 run pd_v27_group /root/b/v27 $D -o pd.st ); ck pd.st
grep -o '"att_row_[a-z0-9_]*":[0-9.]*' pd_v27.out pd_v27_group.out >> $S
B=/root/b/v27
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v27 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
for v in v27 v24; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
LMGC_PROFILE=prior run e8_v27 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8_v27 $B decompress e8.lmgc --backend cuda -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v24 /root/b/v24 decompress e8.lmgc --backend cuda -o d8_24.st --json
cmp d8_24.st steps8.safetensors >> $S 2>&1 && echo "d8 v24: decoded == input" >> $S
( export LMGC_CUDA_ATT_ROW=group; LMGC_PROFILE=prior run d8_v27_group $B decompress e8.lmgc --backend cuda -o d8g.st --json )
cmp d8g.st steps8.safetensors >> $S 2>&1 && echo "d8 group: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v27b $B decompress e8.lmgc --backend cuda -o d8b.st --json
cmp d8b.st steps8.safetensors >> $S 2>&1 && echo "d8 b: decoded == input" >> $S
LMGC_PROFILE=prior run e8_v24 /root/b/v24 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_24.lmgc --json
cmp e8.lmgc e8_24.lmgc >> $S 2>&1 && echo "e8: v27 file == v24 file" >> $S
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
