#!/usr/bin/env bash
# Real gradients in, byte-identical files out: collects MLP gradients on CIFAR-10, then
# compresses, inspects, decompresses and compares each with the `lmgc` binary.
# Usage: LMGC_CIFAR10_DIR=/path/to/cifar-10-batches-bin bash scripts/demo.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-grads}
: "${LMGC_CIFAR10_DIR:?set LMGC_CIFAR10_DIR to a directory with CIFAR-10 data_batch_1.bin}"
cargo build --release --quiet --bin lmgc --example mlp_gradients
target/release/examples/mlp_gradients --out "$out" --steps 4
for f in "$out"/*.safetensors; do
  target/release/lmgc compress "$f" -o "$f.lmgc" --codec bytegroup
  target/release/lmgc decompress "$f.lmgc" -o "$f.restored"
  cmp "$f" "$f.restored" && echo "$f: restored byte for byte"
done
target/release/lmgc inspect "$out/mlp_step0.safetensors.lmgc"
