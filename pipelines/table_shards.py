"""The table stages with no per-clip state on the driver: filter -> dedup -> balance -> curate over shard files.

The driver path (pipelines/table_parts.py) keeps a narrow row per clip on the
driver (~185 B) and runs dedup and balance there. This path is for runs where
that does not fit: the driver holds what grows with duplicate pairs, clusters
and groups of parts, never a row per clip.

1. shard (a task per group of parts): read the group's clips, apply the filter
   rules, write the narrow columns plus a 128-bit content word pair to
   `_work/tables/g<N>.parquet`; a clip's global row is its group's offset plus
   its position in the file.
2. dedup, kind by kind, each as tasks over the shard files:
   - exact: a hash shuffle; task b pairs the equal keys among the rows whose
     content word hashes to b;
   - perceptual: a task finds the distinct hash lists (they stay in the object
     store), then one task per partition of the multi-index
     (curation.dedup.perceptual.partitions);
   - segment: one task matches the per-sample hashes and maps matched spans to
     clip pairs (its memory grows with the samples: not split further);
   - semantic: k-means on a sample, assignment per shard file, pairs per
     cluster shard (the map/reduce of pipelines/dedup_stage.py).
   The driver then gathers only the rows that have an edge (a task per group)
   and groups them with curation.dedup.find's centre grouping, so the groups
   are the ones the driver path finds from the same edges.
3. balance (curation/balance_counts.py): hierarchy on a sample, counts per
   (quota bucket, leaf) from every group, budgets on the driver, each cell's
   rank threshold from a shuffle by cell.
4. write (a task per group): re-read the group's clips, apply the filter,
   dedup and balance decisions, write clips/ and curated/ files; the driver
   commits the manifests and sums the counts the tasks return.
"""
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from pyarrow.fs import FSSpecHandler, PyFileSystem

from curation.balance import BalanceParams
from curation.balance_counts import Hierarchy, buckets_of, cell_budgets, cell_labels, cell_thresholds, diversity_report, sample_hierarchy, taken
from curation.dedup import DedupParams
from curation.dedup.edges import Edges
from curation.dedup.exact import exact_edges, identical_file_groups
from curation.dedup.find import DROP_REASON as DUP_REASON, DUP_COLUMNS, fill_dup_columns, segment_and_verified_edges, verified_groups
from curation.dedup.kmeans import train_kmeans
from curation.dedup.params import KINDS
from curation.dedup.perceptual import partition_pairs, partitions, phash_matrix, unique_hash_lists
from curation.dedup.segments import segment_note
from curation.dedup.semantic import n_clusters_for
from curation.dedup.table_ops import embedding_matrix, reasons_without, set_drop_reason
from curation.filters import Rule, apply_filters, rule_counts
from pipelines.dedup_stage import _pairs_task, split_by_cluster
from pipelines.store import RunStore
from pipelines.table_parts import group_clips, part_video_keys, write_versions
from schemas import TABLES

BALANCE_REASON = "balance"
SCRATCH = ("_work", "tables")


@dataclass
class Shards:
    """The shard files of one run and what the stages decided so far (refs to small tables)."""

    src: object  # table_parts.PartsSource
    groups: list[list[str]]
    kept: list  # per group: refs of its kept "part/video_id" keys
    files: list[str]  # per group: shard file path on the store's filesystem
    rows: np.ndarray  # per group: clips after the filter
    kept_rows: np.ndarray  # per group: clips the filter kept
    rules: list[Rule] | None
    window: int
    dup: object = None  # ref: dedup decisions of the rows in groups (`_grow`, dup_*, `_dup_drop`)
    dup_drops: int = 0
    dup_segments: pa.Table | None = None
    balance: dict | None = None  # mode, files, thresholds, weights per cell

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.rows)].astype(np.int64)

    @property
    def n(self) -> int:
        return int(self.rows.sum())


def _fs(store: RunStore) -> PyFileSystem:
    return PyFileSystem(FSSpecHandler(store.fs))


def _read(store: RunStore, path: str, columns: list[str]) -> pa.Table:
    return pq.read_table(path, columns=columns, filesystem=_fs(store))


