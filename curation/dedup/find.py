"""find_duplicates: exact, perceptual, segment and semantic pairs -> centre-based groups -> one kept clip per group.

Grouping never chains: clips are visited best first (clips kept before dedup
first when params.prefer_kept, then clips whose footage is not part of a
longer paired clip -- an excerpt gives way to the shot it was cut from --,
then params.keep_policy: default highest aesthetic, nulls last, then quality,
then longest duration, then clip_id); a
clip not yet in a group becomes a group's kept clip (its centre) and takes
every ungrouped clip it is directly paired with. So every member is within
the threshold of its group's kept clip, never only through a chain of others
(connected components put a clip 16 bits from its kept clip in a group whose
limit was 6). Byte-identical spans (exact pairs) are one node first: equality
is transitive. A clip already dropped for another reason can still be a
member (and is labelled), and is a centre only when no better clip claims it.

Per member: dup_group_id is the smallest clip_id in the group (stable when the
keep policy changes); dup_of is the centre's clip_id (its own for the centre);
dup_kind is the strongest kind of the direct pair with the centre (exact >
perceptual > segment > edited > semantic) and dup_similarity its similarity in
that kind's measure (1.0 for the centre):

- exact: 1.0 (the same span of byte-identical files);
- perceptual: 1 - median Hamming / 64 of the aligned keyframes' whole-frame
  pHashes (smallest over the 8 symmetries);
- segment: 1 - mean Hamming / 64 of the whole-frame pHashes of the matched
  samples (time-aligned, shift and speed 0.8-1.25x);
- edited: 1 - mean Hamming / 64 of the matched samples' *region* hashes (a
  centred crop of one video against a centred crop of the other): a copy with a
  logo, subtitles, a border, picture-in-picture or a crop zoomed back, found
  only that way (the whole frames do not match);
- semantic: cosine of the embeddings.

Segment and edited pairs (curation/dedup/segments.py) need per-sample
phashes (and, for edited, their region hashes): pass `samples`
(segments.SAMPLES_SCHEMA); the matched spans come back in
DedupResult.segments (`edited` says which kind found a span). With `keyframes`
(the keyframes table, or a reader of given clip ids) the near misses of
edited matching and partly covered spans are checked on keyframe JPEGs with
ORB + RANSAC (curation/dedup/verify.py); a verified pair is `edited` too.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import KIND_CODE, Edges
from curation.dedup.exact import clip_content_keys, exact_edges, identical_file_groups
from curation.dedup.params import KINDS, DedupParams, DedupResult
from curation.dedup.perceptual import perceptual_edges, phash_matrix
from curation.dedup.segments import segment_note, segment_pairs
from curation.dedup.semantic import semantic_edges
from curation.dedup.table_ops import embedding_matrix, reasons_without, set_drop_reason
from curation.dedup.unionfind import union_find
from curation.dedup.verify import KeyframeSource, candidate_pairs, centre_candidates, verified_edges

DROP_REASON = "duplicate"
DUP_COLUMNS = ("dup_group_id", "dup_kind", "dup_of", "dup_similarity")
VERIFY_ROUNDS = 3  # regroupings after keyframe checks of clips left outside their match's group

def local_semantic_finder(clips: pa.Table, params: DedupParams) -> tuple[Edges, dict]:
    """Semantic edges between clip rows, computed in this process (curation.dedup.semantic)."""
    rows, x = embedding_matrix(clips)
    edges, stats = semantic_edges(x, params)
    stats["compared"] = int(len(rows))
    return Edges(rows[edges.a], rows[edges.b], edges.kind, edges.sim), stats


def find_duplicates(
    clips: pa.Table, videos: pa.Table, params: DedupParams = DedupParams(), *,
    samples: pa.Table | None = None, keyframes: KeyframeSource | None = None,
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
        missing = int(np.sum(keys[:, 0] < 0))
        if missing:
            notes.append(f"exact dedup: {missing} clip(s) have no row in videos, skipped for exact matching")
        e = exact_edges(keys)
        parts.append(e)
        stats["identical_file_groups"] = identical_file_groups(videos)
        notes.append(f"exact dedup: {len(e)} pair(s), {stats['identical_file_groups']} file(s) with byte-identical copies")

    ph_rows, ph, k = phash_matrix(clips.column("phash"))
    if "perceptual" in params.kinds:
        if len(ph_rows) == 0:
            notes.append("perceptual dedup: skipped, no phash values")
        else:
            if len(ph_rows) < n:
                notes.append(f"perceptual dedup: {n - len(ph_rows)} clip(s) without {k} keyframe phashes, not compared")
            e = perceptual_edges(ph_rows, ph, params.phash_max_hamming, params.phash_index_chunks, params.phash_symmetric)
            parts.append(e)
            turned = " (any rotation or mirror)" if params.phash_symmetric else ""
            notes.append(f"perceptual dedup: {len(e)} pair(s) at median Hamming <= {params.phash_max_hamming}{turned} over {k} keyframes")

    segments = None
    if "segment" in params.kinds or "edited" in params.kinds:
        if samples is None or samples.num_rows == 0:
            notes.append("segment dedup: skipped, no per-sample phashes given")
        else:
            e, segments, verified, vnote = segment_and_verified_edges(clips, samples, Edges.concat(parts), keyframes,
                                                                     params, stats)
            parts += [e, verified]
            notes.append(segment_note(segments, e))
            notes += vnote

    if "semantic" in params.kinds:
        if clips.column("embedding").null_count == n:
            notes.append("semantic dedup: skipped, no embeddings (CLIP not configured)")
        else:
            e, sstats = local_semantic_finder(clips, params)
            if sstats.get("compared", n) < n:
                notes.append(f"semantic dedup: {n - sstats['compared']} clip(s) without a usable embedding, not compared")
            parts.append(e)
            stats["semantic"] = sstats
            notes.append(
                f"semantic dedup: {len(e)} pair(s) at cos >= {1 - params.semantic_eps:.3f}; "
                f"k={sstats.get('k')} clusters, largest {sstats.get('largest_cluster')}"
            )

    edges, rep, group = verified_groups(clips, Edges.concat(parts), kept_before, keyframes, params, stats, notes)
    member = rep >= 0
    table = fill_dup_columns(clips, edges, member, rep, group)
    table = set_drop_reason(table, member & (rep != np.arange(n)), DROP_REASON)
    stats.update(
        groups=int(np.sum(member & (rep == np.arange(n)))),
        members=int(member.sum()),
        dropped=int(np.sum(member & (rep != np.arange(n)))),
        pairs={kind: edges.count(kind) for kind in KINDS},
    )
    notes.append(f"dedup: {stats['groups']} group(s), {stats['members']} member(s), {stats['dropped']} dropped as duplicate")
    return DedupResult(table, notes, stats, segments)


def _verifying(keyframes: KeyframeSource | None, params: DedupParams) -> bool:
    return keyframes is not None and "edited" in params.kinds and params.verify_max_per_clip > 0


def segment_and_verified_edges(clips: pa.Table, samples: pa.Table, done: Edges, keyframes: KeyframeSource | None,
                               params: DedupParams, stats: dict) -> tuple[Edges, pa.Table, Edges, list[str]]:
    """Segment and edited pairs from the per-sample hashes, then the keyframe check (ORB + RANSAC) of the near
    misses and partly covered pairs (`done`: the pairs found so far, not checked again). `clips` needs clip_id,
    video_id, start_s, end_s in the row order of the edges. (pairs, matched segments, verified pairs, notes)."""
    near: list[dict] | None = [] if _verifying(keyframes, params) else None
    e, segments = segment_pairs(clips, samples, params, near)
    if near is None:
        return e, segments, Edges.empty(), []
    cand = candidate_pairs(clips, segments, near, Edges.concat([done, e]), params)
    verified, vstats = verified_edges(clips, cand, keyframes, params)
    stats["verify"] = vstats
    return e, segments, verified, [f"edited dedup: {len(verified)} of {len(cand)} candidate clip pair(s) verified on "
                                   f"keyframes (ORB + RANSAC, {vstats['keyframe_pairs']} keyframe pairs)"]


def verified_groups(clips: pa.Table, edges: Edges, kept_before: np.ndarray, keyframes: KeyframeSource | None,
                    params: DedupParams, stats: dict, notes: list[str]) -> tuple[Edges, np.ndarray, np.ndarray]:
    """centre_groups, then up to VERIFY_ROUNDS keyframe checks of clips left outside the group of a clip they
    match, against its kept clip (groups never chain), each verified pair taken in by a regroup.
    (edges with the verified pairs, rep, group)."""
    rep, group = centre_groups(clips, edges, kept_before, params)
    if not _verifying(keyframes, params):
        return edges, rep, group
    checked = verified = 0
    for _ in range(VERIFY_ROUNDS):
        cand = centre_candidates(edges, rep, params)
        e, _ = verified_edges(clips, cand, keyframes, params)
        checked, verified = checked + len(cand), verified + len(e)
        if not len(e):
            break
        edges = Edges.concat([edges, e])  # a verified pair only joins groups: a regroup takes it in
        rep, group = centre_groups(clips, edges, kept_before, params)
    stats["verify_centres"] = {"candidates": checked, "verified": verified}
    notes.append(f"edited dedup: {verified} of {checked} clip(s) outside the group of a clip they match verified "
                 f"against its kept clip on keyframes")
    return edges, rep, group


def contained_in_longer(clips: pa.Table, edges: Edges, params: DedupParams) -> np.ndarray:
    """(n,) bool: the clip has a segment or edited pair (a time-aligned match that covers it) with a clip longer by
    params.keep_longer_ratio: its footage is part of the other's, so the longer clip holds more of it. Perceptual
    pairs do not count: which of a set of equal hash lists get an edge depends on row order, and the kept clip
    must not."""
    n = clips.num_rows
    out = np.zeros(n, bool)
    if params.keep_longer_ratio <= 0 or not len(edges) or "duration_s" not in clips.column_names:
        return out
    dur = clips.column("duration_s").to_numpy(zero_copy_only=False).astype(np.float64)
    dur = np.nan_to_num(dur, nan=0.0)
    timed = (edges.kind == KIND_CODE["segment"]) | (edges.kind == KIND_CODE["edited"])
    a, b = edges.a[timed], edges.b[timed]
    out[a[dur[b] >= params.keep_longer_ratio * dur[a]]] = True
    out[b[dur[a] >= params.keep_longer_ratio * dur[b]]] = True
    return out


def priority_order(clips: pa.Table, rows: np.ndarray, kept_before: np.ndarray, params: DedupParams,
                   contained: np.ndarray | None = None) -> np.ndarray:
    """`rows` sorted best first: kept before dedup (when prefer_kept), then clips not contained in a longer paired
    clip (`contained`, contained_in_longer), then params.keep_policy (nulls last)."""
    missing = [name for name, _ in params.keep_policy if name not in clips.column_names]
    if missing:
        raise ValueError(f"DedupParams.keep_policy names unknown clips column(s) {missing}")
    if not len(rows):
        return rows
    cols = {"_dropped": pa.array((~kept_before[rows]).astype(np.int8) if params.prefer_kept else np.zeros(len(rows), np.int8))}
    sort_keys = [("_dropped", "ascending", "at_end")]
    if contained is not None:
        cols["_contained"] = pa.array(contained[rows].astype(np.int8))
        sort_keys.append(("_contained", "ascending", "at_end"))
    for i, (name, direction) in enumerate(params.keep_policy):
        cols[f"_k{i}"] = clips.column(name).take(pa.array(rows))
        sort_keys.append((f"_k{i}", "descending" if direction == "desc" else "ascending", "at_end"))
    return rows[pc.sort_indices(pa.table(cols), sort_keys=sort_keys).to_numpy()]


def centre_groups(clips: pa.Table, edges: Edges, kept_before: np.ndarray, params: DedupParams) -> tuple[np.ndarray, np.ndarray]:
    """(rep, group) per row: the kept clip of its group and the group's node id (-1 outside groups); see the module docstring."""
    n = clips.num_rows
    rep = np.full(n, -1, np.int64)
    group = np.full(n, -1, np.int64)
    if not len(edges):
        return rep, group
    exact = edges.kind == KIND_CODE["exact"]
    node = union_find(n, edges.a[exact], edges.b[exact])  # byte-identical spans: one node
    na, nb = node[edges.a], node[edges.b]
    cross = na != nb
    na, nb = na[cross], nb[cross]
    involved = np.unique(np.concatenate([edges.a, edges.b]))
    ranked = priority_order(clips, involved, kept_before, params, contained_in_longer(clips, edges, params))
    best_of_node = np.full(n, -1, np.int64)
    seen = np.zeros(n, bool)
    for r in ranked.tolist():  # first (best) member of each node
        if not seen[node[r]]:
            seen[node[r]] = True
            best_of_node[node[r]] = r
    # adjacency of nodes (CSR), both directions
    src = np.concatenate([na, nb])
    dst = np.concatenate([nb, na])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    starts = np.searchsorted(src, np.arange(n + 1))
    centre = np.full(n, -1, np.int64)
    for r in ranked.tolist():
        c = node[r]
        if centre[c] >= 0:
            continue
        centre[c] = c  # the best ungrouped node opens a group and takes its ungrouped neighbours
        nbrs = dst[starts[c]:starts[c + 1]]
        free = nbrs[centre[nbrs] < 0]
        centre[free] = c
    g = centre[node[involved]]
    size = np.bincount(g, minlength=n)
    in_group = size[g] >= 2
    rows = involved[in_group]
    group[rows] = g[in_group]
    rep[rows] = best_of_node[g[in_group]]
    return rep, group


