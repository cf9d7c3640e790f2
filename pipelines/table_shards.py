"""The working clips table of a run, in partitions, and the table stages over it.

Every run takes this path, whatever its size: the driver never holds a row per
clip, only what grows with duplicate pairs, clusters and groups of parts.

- shard files (`_work/tables/g<N>-v<K>.parquet`, a task per group of committed
  scan parts): every column of the group's clips (the kept video copies,
  embeddings and text areas joined) plus a 128-bit content word pair; a clip's
  global row is its group's offset plus its position in the file.
- steps: a stage that changes rows one group at a time (the filter rules, the
  dedup and balance decisions, caption columns, a custom stage) appends a
  `Step`; steps run inside the next task that reads the group. A step that
  declares the columns it reads and writes runs on a column projection, so
  dedup and balance read only what they need; a step that needs every column
  (a custom stage) is folded into new shard files before the next global
  stage reads them (`settle`).
- dedup, kind by kind, each as tasks over the shard files:
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
  and groups them with curation.dedup.find's centre grouping.
- balance (curation/balance_counts.py): hierarchy on a sample, counts per
  (quota bucket, leaf) from every group, budgets on the driver, each cell's
  rank threshold from a shuffle by cell.
- write (a task per group): the group's rows with every step applied, written
  as files of the new clips/, curated/ and videos/ versions; the driver commits
  the manifests and sums the counts the tasks return.
"""
import importlib
import posixpath
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from pipelines.dedup_stage import pairs_task, split_by_cluster
from pipelines.store import RunStore
from pipelines.table_parts import PartsSource, group_clips, group_videos, read_keyframes, read_samples, write_versions
from schemas import TABLES, validate_table

BALANCE_REASON = "balance"
SCRATCH = ("_work", "tables")
WORDS = ("_w1", "_w2")  # the exact-dedup key's content words: in the shard files, not in the final tables


@dataclass(frozen=True)
class Step:
    """A change to a group's rows that the next task reading the group applies: fn(rows, group, first global row)."""

    fn: Callable[[pa.Table, int, int], pa.Table]
    reads: tuple[str, ...] | None  # the columns it reads; None: every column (a custom stage), and it may change the rows
    writes: tuple[str, ...] = ()


@dataclass
class Shards:
    """The shard files of one run and the steps not yet folded into them."""

    src: PartsSource
    groups: list[list[str]]
    kept: list  # per group: ref of its kept "part/video_id" keys
    files: list[str]  # per group: shard file path on the store's filesystem
    rows: np.ndarray  # per group: rows in its shard file
    window: int
    steps: list[Step] = field(default_factory=list)
    generation: int = 0
    dup_segments: pa.Table | None = None  # matched segments between videos (dedup, kind segment); None: not run

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.rows)].astype(np.int64)

    @property
    def n(self) -> int:
        return int(self.rows.sum())

    def add(self, step: Step) -> None:
        self.steps.append(step)


def _fs(store: RunStore) -> PyFileSystem:
    return PyFileSystem(FSSpecHandler(store.fs))


def _read(store: RunStore, path: str, columns: list[str] | None) -> pa.Table:
    return pq.read_table(path, columns=columns, filesystem=_fs(store))


def _resolve(x):
    """A ref nested in a task's arguments (Ray resolves only top-level ones), or the value itself."""
    return ray.get(x) if isinstance(x, ray.ObjectRef) else x


def read_rows(store: RunStore, path: str, columns: list[str], steps: list[Step], group: int, offset: int) -> pa.Table:
    """`columns` of one shard file with the steps that decide them applied (on a projection: each step reads
    only its own columns)."""
    need, active = set(columns), []
    for step in reversed(steps):
        if step.reads is None:
            raise RuntimeError("table stages: a step that needs every column must be settled before a projection is read")
        if need & set(step.writes):
            active.append(step)
            need |= set(step.reads) | set(step.writes)
    t = _read(store, path, [c for c in _read_schema(store, path).names if c in need])
    for step in reversed(active):
        t = step.fn(t, group, offset)
    return t.select(columns)


