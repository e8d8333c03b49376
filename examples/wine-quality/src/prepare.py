import os, random, sys
from common import load_params, read_rows, write_rows

src, out = sys.argv[1], sys.argv[2]
p = load_params("prepare")
header, rows = read_rows(src)
random.Random(p["seed"]).shuffle(rows)
n_test = int(len(rows) * p["test_fraction"])
os.makedirs(out, exist_ok=True)
write_rows(os.path.join(out, "train.csv"), header, rows[n_test:])
write_rows(os.path.join(out, "test.csv"), header, rows[:n_test])
print(f"prepared {len(rows) - n_test} train and {n_test} test rows")
