#!/usr/bin/env bash
# Regenerates the seed corpora from tiny files made by the lmgc CLI itself.
# Usage (from the repository root): bash fuzz/make_seeds.sh
set -euo pipefail
lmgc=${LMGC:-target/release/lmgc}
[ -x "$lmgc" ] || cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p fuzz/corpus/container fuzz/corpus/tensor_files fuzz/corpus/gguf
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
# A tiny GGUF v3: metadata of every value type, a vocabulary, an F32 and a Q8_0 tensor.
python3 - fuzz/corpus/gguf/tiny.gguf <<'PY'
import struct, sys
def s(x): b = x.encode(); return struct.pack('<Q', len(b)) + b
kv = [
  (s('general.architecture'), 8, s('llama')),
  (s('llama.block_count'), 4, struct.pack('<I', 1)),
  (s('llama.rope.freq_base'), 6, struct.pack('<f', 10000.0)),
  (s('tokenizer.ggml.model'), 8, s('gpt2')),
  (s('tokenizer.ggml.bos_token_id'), 10, struct.pack('<Q', 1)),
  (s('flag'), 7, b'\x01'),
  (s('tokenizer.ggml.tokens'), 9, struct.pack('<IQ', 8, 3) + s('a') + s('b') + s('ab')),
  (s('tokenizer.ggml.merges'), 9, struct.pack('<IQ', 8, 1) + s('a b')),
]
out = b'GGUF' + struct.pack('<IQQ', 3, 2, len(kv))
for k, t, v in kv: out += k + struct.pack('<I', t) + v
out += s('w') + struct.pack('<I', 1) + struct.pack('<Q', 8) + struct.pack('<IQ', 0, 0)
out += s('e') + struct.pack('<I', 1) + struct.pack('<Q', 32) + struct.pack('<IQ', 8, 32)
out += b'\0' * (-len(out) % 32)
out += struct.pack('<8f', *range(8)) + b'\0' * 0
out += struct.pack('<e', 0.5) + bytes(range(32))
open(sys.argv[1], 'wb').write(out)
PY

# Protocol seeds for `wire`: records [kind][conn][len][postcard body] (fuzz_targets/wire.rs)
# that authenticate two clients and walk an offer and an upload through the aggregator.
mkdir -p fuzz/corpus/wire
python3 - fuzz/corpus/wire <<'PY'
import struct, sys
d = sys.argv[1]
def s(x): b = x.encode(); return bytes([len(b)]) + b
tok = "0123456789abcdef0123456789abcdef"
def hello(c): return bytes([0, 1]) + s(c) + s(tok) + bytes([1]) + s("bytegroup") + bytes([0])
D = bytes([7]) * 32
def offer(): return bytes([1, 0]) + D + bytes([100, 10, 5]) + struct.pack('<d', 0.0)
def up(off): return bytes([0]) + D + bytes([off])
def rec(kind, conn, body): return bytes([kind, conn, len(body)]) + body
open(f'{d}/two_rounds', 'wb').write(rec(0, 0, hello("a")) + rec(0, 1, hello("b")) + rec(0, 0, offer()) + rec(2, 0, up(0)) + rec(1, 1, offer()) + rec(2, 1, up(0)) + rec(4, 0, b''))
open(f'{d}/one_client', 'wb').write(rec(0, 0, hello("a")) + rec(4, 0, b'') * 3 + rec(0, 0, offer()) + rec(3, 0, b'') + rec(0, 2, hello("a")) + rec(0, 2, offer()) + rec(2, 2, up(0)))
open(f'{d}/records', 'wb').write(bytes([0, 0, 4, 0, 1, 1, 97, 4, 0, 0, 3, 1, 0, 2, 2, 5, 0, 0, 0, 0, 0]))
PY
