"""Dedup stage on Ray: the global, all-clips step of the pipeline.

Exact, perceptual and segment matching run on the driver: they need only content
hashes, 3 x 64-bit phashes per clip (24 MB per million clips) and, for segment
matching, one (video, t, phash) row per analysis sample (~2 per second of video). The
semantic step is the heavy one (2 GB of 512-d embeddings per million clips)
and runs as a map/reduce so no single worker holds every embedding:

1. sample: the driver takes a random sample (k x points_per_centroid rows) and
   a task trains k-means on it;
2. map: one task per Arrow batch of the embedding column assigns each row to
   its nearest centroid (plus border spill, see curation/dedup/semantic.py)
   and splits its rows into S shards by cluster id (num_returns=S);
3. reduce: one task per shard gets that shard's part from every map task and
   compares pairs cluster by cluster, in bounded blocks;
4. the driver unites the returned pairs (small) with the exact and perceptual
   ones and picks representatives (curation.dedup.find_duplicates).

Below `min_rows_distributed` clips everything runs locally: starting tasks
costs more than it saves.
"""
from functools import partial

import numpy as np
import pyarrow as pa
import ray

from curation.dedup import DedupParams, DedupResult, Edges, find_duplicates
from curation.dedup.verify import KeyframeSource
from curation.dedup.kmeans import train_kmeans
from curation.dedup.semantic import Assignment, assign, cluster_pairs, members_by_cluster, n_clusters_for
from curation.dedup.table_ops import embedding_matrix


def run_dedup_on_ray(
    clips: pa.Table,
    videos: pa.Table,
    params: DedupParams = DedupParams(),
    *,
    min_rows_distributed: int = 100_000,
    batch_rows: int = 50_000,
    num_shards: int | None = None,
    samples: pa.Table | None = None,
    keyframes: KeyframeSource | None = None,
) -> DedupResult:
    """find_duplicates with the semantic step distributed over Ray tasks when there are many clips.

    `samples` (schemas TABLES["samples"]): per-sample pHashes of the videos, for segment (re-cut) matching;
    `keyframes`: the keyframes table or a reader of given clip ids, for the edited pairs' ORB check.
    """
    if clips.num_rows < min_rows_distributed or "semantic" not in params.kinds:
        result = find_duplicates(clips, videos, params, samples=samples, keyframes=keyframes)
        result.notes.append(f"dedup stage: ran locally ({clips.num_rows} clips < {min_rows_distributed})")
        return result
    finder = partial(_ray_semantic_edges, batch_rows=batch_rows, num_shards=num_shards)
    result = find_duplicates(clips, videos, params, semantic_finder=finder, samples=samples, keyframes=keyframes)
    result.notes.append(f"dedup stage: semantic step on Ray ({clips.num_rows} clips, batches of {batch_rows})")
    return result


@ray.remote
def _train_task(sample: np.ndarray, k: int, params: DedupParams) -> np.ndarray:
    return train_kmeans(sample, k, params.kmeans_iters, params.kmeans_points_per_centroid, params.seed)


@ray.remote
def _assign_task(batch: pa.Table, offset: int, centroids: np.ndarray, params: DedupParams, num_shards: int):
    return split_by_cluster(batch, offset, centroids, params, num_shards)


def split_by_cluster(batch: pa.Table, offset: int, centroids: np.ndarray, params: DedupParams, num_shards: int):
    """Assign one batch of embeddings (rows offset..); return per shard (row ids, vectors, cluster ids, primary flags)."""
    rows, x = embedding_matrix(batch)
    asg = assign(x, centroids, params)
    # one membership per (row, cluster): primaries, then border spill
    member = np.concatenate([np.arange(len(rows)), asg.extra_rows])
    cluster = np.concatenate([asg.primary, asg.extra_cluster])
    primary = np.concatenate([np.ones(len(rows), bool), np.zeros(len(asg.extra_rows), bool)])
    shard = cluster % num_shards
    parts = []
    for s in range(num_shards):
        sel = shard == s
        parts.append((rows[member[sel]] + offset, x[member[sel]], cluster[sel], primary[sel]))
    return parts if num_shards > 1 else parts[0]


@ray.remote
def _pairs_task(params: DedupParams, *parts) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs within the clusters of one shard, from every map task's part of it."""
    ids = np.concatenate([p[0] for p in parts])
    vecs = np.concatenate([p[1] for p in parts]) if ids.size else np.empty((0, 1), np.float32)
    cluster = np.concatenate([p[2] for p in parts])
    primary = np.concatenate([p[3] for p in parts])
    if ids.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), 0
    local = np.unique(cluster, return_inverse=True)[1].ravel()  # dense cluster ids within this shard
    k = int(local.max()) + 1
    p_pos, s_pos = np.flatnonzero(primary), np.flatnonzero(~primary)
    asg = Assignment(local[p_pos], s_pos, local[s_pos])  # primary is indexed over p_pos, see below
    a, b, sims = [], [], []
    threshold = 1.0 - params.semantic_eps
    for _, p_rows, s_rows in members_by_cluster(asg, k):
        pr = p_pos[p_rows]  # positions in this shard's arrays
        pa_, pb_, ps_ = cluster_pairs(vecs[pr], ids[pr], vecs[s_rows], ids[s_rows], threshold, params.block_size)
        a.append(pa_)
        b.append(pb_)
        sims.append(ps_)
    largest = int(np.bincount(local[p_pos]).max()) if p_pos.size else 0
    return np.concatenate(a), np.concatenate(b), np.concatenate(sims), largest


def _ray_semantic_edges(clips: pa.Table, params: DedupParams, batch_rows: int, num_shards: int | None) -> tuple[Edges, dict]:
    """Semantic edges between clip rows, computed by Ray tasks (see the module docstring)."""
    n_emb = clips.num_rows - clips.column("embedding").null_count
    k = n_clusters_for(n_emb, params)
    rng = np.random.default_rng(params.seed)
    sample_rows = np.sort(rng.choice(clips.num_rows, min(clips.num_rows, k * params.kmeans_points_per_centroid), replace=False))
    _, sample = embedding_matrix(clips.select(["embedding"]).take(pa.array(sample_rows)))
    centroids_ref = _train_task.remote(sample, k, params)

    emb = clips.select(["embedding"])
    num_shards = num_shards or max(2, int(ray.available_resources().get("CPU", 2)) * 2)
    # take() makes each batch a compact copy: a pickled slice could drag its parent's whole buffers along
    batches = [(emb.take(pa.array(np.arange(o, min(o + batch_rows, clips.num_rows)))), o) for o in range(0, clips.num_rows, batch_rows)]
    map_out = [
        _assign_task.options(num_returns=num_shards).remote(ray.put(t), o, centroids_ref, params, num_shards)
        for t, o in batches
    ]
    if num_shards == 1:
        map_out = [[m] for m in map_out]
    reduce_refs = [_pairs_task.remote(params, *[m[s] for m in map_out]) for s in range(num_shards)]
    a, b, sims, largest = [], [], [], 0
    for ra, rb, rs, big in ray.get(reduce_refs):
        a.append(ra)
        b.append(rb)
        sims.append(rs)
        largest = max(largest, big)
    edges = Edges.of(np.concatenate(a), np.concatenate(b), "semantic", np.minimum(np.concatenate(sims), 1.0))
    stats = {"k": int(k), "largest_cluster": largest, "compared": int(n_emb), "map_tasks": len(batches), "reduce_tasks": num_shards}
    return edges, stats