def _read_schema(store: RunStore, path: str) -> pa.Schema:
    return pq.read_schema(path, filesystem=_fs(store))


def _apply_all(t: pa.Table, steps: list[Step], group: int, offset: int) -> pa.Table:
    """Every step on a group's whole rows (content words dropped: a custom stage sees the clips table's columns)."""
    t = t.drop_columns([c for c in WORDS if c in t.column_names])
    for step in steps:
        t = step.fn(t, group, offset)
    return t


def ordered(refs_of: Iterator, window: int) -> Iterator:
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


def _write_shard(store: RunStore, src: PartsSource, parts: list[str], kept: pa.Array, t: pa.Table, path: str) -> int:
    w1, w2 = content_words(t, group_videos(store, src.scan_key, parts, kept))
    pq.write_table(t.append_column(WORDS[0], w1).append_column(WORDS[1], w2), path, filesystem=_fs(store))
    return t.num_rows


@ray.remote(num_cpus=1, max_retries=3)
def _shard_task(src: PartsSource, parts: list[str], kept: pa.Array, path: str) -> int:
    """One group's clips (every column, the kept video copies) and their content words, to `path`; its rows."""
    return _write_shard(src.store(), src, parts, kept, group_clips(src, parts, kept), path)


def _shard_path(store: RunStore, group: int, generation: int) -> str:
    return posixpath.join(store.path(*SCRATCH), f"g{group:05d}-v{generation}.parquet")


def shard(src: PartsSource, store: RunStore, groups: list[list[str]], kept: list[pa.Array], window: int) -> Shards:
    """The working table: a shard file per group of parts."""
    base = store.path(*SCRATCH)
    if store.fs.exists(base):
        store.fs.rm(base, recursive=True)  # an earlier, killed run's shards
    store.fs.makedirs(base, exist_ok=True)
    files = [_shard_path(store, g, 0) for g in range(len(groups))]
    kept_refs = [ray.put(k) for k in kept]
    refs = (_shard_task.remote(src, g, k, f) for g, k, f in zip(groups, kept_refs, files))
    return Shards(src, groups, kept_refs, files, np.array(list(ordered(refs, window)), np.int64), window)


@ray.remote(num_cpus=1, max_retries=3)
def _settle_task(src: PartsSource, parts: list[str], kept: pa.Array, path: str, group: int, offset: int, steps: list[Step],
                 out: str) -> int:
    store = src.store()
    t = _apply_all(_read(store, path, None), steps, group, offset)
    return _write_shard(store, src, parts, kept, t, out)


def settle(sh: Shards) -> None:
    """Fold the steps into new shard files when one of them needs every column (before a stage reads projections)."""
    if all(s.reads is not None for s in sh.steps):
        return
    store, off = sh.src.store(), sh.offsets
    sh.generation += 1
    out = [_shard_path(store, g, sh.generation) for g in range(len(sh.files))]
    refs = (_settle_task.remote(sh.src, sh.groups[g], sh.kept[g], sh.files[g], g, int(off[g]), sh.steps, out[g])
            for g in range(len(sh.files)))
    rows = np.array(list(ordered(refs, sh.window)), np.int64)
    for f in sh.files:
        store.fs.rm(f)
    sh.files, sh.rows, sh.steps = out, rows, []


