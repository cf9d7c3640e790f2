"""Semantic near-duplicates on L2-normalised embeddings, SemDeDup-style (Abbas et al. 2023).

1. k-means (faiss) into k clusters, trained on a sample.
2. Each point goes to its nearest centroid ("primary"). Spill: it is also a
   "secondary" member of its next nearest centroids c_j (up to
   max_clusters_per_point in all) when it lies within delta = sqrt(2 * eps)
   of the bisecting hyperplane between c_1 and c_j, i.e.
   (||x - c_j||^2 - ||x - c_1||^2) / (2 ||c_1 - c_j||) <= delta.
   Why: unit vectors with cos >= 1 - eps are within delta in L2. If x's
   nearest centroid is c_1 and its duplicate y's is c_j, the segment x-y
   crosses that hyperplane, so x is within delta of it, becomes a secondary
   of c_j and the pair is compared there. Uncapped, no duplicate pair is split
   by a cluster border; plain SemDeDup (max_clusters_per_point = 1) loses
   such pairs. The cap keeps the cost bounded; points near several borders
   may still lose a pair (measured in bench/dedup_bench.py).
3. Per cluster: cosine of primaries x primaries (upper triangle) and
   secondaries x primaries, in blocks of block_size x block_size, never N x N.
   A pair is a duplicate at cos >= 1 - eps.
"""
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from curation.dedup.edges import Edges
from curation.dedup.kmeans import nearest_centroids, train_kmeans
from curation.dedup.params import DedupParams


def n_clusters_for(n: int, params: DedupParams) -> int:
    """k for n points: params.n_clusters, else ceil(n / points_per_cluster); at least 1, at most n."""
    k = params.n_clusters if params.n_clusters is not None else -(-n // max(1, params.points_per_cluster))
    return int(max(1, min(k, n)))


@dataclass
class Assignment:
    """Cluster membership: primary[i] for every point; (extra_rows, extra_cluster) secondary memberships."""

    primary: np.ndarray  # (n,) int64
    extra_rows: np.ndarray  # (S,) int64, row index into the assigned batch
    extra_cluster: np.ndarray  # (S,) int64


def assign(x: np.ndarray, centroids: np.ndarray, params: DedupParams) -> Assignment:
    """Primary cluster of each row of x plus its spill (secondary) clusters, as described above."""
    m = max(1, params.max_clusters_per_point)
    d2, idx = nearest_centroids(x, centroids, m)
    primary = idx[:, 0].astype(np.int64)
    if m == 1 or idx.shape[1] == 1:
        return Assignment(primary, np.empty(0, np.int64), np.empty(0, np.int64))
    delta = np.sqrt(2.0 * params.semantic_eps)
    valid = idx[:, 1:] >= 0
    # distance between the nearest and each next centroid: (n, m-1)
    gap = np.empty(idx[:, 1:].shape, np.float32)
    for s in range(0, len(x), 16384):  # batches: the gathered centroids are (batch, m-1, d)
        i = idx[s:s + 16384]
        gap[s:s + 16384] = np.linalg.norm(centroids[i[:, 1:].clip(0)] - centroids[i[:, :1]], axis=2)
    to_bisector = (d2[:, 1:] - d2[:, :1]) / np.maximum(2.0 * gap, 1e-12)
    spill = valid & (to_bisector <= delta)
    rows, col = np.nonzero(spill)
    return Assignment(primary, rows.astype(np.int64), idx[:, 1:][rows, col].astype(np.int64))


def _blocks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def cluster_pairs(
    p_vecs: np.ndarray, p_ids: np.ndarray, s_vecs: np.ndarray, s_ids: np.ndarray, threshold: float, block_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs with cos >= threshold among primaries, and between secondaries and primaries, block by block."""
    out_a, out_b, out_s = [], [], []
    for bi in _blocks(len(p_vecs), block_size):
        for bj in _blocks(len(p_vecs), block_size):
            if bj.start < bi.start:
                continue
            sims = p_vecs[bi] @ p_vecs[bj].T  # (<=B, <=B)
            hit = np.nonzero(sims >= threshold)
            if bj.start == bi.start:  # diagonal block: upper triangle only
                upper = hit[0] < hit[1]
                hit = (hit[0][upper], hit[1][upper])
            out_a.append(p_ids[bi][hit[0]])
            out_b.append(p_ids[bj][hit[1]])
            out_s.append(sims[hit])
    for bi in _blocks(len(s_vecs), block_size):
        for bj in _blocks(len(p_vecs), block_size):
            sims = s_vecs[bi] @ p_vecs[bj].T
            hit = np.nonzero(sims >= threshold)
            out_a.append(s_ids[bi][hit[0]])
            out_b.append(p_ids[bj][hit[1]])
            out_s.append(sims[hit])
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_s).astype(np.float32)


def semantic_edges(x: np.ndarray, params: DedupParams, rows: np.ndarray | None = None) -> tuple[Edges, dict]:
    """Edges between rows whose embeddings have cos >= 1 - eps, and stats (k, cluster sizes, spill)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    threshold = 1.0 - params.semantic_eps
    k = n_clusters_for(n, params)
    if n < 2:
        return Edges.empty(), {"k": 0, "largest_cluster": n, "secondary_members": 0}
    if k == 1:
        centroids = x.mean(axis=0, keepdims=True)
    else:
        centroids = train_kmeans(x, k, params.kmeans_iters, params.kmeans_points_per_centroid, params.seed)
    asg = assign(x, centroids, params)
    a, b, s = [], [], []
    for c, p_rows, s_rows in members_by_cluster(asg, len(centroids)):
        pa_, pb_, ps_ = cluster_pairs(x[p_rows], p_rows, x[s_rows], s_rows, threshold, params.block_size)
        a.append(pa_)
        b.append(pb_)
        s.append(ps_)
    a = np.concatenate(a) if a else np.empty(0, np.int64)
    b = np.concatenate(b) if b else np.empty(0, np.int64)
    s = np.concatenate(s) if s else np.empty(0, np.float32)
    sizes = np.bincount(asg.primary, minlength=len(centroids))
    stats = {"k": int(len(centroids)), "largest_cluster": int(sizes.max()), "secondary_members": int(len(asg.extra_rows))}
    return Edges.of(rows[a], rows[b], "semantic", np.minimum(s, 1.0)), stats


def members_by_cluster(asg: Assignment, k: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(cluster, primary rows, secondary rows) for every non-empty cluster."""
    p_order = np.argsort(asg.primary, kind="stable")
    p_bounds = np.searchsorted(asg.primary[p_order], np.arange(k + 1))
    s_order = np.argsort(asg.extra_cluster, kind="stable")
    s_bounds = np.searchsorted(asg.extra_cluster[s_order], np.arange(k + 1))
    s_rows_sorted = asg.extra_rows[s_order]
    for c in range(k):
        p_rows = p_order[p_bounds[c]:p_bounds[c + 1]]
        if len(p_rows) == 0:
            continue
        yield c, p_rows, s_rows_sorted[s_bounds[c]:s_bounds[c + 1]]
