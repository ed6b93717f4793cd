#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this).
#
# The wgpu backend's equality tests need a Vulkan driver; on a machine without one this
# installs Mesa's software rasterizer (lavapipe) and the Vulkan loader from Debian/Ubuntu
# packages, so the suite also runs on CPU-only machines.
set -euo pipefail
cd "$(dirname "$0")/.."
have_vulkan() {
    # grep reads all of ldconfig's output: `grep -q` would exit early and, under pipefail,
    # turn ldconfig's SIGPIPE into a false negative.
    ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null &&
        { compgen -G '/usr/share/vulkan/icd.d/*.json' || compgen -G '/etc/vulkan/icd.d/*.json'; } >/dev/null
}
if ! have_vulkan; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "installing mesa-vulkan-drivers and libvulkan1 for the wgpu tests" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q mesa-vulkan-drivers libvulkan1 >/dev/null ||
            { apt-get update -q >/dev/null && apt-get install -y -q mesa-vulkan-drivers libvulkan1 >/dev/null; }
    else
        echo "the wgpu tests need a Vulkan driver: install mesa-vulkan-drivers and libvulkan1 (as root)" >&2
        exit 1
    fi
fi
# The CUDA kernels without a GPU: they compile as C++, and their fast integer helpers equal
# their definitions (the GPU tests themselves need a GPU host: README, Development).
bash scripts/check-cuda-kernels.sh
# ... and no kernel keeps anything in local memory (NVRTC and ptxas from NVIDIA's wheels).
bash scripts/cuda-registers.sh --check sm_90 > /dev/null
exec cargo test --workspace --release --features fpzip,wgpu "$@"
