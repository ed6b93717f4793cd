# Call (2026-12-07 s25 #4): v21 = v20 with norm_row's residual add as in v19; block norms for
# prefill (LMGC_CUDA_NORM_BLOCK=8192); att_row block sizes; against v20 on the same machine.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v20 v21 t21; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
timeout 300 /root/b/t21 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v21 v20 v21 v20; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
cmp e_v20.lmgc e_v21.lmgc >> $S 2>&1 && echo "e256: v20 file == v21 file" >> $S
LMGC_CUDA_NORM_BLOCK=8192 LMGC_PROFILE=prior run e_v21_nb /root/b/v21 $E -o e_nb.lmgc
cmp e_v20.lmgc e_nb.lmgc >> $S 2>&1 && echo "e256: block norms == v20" >> $S
LMGC_PROFILE=1 run pe_v21 /root/b/v21 $E -o pe.lmgc
LMGC_CUDA_NORM_BLOCK=8192 LMGC_PROFILE=1 run pe_v21_nb /root/b/v21 $E -o pe_nb.lmgc
D="decompress e_v20.lmgc --backend cuda --batch 4096 --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
for v in v20 v21; do LMGC_PROFILE=prior run d_$v /root/b/$v $D -o d_$v.st; ck d_$v.st; done
for t in 64 256; do LMGC_CUDA_ATT_THREADS=$t LMGC_PROFILE=prior run d_v21_t$t /root/b/v21 $D -o d_t$t.st; ck d_t$t.st; done
B=/root/b/v21
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v21 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
run bench $B bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench.json
grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench.json | tr '\n' ' ' >> $S; echo >> $S
LMGC_PROFILE=prior run e8 $B compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json
LMGC_PROFILE=prior run d8_v21 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8.st --json
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8: decoded == input" >> $S
LMGC_STEP_PARTS=1 LMGC_PROFILE=prior run d8_v21_p1 $B decompress e8.lmgc --backend cuda --batch 4096 -o d8p1.st --json
cmp d8p1.st steps8.safetensors >> $S 2>&1 && echo "d8 p1: decoded == input" >> $S
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . a128.gpu.lmgc 2>/dev/null
