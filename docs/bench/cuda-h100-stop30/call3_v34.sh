# Call 3 (prepared 2026-12-07, stop 29): v34 = main (2c31cf1) with att_mma's scores kept from pass 1
# (LMGC_CUDA_ATT_MMA_KEEP), a kernel per head size with its arrays in registers instead of
# local memory, LMGC_CUDA_ATT_MMA_LOADS, and qk_rope's arrays in registers (default path).
# v28 = stop 27's main, the baseline. Paths of v34: D default; K att_mma keeping scores,
# four key tiles per load; K2 the same, two tiles; N recomputing scores; N2 recomputing, two.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
export LMGC_CACHE_DIR=/root/.cache/lmgc
for f in v28 v34; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/*.safetensors . 2>/dev/null
S=$OUT/summary.txt; L=/root/w/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >> $S
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
B=/root/b/v34
D="env LMGC_CUDA_ATT_MMA=off"
K="env LMGC_CUDA_ATT_MMA=on"
K2="env LMGC_CUDA_ATT_MMA=on LMGC_CUDA_ATT_MMA_LOADS=2"
N="env LMGC_CUDA_ATT_MMA=on LMGC_CUDA_ATT_MMA_KEEP=off"
N2="env LMGC_CUDA_ATT_MMA=on LMGC_CUDA_ATT_MMA_KEEP=off LMGC_CUDA_ATT_MMA_LOADS=2"
timeout 120 /root/b/t34 attention_on_tensor_cores --test-threads 1 > /root/w/tests_att.txt 2>&1; echo "att tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test |^test result|panicked' /root/w/tests_att.txt | head -8 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for k in 1 2; do
  LMGC_PROFILE=prior run e_B_$k /root/b/v28 $E -o e_B.lmgc
  for c in D K K2 N N2; do eval "P=\$$c"; LMGC_PROFILE=prior run e_${c}_$k $P $B $E -o e_$c.lmgc; done
done
for c in D K K2 N N2; do cmp e_B.lmgc e_$c.lmgc >> $S 2>&1 && echo "step0: $c file == v28 file" >> $S; done
for c in D K K2 N; do eval "P=\$$c"; LMGC_PROFILE=1 run pe_$c $P $B $E -o pe.lmgc; grep "lmgc profile" pe_$c.out | tail -1 >> $S; done
echo "at ${SECONDS}s" >> $S
for c in B D K; do if [ $c = B ]; then P=/root/b/v28; else eval "P=\"\$$c $B\""; fi
  run bench_$c $P bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$c.json
  echo -n "bench_$c " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$c.json | tr '\n' ' ' >> $S; echo >> $S; done
for c in B D K; do if [ $c = B ]; then P=/root/b/v28; else eval "P=\"\$$c $B\""; fi
  LMGC_PROFILE=prior run e8_$c $P compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_$c.lmgc --json; done
cmp e8_B.lmgc e8_D.lmgc >> $S 2>&1 && echo "e8: D file == v28 file" >> $S
cmp e8_B.lmgc e8_K.lmgc >> $S 2>&1 && echo "e8: K file == v28 file" >> $S
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
run d_D $B decompress e_D.lmgc --backend cuda --json -o d.st
cmp d.st step000000.safetensors >> $S 2>&1 && echo "d_D == input" >> $S
echo "at ${SECONDS}s" >> $S
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . 2>/dev/null
