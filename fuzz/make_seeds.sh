#!/usr/bin/env bash
# Regenerates the seed corpora from tiny files made by the lmgc CLI itself.
# Usage (from the repository root): bash fuzz/make_seeds.sh
set -euo pipefail
lmgc=${LMGC:-target/release/lmgc}
[ -x "$lmgc" ] || cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p fuzz/corpus/container fuzz/corpus/tensor_files
python3 - "$tmp" <<'PY'
import struct, sys, json
d = sys.argv[1]
vals = [0.5, -0.0, float('nan'), 1e-40, -3.25, 7.0, 0.001, -0.002]
data = b''.join(struct.pack('<f', v) for v in vals)
half = bytes([0x01, 0x7c, 0x00, 0x80])
hdr = {"w": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]},
       "h": {"dtype": "F16", "shape": [2], "data_offsets": [32, 36]},
       "__metadata__": {"format": "pt"}}
h = json.dumps(hdr, separators=(',', ':')).encode()
h += b' ' * (-len(h) % 8)
open(f'{d}/g.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data + half)
npy_h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (8,), }"
npy_h += b' ' * (-(10 + len(npy_h) + 1) % 64) + b'\n'
open(f'{d}/a.npy', 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(npy_h)) + npy_h + data)
open(f'{d}/a.f32', 'wb').write(data)
PY
cp "$tmp/g.safetensors" "$tmp/a.npy" "$tmp/a.f32" fuzz/corpus/tensor_files/
for input in g.safetensors a.npy a.f32; do
  "$lmgc" compress "$tmp/$input" -o "fuzz/corpus/container/$input.bytegroup.lmgc" --codec bytegroup -q
  "$lmgc" compress "$tmp/$input" -o "fuzz/corpus/container/$input.store.lmgc" --codec store -q
  "$lmgc" compress "$tmp/$input" -o "fuzz/corpus/container/$input.context.lmgc" --codec context \
    --format hex-space-be --window 16 --order 2 -q
done
# Every classical codec whose decoder takes untrusted input (not fpzip).
for codec in gzip xz6 zstd brotli png flac pcodec; do
  "$lmgc" compress "$tmp/g.safetensors" -o "fuzz/corpus/container/g.$codec.lmgc" --codec $codec -q
done