@ray.remote(num_cpus=1, max_retries=3)
def _rows_task(src: PartsSource, path: str, group: int, offset: int, steps: list[Step], local: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows `local` of one shard file (their global row in `_grow`)."""
    t = read_rows(src.store(), path, columns, steps, group, offset).take(pa.array(local))
    return t.append_column("_grow", pa.array(local + offset, pa.int64()))


def gather(sh: Shards, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """The given global rows (sorted, unique) with `columns`: a task per group that holds some."""
    off = sh.offsets
    cut = np.searchsorted(rows, off)
    refs = [_rows_task.remote(sh.src, sh.files[g], g, int(off[g]), sh.steps, rows[cut[g]:cut[g + 1]] - off[g], columns)
            for g in range(len(sh.files)) if cut[g + 1] > cut[g]]
    tables = ray.get(refs)
    return pa.concat_tables(tables) if tables else None


@ray.remote(num_cpus=1, max_retries=3)
def _count_kept_task(src: PartsSource, path: str, group: int, offset: int, steps: list[Step]) -> int:
    return int(pc.sum(read_rows(src.store(), path, ["kept"], steps, group, offset).column("kept")).as_py() or 0)


def kept_rows(sh: Shards) -> int:
    """Clips that no step has dropped so far."""
    off = sh.offsets
    return int(sum(ray.get([_count_kept_task.remote(sh.src, f, g, int(off[g]), sh.steps) for g, f in enumerate(sh.files)])))


# ------------------------------------------------------------------ row-local steps: filter, custom stages

def _filter_step(rules: list[Rule], t: pa.Table, group: int, offset: int) -> pa.Table:
    return apply_filters(t, rules)


def filter_step(rules: list[Rule]) -> Step:
    """The filter rules (row-local): they read their columns and write the drop reasons."""
    reads = tuple(dict.fromkeys([r.column for r in rules] + ["drop_reasons", "kept"]))
    return Step(partial(_filter_step, rules), reads, ("drop_reasons", "kept"))


def _custom_step(fn: Callable, name: str, stage: dict, t: pa.Table, group: int, offset: int) -> pa.Table:
    return validate_table(fn(t, stage), TABLES["clips"], f"clips after stage {name}")


def custom_step(entrypoint: str, name: str, stage: dict) -> Step:
    """A user stage "module:function" taking (clips, stage_config_dict) and returning clips, called on one
    partition at a time (every column). A module that is not installed travels to the workers by value (Ray's
    cloudpickle), so a module beside the config works on a cluster; what it imports must be installed there."""
    module_name, _, func = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    if not _installed(module):
        ray.cloudpickle.register_pickle_by_value(module)
    return Step(partial(_custom_step, getattr(module, func), name, stage), None)


def _installed(module) -> bool:
    """Importable on every worker: built in, the standard library or an installed package (not a file beside the config)."""
    path = getattr(module, "__file__", None)
    return (path is None or "site-packages" in path or "dist-packages" in path
            or path.startswith(sysconfig.get_paths()["stdlib"]))


# ------------------------------------------------------------------ 2. dedup

@ray.remote(num_cpus=1, max_retries=3)
def _exact_task(src, files: list[str], offsets: np.ndarray, bucket: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact pairs among the rows whose content word hashes to `bucket` (the hash shuffle's reduce side).
    (No step writes the columns it reads: the shard files are read as they are.)"""
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
    Clips are taken in (video_id, clip_index) order: which equal hashes pair first does not depend on the grouping."""
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


@ray.remote(num_cpus=1, max_retries=3)
def _segment_task(src, groups: list[list[str]], kept: list, files: list[str], done: Edges, params: DedupParams):
    """Segment and edited matches over every sample, the clip pairs they cover (global rows), and the keyframe
    check of the near misses (curation.dedup.find.segment_and_verified_edges)."""
    store = src.store()
    kept = ray.get(kept)  # refs inside a list are not resolved for the task
    span_columns = ["clip_id", "video_id", "start_s", "end_s"]
    samples = pa.concat_tables([TABLES["samples"].empty_table(), *(read_samples(store, src.scan_key, g, k) for g, k in zip(groups, kept))])
    spans = pa.concat_tables([TABLES["clips"].empty_table().select(span_columns), *(_read(store, f, span_columns) for f in files)])
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
    out = ray.get([pairs_task.remote(params, *[m[s] for m in maps]) for s in range(num_shards)])
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
    settle(sh)
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
    sh.add(dup_step(ray.put(decisions)))
    stats.update(groups=int(np.sum(member & (rep == np.arange(len(involved))))), members=int(member.sum()),
                 dropped=int(drop.sum()), involved=int(len(involved)))
    notes.append(f"dedup: {stats['groups']} group(s), {stats['members']} member(s), {stats['dropped']} dropped as duplicate "
                 f"(the driver held the {len(involved)} clips with a pair, not all {sh.n})")
    return stats, notes


def _dup_slice(dup: pa.Table, offset: int, n: int) -> pa.Table:
    g = dup.column("_grow")
    return dup.filter(pc.and_(pc.greater_equal(g, offset), pc.less(g, offset + n)))


def _dup_step(dup, t: pa.Table, group: int, offset: int) -> pa.Table:
    """Rows of one shard with the dedup decisions: dup_* columns of the group members, "duplicate" where dropped."""
    dup = _dup_slice(_resolve(dup), offset, t.num_rows)
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


def dup_step(decisions) -> Step:
    """The dedup decisions (a ref of `_grow`, dup_* and `_dup_drop` of the group members) as a step."""
    columns = ("drop_reasons", "kept", *DUP_COLUMNS)
    return Step(partial(_dup_step, decisions), columns, columns)


# ------------------------------------------------------------------ 3. balance

@ray.remote(num_cpus=1, max_retries=3)
def _balance_sample_task(src, files: list[str], offsets: np.ndarray, local_rows: list[np.ndarray], steps: list[Step],
                         params: BalanceParams):
    """A sample of the eligible clips (kept by the stages so far), for the hierarchy and the motion tertiles."""
    store = src.store()
    tables = []
    for g, (f, off, r) in enumerate(zip(files, offsets, local_rows)):
        if not len(r):
            continue
        t = read_rows(store, f, ["drop_reasons", "kept", "embedding", "motion", "static"], steps, g, int(off)).take(pa.array(r))
        tables.append(t.filter(pa.array(reasons_without(t, BALANCE_REASON))))
    return pa.concat_tables(tables) if tables else pa.table({})


@ray.remote(num_cpus=1, max_retries=3)
def _hierarchy_task(sample: pa.Table, n_eligible: int, params: BalanceParams) -> Hierarchy:
    if sample.num_columns == 0:
        return Hierarchy(None, (), ())
    return sample_hierarchy(sample, n_eligible, params)


def _balance_columns(params: BalanceParams) -> list[str]:
    cols = ["clip_id", "drop_reasons", "kept", "embedding", "width", "height", "duration_s", "motion", "static"]
    if params.rank_by:
        cols.append(params.rank_by)
    return list(dict.fromkeys(cols))


@ray.remote(num_cpus=1, max_retries=3)
def _cells_task(src, path: str, group: int, offset: int, steps: list[Step], hier: Hierarchy, params: BalanceParams,
                out: str) -> np.ndarray:
    """Label the eligible clips of one shard (cell, rank key), write them to `out`, return the counts per cell."""
    store = src.store()
    t = read_rows(store, path, _balance_columns(params), steps, group, offset)
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
    settle(sh)
    n_eligible = kept_rows(sh)
    off = sh.offsets
    sample = _balance_sample_task.remote(sh.src, sh.files, off[:-1], sample_rows(sh, sample_rows_max, params.seed), sh.steps, params)
    hier = ray.get(_hierarchy_task.remote(sample, max(n_eligible, 1), params))
    n_buckets = len(buckets_of(params))
    base = posixpath.dirname(sh.files[0]) if sh.files else ""
    cell_files = [posixpath.join(base, f"cells-g{g:05d}.parquet") for g in range(len(sh.files))]
    hier_ref = ray.put(hier)
    counts = sum(ray.get([_cells_task.remote(sh.src, f, g, int(off[g]), sh.steps, hier_ref, params, cell_files[g])
                          for g, f in enumerate(sh.files)]), np.zeros(hier.n_leaves * n_buckets, np.int64))
    counts = counts.reshape(n_buckets, hier.n_leaves)
    budgets, report = cell_budgets(counts, hier, params)
    report["diversity"] = diversity_report(counts, budgets, hier)
    report["sample_rows"] = sample_rows_max
    state = {"mode": params.mode, "files": cell_files, "n_cells": counts.size, "src": sh.src}
    if params.mode == "select":
        shards = max(2, sh.window)
        parts = ray.get([_threshold_task.remote(sh.src, cell_files, s, shards, budgets.ravel()) for s in range(shards)])
        state["thresholds"] = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
        report["selected"] = int(np.round(budgets).sum())
    else:
        rate = np.divide(budgets, counts, out=np.zeros_like(budgets), where=counts > 0)
        mean = budgets.sum() / max(1, counts.sum())
        state["weights"] = (rate / mean if mean > 0 else rate).ravel()
    sh.add(Step(partial(_balance_step, state), ("drop_reasons", "kept", "sample_weight"), ("drop_reasons", "kept", "sample_weight")))
    b, a = report["diversity"]["top"]["before"], report["diversity"]["top"]["after"]
    notes = [f"balance ({params.mode}): k-means levels {list(hier.levels)} on a sample of at most {sample_rows_max} clips; "
             f"top level: entropy {b['entropy_norm']:.3f} -> {a['entropy_norm']:.3f} (normalised), largest 10% of clusters hold "
             f"{b['top10pct_share']:.1%} -> {a['top10pct_share']:.1%}"]
    if hier.centroids is None:
        notes.append("balance: no embeddings (CLIP not configured); clusters unavailable, only quotas apply")
    return report, notes


def _balance_step(state: dict, t: pa.Table, group: int, offset: int) -> pa.Table:
    """Rows of one group with balance's decision: "balance" on the eligible clips not taken, or sample_weight."""
    cells = pq.read_table(state["files"][group], filesystem=_fs(state["src"].store()))  # (global row, cell, key) of its eligible clips
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

@ray.remote(num_cpus=1, max_retries=3)
def _write_task(src: PartsSource, parts: list[str], kept: pa.Array, path: str, group: int, offset: int, steps: list[Step],
                versions: dict[str, str], rows_per_file: int) -> tuple[dict, dict]:
    """One group's rows with every step applied, written as files of the new versions (videos/: the group's kept
    video copies). Returns (table -> [(file, rows)], counts)."""
    store = src.store()
    # rows in an order that does not depend on how the files fell into parts (within the partition)
    t = _apply_all(_read(store, path, None), steps, group, offset).sort_by([("video_id", "ascending"), ("clip_index", "ascending")])
    videos = group_videos(store, src.scan_key, parts, kept).sort_by([("relpath", "ascending")])
    versions = dict(versions)
    out = write_versions(store, videos, group, {"videos": versions.pop("videos")}, rows_per_file)
    out.update(write_versions(store, t, group, versions, rows_per_file))
    kept_t = t.filter(pc.equal(t.column("kept"), True))
    counts = {"clips": t.num_rows, "curated": kept_t.num_rows, "drop_reasons": rule_counts(t),
              "seconds_in": float(pc.sum(t.column("duration_s")).as_py() or 0),
              "seconds_curated": float(pc.sum(kept_t.column("duration_s")).as_py() or 0)}
    return out, counts


def write(sh: Shards, writers: dict, rows_per_file: int) -> dict:
    """Write videos/ and clips/ (and curated/ when among `writers`) per group; returns the summed counts."""
    versions = {name: w.version for name, w in writers.items()}
    off = sh.offsets
    refs = (_write_task.remote(sh.src, g, sh.kept[i], sh.files[i], i, int(off[i]), sh.steps, versions, rows_per_file)
            for i, g in enumerate(sh.groups))
    total = {"clips": 0, "curated": 0, "drop_reasons": {}, "seconds_in": 0.0, "seconds_curated": 0.0}
    for files, counts in ordered(refs, sh.window):
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