def _ordered(refs_of: Iterator, window: int) -> Iterator:
    """Results of lazily made task refs, in order, at most `window` in flight."""
    pending = []
    for ref in refs_of:
        pending.append(ref)
        if len(pending) >= window:
            yield ray.get(pending.pop(0))
    while pending:
        yield ray.get(pending.pop(0))


# ------------------------------------------------------------------ 1. shard

def content_words(clips: pa.Table, videos: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Two uint64 words of each clip's video content hash (null where the video is unknown): with the frame span
    they are the exact-dedup key (128 bits of the file's sha256: no collision in practice)."""
    hashes = videos.column("content_hash").to_pylist()
    w1 = pa.array([int(h[:16], 16) for h in hashes], pa.uint64())
    w2 = pa.array([int(h[16:32], 16) for h in hashes], pa.uint64())
    idx = pc.index_in(clips.column("video_id"), value_set=videos.column("video_id"))
    return w1.take(idx), w2.take(idx)


@ray.remote(num_cpus=1, max_retries=3)
def _shard_task(src, parts: list[str], kept: pa.Array, rules, columns: list[str], path: str) -> tuple[int, int]:
    """Pass 1 for one group: its clips, filtered, narrow columns + content words, to `path`; (rows, kept rows)."""
    store = src.store()
    t = group_clips(src, parts, kept)
    if rules is not None:
        t = apply_filters(t, rules)
    videos = pa.concat_tables([store.read_part(src.scan_key, p, "videos") for p in parts])
    w1, w2 = content_words(t, videos)
    t = t.select(columns).append_column("_w1", w1).append_column("_w2", w2)
    pq.write_table(t, path, filesystem=_fs(store))
    return t.num_rows, int(pc.sum(t.column("kept")).as_py() or 0)


def shard(src, store: RunStore, groups: list[list[str]], kept: list[pa.Array], rules, columns: list[str], window: int) -> Shards:
    """Pass 1 over every group (the filter stage, when rules are given)."""
    base = store.path(*SCRATCH)
    if store.fs.exists(base):
        store.fs.rm(base, recursive=True)  # an earlier, killed run's shards
    store.fs.makedirs(base, exist_ok=True)
    files = [posixpath.join(base, f"g{i:05d}.parquet") for i in range(len(groups))]
    kept_refs = [ray.put(k) for k in kept]
    refs = (_shard_task.remote(src, g, k, rules, columns, f) for g, k, f in zip(groups, kept_refs, files))
    counts = list(_ordered(refs, window))
    rows = np.array([c[0] for c in counts], np.int64)
    kept_rows = np.array([c[1] for c in counts], np.int64)
    return Shards(src, groups, kept_refs, files, rows, kept_rows, rules, window)


@ray.remote(num_cpus=1, max_retries=3)
def _rows_task(src, path: str, offset: int, local: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows `local` of one shard file (their global row in `_grow`)."""
    t = _read(src.store(), path, columns).take(pa.array(local))
    return t.append_column("_grow", pa.array(local + offset, pa.int64()))


def gather(sh: Shards, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """The given global rows (sorted, unique) with `columns`: a task per group that holds some."""
    off = sh.offsets
    cut = np.searchsorted(rows, off)
    refs = [_rows_task.remote(sh.src, sh.files[g], int(off[g]), rows[cut[g]:cut[g + 1]] - off[g], columns)
            for g in range(len(sh.files)) if cut[g + 1] > cut[g]]
    tables = ray.get(refs)
    return pa.concat_tables(tables) if tables else None


# ------------------------------------------------------------------ 2. dedup

@ray.remote(num_cpus=1, max_retries=3)
def _exact_task(src, files: list[str], offsets: np.ndarray, bucket: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact pairs among the rows whose content word hashes to `bucket` (the hash shuffle's reduce side)."""
    store = src.store()
    keys, grows = [], []
    for path, off in zip(files, offsets):
        t = _read(store, path, ["_w1", "_w2", "start_frame", "end_frame"])
        w1 = t.column("_w1").to_numpy(zero_copy_only=False)
        valid = t.column("_w1").is_valid().to_numpy(zero_copy_only=False)
        w1 = np.where(valid, w1, 0).astype(np.uint64)
        mine = np.flatnonzero(valid & (w1 % np.uint64(buckets) == bucket))
        if not len(mine):
            continue
        w2 = t.column("_w2").to_numpy(zero_copy_only=False).astype(np.uint64)
        keys.append(np.stack([(w1[mine] >> np.uint64(1)).astype(np.int64), w2[mine].view(np.int64),
                              t.column("start_frame").to_numpy()[mine].astype(np.int64),
                              t.column("end_frame").to_numpy()[mine].astype(np.int64)], axis=1))
        grows.append(mine + off)
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    grow = np.concatenate(grows)
    e = exact_edges(np.concatenate(keys))
    return grow[e.a], grow[e.b]


def _exact(sh: Shards) -> Edges:
    buckets = max(2, sh.window)
    out = ray.get([_exact_task.remote(sh.src, sh.files, sh.offsets[:-1], b, buckets) for b in range(buckets)])
    return Edges.of(np.concatenate([a for a, _ in out]), np.concatenate([b for _, b in out]), "exact", 1.0)


@ray.remote(num_cpus=1, max_retries=3, num_returns=3)
def _distinct_hashes_task(src, files: list[str], offsets: np.ndarray):
    """(distinct hash lists (U, K), global row of each list's first clip, small: identical pairs + K) over every shard.
    Clips are taken in (video_id, clip_index) order, as the driver path's table is sorted."""
    store = src.store()
    tables = []
    for path, off in zip(files, offsets):
        t = _read(store, path, ["video_id", "clip_index", "phash"])
        tables.append(t.append_column("_grow", pa.array(np.arange(t.num_rows, dtype=np.int64) + off)))
    t = pa.concat_tables(tables).combine_chunks() if tables else pa.table({"phash": pa.array([], pa.list_(pa.uint64()))})
    if t.num_rows:
        t = t.take(pc.sort_indices(t, [("video_id", "ascending"), ("clip_index", "ascending")]))
    rows, hashes, k = phash_matrix(t.column("phash"))
    n_all = t.num_rows
    if len(rows) < 2 or k == 0:
        return np.empty((0, 0), np.uint64), np.empty(0, np.int64), (np.empty(0, np.int64), np.empty(0, np.int64), k, len(rows), n_all, 0)
    grow = t.column("_grow").to_numpy()[rows]
    uniq, first, same_a, same_b = unique_hash_lists(hashes)
    return uniq, grow[first], (grow[same_a], grow[same_b], k, len(rows), n_all, len(uniq))


@ray.remote(num_cpus=1, max_retries=3)
def _partition_task(uniq: np.ndarray, first: np.ndarray, part, max_hamming: int, symmetric: bool):
    a, b, dist, examined = partition_pairs(uniq, part, max_hamming, symmetric)
    return first[a], first[b], (1.0 - dist / 64.0).astype(np.float32), examined


def _perceptual(sh: Shards, params: DedupParams, stats: dict) -> tuple[Edges, str]:
    uniq, first, small = _distinct_hashes_task.remote(sh.src, sh.files, sh.offsets[:-1])
    same_a, same_b, k, n_hashed, n_all, n_unique = ray.get(small)
    if n_hashed < 2:
        return Edges.empty(), "perceptual dedup: skipped, no phash values"
    work = partitions(n_unique, k, params.phash_max_hamming, params.phash_symmetric, params.phash_index_chunks or None)
    found = ray.get([_partition_task.remote(uniq, first, p, params.phash_max_hamming, params.phash_symmetric) for p in work])
    edges = Edges.concat([Edges.of(same_a, same_b, "perceptual", 1.0),
                          Edges.of(np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]), "perceptual",
                                   np.concatenate([f[2] for f in found]))])
    stats.update(perceptual_partitions=len(work), perceptual_candidates=int(sum(f[3] for f in found)))
    turned = " (any rotation or mirror)" if params.phash_symmetric else ""
    note = (f"perceptual dedup: {len(edges)} pair(s) at median Hamming <= {params.phash_max_hamming}{turned} over {k} "
            f"keyframes; {len(work)} index partitions as tasks")
    if n_hashed < n_all:
        note += f"; {n_all - n_hashed} clip(s) without {k} keyframe phashes, not compared"
    return edges, note


def read_samples(store: RunStore, scan_key: str, parts: list[str], kept: pa.Array) -> pa.Table:
    """Per-sample pHashes (segment dedup's input) of the kept video copies ("part/video_id") of `parts`."""
    tables = []
    for part in parts:
        t = store.read_part(scan_key, part, "samples")
        if t.num_rows:
            tables.append(t.filter(pc.is_in(part_video_keys(part, t), value_set=kept)))
    return pa.concat_tables(tables) if tables else TABLES["samples"].empty_table()


def read_keyframes(store: RunStore, scan_key: str, clip_ids: list[str]) -> pa.Table:
    """The keyframes of the given clips (dedup's keyframe check), read part by part: JPEGs of other clips are
    dropped as each part is read."""
    want = pa.array(clip_ids, pa.string())
    tables = [t.filter(pc.is_in(t.column("clip_id"), value_set=want))
              for t in (store.read_part(scan_key, part, "keyframes") for part in store.committed_parts(scan_key))]
    return pa.concat_tables(tables) if tables else TABLES["keyframes"].empty_table()


@ray.remote(num_cpus=1, max_retries=3)
def _segment_task(src, groups: list[list[str]], kept: list, files: list[str], done: Edges, params: DedupParams):
    """Segment and edited matches over every sample, the clip pairs they cover (global rows), and the keyframe
    check of the near misses (curation.dedup.find.segment_and_verified_edges, as the driver path runs it)."""
    store = src.store()
    kept = ray.get(kept)  # refs inside a list are not resolved for the task
    samples = pa.concat_tables([read_samples(store, src.scan_key, g, k) for g, k in zip(groups, kept)])
    spans = pa.concat_tables([_read(store, f, ["clip_id", "video_id", "start_s", "end_s"]) for f in files])
    stats: dict = {}
    keyframes = partial(read_keyframes, store, src.scan_key)
    e, matches, verified, notes = segment_and_verified_edges(spans, samples, done, keyframes, params, stats)
    return e, matches, verified, notes, stats


def _segment(sh: Shards, done: Edges, params: DedupParams) -> tuple[Edges, pa.Table, Edges, list[str], dict]:
    return ray.get(_segment_task.remote(sh.src, sh.groups, sh.kept, sh.files, done, params))


@ray.remote(num_cpus=1, max_retries=3)
def _train_from_shards_task(src, files: list[str], local_rows: list[np.ndarray], k: int, params: DedupParams) -> np.ndarray:
    store = src.store()
    tables = [_read(store, f, ["embedding"]).take(pa.array(r)) for f, r in zip(files, local_rows) if len(r)]
    _, x = embedding_matrix(pa.concat_tables(tables))
    return train_kmeans(x, k, params.kmeans_iters, params.kmeans_points_per_centroid, params.seed)


@ray.remote(num_cpus=1, max_retries=3)
def _assign_shard_task(src, path: str, offset: int, centroids: np.ndarray, params: DedupParams, num_shards: int):
    return split_by_cluster(_read(src.store(), path, ["embedding"]), offset, centroids, params, num_shards)


def _embedded_rows(sh: Shards) -> int:
    return int(sum(ray.get([_count_embedded_task.remote(sh.src, f) for f in sh.files])))


@ray.remote(num_cpus=1, max_retries=3)
def _count_embedded_task(src, path: str) -> int:
    col = _read(src.store(), path, ["embedding"]).column("embedding")
    return len(col) - col.null_count


def sample_rows(sh: Shards, m: int, seed: int) -> list[np.ndarray]:
    """About m rows drawn uniformly, as local rows per group (each group's share in proportion to its rows)."""
    rng = np.random.default_rng(seed)
    n = max(1, sh.n)
    return [np.sort(rng.choice(int(r), min(int(r), int(np.ceil(m * r / n))), replace=False)) for r in sh.rows]


def _semantic(sh: Shards, params: DedupParams) -> tuple[Edges, dict]:
    n_emb = _embedded_rows(sh)
    if n_emb == 0:
        return Edges.empty(), {}
    k = n_clusters_for(n_emb, params)
    centroids = _train_from_shards_task.remote(sh.src, sh.files, sample_rows(sh, k * params.kmeans_points_per_centroid, params.seed),
                                               k, params)
    num_shards = max(2, sh.window)
    off = sh.offsets
    maps = [_assign_shard_task.options(num_returns=num_shards).remote(sh.src, f, int(off[g]), centroids, params, num_shards)
            for g, f in enumerate(sh.files)]
    out = ray.get([_pairs_task.remote(params, *[m[s] for m in maps]) for s in range(num_shards)])
    edges = Edges.of(np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]), "semantic",
                     np.minimum(np.concatenate([o[2] for o in out]), 1.0))
    return edges, {"k": int(k), "largest_cluster": max(o[3] for o in out), "compared": n_emb, "map_tasks": len(maps),
                   "reduce_tasks": num_shards}


