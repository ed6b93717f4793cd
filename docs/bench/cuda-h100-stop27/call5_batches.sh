# Call 5 (2026-12-07 s27, same loan as calls 3-4, right after call 4): v26 with 64 att_row
# threads, decoding 10 MB (e8.lmgc from call 3) with other batch sizes and groups.
set -u; export LD_LIBRARY_PATH=$(cat /root/m/ldpath); cd /root/w; S=$OUT/s.txt; export LMGC_CUDA_ATT_THREADS=64 LMGC_PROFILE=prior
r() { n=$1; shift; "$@" > $n.out 2>&1; echo "$n rc=$? $(grep -o '"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*' $n.out | tr '\n' ' ')" >> $S; cmp d8.st steps8.safetensors >> $S 2>&1 && echo "$n ok" >> $S; rm -f d8.st; }
r d8_b5040 /root/b/v26 decompress e8.lmgc --backend cuda --batch 5040 -o d8.st --json
LMGC_STEP_GROUPS=3 r d8_b5040_g3 /root/b/v26 decompress e8.lmgc --backend cuda --batch 5040 -o d8.st --json
r d8_b3360 /root/b/v26 decompress e8.lmgc --backend cuda --batch 3360 -o d8.st --json
r d8_b4096 /root/b/v26 decompress e8.lmgc --backend cuda -o d8.st --json
cat $S
