"""Cluster-balanced selection: hierarchical k-means, then balanced sampling top-down.

After Vo et al. 2024, "Automatic Data Curation for Self-Supervised Learning:
A Clustering-Based Approach": k-means on the embeddings gives fine clusters
(level 0); k-means on those centroids gives coarser ones (level 1), and so on.
A budget is split equally between the top-level clusters (a cluster smaller
than its share gives the rest back to the others: water-filling), each share
equally between that cluster's children, down to the leaves, where clips are
taken at random (or best first by a score column). Concepts that make up most
of the raw data (talking heads, screen recordings) then no longer make up
most of the selection.

Two outputs: "select" keeps `target_size` clips and drops the rest with the
reason "balance"; "weight" drops nothing and fills `sample_weight` with each
clip's inclusion rate under the same allocation (mean 1 over eligible clips),
for a sampler that draws clips proportionally to weight.

Optional quotas: the budget is first split over metadata buckets
(resolution, aspect, duration or motion) by the given shares (equal when none),
and the hierarchy balances within each bucket.

Only clips kept before balancing take part; others keep their drop reasons
and a null sample_weight.
"""
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation.dedup.kmeans import nearest_centroids, train_kmeans
from curation.dedup.table_ops import embedding_matrix, float_column, reasons_without, set_drop_reason

DROP_REASON = "balance"
QUOTA_NAMES = {  # every bucket label of each quota dimension
    "resolution": ("<360p", "360-719p", "720-1079p", ">=1080p"),
    "aspect": ("portrait", "square", "standard", "wide", "ultrawide"),
    "duration": ("<2s", "2-5s", "5-10s", "10-30s", ">=30s"),
    "motion": ("static", "low", "mid", "high", "unknown"),
}
QUOTA_DIMENSIONS = tuple(QUOTA_NAMES)


@dataclass(frozen=True)
class BalanceParams:
    """How to balance, with units."""

    mode: str = "select"  # "select": keep target_size clips | "weight": fill sample_weight, drop nothing
    target_size: int | None = None  # clips to keep; None: round(target_fraction * eligible clips)
    target_fraction: float = 0.5  # share of eligible clips to keep when target_size is None
    levels: tuple[int, ...] | None = None  # clusters per level, finest first, e.g. (1000, 100, 10); None: rule below
    branching: int = 10  # default rule: sqrt(N) leaf clusters, each coarser level has 1/branching as many
    max_levels: int = 3
    quota_by: str | None = None  # one of QUOTA_DIMENSIONS, or None for no quotas
    quota_shares: tuple[tuple[str, float], ...] | None = None  # (bucket, share) pairs; None: equal shares
    rank_by: str | None = None  # within a leaf: None = random (Vo et al.), or a column, highest first
    kmeans_iters: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("select", "weight"):
            raise ValueError("BalanceParams.mode must be 'select' or 'weight'")
        if self.quota_by is not None and self.quota_by not in QUOTA_DIMENSIONS:
            raise ValueError(f"BalanceParams.quota_by must be one of {QUOTA_DIMENSIONS}")
        if not 0.0 < self.target_fraction <= 1.0:
            raise ValueError("BalanceParams.target_fraction must be in (0, 1]")


@dataclass
class BalanceResult:
    """The clips table after balancing, notes, and diversity before/after."""

    table: pa.Table
    notes: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def fill(budget: float, caps: np.ndarray, shares: np.ndarray | None = None, integer: bool = True, rng=None) -> np.ndarray:
    """Split `budget` over bins proportionally to `shares` (equal if None), no bin above its cap (water-filling)."""
    caps = np.asarray(caps, np.float64)
    shares = np.ones(len(caps)) if shares is None else np.asarray(shares, np.float64)
    alloc = np.zeros(len(caps))
    remaining = min(float(budget), caps.sum())
    active = (caps > 0) & (shares > 0)
    while remaining > 1e-9 and active.any():
        ideal = remaining * shares * active / shares[active].sum()
        full = active & (caps - alloc <= ideal)
        if not full.any():
            alloc += ideal
            remaining = 0.0
            break
        remaining -= float(np.sum(caps[full] - alloc[full]))
        alloc[full] = caps[full]
        active &= ~full
    if not integer:
        return alloc
    out = np.floor(alloc + 1e-9).astype(np.int64)
    short = int(round(min(float(budget), caps.sum()))) - int(out.sum())
    if short > 0:  # largest remainders first; ties broken at random
        rng = rng or np.random.default_rng(0)
        room = np.flatnonzero(out < caps)
        frac = (alloc - out)[room] + rng.random(len(room)) * 1e-6
        out[room[np.argsort(-frac)[:short]]] += 1
    return out


