import json, sys
from common import read_rows

model_path, data, out = sys.argv[1:4]
m = json.load(open(model_path))
header, rows = read_rows(data)
preds, ys = [], []
for r in rows:
    z = [(v - mu) / s for v, mu, s in zip(r[:-1], m["mean"], m["std"])]
    preds.append(sum(w * v for w, v in zip(m["w"], z)) + m["b"])
    ys.append(r[-1])
n = len(ys)
mae = sum(abs(p - t) for p, t in zip(preds, ys)) / n
rmse = (sum((p - t) ** 2 for p, t in zip(preds, ys)) / n) ** 0.5
json.dump({"mae": round(mae, 4), "rmse": round(rmse, 4), "rows": n}, open(out, "w"), indent=1, sort_keys=True)
print(f"mae={mae:.4f} rmse={rmse:.4f}")