@ray.remote(num_cpus=1, max_retries=3)
def _identical_files_task(src, groups: list[list[str]], kept: list) -> int:
    """Content hashes shared by two or more kept video copies (files with byte-identical copies)."""
    store = src.store()
    hashes = [group_videos(store, src.scan_key, g, k).column("content_hash") for g, k in zip(groups, ray.get(kept))]
    return identical_file_groups(pa.table({"content_hash": pa.chunked_array(hashes, pa.string())}))


def dedup(sh: Shards, params: DedupParams) -> tuple[dict, list[str]]:
    """Every configured kind as tasks, then the centre grouping over the rows that have an edge."""
    notes, stats, parts = [], {"clips": sh.n}, []
    if "exact" in params.kinds:
        e = _exact(sh)
        parts.append(e)
        stats["identical_file_groups"] = ray.get(_identical_files_task.remote(sh.src, sh.groups, sh.kept))
        notes.append(f"exact dedup: {len(e)} pair(s), {stats['identical_file_groups']} file(s) with byte-identical copies; "
                     f"by a hash shuffle over {max(2, sh.window)} buckets")
    if "perceptual" in params.kinds:
        e, note = _perceptual(sh, params, stats)
        parts.append(e)
        notes.append(note)
    if "segment" in params.kinds or "edited" in params.kinds:
        e, sh.dup_segments, verified, vnotes, vstats = _segment(sh, Edges.concat(parts), params)
        parts += [e, verified]
        notes.append(segment_note(sh.dup_segments, e))
        notes += vnotes
        stats.update(vstats)
    if "semantic" in params.kinds:
        e, sstats = _semantic(sh, params)
        if sstats:
            stats["semantic"] = sstats
            notes.append(f"semantic dedup: {len(e)} pair(s) at cos >= {1 - params.semantic_eps:.3f}; "
                         f"k={sstats['k']} clusters, largest {sstats['largest_cluster']}")
        else:
            notes.append("semantic dedup: skipped, no embeddings (CLIP not configured)")
        parts.append(e)
    edges = Edges.concat(parts)
    involved = np.unique(np.concatenate([edges.a, edges.b]))
    if not len(involved):
        stats.update(groups=0, members=0, dropped=0, involved=0, pairs={kind: 0 for kind in KINDS})
        notes.append("dedup: 0 group(s), 0 member(s), 0 dropped as duplicate")
        return stats, notes
    columns = list(dict.fromkeys(["clip_id", "video_id", "clip_index", "duration_s", "drop_reasons", "kept",
                                  *DUP_COLUMNS, *(c for c, _ in params.keep_policy)]))
    compact = gather(sh, involved, columns)  # in global row order = `involved` order
    local = Edges(np.searchsorted(involved, edges.a), np.searchsorted(involved, edges.b), edges.kind, edges.sim)
    kept_before = reasons_without(compact, DUP_REASON)
    keyframes = partial(read_keyframes, sh.src.store(), sh.src.scan_key)
    local, rep, group = verified_groups(compact, local, kept_before, keyframes, params, stats, notes)
    stats["pairs"] = {kind: local.count(kind) for kind in KINDS}
    member = rep >= 0
    drop = member & (rep != np.arange(len(involved)))
    filled = fill_dup_columns(compact, local, member, rep, group)
    decisions = filled.select(["_grow", *DUP_COLUMNS]).append_column("_dup_drop", pa.array(drop))
    decisions = decisions.filter(pa.array(member))
    sh.dup = ray.put(decisions)
    sh.dup_drops = int(drop.sum())
    stats.update(groups=int(np.sum(member & (rep == np.arange(len(involved))))), members=int(member.sum()),
                 dropped=sh.dup_drops, involved=int(len(involved)))
    notes.append(f"dedup: {stats['groups']} group(s), {stats['members']} member(s), {stats['dropped']} dropped as duplicate "
                 f"(the driver held the {len(involved)} clips with a pair, not all {sh.n})")
    return stats, notes