def fill_dup_columns(clips: pa.Table, edges: Edges, member: np.ndarray, rep: np.ndarray, group: np.ndarray) -> pa.Table:
    """The clips table with the four dup_* columns recomputed (null outside groups)."""
    n = clips.num_rows
    rows = np.flatnonzero(member)
    reps = rep[rows]
    clip_col = clips.column("clip_id")
    member_ids = clip_col.take(pa.array(rows)).to_pylist()  # members only: never a Python string per clip

    # strongest direct edge between each member and its centre, where byte-identical spans (one exact node) count
    # as one clip: identical hash lists are indexed once, so a copy's edge may name the centre's twin instead
    exact = edges.kind == KIND_CODE["exact"]
    node = union_find(n, edges.a[exact], edges.b[exact])
    na, nb = node[edges.a], node[edges.b]
    ekey = np.minimum(na, nb) * np.int64(n) + np.maximum(na, nb)
    order = np.lexsort((-edges.sim, edges.kind, ekey))
    ekey_s, kind_s, sim_s = ekey[order], edges.kind[order], edges.sim[order]
    first = np.ones(len(ekey_s), bool)
    first[1:] = ekey_s[1:] != ekey_s[:-1]
    ekey_s, kind_s, sim_s = ekey_s[first], kind_s[first], sim_s[first]
    mn, rn = node[rows], node[reps]
    mkey = np.minimum(mn, rn) * np.int64(n) + np.maximum(mn, rn)
    pos = np.clip(np.searchsorted(ekey_s, mkey), 0, max(0, len(ekey_s) - 1))
    direct = (ekey_s[pos] == mkey) if len(ekey_s) else np.zeros(len(rows), bool)
    kind = np.where(direct, kind_s[pos] if len(ekey_s) else 0, KIND_CODE["exact"]).astype(np.int8)
    sim = np.where(direct, sim_s[pos] if len(ekey_s) else 1.0, 1.0).astype(np.float32)
    same_span = mn == rn  # byte-identical to the centre: exact, whichever star edge joined them
    kind[same_span] = KIND_CODE["exact"]
    sim[same_span] = 1.0
    is_rep = rows == reps
    sim[is_rep] = 1.0
    # the centre's kind: its strongest edge inside the group
    strongest = np.full(n, len(KINDS), np.int8)
    same_group = (group[edges.a] >= 0) & (group[edges.a] == group[edges.b])
    np.minimum.at(strongest, edges.a[same_group], edges.kind[same_group])
    np.minimum.at(strongest, edges.b[same_group], edges.kind[same_group])
    kind[is_rep] = strongest[rows[is_rep]]

    at = np.full(n, -1, np.int64)
    at[rows] = np.arange(len(rows))
    scatter = pa.array(at, mask=at < 0)  # take() through this puts member values at their rows, null elsewhere

    def column(values_at_rows, type_):
        return pa.array(values_at_rows, type_).take(scatter)

    group_min: dict[int, str] = {}
    for r, cid in zip(rows.tolist(), member_ids):  # smallest clip_id per group
        g = int(group[r])
        if g not in group_min or cid < group_min[g]:
            group_min[g] = cid
    new = {
        "dup_group_id": column([group_min[int(group[r])] for r in rows], pa.string()),
        "dup_kind": column([KINDS[k] if 0 <= k < len(KINDS) else None for k in kind.tolist()], pa.string()),
        "dup_of": column(clip_col.take(pa.array(reps)).to_pylist(), pa.string()),
        "dup_similarity": column(sim, pa.float32()),
    }
    for name in DUP_COLUMNS:
        i = clips.schema.get_field_index(name)
        clips = clips.set_column(i, clips.schema.field(name), new[name])
    return clips
