"""Cluster-balanced selection from counts: curation.balance for clips that are never all in one process.

pipelines/table_shards.py keeps the clips in partitions. The hierarchy is
trained on a sample (`sample_hierarchy`); every partition labels its eligible
clips with a cell (quota bucket x leaf cluster) and a rank key (`cell_labels`)
and counts them per cell; `cell_budgets` splits the target over those counts
as balance() splits it over the clips (quota shares, then the hierarchy
top-down, water-filling); a clip is taken when (key, clip) is among the first
budget[cell] of its cell (`cell_thresholds`, `taken`).

Differences from balance(), on purpose: the leaf centroids come from a sample
of at most `sample_rows` embeddings, motion quota tertiles from the same
sample, and random ranking is a hash of the clip id rather than a draw, so
the choice does not depend on how clips fell into partitions.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.balance import (QUOTA_NAMES, BalanceParams, allocate_tree, bucket_budgets, build_hierarchy, default_levels,
                              diversity_of_sizes, quota_buckets)
from curation.dedup.kmeans import nearest_centroids
from curation.dedup.table_ops import embedding_matrix, float_column


@dataclass(frozen=True)
class Hierarchy:
    """What a partition needs to label its clips: leaf centroids, the tree above them, quota set-up."""

    centroids: np.ndarray | None  # (k0, d) leaf centroids; None: no embeddings, one leaf
    parents: tuple[np.ndarray, ...]  # parents[l][c]: level l+1 cluster of level-l cluster c (extra leaf included)
    levels: tuple[int, ...]
    motion_tertiles: tuple[float, float] | None = None

    @property
    def n_leaves(self) -> int:
        return 1 if self.centroids is None else len(self.centroids) + 1  # + the leaf of clips without an embedding


def buckets_of(params: BalanceParams) -> tuple[str, ...]:
    return QUOTA_NAMES[params.quota_by] if params.quota_by else ("all",)


def sample_hierarchy(sample: pa.Table, n_eligible: int, params: BalanceParams) -> Hierarchy:
    """The k-means hierarchy (levels from the eligible count, as balance() chooses them) trained on a sample
    of eligible clips; motion tertiles over the sample when quotas are by motion."""
    tertiles = None
    if params.quota_by == "motion":
        motion = float_column(sample, "motion")
        static = np.array(sample.column("static").fill_null(False).to_pylist(), dtype=bool)
        measured = motion[~np.isnan(motion) & ~static]
        if len(measured):
            tertiles = tuple(float(q) for q in np.quantile(measured, [1 / 3, 2 / 3]))
    _, x = embedding_matrix(sample)
    if len(x) < 2:
        return Hierarchy(None, (), (), tertiles)
    levels = params.levels or default_levels(n_eligible, params)
    tree, ks, cents = build_hierarchy(x, levels, params.kmeans_iters, params.seed)
    parents = tuple(np.r_[p, ks[lvl + 1]] for lvl, p in enumerate(tree[1:]))  # the extra leaf under its own node
    return Hierarchy(cents[0], parents, tuple(levels), tertiles)


def rank_key(table: pa.Table, params: BalanceParams) -> np.ndarray:
    """Lower is taken first: a uniform hash of (clip_id, seed) for random ranking, else -rank_by (nulls last)."""
    if params.rank_by is None:
        ids = table.column("clip_id").to_pylist()  # 16 hex digits each (curation/ids.py)
        x = np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").astype(np.uint64) if ids else np.empty(0, np.uint64)
        return (_splitmix64(x ^ np.uint64(params.seed)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    score = float_column(table, params.rank_by)
    return np.where(np.isnan(score), np.inf, -score)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al. 2014): a bijective mix of 64-bit integers."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def cell_labels(table: pa.Table, hier: Hierarchy, params: BalanceParams) -> tuple[np.ndarray, np.ndarray]:
    """(cell, key) per clip of `table`: cell = bucket * n_leaves + leaf."""
    n = table.num_rows
    leaf = np.zeros(n, np.int64)
    if hier.centroids is not None:
        leaf[:] = len(hier.centroids)  # the extra leaf
        rows, x = embedding_matrix(table)
        if len(rows):
            leaf[rows] = nearest_centroids(x, hier.centroids, 1)[1][:, 0]
    bucket = np.zeros(n, np.int64)
    if params.quota_by:
        labels = quota_buckets(table, params.quota_by, hier.motion_tertiles)
        index = {name: i for i, name in enumerate(buckets_of(params))}
        bucket = np.array([index[b] for b in labels], np.int64) if n else bucket
    return bucket * hier.n_leaves + leaf, rank_key(table, params)


def cell_budgets(counts: np.ndarray, hier: Hierarchy, params: BalanceParams) -> tuple[np.ndarray, dict]:
    """Budget per cell ((buckets, leaves) array) from the eligible clips' counts per cell, and the report's head."""
    rng = np.random.default_rng(params.seed)
    n = int(counts.sum())
    target = min(params.target_size if params.target_size is not None else int(round(params.target_fraction * n)), n)
    names = buckets_of(params)
    caps = counts.sum(axis=1).astype(np.float64)
    integer = params.mode == "select"
    per_bucket = bucket_budgets(target, names, caps, params, rng)
    budgets = np.zeros(counts.shape)
    for b in np.flatnonzero(caps > 0):
        budgets[b] = allocate_tree(per_bucket[b], counts[b], list(hier.parents), integer, rng)
    report = {"levels": list(hier.levels), "eligible": n, "target": int(target)}
    if params.quota_by:
        report["quota"] = {names[b]: {"available": int(caps[b]), "allocated": round(float(per_bucket[b]), 2)}
                           for b in np.flatnonzero(caps > 0)}
    return budgets, report


def diversity_report(counts: np.ndarray, budgets: np.ndarray, hier: Hierarchy) -> dict:
    """Diversity before/after at the leaf and top levels over the clusters that held eligible clips
    (after: the budgets, which are the selected counts, or in weight mode the summed weights up to a constant)."""
    before, after = counts.sum(axis=0).astype(np.float64), budgets.sum(axis=0)
    out = {}
    for name in ("leaf", "top"):
        if name == "top":
            for parent in hier.parents:
                before = np.bincount(parent, weights=before, minlength=int(parent.max()) + 1)
                after = np.bincount(parent, weights=after, minlength=int(parent.max()) + 1)
        held = before > 0
        out[name] = {"before": diversity_of_sizes(before[held]), "after": diversity_of_sizes(after[held])}
    return out


def cell_thresholds(cell: np.ndarray, key: np.ndarray, row: np.ndarray, budget: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, key, row) of the last clip taken in every cell with a budget: the budget[cell] lowest (key, row).
    `budget` is indexed by cell (flattened (buckets, leaves)); all clips of a cell must be given."""
    order = np.lexsort((row, key, cell))
    c = cell[order]
    start = np.searchsorted(c, c, side="left")
    rank = np.arange(len(c)) - start
    last = (rank == np.round(budget[c]).astype(np.int64) - 1)
    pick = order[last]
    return cell[pick], key[pick], row[pick]


def taken(cell: np.ndarray, key: np.ndarray, row: np.ndarray, thresholds: tuple[np.ndarray, np.ndarray, np.ndarray],
          n_cells: int) -> np.ndarray:
    """True where (key, row) is at or below its cell's threshold (cells without one take nothing)."""
    t_cell, t_key, t_row = thresholds
    has = np.zeros(n_cells, bool)
    tk = np.full(n_cells, -np.inf)
    tr = np.full(n_cells, -1, np.int64)
    has[t_cell], tk[t_cell], tr[t_cell] = True, t_key, t_row
    k, r = tk[cell], tr[cell]
    return has[cell] & ((key < k) | ((key == k) & (row <= r)))
