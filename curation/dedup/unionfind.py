"""Union-find over row indices, vectorised: hook roots along edges, then jump pointers."""
import numpy as np


def union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (the smallest row index) of each of n nodes after uniting every pair (a[i], b[i])."""
    parent = np.arange(n, dtype=np.int64)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        pending = lo != hi
        if not pending.any():
            break
        # union: hang the larger root under the smaller one (several edges may hit one root: keep the min)
        np.minimum.at(parent, hi[pending], lo[pending])
        # find with full path compression: pointer jumping until every node points at a root
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        a, b = a[pending], b[pending]
    return parent
