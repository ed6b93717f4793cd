# Call (2026-12-07 s27 #8): the cuda:: tests of main after the review fixes (no model needed).
set -u
export LD_LIBRARY_PATH=$(find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null | xargs -n1 dirname | sort -u | grep -v stubs | paste -sd:)
xz -dc .gpu6/t29.xz > /tmp/t29 && chmod +x /tmp/t29
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 300 /tmp/t29 cuda:: --test-threads 1 > $OUT/tests.txt 2>&1; echo "tests rc=$?"
grep -E '^test |^test result|FAILED|panicked|skipped' $OUT/tests.txt | head -40
LMGC_CUDA_PV_UNROLL=0 timeout 60 /tmp/t29 cuda::tests::tiny_model --test-threads 1 2>&1 | grep -E "panicked|LMGC|test result" | head -5
