# Call (2026-12-07 s27 #4): v26's launch shapes, same binary: att_row threads 32/64/96/128,
# ffn_row/att_out_row threads (LMGC_CUDA_ROW_THREADS) 128/256/512; against v24 on the same loan.
set -u
G=$PWD/.gpu5
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v24 v26; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/steps8.safetensors . 2>/dev/null
S=$OUT/summary.txt; L=/root/w/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> $S
run() { # name cmd...
  local name=$1; shift
  local t0=$(date +%s%N)
  "$@" > /root/w/$name.out 2>&1; local rc=$?
  local t1=$(date +%s%N)
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) $(grep -o '"load_seconds":[0-9.]*\|"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*\|"compressed_bytes": [0-9]*' /root/w/$name.out | tr '\n' ' ')" >> $S
  { echo "=== $name: $*"; tail -c 3000 /root/w/$name.out; } >> $L
}
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
# warm-up (driver JIT cache of both binaries' PTX)
run e_v26 /root/b/v26 $E -o e.lmgc; run e_v24 /root/b/v24 $E -o e24.lmgc
cmp e.lmgc e24.lmgc >> $S 2>&1 && echo "e: v26 == v24" >> $S
D="decompress e.lmgc --backend cuda --json"
ck() { cmp $1 step000000.safetensors >> $S 2>&1 && echo "$1 == input" >> $S; }
for rep in 1 2; do
  for at in 64 32 96 128; do ( export LMGC_CUDA_ATT_THREADS=$at; LMGC_PROFILE=prior run d_a${at}_$rep /root/b/v26 $D -o d.st ); ck d.st; done
  LMGC_PROFILE=prior run d_v24_$rep /root/b/v24 $D -o d.st; ck d.st
  for rt in 128 512; do ( export LMGC_CUDA_ATT_THREADS=64 LMGC_CUDA_ROW_THREADS=$rt; LMGC_PROFILE=prior run d_a64_r${rt}_$rep /root/b/v26 $D -o d.st ); ck d.st; done
  ( export LMGC_CUDA_ATT_THREADS=64 LMGC_CUDA_ATT_ROW=generic; LMGC_PROFILE=prior run d_a64_generic_$rep /root/b/v26 $D -o d.st ); ck d.st
done
for rt in 128 512; do ( export LMGC_CUDA_ROW_THREADS=$rt; LMGC_PROFILE=prior run e_r${rt} /root/b/v26 $E -o er.lmgc ); cmp er.lmgc e24.lmgc >> $S 2>&1 || echo "e_r$rt differs" >> $S; done
LMGC_PROFILE=prior run e_v26b /root/b/v26 $E -o e.lmgc
( export LMGC_CUDA_ATT_THREADS=64; run bench_a64 /root/b/v26 bench step000000.safetensors --codecs hybrid --backend cuda --lanes 4096 --window 256 --batch 4096 --json bench_a64.json )
echo -n "bench_a64 " >> $S; grep -o '"decode_mb_s": [0-9.]*\|"encode_mb_s": [0-9.]*' bench_a64.json | tr '\n' ' ' >> $S; echo >> $S
[ -f e8.lmgc ] || /root/b/v26 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc --json > /dev/null 2>&1
( export LMGC_CUDA_ATT_THREADS=64; LMGC_PROFILE=prior run d8_a64 /root/b/v26 decompress e8.lmgc --backend cuda -o d8.st --json )
cmp d8.st steps8.safetensors >> $S 2>&1 && echo "d8 a64: decoded == input" >> $S
LMGC_PROFILE=prior run d8_v24 /root/b/v24 decompress e8.lmgc --backend cuda -o d8.st --json
LMGC_PROFILE=prior run d8_v26 /root/b/v26 decompress e8.lmgc --backend cuda -o d8.st --json
( export LMGC_CUDA_ATT_THREADS=64; LMGC_PROFILE=prior run d8_a64b /root/b/v26 decompress e8.lmgc --backend cuda -o d8.st --json )
echo "done at ${SECONDS}s" >> $S
cp $S /root/w/
tar czf $OUT/all.tgz -C /root/w --exclude='*.st' --exclude='*.safetensors' --exclude='*.lmgc' --exclude='mem.*' . 2>/dev/null
