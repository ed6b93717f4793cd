# Call (2026-12-07 s25 #3): v20 = v19 + 64-bit key maxima and wide rounding in ffn_row,
# att_out_row, norm_row, qk_rope; att_row's softmax a warp per head; steps split in parts
# only from 2 x 2,048 rows. Against v18 (stop 24) and v19 on the same machine.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v18 v19 v20 t20; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem $(grep -o '"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
timeout 300 /root/b/t20 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v20 v18 v19 v20; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v18.lmgc e_v20.lmgc >> $S 2>&1 && echo "e256: v18 file == v20 file" >> $S
LMGC_CUDA_ROW_THREADS=128 LMGC_PROFILE=prior run e_v20_r128 /root/b/v20 $E -o e_r128.lmgc
cmp e_v18.lmgc e_r128.lmgc >> $S 2>&1 && echo "e256: v20 rows of 128 == v18" >> $S
for ab in 128 64; do LMGC_CUDA_ATT_BLOCK=$ab LMGC_PROFILE=prior run e_v20_ab$ab /root/b/v20 $E -o e_ab$ab.lmgc; cmp e_v18.lmgc e_ab$ab.lmgc >> $S 2>&1 && echo "e256: att block $ab == v18" >> $S; done
LMGC_PROFILE=1 run pe_v20 /root/b/v20 $E -o pe.lmgc
D="decompress e_v18.lmgc --backend cuda --batch 4096 --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
for v in v18 v20; do LMGC_PROFILE=prior run d_$v /root/b/$v $D -o d_$v.st; ck d_$v.st; done
LMGC_CUDA_ROW_THREADS=128 LMGC_PROFILE=prior run d_v20_r128 /root/b/v20 $D -o d_r128.st; ck d_r128.st
LMGC_PROFILE=1 run pd_v20 /root/b/v20 $D -o pd.st; ck pd.st
B=/root/b/v20
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v20 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
run bench $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench.json
grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench.json | tr '\n' ' ' >> $S; echo >> $S
LMGC_PROFILE=prior run e8 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8_v20 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v18 /root/b/v18 decompress e8.lmgc --backend cuda --batch 4096 -o d8_18.st --json
python3 - >> $S 2>&1 <<'PY'
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(8192, 8192, device='cuda'); b = torch.randn(8192, 8192, device='cuda')
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.time()
for _ in range(20): a @ b
torch.cuda.synchronize(); print('fp32 matmul 8192^3 TFLOP/s', round(2 * 8192**3 * 20 / (time.time() - t) / 1e12, 1))
PY
NCU=/usr/local/cuda/bin/ncu
timeout 150 $NCU --kernel-name regex:'^(ffn_row|norm_rows|qk_rope|att_out_row|att_probs)$' --launch-skip 300 --launch-count 5 --section SourceCounters --section SpeedOfLight --import-source no -f -o /root/w/enc20 /root/b/v20 $E -o x.lmgc > /root/w/ncu_e20.log 2>&1
echo "ncu enc rc=$? at ${SECONDS}s" >> $S
timeout 150 $NCU --kernel-name regex:'^(att_row|norm_rows_block|ffn_row|qk_rope|att_out_row)$' --launch-skip 5000 --launch-count 5 --section SourceCounters --section SpeedOfLight -f -o /root/w/dec20 /root/b/v20 $D -o x.st > /root/w/ncu_d20.log 2>&1
echo "ncu dec rc=$? at ${SECONDS}s" >> $S
for r in enc20 dec20; do $NCU -i /root/w/$r.ncu-rep --page source --csv --print-source sass > /root/w/src_$r.csv 2>/dev/null; $NCU -i /root/w/$r.ncu-rep --page details > /root/w/det_$r.txt 2>&1; rm -f /root/w/$r.ncu-rep; done
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . a128.gpu.lmgc 2>/dev/null
