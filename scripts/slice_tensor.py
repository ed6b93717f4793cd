#!/usr/bin/env python3
"""Write the first N values of one tensor of a safetensors file as a new safetensors file.

The LM-GC paper measures 2,048-value slices of conv-layer gradients; this makes the same
slices from the corpus `lmgc collect` writes, without third-party packages:

    python3 scripts/slice_tensor.py grads/step000000.safetensors features.4.weight 2048 out.safetensors
"""
import json
import struct
import sys

WIDTH = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1}


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    src, name, n, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(src, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        body = f.read()
    if name not in header:
        sys.exit(f"{src} has no tensor {name!r}; it has {sorted(k for k in header if k != '__metadata__')}")
    t = header[name]
    w = WIDTH[t["dtype"]]
    start, end = t["data_offsets"]
    count = min(n, (end - start) // w)
    data = body[start : start + count * w]
    out = {name: {"dtype": t["dtype"], "shape": [count], "data_offsets": [0, len(data)]}}
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


if __name__ == "__main__":
    main()
