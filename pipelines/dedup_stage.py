"""Semantic dedup as a map/reduce on Ray (the map and reduce sides; pipelines/table_shards.py drives them).

The semantic step is the heavy kind (2 GB of 512-d embeddings per million clips), so
no single worker holds every embedding:

1. sample: k-means trains on a random sample (k x points_per_centroid rows);
2. map (`split_by_cluster`, a task per shard file): each row goes to its nearest
   centroid (plus border spill, see curation/dedup/semantic.py), and the rows are
   split into S shards by cluster id (num_returns=S);
3. reduce (`pairs_task`, a task per shard): that shard's part from every map task,
   pairs compared cluster by cluster, in bounded blocks.
"""
import numpy as np
import pyarrow as pa
import ray

from curation.dedup import DedupParams
from curation.dedup.semantic import Assignment, assign, cluster_pairs, members_by_cluster
from curation.dedup.table_ops import embedding_matrix


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
def pairs_task(params: DedupParams, *parts) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
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
