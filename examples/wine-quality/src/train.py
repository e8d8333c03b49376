import json, sys
from common import load_params, read_rows

src, out = sys.argv[1], sys.argv[2]
p = load_params("train")
header, rows = read_rows(src)
X = [r[:-1] for r in rows]
y = [r[-1] for r in rows]
n, d = len(X), len(X[0])
# standardise, then ridge regression by gradient descent (deterministic)
mean = [sum(col) / n for col in zip(*X)]
std = [max(1e-9, (sum((v - m) ** 2 for v in col) / n) ** 0.5) for col, m in zip(zip(*X), mean)]
Z = [[(v - m) / s for v, m, s in zip(row, mean, std)] for row in X]
w, b = [0.0] * d, sum(y) / n
for _ in range(p["epochs"]):
    grad_w, grad_b = [0.0] * d, 0.0
    for z, t in zip(Z, y):
        err = sum(wi * zi for wi, zi in zip(w, z)) + b - t
        for j in range(d):
            grad_w[j] += err * z[j] / n
        grad_b += err / n
    w = [wi - p["learning_rate"] * (g + p["l2"] * wi) for wi, g in zip(w, grad_w)]
    b -= p["learning_rate"] * grad_b
json.dump({"features": header[:-1], "mean": mean, "std": std, "w": w, "b": b}, open(out, "w"), indent=1)
print(f"trained on {n} rows, {d} features")
