# Prepared in stop 30 for the next loan, after the model's halves (call7_model_half.sh with
# t36.xz in .gpu1, call8_model_half.sh): v36 = main with att_mma the default and
# LMGC_CUDA_NORM_REGS (opt-in), v28 = stop 27's main; the README's runs with no LMGC_*
# settings, norm_rows in registers against norm_rows, and FP32 / int8 matmul in the same call.
# Then call10_tests_not_run.sh with t36 (the whole cuda:: suite).
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath) LMGC_CACHE_DIR=/root/.cache/lmgc
for f in v36 v28; do xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; done
cd /root/w && cp -n $G/*.safetensors . 2>/dev/null
S=$OUT/summary9.txt; L=$OUT/log9.txt; B=/root/b/v36
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> $S
run() { local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /root/w/mem.$name 2>/dev/null &
  local sp=$!; local t0=$(date +%s%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s%N); kill $sp 2>/dev/null; wait $sp 2>/dev/null
  local mem=$(sort -n /root/w/mem.$name | tail -1)
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem $(grep -o '"load_seconds":[0-9.]*\|"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*\|"tokens_per_s": [0-9.]*\|"att_mma":[0-9.]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L; }
E="--codec hybrid --backend cuda --lanes 4096 --window 256 --json"
# First runs of a binary pay the driver's compilation of its PTX (20-30 s): a128 warms both.
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: gpu file == cpu file" >> $S
run a128_v28 /root/b/v28 compress a128.safetensors --codec hybrid --backend cuda -o a128.v28.lmgc --json
LMGC_PROFILE=prior run e0 $B compress step000000.safetensors $E -o e0.lmgc
LMGC_PROFILE=prior run e8 $B compress steps8.safetensors $E -o e8.lmgc
LMGC_PROFILE=prior run e8b $B compress steps8.safetensors $E -o e8b.lmgc
LMGC_CUDA_NORM_REGS=on LMGC_PROFILE=prior run e8_R $B compress steps8.safetensors $E -o e8_R.lmgc
cmp e8.lmgc e8_R.lmgc >> $S 2>&1 && echo "e8_R == e8" >> $S
for c in off on; do LMGC_CUDA_NORM_REGS=$c LMGC_PROFILE=1 run p_$c $B compress step000000.safetensors $E -o p_$c.lmgc
  grep "lmgc profile" /root/w/p_$c.out | tail -1 >> $S; done
LMGC_PROFILE=prior run e8_v28 /root/b/v28 compress steps8.safetensors $E -o e8_v28.lmgc
cmp e8.lmgc e8_v28.lmgc >> $S 2>&1 && echo "e8 == v28's file" >> $S
cmp e8.lmgc e8b.lmgc >> $S 2>&1 && echo "e8 == e8b" >> $S
run bench $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench.json
grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench.json | tr '\n' ' ' >> $S; echo >> $S
LMGC_PROFILE=prior run d8 $B decompress e8.lmgc --backend cuda --json -o d8.st
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8 == input" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
python3 - >> $S 2>&1 <<'PY'
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(8192, 8192, device='cuda'); b = torch.randn(8192, 8192, device='cuda')
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.time()
for _ in range(20): a @ b
torch.cuda.synchronize(); print('fp32 matmul 8192^3 TFLOP/s', round(2 * 8192**3 * 20 / (time.time() - t) / 1e12, 1))
x = torch.randint(-128, 127, (8192, 8192), dtype=torch.int8, device='cuda'); y = torch.randint(-128, 127, (8192, 8192), dtype=torch.int8, device='cuda')
for _ in range(3): torch._int_mm(x, y)
torch.cuda.synchronize(); t = time.time()
for _ in range(20): torch._int_mm(x, y)
torch.cuda.synchronize(); print('int8 _int_mm 8192^3 TOP/s', round(2 * 8192**3 * 20 / (time.time() - t) / 1e12, 1))
PY
echo "done at ${SECONDS}s" >> $S