def _dup_slice(dup: pa.Table | None, offset: int, n: int) -> pa.Table | None:
    if dup is None:
        return None
    g = dup.column("_grow")
    return dup.filter(pc.and_(pc.greater_equal(g, offset), pc.less(g, offset + n)))


def with_dup(t: pa.Table, dup: pa.Table | None, offset: int) -> pa.Table:
    """Rows of one shard with the dedup decisions: dup_* columns of the group members, "duplicate" where dropped."""
    if dup is None:
        return t
    n = t.num_rows
    local = dup.column("_grow").to_numpy() - offset
    at = np.full(n, -1, np.int64)
    at[local] = np.arange(len(local))
    scatter = pa.array(at, mask=at < 0)
    for name in DUP_COLUMNS:
        t = t.set_column(t.schema.get_field_index(name), t.schema.field(name), dup.column(name).combine_chunks().take(scatter))
    drop = np.zeros(n, bool)
    drop[local[dup.column("_dup_drop").to_numpy(zero_copy_only=False)]] = True
    return set_drop_reason(t, drop, DUP_REASON)


# ------------------------------------------------------------------ 3. balance

@ray.remote(num_cpus=1, max_retries=3)
def _balance_sample_task(src, files: list[str], offsets: np.ndarray, local_rows: list[np.ndarray], dup, params: BalanceParams):
    """A sample of the eligible clips (kept after filter and dedup), for the hierarchy and the motion tertiles."""
    store = src.store()
    tables = []
    for f, off, r in zip(files, offsets, local_rows):
        if not len(r):
            continue
        t = _read(store, f, ["drop_reasons", "kept", "embedding", "motion", "static", *DUP_COLUMNS])
        t = with_dup(t, _dup_slice(dup, int(off), t.num_rows), int(off)).take(pa.array(r))
        tables.append(t.filter(pa.array(reasons_without(t, BALANCE_REASON))))
    return pa.concat_tables(tables) if tables else pa.table({})


