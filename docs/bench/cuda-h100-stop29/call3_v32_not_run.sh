# Call 3 (2026-12-07 s29): v32 = main + att_mma keeping pass 1's scores (LMGC_CUDA_ATT_MMA_KEEP,
# default on once att_mma is on). One binary, three paths: D default (stop 27's), K att_mma
# keeping scores, N att_mma recomputing them (stop 28's second form, never measured).
set -u
G=$PWD/.gpu10
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v32 t32; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/*.safetensors $G/a128.v14.cpu.lmgc . 2>/dev/null
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
B=/root/b/v32
K="env LMGC_CUDA_ATT_MMA=on"
N="env LMGC_CUDA_ATT_MMA=on LMGC_CUDA_ATT_MMA_KEEP=off"
timeout 150 /root/b/t32 attention_on_tensor_cores --test-threads 1 > /root/w/tests_att.txt 2>&1; echo "att tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test |^test result|panicked' /root/w/tests_att.txt | head -8 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for k in 1 2; do
  LMGC_PROFILE=prior run e_D$k $B $E -o e_D.lmgc
  LMGC_PROFILE=prior run e_K$k $K $B $E -o e_K.lmgc
  LMGC_PROFILE=prior run e_N$k $N $B $E -o e_N.lmgc
done
cmp e_D.lmgc e_K.lmgc >> $S 2>&1 && echo "step0: K file == D file" >> $S
cmp e_D.lmgc e_N.lmgc >> $S 2>&1 && echo "step0: N file == D file" >> $S
for c in K N; do eval "P=\$$c"; LMGC_PROFILE=1 run pe_$c $P $B $E -o pe.lmgc; grep "lmgc profile" pe_$c.out >> $S; done
LMGC_PROFILE=1 run pe_D $B $E -o pe.lmgc; grep "lmgc profile" pe_D.out >> $S
echo "at ${SECONDS}s" >> $S
for c in D K; do eval "P=\${$c:-}"; run bench_$c $P $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$c.json
echo -n "bench_$c " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$c.json | tr '\n' ' ' >> $S; echo >> $S; done
D=""
for c in D K; do eval "P=\$$c"; LMGC_PROFILE=prior run e8_$c $P $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_$c.lmgc --json; done
cmp e8_D.lmgc e8_K.lmgc >> $S 2>&1 && echo "e8: K file == D file" >> $S
run a128 $K $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: K gpu file == cpu file" >> $S
run d_K $B decompress e_K.lmgc --backend cuda --json -o d.st
cmp d.st step000000.safetensors >> $S 2>&1 && echo "d_K == input" >> $S
echo "at ${SECONDS}s" >> $S
timeout 200 /root/b/t32 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . 2>/dev/null
