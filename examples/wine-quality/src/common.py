import csv, json

def load_params(section):
    # params.yaml is a flat two-level YAML here; parse it without third-party packages.
    out, cur = {}, None
    for line in open("params.yaml"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            cur = line.split(":")[0].strip()
            out[cur] = {}
        else:
            k, v = line.strip().split(":", 1)
            v = v.strip()
            out[cur][k] = {"true": True, "false": False}.get(v, None) if v in ("true", "false") else (float(v) if "." in v else int(v))
    return out[section]

def read_rows(path):
    with open(path) as f:
        r = csv.reader(f)
        header = next(r)
        return header, [[float(x) for x in row] for row in r]

def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
