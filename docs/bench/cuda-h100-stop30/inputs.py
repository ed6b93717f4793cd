import json, struct, sys
def read(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8+n]); return h, b[8+n:]
def write(p, items):  # items: list of (name, dtype, shape, bytes)
    h, off, data = {}, 0, []
    for name, dt, shape, raw in items:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off+len(raw)]}; off += len(raw); data.append(raw)
    hb = json.dumps(h, separators=(',', ':')).encode(); hb += b' ' * ((8 - len(hb) % 8) % 8)
    open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + b''.join(data))
mode = sys.argv[1]
if mode == 'merge':
    items = []
    for k, p in enumerate(sys.argv[3:]):
        h, d = read(p)
        for name, m in sorted(((n, m) for n, m in h.items() if n != '__metadata__'), key=lambda t: t[1]['data_offsets'][0]):
            a, b = m['data_offsets']; items.append((f"s{k}.{name}", m['dtype'], m['shape'], d[a:b]))
    write(sys.argv[2], items)
else:  # a128 out in
    h, d = read(sys.argv[3]); m = h['features.4.weight']; a, b = m['data_offsets']
    write(sys.argv[2], [("a", m['dtype'], [128], d[a:a+512])])
