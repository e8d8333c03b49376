"""One datum: summarise one batch of events into a small JSON file."""
import json, os, sys

src = os.environ["DVX_INPUT"]
out_dir = os.environ["DVX_OUTPUT"]
counts, revenue = {}, 0.0
for line in open(src):
    e = json.loads(line)
    counts[e["event"]] = counts.get(e["event"], 0) + 1
    if e["event"] == "buy":
        revenue += e["amount"]
name = os.path.basename(src).replace(".ndjson", ".json")
json.dump({"batch": os.path.basename(src), "events": counts, "revenue": round(revenue, 2)},
          open(os.path.join(out_dir, name), "w"), sort_keys=True)
print(f"{name}: {sum(counts.values())} events")
