# Call 10 (stop 30): the cuda:: suite of t36 (att_mma the default), on the warm machine.
set -u
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
timeout 280 /root/b/t36 cuda:: --test-threads 1 > $OUT/tests.txt 2>&1; echo "tests rc=$? at ${SECONDS}s"
grep -E '^test result|FAILED|panicked' $OUT/tests.txt | head -20