@ray.remote(num_cpus=1, max_retries=3)
def _hierarchy_task(sample: pa.Table, n_eligible: int, params: BalanceParams) -> Hierarchy:
    if sample.num_columns == 0:
        return Hierarchy(None, (), ())
    return sample_hierarchy(sample, n_eligible, params)


def _balance_columns(params: BalanceParams) -> list[str]:
    cols = ["clip_id", "drop_reasons", "kept", "embedding", "width", "height", "duration_s", "motion", "static", *DUP_COLUMNS]
    if params.rank_by:
        cols.append(params.rank_by)
    return list(dict.fromkeys(cols))


@ray.remote(num_cpus=1, max_retries=3)
def _cells_task(src, path: str, offset: int, dup, hier: Hierarchy, params: BalanceParams, out: str) -> np.ndarray:
    """Label the eligible clips of one shard (cell, rank key), write them to `out`, return the counts per cell."""
    store = src.store()
    t = _read(store, path, _balance_columns(params))
    t = with_dup(t, _dup_slice(dup, offset, t.num_rows), offset)
    rows = np.flatnonzero(reasons_without(t, BALANCE_REASON))
    cell, key = cell_labels(t.take(pa.array(rows)), hier, params)
    pq.write_table(pa.table({"row": rows + offset, "cell": cell, "key": key}), out, filesystem=_fs(store))
    n_cells = hier.n_leaves * len(buckets_of(params))
    return np.bincount(cell, minlength=n_cells)


