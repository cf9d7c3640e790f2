"""find_duplicates: exact, perceptual and semantic pairs -> union-find groups -> one kept clip per group.

Representative: among a group's members, clips kept before dedup come first
(params.prefer_kept), then params.keep_policy (default: highest aesthetic,
nulls last, then quality, then longest duration, then clip_id). A clip already
dropped for another reason can still be a member (and is labelled), and is the
representative only when no member was kept before dedup.

Per member: dup_group_id is the smallest clip_id in the group (stable when the
keep policy changes); dup_of is the representative's clip_id (its own for the
representative). dup_kind is the strongest kind that links the member to the
representative directly (exact > perceptual > semantic); a member linked to it
only through a chain of others gets its own strongest edge's kind.
dup_similarity is the member's similarity to the representative in that
kind's measure: exact 1.0, perceptual 1 - median Hamming / 64, semantic
cosine (1.0 for the representative); chained members may be below threshold.
"""
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import KIND_CODE, Edges
from curation.dedup.exact import clip_content_keys, exact_edges, identical_file_groups
from curation.dedup.params import KINDS, DedupParams, DedupResult
from curation.dedup.perceptual import median_hamming, perceptual_edges, phash_matrix
from curation.dedup.semantic import semantic_edges
from curation.dedup.table_ops import embedding_matrix, reasons_without, set_drop_reason
from curation.dedup.unionfind import union_find

DROP_REASON = "duplicate"
_DUP_COLUMNS = ("dup_group_id", "dup_kind", "dup_of", "dup_similarity")

# (clips, params) -> (semantic edges between clip rows, stats): how semantic pairs are found.
# The default runs in this process; pipelines/dedup_stage.py passes a distributed one.
SemanticFinder = Callable[[pa.Table, DedupParams], tuple[Edges, dict]]


def local_semantic_finder(clips: pa.Table, params: DedupParams) -> tuple[Edges, dict]:
    """Semantic edges between clip rows, computed in this process (curation.dedup.semantic)."""
    rows, x = embedding_matrix(clips)
    edges, stats = semantic_edges(x, params)
    stats["compared"] = int(len(rows))
    return Edges(rows[edges.a], rows[edges.b], edges.kind, edges.sim), stats


def find_duplicates(
    clips: pa.Table, videos: pa.Table, params: DedupParams = DedupParams(), semantic_finder: SemanticFinder | None = None
) -> DedupResult:
    """Fill dup_* columns, drop every non-representative with reason "duplicate"; see the module docstring."""
    n = clips.num_rows
    notes: list[str] = []
    stats: dict = {"clips": n}
    kept_before = reasons_without(clips, DROP_REASON)  # a rerun first forgets its own earlier verdict
    parts: list[Edges] = []

    keys = None
    if "exact" in params.kinds:
        keys = clip_content_keys(clips, videos)
        missing = int(sum(k is None for k in keys))
        if missing:
            notes.append(f"exact dedup: {missing} clip(s) have no row in videos, skipped for exact matching")
        e = exact_edges(keys)
        parts.append(e)
        stats["identical_file_groups"] = identical_file_groups(videos)
        notes.append(f"exact dedup: {len(e)} pair(s), {stats['identical_file_groups']} file(s) with byte-identical copies")

    ph_rows, ph, k = phash_matrix(clips.column("phash"))
    ph_pos = np.full(n, -1, np.int64)
    ph_pos[ph_rows] = np.arange(len(ph_rows))
    if "perceptual" in params.kinds:
        if len(ph_rows) == 0:
            notes.append("perceptual dedup: skipped, no phash values")
        else:
            if len(ph_rows) < n:
                notes.append(f"perceptual dedup: {n - len(ph_rows)} clip(s) without {k} keyframe phashes, not compared")
            e = perceptual_edges(ph_rows, ph, params.phash_max_hamming, params.phash_index_chunks)
            parts.append(e)
            notes.append(f"perceptual dedup: {len(e)} pair(s) at median Hamming <= {params.phash_max_hamming} over {k} keyframes")

    if "semantic" in params.kinds:
        if clips.column("embedding").null_count == n:
            notes.append("semantic dedup: skipped, no embeddings (CLIP not configured)")
        else:
            e, sstats = (semantic_finder or local_semantic_finder)(clips, params)
            if sstats.get("compared", n) < n:
                notes.append(f"semantic dedup: {n - sstats['compared']} clip(s) without a usable embedding, not compared")
            parts.append(e)
            stats["semantic"] = sstats
            notes.append(
                f"semantic dedup: {len(e)} pair(s) at cos >= {1 - params.semantic_eps:.3f}; "
                f"k={sstats.get('k')} clusters, largest {sstats.get('largest_cluster')}"
            )

    edges = Edges.concat(parts)
    root = union_find(n, edges.a, edges.b)
    size = np.bincount(root, minlength=n)
    member = size[root] >= 2
    rep = _representatives(clips, root, member, kept_before, params)

    # embeddings of group members only: the driver never holds all of them for this step
    member_rows = np.flatnonzero(member)
    emb_rows, emb = embedding_matrix(clips.take(pa.array(member_rows)))
    emb_pos = np.full(n, -1, np.int64)
    emb_pos[member_rows[emb_rows]] = np.arange(len(emb_rows))
    table = _fill_columns(clips, edges, root, member, rep, keys, (ph_pos, ph), (emb_pos, emb), params)
    table = set_drop_reason(table, member & (rep != np.arange(n)), DROP_REASON)
    stats.update(
        groups=int(np.sum((size >= 2) & (np.arange(n) == root))),
        members=int(member.sum()),
        dropped=int(np.sum(member & (rep != np.arange(n)))),
        pairs={kind: edges.count(kind) for kind in KINDS},
    )
    notes.append(f"dedup: {stats['groups']} group(s), {stats['members']} member(s), {stats['dropped']} dropped as duplicate")
    return DedupResult(table, notes, stats)


