import os, sys
from common import load_params, read_rows, write_rows

src, out = sys.argv[1], sys.argv[2]
p = load_params("featurize")
os.makedirs(out, exist_ok=True)
for name in ("train.csv", "test.csv"):
    header, rows = read_rows(os.path.join(src, name))
    feats, target = header[:-1], header[-1]
    new_header = list(feats)
    if p["interactions"]:
        new_header += [f"{a}*{b}" for i, a in enumerate(feats) for b in feats[i + 1:]]
    out_rows = []
    for r in rows:
        x = r[:-1]
        if p["interactions"]:
            x = x + [x[i] * x[j] for i in range(len(x)) for j in range(i + 1, len(x))]
        out_rows.append(x + [r[-1]])
    write_rows(os.path.join(out, name), new_header + [target], out_rows)
print("features written")