@ray.remote(num_cpus=1, max_retries=3)
def _threshold_task(src, files: list[str], shard: int, shards: int, budget: np.ndarray):
    """Rank thresholds of the cells `cell % shards == shard` (every shard file read, only those cells kept)."""
    store = src.store()
    cols = {"row": [], "cell": [], "key": []}
    for f in files:
        t = _read(store, f, ["row", "cell", "key"])
        mine = np.flatnonzero(t.column("cell").to_numpy() % shards == shard)
        for name in cols:
            cols[name].append(t.column(name).to_numpy()[mine])
    if not cols["row"]:
        return np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    return cell_thresholds(np.concatenate(cols["cell"]), np.concatenate(cols["key"]), np.concatenate(cols["row"]), budget)


def balance(sh: Shards, params: BalanceParams, sample_rows_max: int) -> tuple[dict, list[str]]:
    """Cluster-balanced selection (or weights) over the shards; see curation/balance_counts.py."""
    n_eligible = int(sh.kept_rows.sum()) - sh.dup_drops
    off = sh.offsets
    sample = _balance_sample_task.remote(sh.src, sh.files, off[:-1], sample_rows(sh, sample_rows_max, params.seed), sh.dup, params)
    hier = ray.get(_hierarchy_task.remote(sample, max(n_eligible, 1), params))
    n_buckets = len(buckets_of(params))
    base = posixpath.dirname(sh.files[0]) if sh.files else ""
    cell_files = [posixpath.join(base, f"cells-g{g:05d}.parquet") for g in range(len(sh.files))]
    hier_ref = ray.put(hier)
    counts = sum(ray.get([_cells_task.remote(sh.src, f, int(off[g]), sh.dup, hier_ref, params, cell_files[g])
                          for g, f in enumerate(sh.files)]), np.zeros(hier.n_leaves * n_buckets, np.int64))
    counts = counts.reshape(n_buckets, hier.n_leaves)
    budgets, report = cell_budgets(counts, hier, params)
    report["diversity"] = diversity_report(counts, budgets, hier)
    report["sample_rows"] = sample_rows_max
    state = {"mode": params.mode, "files": cell_files, "n_cells": counts.size}
    if params.mode == "select":
        shards = max(2, sh.window)
        parts = ray.get([_threshold_task.remote(sh.src, cell_files, s, shards, budgets.ravel()) for s in range(shards)])
        state["thresholds"] = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
        report["selected"] = int(np.round(budgets).sum())
    else:
        rate = np.divide(budgets, counts, out=np.zeros_like(budgets), where=counts > 0)
        mean = budgets.sum() / max(1, counts.sum())
        state["weights"] = (rate / mean if mean > 0 else rate).ravel()
    sh.balance = state
    b, a = report["diversity"]["top"]["before"], report["diversity"]["top"]["after"]
    notes = [f"balance ({params.mode}, sharded): k-means levels {list(hier.levels)} on a sample of at most {sample_rows_max} clips; "
             f"top level: entropy {b['entropy_norm']:.3f} -> {a['entropy_norm']:.3f} (normalised), largest 10% of clusters hold "
             f"{b['top10pct_share']:.1%} -> {a['top10pct_share']:.1%}"]
    if hier.centroids is None:
        notes.append("balance: no embeddings (CLIP not configured); clusters unavailable, only quotas apply")
    return report, notes


