# Call (2026-12-07 s28 #3): v30 = att_mma (prefill attention whole on the int8 tensor
# cores) against v28 (stop 27's main) on the same machine; tests first.
set -u
G=$PWD/.gpu7
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v28 v30 t30; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
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
timeout 240 /root/b/t30 cuda:: --test-threads 1 > /root/w/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' /root/w/tests.txt | head -20 >> $S
B=/root/b/v30
run a128 $B compress a128.safetensors --codec hybrid --backend cuda -o a128.gpu.lmgc --json
cmp a128.gpu.lmgc a128.v14.cpu.lmgc >> $S 2>&1 && echo "a128: v30 gpu file == cpu file" >> $S
run a128d $B decompress a128.v14.cpu.lmgc --backend cuda -o a128.back.st --json
cmp a128.back.st a128.safetensors >> $S 2>&1 && echo "a128: cpu file decoded on gpu == input" >> $S
/root/b/v28 compress a128.safetensors --codec hybrid --backend cuda -o a128.28.lmgc > /dev/null 2>&1
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
for v in v30 v28 v30; do LMGC_PROFILE=prior run e_$v /root/b/$v $E -o e_$v.lmgc; done
LMGC_CUDA_ATT_MMA=off LMGC_PROFILE=prior run e_v30_off /root/b/v30 $E -o e_v30_off.lmgc
cmp e_v28.lmgc e_v30.lmgc >> $S 2>&1 && echo "e256: v28 file == v30 file" >> $S
cmp e_v28.lmgc e_v30_off.lmgc >> $S 2>&1 && echo "e256: v28 file == v30 off file" >> $S
LMGC_PROFILE=1 run pe_v30 /root/b/v30 $E -o pe.lmgc
grep "lmgc profile" pe_v30.out >> $S
run d_v30 /root/b/v30 decompress e_v30.lmgc --backend cuda --json -o d.st
cmp d.st step000000.safetensors >> $S 2>&1 && echo "d_v30 == input" >> $S
for v in v30 v28; do run bench_$v /root/b/$v bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_$v.json
echo -n "bench_$v " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*\|"setup_seconds": [0-9.]*' bench_$v.json | tr '\n' ' ' >> $S; echo >> $S; done
for v in v30 v28; do LMGC_PROFILE=prior run e8_$v /root/b/$v compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8_$v.lmgc --json; done
cmp e8_v28.lmgc e8_v30.lmgc >> $S 2>&1 && echo "e8: v28 file == v30 file" >> $S
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . 2>/dev/null