def build_hierarchy(x: np.ndarray, levels: tuple[int, ...], iters: int, seed: int
                    ) -> tuple[list[np.ndarray], list[int], list[np.ndarray]]:
    """(assignments, ks, centroids), finest first: the cluster of each point (level 0) or finer centroid (level > 0),
    k per level, and each level's centroids."""
    out, ks, cents, data = [], [], [], x
    for level, k in enumerate(levels):
        k = max(1, min(k, len(data)))
        # coarser levels cluster a few centroids: restarts are cheap there and avoid
        # merging small, far-apart concepts while splitting a big one
        centroids = train_kmeans(data, k, iters, points_per_centroid=256, seed=seed, nredo=1 if level == 0 else 10)
        _, idx = nearest_centroids(data, centroids, 1)
        out.append(idx[:, 0].astype(np.int64))
        ks.append(len(centroids))
        cents.append(centroids)
        data = centroids
    return out, ks, cents


def default_levels(n: int, params: BalanceParams) -> tuple[int, ...]:
    """sqrt(n) leaf clusters, then 1/branching as many per coarser level, while at least 2."""
    levels, k = [], max(2, int(round(np.sqrt(n))))
    while k >= 2 and len(levels) < params.max_levels:
        levels.append(k)
        k //= max(2, params.branching)
    return tuple(levels)


def quota_buckets(table: pa.Table, dimension: str, motion_tertiles: tuple[float, float] | None = None) -> np.ndarray:
    """Bucket label of every clip along one metadata dimension (motion: tertiles of `table` unless given)."""
    if dimension == "resolution":
        short = np.minimum(float_column(table, "width"), float_column(table, "height"))
        edges, names = [360, 720, 1080], QUOTA_NAMES["resolution"]
        return np.array(names, dtype=object)[np.searchsorted(edges, short, side="right")]
    if dimension == "aspect":
        ratio = float_column(table, "width") / np.maximum(float_column(table, "height"), 1)
        edges, names = [0.9, 1.1, 1.5, 2.0], QUOTA_NAMES["aspect"]
        return np.array(names, dtype=object)[np.searchsorted(edges, ratio, side="right")]
    if dimension == "duration":
        edges, names = [2, 5, 10, 30], QUOTA_NAMES["duration"]
        return np.array(names, dtype=object)[np.searchsorted(edges, float_column(table, "duration_s"), side="right")]
    # motion: static flag, else tertiles of the motion score over the measured clips; null -> unknown
    motion = float_column(table, "motion")
    static = np.array(table.column("static").fill_null(False).to_pylist(), dtype=bool)
    out = np.full(len(motion), "unknown", dtype=object)
    measured = ~np.isnan(motion) & ~static
    if measured.any():
        t1, t2 = motion_tertiles if motion_tertiles is not None else np.quantile(motion[measured], [1 / 3, 2 / 3])
        out[measured] = np.array(["low", "mid", "high"], dtype=object)[np.searchsorted([t1, t2], motion[measured], side="right")]
    out[static] = "static"
    return out


def diversity(leaf: np.ndarray, weights: np.ndarray | None = None, n_leaves: int | None = None) -> dict:
    """Entropy of cluster sizes (nats, and / log of the cluster count) and share of the largest 10 % of clusters."""
    n_leaves = n_leaves or int(leaf.max()) + 1
    return diversity_of_sizes(np.bincount(leaf, weights=weights, minlength=n_leaves).astype(np.float64))