def with_balance(t: pa.Table, state: dict, cells: pa.Table, offset: int) -> pa.Table:
    """Rows of one group with balance's decision: "balance" on the eligible clips not taken, or sample_weight.
    `cells`: the group's (global row, cell, key) of its eligible clips."""
    n = t.num_rows
    grow = cells.column("row").to_numpy()
    local = grow - offset
    cell, key = cells.column("cell").to_numpy(), cells.column("key").to_numpy()
    weights = np.full(n, np.nan)
    drop = np.zeros(n, bool)
    if state["mode"] == "select":
        drop[local] = ~taken(cell, key, grow, state["thresholds"], state["n_cells"])
    else:
        weights[local] = state["weights"][cell]
    t = set_drop_reason(t, drop, BALANCE_REASON)
    i = t.schema.get_field_index("sample_weight")
    return t.set_column(i, t.schema.field("sample_weight"), pa.array(weights, pa.float32(), from_pandas=True))


# ------------------------------------------------------------------ 4. write

def group_videos(store: RunStore, scan_key: str, parts: list[str], kept: pa.Array) -> pa.Table:
    """The video rows of the kept copies ("part/video_id" in `kept`) among `parts`."""
    tables = []
    for part in parts:
        t = store.read_part(scan_key, part, "videos")
        tables.append(t.filter(pc.is_in(part_video_keys(part, t), value_set=kept)))
    return pa.concat_tables(tables) if tables else TABLES["videos"].empty_table()


