# Call (2026-12-07 s28 #4): v31 = att_mma with four tiles of keys loaded at once, the exp2
# table in shared memory and v_pack a word per thread, against v28 (stop 27's main) on the
# same machine; tests first.
# NOT RUN: every device start after call 3 was refused. v31 (and t31) were built from the
# tree before att_mma became opt-in: att_mma on by default, LMGC_CUDA_ATT_MMA=off for the old
# path, as this script assumes; their kernels are main's (da4761b). With a binary built from
# main, set LMGC_CUDA_ATT_MMA=on on the v31 encode runs instead.
set -u
G=$PWD/.gpu8
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v28 v31 t31; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
B=/root/b/v31
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v31 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
/root/b/v28 compress a128.safetensors --codec hybrid --backend cuda -o a128.28.lmgc > /dev/null 2>&1
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v31 v28; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
LMGC_CUDA_ATT_MMA=off LMGC_PROFILE=prior run e_v31_off /root/b/v31 $E -o e_v31_off.lmgc
for w in 8; do LMGC_CUDA_ATT_MMA_WARPS=$w LMGC_PROFILE=prior run e_v31_w$w /root/b/v31 $E -o e_v31_w$w.lmgc; cmp e_v31_w$w.lmgc e_v28.lmgc >> $S 2>&1 && echo "w$w file == v28 file" >> $S; done
cmp e_v28.lmgc e_v31.lmgc >> $S 2>&1 && echo "e256: v28 file == v31 file" >> $S
cmp e_v28.lmgc e_v31_off.lmgc >> $S 2>&1 && echo "e256: v28 file == v31 off file" >> $S
LMGC_PROFILE=1 run pe_v31 /root/b/v31 $E -o pe.lmgc
grep "lmgc profile" pe_v31.out >> $S
timeout 240 /root/b/t31 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
run d_v31 /root/b/v31 decompress e_v31.lmgc --backend cuda --json -o d.st
cmp d.st step000000.safetensors >> $S 2>&1 && echo "d_v31 == input" >> $S
for v in v31 v28; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
for v in v31 v28; do LMGC_PROFILE=prior run e8_$v /root/b/$v compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_$v.lmgc --json; done
cmp e8_v28.lmgc e8_v31.lmgc >> $S 2>&1 && echo "e8: v28 file == v31 file" >> $S
LMGC_PROFILE=prior run d8_v31 /root/b/v31 decompress e8_v28.lmgc --backend cuda -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8_v31: decoded == input" >> $S
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