def diversity_of_sizes(sizes: np.ndarray) -> dict:
    """diversity() from the clusters' sizes (counts or summed weights), one entry per cluster."""
    sizes = np.asarray(sizes, np.float64)
    n_leaves = len(sizes)
    total = sizes.sum()
    if total <= 0:
        return {"clusters": n_leaves, "entropy": 0.0, "entropy_norm": 0.0, "top10pct_share": 0.0}
    p = sizes[sizes > 0] / total
    entropy = float(-(p * np.log(p)).sum())
    top = max(1, int(np.ceil(0.1 * n_leaves)))
    return {
        "clusters": n_leaves,
        "entropy": round(entropy, 4),
        "entropy_norm": round(float(entropy / np.log(n_leaves)), 4) if n_leaves > 1 else 1.0,
        "top10pct_share": round(float(np.sort(sizes)[::-1][:top].sum() / total), 4),
    }


def _allocate_tree(budget: float, points_leaf: np.ndarray, parents: list[np.ndarray], n_leaves: int, integer: bool, rng) -> np.ndarray:
    """Budget per leaf cluster, split equally top-down through the hierarchy (capped by what each subtree holds)."""
    return allocate_tree(budget, np.bincount(points_leaf, minlength=n_leaves).astype(np.float64), parents, integer, rng)


def allocate_tree(budget: float, leaf_sizes: np.ndarray, parents: list[np.ndarray], integer: bool, rng) -> np.ndarray:
    """Budget per leaf from the leaves' sizes: split equally over the top level, then over each node's children."""
    caps = [np.asarray(leaf_sizes, np.float64)]
    for parent in parents:  # parent[c] = coarser cluster of finer cluster c
        caps.append(np.bincount(parent, weights=caps[-1], minlength=int(parent.max()) + 1))
    alloc = fill(budget, caps[-1], integer=integer, rng=rng)  # top level
    for level in range(len(parents) - 1, -1, -1):
        parent = parents[level]
        child_alloc = np.zeros(len(caps[level]))
        order = np.argsort(parent, kind="stable")
        bounds = np.searchsorted(parent[order], np.arange(len(alloc) + 1))
        for p in np.flatnonzero(alloc > 0):
            kids = order[bounds[p]:bounds[p + 1]]
            child_alloc[kids] = fill(alloc[p], caps[level][kids], integer=integer, rng=rng)
        alloc = child_alloc
    return alloc


def bucket_budgets(target: int, names, caps: np.ndarray, params: BalanceParams, rng) -> np.ndarray:
    """The target split over the quota buckets `names` by params.quota_shares (equal when None), capped by `caps`."""
    shares = None
    if params.quota_shares is not None:
        wanted = dict(params.quota_shares)
        shares = np.array([wanted.get(b, 0.0) for b in names])
    return fill(target, caps, shares, integer=params.mode == "select", rng=rng)


