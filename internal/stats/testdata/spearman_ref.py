# Reference values pinned in internal/stats/stats_test.go (run: /usr/bin/python3 internal/stats/testdata/spearman_ref.py).
# Spearman = Pearson correlation (np.corrcoef) of average ranks; scipy is not installed, so the average ranks
# (ties share the mean of their positions, 1-based) are computed here with numpy. numpy 1.24, Debian 12.
import numpy as np
def avg_ranks(a):
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks
def spearman(x, y):
    return float(np.corrcoef(avg_ranks(x), avg_ranks(y))[0, 1])
rng = np.random.default_rng(20260607)
cases = []
x = np.round(rng.normal(size=12), 1); y = np.round(0.6 * x + rng.normal(size=12) * 0.8, 1)
cases.append(("ties12", x, y))
x = rng.uniform(0, 100, size=15); y = rng.uniform(0, 100, size=15)
cases.append(("independent15", x, y))
x = rng.integers(0, 5, size=20).astype(float); y = -x + rng.integers(0, 3, size=20)
cases.append(("manyties20", x, y))
for name, x, y in cases:
    print(name)
    print("x:", ", ".join(repr(float(v)) for v in x))
    print("y:", ", ".join(repr(float(v)) for v in y))
    print("rho: %.17g" % spearman(x, y))
print("hand", spearman([1,2,2,3],[1,2,3,4]), 0.9**0.5)
print(avg_ranks([10,20,20,30,20]))
