#!/usr/bin/env bash
# Registers, stack (local memory) and spills of every CUDA kernel, without a GPU: compiles
# crates/lmgc-model/src/cuda/kernels.cu and mma.cu with NVRTC as the engine does (same
# options, with -DNORM_REGS as LMGC_CUDA_NORM_REGS=on adds; mma.cu after kernels.cu with
# -DATT_MMA, as the default compiles it) and
# assembles the PTX with ptxas for one architecture (default sm_90, the H100's and H200's).
# NVRTC and ptxas come from NVIDIA's pip wheels, downloaded once into $LMGC_CUDA_TOOLS
# (default ~/.cache/lmgc/cuda-tools; about 150 MB). The device's driver assembles the same
# PTX at load, so its counts may differ slightly with its version; LMGC_PROFILE=1 reports
# the device's own for the main kernels.
#
#   scripts/cuda-registers.sh [--loops | --check] [sm_XX] [kernel-name-filter]
#   LMGC_CUDA_ATT_MMA_LOADS=2 scripts/cuda-registers.sh sm_90 att_mma
#
# --loops also disassembles the kernels the filter names (cuobjdump, from the
# nvidia-cuda-cuobjdump wheel) and lists each loop (a backward branch) with its instruction
# count and commonest opcodes: for ALU-bound kernels, a static proxy for their time.
# --check fails (exit 1) where a kernel keeps anything in local memory (a stack frame or
# spills): scripts/test.sh runs it, so an array indexed at run time does not come back.
set -euo pipefail
cd "$(dirname "$0")/.."
loops=0
check=0
case "${1:-}" in
    --loops) loops=1; shift ;;
    --check) check=1; shift ;;
