import csv, sys, re, collections
def sections(path):
    cur=None; rows=[]; hdr=None
    with open(path) as f:
        for rec in csv.reader(f):
            if not rec: continue
            if rec[0]=="Kernel Name":
                if cur: yield cur, hdr, rows
                cur=rec[1]; rows=[]; hdr=None; continue
            if rec[0]=="Address": hdr=rec; continue
            rows.append(rec)
    if cur: yield cur, hdr, rows
path=sys.argv[1]; want=sys.argv[2] if len(sys.argv)>2 else None
seen=collections.Counter()
for name, hdr, rows in sections(path):
    seen[name]+=1
    if want and name!=want: continue
    if seen[name]>1: continue
    ix={h:i for i,h in enumerate(hdr)}
    ie=ix["Instructions Executed"]; isamp=ix["Warp Stall Sampling (All Samples)"]
    tot=0; samp=0; ops=collections.Counter(); sops=collections.Counter()
    for r in rows:
        n=int(r[ie] or 0); s=int(r[isamp] or 0)
        op=r[1].strip().split()
        if not op: continue
        o=op[0]
        if o.startswith('@'): o=op[1]
        o=o.split('.')[0]
        ops[o]+=n; tot+=n; samp+=s; sops[o]+=s
    print(f"== {name}: {len(rows)} SASS lines, warp instr executed {tot:,}, samples {samp}")
    for o,n in ops.most_common(22): print(f"   {o:10s} {n:>14,} {100*n/tot:5.1f}%  samples {100*sops[o]/max(samp,1):5.1f}%")