def _representatives(clips: pa.Table, root: np.ndarray, member: np.ndarray, kept_before: np.ndarray, params: DedupParams) -> np.ndarray:
    """Row index of the representative of each row's group (-1 outside groups)."""
    n = clips.num_rows
    rep = np.full(n, -1, np.int64)
    rows = np.flatnonzero(member)
    missing = [name for name, _ in params.keep_policy if name not in clips.column_names]
    if missing:
        raise ValueError(f"DedupParams.keep_policy names unknown clips column(s) {missing}")
    if not len(rows):
        return rep
    cols = {"_root": pa.array(root[rows]), "_dropped": pa.array((~kept_before[rows]).astype(np.int8) if params.prefer_kept else np.zeros(len(rows), np.int8))}
    sort_keys = [("_root", "ascending", "at_end"), ("_dropped", "ascending", "at_end")]
    for i, (name, direction) in enumerate(params.keep_policy):
        cols[f"_k{i}"] = clips.column(name).take(pa.array(rows))
        sort_keys.append((f"_k{i}", "descending" if direction == "desc" else "ascending", "at_end"))  # nulls last
    order = pc.sort_indices(pa.table(cols), sort_keys=sort_keys).to_numpy()
    ordered = rows[order]
    first = np.r_[True, root[ordered][1:] != root[ordered][:-1]]
    rep_of_root = np.full(n, -1, np.int64)
    rep_of_root[root[ordered][first]] = ordered[first]
    rep[rows] = rep_of_root[root[rows]]
    return rep


def _fill_columns(clips, edges, root, member, rep, keys, phashes, embeddings, params) -> pa.Table:
    """The clips table with the four dup_* columns recomputed (null outside groups)."""
    n = clips.num_rows
    rows = np.flatnonzero(member)
    reps = rep[rows]
    clip_ids = np.array(clips.column("clip_id").to_pylist(), dtype=object)

    # each row's strongest edge kind and its best similarity of that kind
    strongest = np.full(n, len(KINDS), np.int8)
    np.minimum.at(strongest, edges.a, edges.kind)
    np.minimum.at(strongest, edges.b, edges.kind)

    kind = np.full(len(rows), -1, np.int8)
    sim = np.full(len(rows), np.nan, np.float32)
    is_rep = rows == reps
    sim[is_rep] = 1.0
    kind[is_rep] = strongest[rows[is_rep]]
    todo = ~is_rep

    # direct links to the representative, strongest kind first
    if keys is not None and "exact" in params.kinds:
        same = np.array([keys[a] is not None and keys[a] == keys[b] for a, b in zip(rows, reps)], dtype=bool)
        hit = todo & same
        kind[hit], sim[hit] = KIND_CODE["exact"], 1.0
        todo &= ~hit
    ph_pos, ph = phashes
    both = (ph_pos[rows] >= 0) & (ph_pos[reps] >= 0)
    ph_sim = np.full(len(rows), np.nan, np.float32)
    if both.any():
        ph_sim[both] = 1.0 - median_hamming(ph[ph_pos[rows[both]]], ph[ph_pos[reps[both]]]) / 64.0
    emb_pos, emb = embeddings
    both = (emb_pos[rows] >= 0) & (emb_pos[reps] >= 0)
    cos = np.full(len(rows), np.nan, np.float32)
    if both.any():
        cos[both] = np.einsum("ij,ij->i", emb[emb_pos[rows[both]]], emb[emb_pos[reps[both]]])
    if "perceptual" in params.kinds:
        hit = todo & (ph_sim >= 1.0 - params.phash_max_hamming / 64.0)
        kind[hit], sim[hit] = KIND_CODE["perceptual"], ph_sim[hit]
        todo &= ~hit
    if "semantic" in params.kinds:
        hit = todo & (cos >= 1.0 - params.semantic_eps)
        kind[hit], sim[hit] = KIND_CODE["semantic"], cos[hit]
        todo &= ~hit
    # chained members: own strongest kind, similarity to the representative in that measure
    kind[todo] = strongest[rows[todo]]
    measure = {KIND_CODE["exact"]: np.ones(len(rows), np.float32), KIND_CODE["perceptual"]: ph_sim, KIND_CODE["semantic"]: cos}
    for code, values in measure.items():
        hit = todo & (kind == code)
        sim[hit] = values[hit]

    def column(values_at_rows, type_):
        full = [None] * n
        for r, v in zip(rows.tolist(), values_at_rows):
            full[r] = v
        return pa.array(full, type_)

    group_min = {}
    for r in rows.tolist():  # smallest clip_id per group
        g = int(root[r])
        if g not in group_min or clip_ids[r] < group_min[g]:
            group_min[g] = clip_ids[r]
    new = {
        "dup_group_id": column([group_min[int(root[r])] for r in rows], pa.string()),
        "dup_kind": column([KINDS[k] if 0 <= k < len(KINDS) else None for k in kind.tolist()], pa.string()),
        "dup_of": column(clip_ids[reps].tolist(), pa.string()),
        "dup_similarity": column([None if np.isnan(s) else float(s) for s in sim.tolist()], pa.float32()),
    }
    for name in _DUP_COLUMNS:
        i = clips.schema.get_field_index(name)
        clips = clips.set_column(i, clips.schema.field(name), new[name])
    return clips