esac
arch=${1:-sm_90}
filter=${2:-}
tools=${LMGC_CUDA_TOOLS:-${LMGC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lmgc}/cuda-tools}
if [ ! -x "$tools/nvidia/cuda_nvcc/bin/ptxas" ] || [ ! -e "$tools/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    mkdir -p "$tools/wheels"
    pip download --no-deps -q -d "$tools/wheels" 'nvidia-cuda-nvrtc-cu12==12.9.*' \
        'nvidia-cuda-nvcc-cu12==12.9.*' || {
        echo "cuda-registers: could not download NVIDIA's nvrtc and nvcc wheels" >&2
        exit 1
    }
    for w in "$tools"/wheels/*.whl; do python3 -m zipfile -e "$w" "$tools"; done
    chmod +x "$tools/nvidia/cuda_nvcc/bin/ptxas"
fi
if [ $loops = 1 ] && [ ! -x "$tools/nvidia/cu13/bin/cuobjdump" ]; then
    pip download --no-deps -q -d "$tools/wheels-sass" nvidia-cuda-cuobjdump \
        nvidia-cuda-nvdisasm || {
        echo "cuda-registers: could not download NVIDIA's cuobjdump and nvdisasm wheels" >&2
        exit 1
    }
    for w in "$tools"/wheels-sass/*.whl; do python3 -m zipfile -e "$w" "$tools"; done
    chmod +x "$tools"/nvidia/cu13/bin/*
fi
pv_unroll=$(sed -n 's/^const PV_UNROLL: usize = \([0-9]*\);/\1/p' crates/lmgc-model/src/cuda/mod.rs)
loads=${LMGC_CUDA_ATT_MMA_LOADS:-$(sed -n 's/^const ATT_MMA_LOADS: usize = \([0-9]*\);/\1/p' crates/lmgc-model/src/cuda/mod.rs)}
if [ -z "$pv_unroll" ] || [ -z "$loads" ]; then
    echo "cuda-registers: PV_UNROLL or ATT_MMA_LOADS not found in cuda/mod.rs (renamed?)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LD_LIBRARY_PATH="$tools/nvidia/cuda_nvrtc/lib" python3 - "$tmp" "$pv_unroll" "$loads" <<'PY'
import ctypes, sys
tmp, pv_unroll, loads = sys.argv[1], sys.argv[2], sys.argv[3]
nvrtc = ctypes.CDLL("libnvrtc.so.12")
def compile(name, files, opts):
    src = "".join(open(f).read() for f in files).encode()
    prog = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None) == 0
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    rc = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t()
    if rc != 0:
        nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value)
        nvrtc.nvrtcGetProgramLog(prog, log)
        sys.exit(f"NVRTC failed on {name}:\n{log.value.decode()}")
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(n))
    ptx = ctypes.create_string_buffer(n.value)
    nvrtc.nvrtcGetPTX(prog, ptx)
    open(f"{tmp}/{name}.ptx", "wb").write(ptx.value)
d = "crates/lmgc-model/src/cuda/"
base = ["--device-int128", "-std=c++17", f"-DPV_UNROLL={pv_unroll}"]
compile("kernels", [d + "kernels.cu"], base + ["-DNORM_REGS"])
compile("mma", [d + "kernels.cu", d + "mma.cu"],
        base + ["-DATT_MMA", f"-DATT_MMA_LOADS={loads}", "--gpu-architecture=compute_80"])
PY
for m in kernels mma; do
    "$tools/nvidia/cuda_nvcc/bin/ptxas" -arch="$arch" -v "$tmp/$m.ptx" -o "$tmp/$m.cubin" \
        2> "$tmp/$m.log"
done
# kernels.cu's kernels once (mma.cu's module repeats them), then mma.cu's own.
python3 - "$tmp" "$arch" "$filter" "$check" <<'PY'
import re, sys
tmp, arch, filt, check = sys.argv[1:5]
local = []
print(f"{'kernel':<22} {'module':<8} {'registers':>9} {'stack':>6} {'spills':>7}  ({arch})")
seen = set()
for module in ["kernels", "mma"]:
    name, stack, spill = None, 0, 0
    for line in open(f"{tmp}/{module}.log"):
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            name = m.group(1)
        elif m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", line):
            stack, spill = int(m.group(1)), int(m.group(2))
        elif (m := re.search(r"Used (\d+) registers", line)) and name:
            if name not in seen and filt in name:
                print(f"{name:<22} {module:<8} {m.group(1):>9} {stack:>6} {spill:>7}")
                if stack or spill:
                    local.append(name)
            seen.add(name)
            name = None
if check == "1" and local:
    sys.exit(f"cuda-registers: local memory in {', '.join(local)}: an array indexed at run "
             "time (unroll its loops) or spills (fewer live values)")
PY
if [ $loops = 1 ]; then
    for m in kernels mma; do
        PATH="$tools/nvidia/cu13/bin:$PATH" cuobjdump -sass "$tmp/$m.cubin" 2> /dev/null \
            > "$tmp/$m.sass"
    done
    python3 - "$tmp" "$filter" <<'PY'
import re, sys
tmp, filt = sys.argv[1:3]
seen = set()
for module in ["kernels", "mma"]:
    sass = open(f"{tmp}/{module}.sass").read()
    for m in re.finditer(r"Function : (\w+)\n(.*?)(?=\n\t\tFunction :|\Z)", sass, re.S):
        name, body = m.groups()
        if name in seen or filt not in name:
            continue
        seen.add(name)
        ins = [(int(a, 16), t.strip()) for a, t in
               re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", body)]
        at = {a: i for i, (a, _) in enumerate(ins)}
        print(f"{name} ({module}): {len(ins)} instructions")
        for i, (a, t) in enumerate(ins):
            if "BRA" not in t:
                continue
            target = re.search(r"0x([0-9a-f]+)", t.split("BRA")[-1])
            if not target or int(target.group(1), 16) >= a or int(target.group(1), 16) not in at:
                continue
            start = at[int(target.group(1), 16)]
            ops = {}
            for _, x in ins[start:i + 1]:
                op = x.split()[1] if x.startswith("@") else x.split()[0]
                ops[op.split(".")[0]] = ops.get(op.split(".")[0], 0) + 1
            top = ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:6])
            print(f"  loop {ins[start][0]:#07x}-{a:#07x}: {i - start + 1:5} instructions ({top})")
PY
fi