def balance(clips: pa.Table, params: BalanceParams = BalanceParams()) -> BalanceResult:
    """Balance the kept clips over hierarchical k-means clusters: select to a target size or fill sample_weight."""
    n = clips.num_rows
    notes: list[str] = []
    rng = np.random.default_rng(params.seed)
    eligible = reasons_without(clips, DROP_REASON)  # kept, forgetting an earlier balance verdict
    rows = np.flatnonzero(eligible)
    if len(rows) == 0:
        notes.append("balance: nothing to balance, no kept clips")
        return BalanceResult(set_drop_reason(clips, np.zeros(n, bool), DROP_REASON), notes, {})

    # leaf clusters of the eligible clips; clips without an embedding form one extra leaf
    emb_rows, emb = embedding_matrix(clips.take(pa.array(rows)))
    leaf = np.zeros(len(rows), np.int64)
    parents: list[np.ndarray] = []
    levels: tuple[int, ...] = ()
    if len(emb_rows) >= 2:
        levels = params.levels or default_levels(len(emb_rows), params)
        tree, ks, _ = build_hierarchy(emb, levels, params.kmeans_iters, params.seed)
        leaf[:] = ks[0]  # index ks[0]: the extra leaf, for clips without an embedding
        leaf[emb_rows] = tree[0]
        # the extra leaf hangs under its own extra node (index ks[l]) at every coarser level l
        parents = [np.r_[p, ks[lvl + 1]] for lvl, p in enumerate(tree[1:])]
        if len(emb_rows) < len(rows):
            notes.append(f"balance: {len(rows) - len(emb_rows)} clip(s) without an embedding form one extra cluster")
    else:
        notes.append("balance: no embeddings (CLIP not configured); clusters unavailable, only quotas apply")
    n_leaves = ks[0] + 1 if len(emb_rows) >= 2 else 1
    top = leaf.copy()
    for parent in parents:
        top = parent[top]

    target = params.target_size if params.target_size is not None else int(round(params.target_fraction * len(rows)))
    target = min(target, len(rows))
    buckets = quota_buckets(clips.take(pa.array(rows)), params.quota_by) if params.quota_by else np.full(len(rows), "all", dtype=object)
    names = sorted(set(buckets.tolist()))
    caps = np.array([np.sum(buckets == b) for b in names], np.float64)
    integer = params.mode == "select"
    per_bucket = bucket_budgets(target, names, caps, params, rng)

    inclusion = np.zeros(len(rows))  # select: 0/1; weight: expected inclusion rate
    for b, budget in zip(names, per_bucket):
        in_b = np.flatnonzero(buckets == b)
        leaf_budget = _allocate_tree(budget, leaf[in_b], parents, n_leaves, integer, rng)
        sizes = np.bincount(leaf[in_b], minlength=n_leaves)
        if integer:
            inclusion[in_b[_pick_in_leaves(leaf[in_b], leaf_budget, _rank(clips, rows[in_b], params, rng))]] = 1.0
        else:
            inclusion[in_b] = leaf_budget[leaf[in_b]] / np.maximum(sizes[leaf[in_b]], 1)

    report = {"levels": list(levels), "eligible": int(len(rows)), "target": int(target)}
    if params.quota_by:
        report["quota"] = {b: {"available": int(c), "allocated": round(float(a), 2)} for b, c, a in zip(names, caps, per_bucket)}
    weights = np.full(n, np.nan)
    if params.mode == "select":
        selected = inclusion > 0
        report["selected"] = int(selected.sum())
        report["diversity"] = _diversity_report(leaf, top, selected, None)
        drop = np.zeros(n, bool)
        drop[rows[~selected]] = True
        table = set_drop_reason(clips, drop, DROP_REASON)
    else:
        w = inclusion / inclusion.mean() if inclusion.mean() > 0 else inclusion
        weights[rows] = w
        report["diversity"] = _diversity_report(leaf, top, np.ones(len(rows), bool), w)
        table = set_drop_reason(clips, np.zeros(n, bool), DROP_REASON)
    i = table.schema.get_field_index("sample_weight")
    table = table.set_column(i, table.schema.field("sample_weight"), pa.array(weights, pa.float32(), from_pandas=True))
    b, a = report["diversity"]["top"]["before"], report["diversity"]["top"]["after"]
    notes.append(
        f"balance ({params.mode}): k-means levels {list(levels)}; top level: entropy {b['entropy_norm']:.3f} -> {a['entropy_norm']:.3f} "
        f"(normalised), largest 10% of clusters hold {b['top10pct_share']:.1%} -> {a['top10pct_share']:.1%}"
    )
    return BalanceResult(table, notes, report)


def _diversity_report(leaf: np.ndarray, top: np.ndarray, selected: np.ndarray, weights: np.ndarray | None) -> dict:
    """Diversity before/after at the leaf and top levels, over the clusters that held eligible clips."""
    out = {}
    for name, labels in (("leaf", leaf), ("top", top)):
        _, compact = np.unique(labels, return_inverse=True)  # non-empty clusters only
        k = int(compact.max()) + 1
        after_w = None if weights is None else weights[selected]
        out[name] = {"before": diversity(compact, n_leaves=k), "after": diversity(compact[selected], after_w, n_leaves=k)}
    return out


def _rank(clips: pa.Table, rows: np.ndarray, params: BalanceParams, rng) -> np.ndarray:
    """Priority of each row within its leaf: lower is taken first."""
    if params.rank_by is None:
        return rng.random(len(rows))
    score = float_column(clips.take(pa.array(rows)), params.rank_by)
    return np.where(np.isnan(score), np.inf, -score)  # highest first, nulls last


def _pick_in_leaves(leaf: np.ndarray, leaf_budget: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Positions of the first leaf_budget[c] points of every leaf c by priority."""
    order = np.lexsort((priority, leaf))
    sorted_leaf = leaf[order]
    start = np.searchsorted(sorted_leaf, sorted_leaf, side="left")
    rank_in_leaf = np.arange(len(order)) - start
    return order[rank_in_leaf < leaf_budget[sorted_leaf]]
