# Call (2026-12-07 s25): v19 = fused decoding attention (att_row; LMGC_CUDA_FUSED_ATT=off for
# the three kernels) + decoding steps in parts (LMGC_STEP_PARTS, default 2) against v18.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v18 v19 t19; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
timeout 300 /root/b/t19 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
LMGC_PROFILE=prior run e_v19 /root/b/v19 $E -o e_v19.lmgc
LMGC_PROFILE=prior run e_v18 /root/b/v18 $E -o e_v18.lmgc
cmp e_v18.lmgc e_v19.lmgc >> $S 2>&1 && echo "e256: v18 file == v19 file" >> $S
# Prefill attention as att_row (every row) instead of the f64 GEMMs.
LMGC_CUDA_ATTENTION=kernels LMGC_PROFILE=prior run e_v19_k /root/b/v19 $E -o e_v19_k.lmgc
cmp e_v18.lmgc e_v19_k.lmgc >> $S 2>&1 && echo "e256: v19 kernels file == v18 file" >> $S
LMGC_CUDA_ATTENTION=kernels LMGC_PROFILE=1 run pe_v19_k /root/b/v19 $E -o pe_k.lmgc
LMGC_PROFILE=1 run pe_v19 /root/b/v19 $E -o pe.lmgc
D="decompress e_v18.lmgc --backend cuda --batch 4096 --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
LMGC_PROFILE=prior run d_v18 /root/b/v18 $D -o d_v18.st; ck d_v18.st
LMGC_PROFILE=prior run d_v19 /root/b/v19 $D -o d_v19.st; ck d_v19.st
LMGC_CUDA_FUSED_ATT=off LMGC_PROFILE=prior run d_v19_nofuse /root/b/v19 $D -o d_nf.st; ck d_nf.st
LMGC_STEP_PARTS=1 LMGC_PROFILE=prior run d_v19_p1 /root/b/v19 $D -o d_p1.st; ck d_p1.st
LMGC_STEP_PARTS=4 LMGC_PROFILE=prior run d_v19_p4 /root/b/v19 $D -o d_p4.st; ck d_p4.st
for t in 64 256; do LMGC_CUDA_ATT_THREADS=$t LMGC_PROFILE=prior run d_v19_t$t /root/b/v19 $D -o d_t$t.st; ck d_t$t.st; done
LMGC_PROFILE=1 run pd_v19 /root/b/v19 $D -o pd.st; ck pd.st
LMGC_PROFILE=1 run pd_v18 /root/b/v18 $D -o pd18.st
B=/root/b/v19
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v19 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
run bench $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench.json
grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench.json | tr '\n' ' ' >> $S; echo >> $S
LMGC_PROFILE=prior run e8 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8_v19 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v18 /root/b/v18 decompress e8.lmgc --backend cuda --batch 4096 -o d8_18.st --json
# Nsight Compute, if the machine has it: a few launches of the heavy kernels.
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}" >> $S
if [ -n "$NCU" ]; then
  timeout 150 $NCU --kernel-name regex:'ffn_row|norm_rows|att_row|qk_rope|att_out_row|att_probs' --launch-skip 60 --launch-count 12 --section SpeedOfLight --section Occupancy --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis /root/b/v19 $D -o ncu.st > /root/w/ncu_d.txt 2>&1
  echo "ncu decode rc=$?" >> $S
  timeout 150 $NCU --kernel-name regex:'ffn_row|norm_rows|att_probs|qk_rope|att_out_row|gemm|Kernel' --launch-skip 100 --launch-count 12 --section SpeedOfLight --section Occupancy --section ComputeWorkloadAnalysis /root/b/v19 $E -o ncu.lmgc > /root/w/ncu_e.txt 2>&1
  echo "ncu encode rc=$?" >> $S
fi
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . a128.gpu.lmgc 2>/dev/null
