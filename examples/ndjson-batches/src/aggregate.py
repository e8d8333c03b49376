"""Combine every batch summary into one report."""
import json, os, sys

src, out = sys.argv[1], sys.argv[2]
total, revenue, batches = {}, 0.0, 0
for name in sorted(os.listdir(src)):
    s = json.load(open(os.path.join(src, name)))
    batches += 1
    revenue += s["revenue"]
    for k, v in s["events"].items():
        total[k] = total.get(k, 0) + v
json.dump({"batches": batches, "events": total, "revenue": round(revenue, 2)}, open(out, "w"), indent=1, sort_keys=True)
print(f"{batches} batches, revenue {revenue:.2f}")
