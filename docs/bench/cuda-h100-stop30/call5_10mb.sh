# Call 5: repeat the 10 MB encodes (v28, v34 with att_mma kept scores) and decode 10 MB end to end with v34.
set -u
export LD_LIBRARY_PATH=$(cat /root/m/ldpath) LMGC_CACHE_DIR=/root/.cache/lmgc
cd /root/w; S=$OUT/summary5.txt; L=/root/w/log5.txt
run() { local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /root/w/mem.$name 2>/dev/null &
  local sp=$!; local t0=$(date +%s%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s%N); kill $sp 2>/dev/null; wait $sp 2>/dev/null
  local mem=$(sort -n /root/w/mem.$name | tail -1)
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) peak_mib=$mem $(grep -o '"load_seconds":[0-9.]*\|"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*\|"tokens_per_s": [0-9.]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L; }
K="env LMGC_CUDA_ATT_MMA=on"
for k in 2 3; do
  LMGC_PROFILE=prior run e8_K_$k $K /root/b/v34 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_K$k.lmgc --json
  LMGC_PROFILE=prior run e8_B_$k /root/b/v28 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_B$k.lmgc --json
done
cmp e8_K2.lmgc e8_B.lmgc >> $S 2>&1 && echo "e8_K2 == v28 file" >> $S
LMGC_PROFILE=prior run d8_K $K /root/b/v34 decompress e8_K.lmgc --backend cuda --json -o d8.st
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8_K == input" >> $S
LMGC_PROFILE=prior run e0_K $K /root/b/v34 compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e0_K.lmgc --json
cp $L $OUT/; echo "done at ${SECONDS}s" >> $S
