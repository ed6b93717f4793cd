# Call 6: 10 MB decode end to end, v28 and v34, alternating.
set -u
export LD_LIBRARY_PATH=$(cat /root/m/ldpath) LMGC_CACHE_DIR=/root/.cache/lmgc
cd /root/w; S=$OUT/summary6.txt
for n in d8_B:/root/b/v28 d8_K2:/root/b/v34 d8_B2:/root/b/v28; do name=${n%%:*}; bin=${n#*:}
  t0=$(date +%s%N); LMGC_PROFILE=prior $bin decompress e8_K.lmgc --backend cuda --json -o $name.st > $name.out 2>&1; rc=$?; t1=$(date +%s%N)
  echo "$name rc=$rc wall_ms=$(( (t1 - t0) / 1000000 )) $(grep -o '"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*' $name.out | tr '\n' ' ')" >> $S
  cmp $name.st steps8.safetensors >> $S 2>&1 && echo "$name == input" >> $S; rm -f $name.st
done
echo "done at ${SECONDS}s" >> $S