@ray.remote(num_cpus=1, max_retries=3)
def _write_task(src, parts: list[str], kept: pa.Array, rules, offset: int, dup, balance_state: dict | None, cells_path: str | None,
                group: int, versions: dict[str, str], rows_per_file: int) -> tuple[dict, dict]:
    """Pass 2 for one group: every column of its clips with all decisions, written as files of the new versions.
    Returns (table -> [(file, rows)], counts)."""
    store = src.store()
    t = group_clips(src, parts, kept)
    if rules is not None:
        t = apply_filters(t, rules)
    t = with_dup(t, _dup_slice(dup, offset, t.num_rows), offset)
    if balance_state is not None:
        t = with_balance(t, balance_state, pq.read_table(cells_path, filesystem=_fs(store)), offset)
    versions = dict(versions)
    out = {}
    if "videos" in versions:  # the group's kept video copies ("part/video_id" in `kept`) as files of videos/
        out = write_versions(store, group_videos(store, src.scan_key, parts, kept), group, {"videos": versions.pop("videos")},
                             rows_per_file)
    out.update(write_versions(store, t, group, versions, rows_per_file))
    kept_t = t.filter(pc.equal(t.column("kept"), True))
    counts = {"clips": t.num_rows, "curated": kept_t.num_rows, "drop_reasons": rule_counts(t),
              "seconds_in": float(pc.sum(t.column("duration_s")).as_py() or 0),
              "seconds_curated": float(pc.sum(kept_t.column("duration_s")).as_py() or 0)}
    return out, counts


def write(sh: Shards, writers: dict, rows_per_file: int) -> dict:
    """Write clips/ (and videos/, curated/ when among `writers`) per group; returns the summed counts."""
    versions = {name: w.version for name, w in writers.items()}
    off = sh.offsets
    cells = sh.balance["files"] if sh.balance else [None] * len(sh.groups)
    refs = (_write_task.remote(sh.src, g, sh.kept[i], sh.rules, int(off[i]), sh.dup, sh.balance, cells[i], i, versions, rows_per_file)
            for i, g in enumerate(sh.groups))
    total = {"clips": 0, "curated": 0, "drop_reasons": {}, "seconds_in": 0.0, "seconds_curated": 0.0}
    for files, counts in _ordered(refs, sh.window):
        for name, fs in files.items():
            writers[name].add_files(fs)
        for k in ("clips", "curated", "seconds_in", "seconds_curated"):
            total[k] += counts[k]
        for reason, c in counts["drop_reasons"].items():
            total["drop_reasons"][reason] = total["drop_reasons"].get(reason, 0) + c
    total["drop_reasons"] = dict(sorted(total["drop_reasons"].items()))
    return total


def cleanup(store: RunStore) -> None:
    """Delete the shard files (after the final tables are committed)."""
    base = store.path(*SCRATCH)
    if store.fs.exists(base):
        store.fs.rm(base, recursive=True)
