set -u
cat /root/m/part.00 .gpu2/part.01 > /root/m/model.gguf && rm /root/m/part.00
sha256sum /root/m/model.gguf | grep -q '^b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53' && echo "model sha ok"
mkdir -p /root/.cache/lmgc/models && mv /root/m/model.gguf /root/.cache/lmgc/models/SmolLM2-135M-Instruct.Q4_1.gguf
for f in t34; do xz -dc .gpu2/$f.xz > /root/b/$f && chmod +x /root/b/$f; done
ls -la /root/b /root/.cache/lmgc/models
# Call 4: the whole cuda:: suite of the lmgc-model test binary (t34), on the warm machine.
set -u
export LD_LIBRARY_PATH=$(cat /root/m/ldpath) LMGC_CACHE_DIR=/root/.cache/lmgc
cd /root/w; S=$OUT/tests_summary.txt
timeout 400 /root/b/t34 cuda:: --test-threads 1 > $OUT/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s" >> $S
grep -E '^test result|FAILED|panicked' $OUT/tests.txt | head -20 >> $S
