# Call (2026-12-07 s25 #2): where the integer kernels spend their instructions (ncu source
# counters, SASS), v19; d8 with LMGC_STEP_PARTS=1 against the default 2.
set -u
G=$PWD/.gpu3
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
mkdir -p /root/b /root/w && cd /root/w
for f in v19; do [ -x /root/b/$f ] || { xz -dc $G/$f.xz > /root/b/$f && chmod +x /root/b/$f; }; done
cp -n $G/step000000.safetensors $G/steps8.safetensors . 2>/dev/null
S=$OUT/summary.txt
NCU=/usr/local/cuda/bin/ncu
E="compress step000000.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 --json"
[ -f e.lmgc ] || /root/b/v19 $E -o e.lmgc > /dev/null 2>&1
D="decompress e.lmgc --backend cuda --batch 4096 --json"
timeout 200 $NCU --kernel-name regex:'^(ffn_row|norm_rows|qk_rope|att_out_row|att_probs)$' --launch-skip 300 --launch-count 5 --section SourceCounters --section WarpStateStats --section InstructionStats --section SpeedOfLight --import-source no -f -o /root/w/enc /root/b/v19 $E -o x.lmgc > /root/w/ncu_e.log 2>&1
echo "ncu enc rc=$? at ${SECONDS}s" >> $S
timeout 150 $NCU --kernel-name regex:'^(att_row|norm_rows_block|ffn_row)$' --launch-skip 5000 --launch-count 3 --section SourceCounters --section WarpStateStats --section InstructionStats --section SpeedOfLight -f -o /root/w/dec /root/b/v19 $D -o x.st > /root/w/ncu_d.log 2>&1
echo "ncu dec rc=$? at ${SECONDS}s" >> $S
for r in enc dec; do
  $NCU -i /root/w/$r.ncu-rep --page source --csv --print-source sass > /root/w/src_$r.csv 2> /root/w/src_$r.err
  echo "$r source rc=$? lines $(wc -l < /root/w/src_$r.csv)" >> $S
  $NCU -i /root/w/$r.ncu-rep --page details > /root/w/det_$r.txt 2>&1
done
ls -la /root/w/*.csv >> $S
LMGC_STEP_PARTS=1 LMGC_PROFILE=prior /root/b/v19 decompress e8.lmgc --backend cuda --batch 4096 -o d8p1.st --json > /root/w/d8_p1.out 2>&1 || { cp $G/steps8.safetensors . ; /root/b/v19 compress steps8.safetensors --codec hybrid --backend cuda --lanes 4096 --window 256 -o e8.lmgc > /dev/null 2>&1; LMGC_STEP_PARTS=1 LMGC_PROFILE=prior /root/b/v19 decompress e8.lmgc --backend cuda --batch 4096 -o d8p1.st --json > /root/w/d8_p1.out 2>&1; }
grep -o '"model":[0-9.]*\|"tables_and_coder":[0-9.]*\|"seconds": [0-9.]*\|"mb_per_s": [0-9.]*' /root/w/d8_p1.out | tr '\n' ' ' >> $S; echo >> $S
cmp d8p1.st steps8.safetensors >> $S 2>&1 && echo "d8 p1 == input" >> $S
echo "done at ${SECONDS}s" >> $S
tar czf $OUT/all.tgz -C /root/w src_enc.csv src_dec.csv det_enc.txt det_dec.txt ncu_e.log ncu_d.log d8_p1.out src_enc.err src_dec.err 2>/dev/null
