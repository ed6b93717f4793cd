# Call (2026-12-07 s27 #3): v26 = main + att_row compiled per group size (att_row_g3 for
# SmolLM2) with P·V four channels per 16-byte load (pv_quads); LMGC_CUDA_ATT_MIN_BLOCKS. Against v24 (main, stop 26) on
# the same machine; env variants: LMGC_CUDA_ATT_ROW=generic, LMGC_CUDA_PV_UNROLL, LMGC_CUDA_ATT_THREADS.
set -u
G=$PWD/.gpu5
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v24 v26 t26; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
timeout 300 /root/b/t26 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v26 v24; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v24.lmgc e_v26.lmgc >> $S 2>&1 && echo "e256: v24 file == v26 file" >> $S
D="decompress e_v24.lmgc --backend cuda --batch 4096 --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
# Decode step 0: both binaries twice, then the variants of v26.
for rep in 1 2; do for v in v26 v24; do LMGC_PROFILE=prior run d_${v}_$rep /root/b/$v $D -o d_$v.st; ck d_$v.st; done; done
LMGC_CUDA_ATT_ROW=generic LMGC_PROFILE=prior run d_v26_generic /root/b/v26 $D -o dg.st; ck dg.st
best=""; bt=$(secs d_v26_1)
for var in PV_UNROLL=2 PV_UNROLL=8 ATT_THREADS=64 ATT_THREADS=256 ATT_MIN_BLOCKS=12 ATT_MIN_BLOCKS=16; do
  ( export LMGC_CUDA_$var; LMGC_PROFILE=prior run d_v26_$var /root/b/v26 $D -o dv.st ); ck dv.st
  t=$(secs d_v26_$var); if [ -n "$t" ] && python3 -c "import sys; sys.exit(0 if $t < $bt else 1)"; then best=$var; bt=$t; fi
done
echo "best variant: '${best}' at $bt s" >> $S
LMGC_PROFILE=1 run pd_v26 /root/b/v26 $D -o pd.st; ck pd.st
LMGC_CUDA_ATT_ROW=generic LMGC_PROFILE=1 run pd_v26_generic /root/b/v26 $D -o pdg.st; ck pdg.st
grep -o '"att_row_[a-z_]*":[0-9.]*' pd_v26.out pd_v26_generic.out >> $S
B=/root/b/v26
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v26 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
for v in v26 v24; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
LMGC_PROFILE=prior run e8_v26 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8_v26 $B decompress e8.lmgc --backend cuda -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v24 /root/b/v24 decompress e8.lmgc --backend cuda -o d8_24.st --json
cmp d8_24.st steps8.safetensors >> $S 2>&1 && echo "d8 v24: decoded == input" >> $S
if [ -n "$best" ]; then ( export LMGC_CUDA_$best; LMGC_PROFILE=prior run d8_v26_best $B decompress e8.lmgc --backend cuda -o d8b.st --json )
cmp d8b.st steps8.safetensors >> $S 2>&1 && echo "d8 best: decoded == input" >> $S; fi
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
