"""Segment-level copies: temporal alignment of per-sample phash sequences (survives re-cutting).

Every video contributes its analysis samples (~2 per second, the frames the
scan already hashes) as (video, t, phash). Copy detection follows temporal
Hough voting (Douze et al., "Compact video description for copy detection
with precise temporal alignment", ECCV 2010):

1. seeds (candidate video pairs, no all-pairs comparison): samples of two
   videos whose hashes agree exactly on one `segment_seed_bits`-bit slice of
   the 63 AC bits, under any of the 8 square symmetries
   (curation.hashes.d4_variants) -- a sort-merge join per slice and symmetry
   (2 x 8 joins of N samples at 32 bits). Hashes within 2 bits always seed
   (pigeonhole); a copy has many samples and only one needs to. Slice values
   held by more than `segment_max_df` videos (a logo, a title card) are stop
   words;
2. alignment, per seeded (video a, video b, symmetry): every pair of their
   samples within `segment_max_hamming` bits votes for the time offset
   t_b - t_a; a copy is a dense run of votes at one offset, whatever the clip
   boundaries of either video;
3. the densest offset window (`segment_offset_tol_s` wide) with at least
   `segment_min_samples` distinct matched samples, whose matched samples fill
   at least `segment_min_density` of the span they cover, is a match; its
   span in both videos is reported. Repeated for further segments of a pair.

Clips then inherit the match: clip x of a and clip y of b are a segment pair
when, after shifting y by the offset, their overlap inside the matched span
covers `segment_min_cover` of the shorter clip.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.edges import Edges
from curation.dedup.params import DedupParams
from curation.hashes import FLAT_HASH, d4_variants
from schemas import TABLES

# The tables are defined once, in schemas/: per-sample hashes in, matched segments out.
SEGMENT_MATCH_SCHEMA = TABLES["dup_segments"]
SAMPLES_SCHEMA = TABLES["samples"]


def samples_table(video_ids: list[str], t: list[float], phash: list[int]) -> pa.Table:
    """The per-sample input of segment matching: one row per analysis sample."""
    return pa.table({"video_id": video_ids, "t": t, "phash": pa.array(phash, pa.uint64())}, schema=SAMPLES_SCHEMA)


def segment_matches(samples: pa.Table, params: DedupParams = DedupParams()) -> pa.Table:
    """Matched segments between videos (SEGMENT_MATCH_SCHEMA) from a SAMPLES_SCHEMA table."""
    vids_all = samples.column("video_id").combine_chunks()
    codes = pc.dictionary_encode(vids_all)
    names = codes.dictionary.to_pylist()
    vid = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    t = samples.column("t").to_numpy().astype(np.float64)
    h = samples.column("phash").to_numpy().astype(np.uint64)
    period = _sample_period(vid, t)
    every = np.lexsort((t, vid))  # all samples (flat ones too) per video, in time order: the density denominator
    t_every = t[every]
    first_every = np.searchsorted(vid[every], np.arange(len(names) + 1))

    use = np.flatnonzero(h != FLAT_HASH)  # flat frames (black, one colour) carry no identity
    hv, vv, tv = h[use], vid[use], t[use]
    variants = d4_variants(hv) if params.phash_symmetric else hv[:, None]  # (N, G)
    order = np.lexsort((tv, vv))  # samples of each video together, in time order
    hv, vv, tv, variants = hv[order], vv[order], tv[order], variants[order]
    first = np.searchsorted(vv, np.arange(len(names) + 1))  # video v = [first[v], first[v+1])

    rows = []
    for va, vb, g in seed_pairs(hv, vv, variants, params.segment_seed_bits, params.segment_max_df):
        qa, qb = slice(first[va], first[va + 1]), slice(first[vb], first[vb + 1])
        dist = np.bitwise_count(variants[qa, g][:, None] ^ hv[qb][None, :])  # (na, nb)
        ia, ib = np.nonzero(dist <= params.segment_max_hamming)
        if len(ia) < params.segment_min_samples:
            continue
        ta, tb = tv[qa][ia], tv[qb][ib]
        o = np.argsort(tb - ta, kind="stable")
        rows += _segments_of_pair(ta[o], tb[o], dist[ia, ib][o].astype(np.float32), t_every[first_every[va]:first_every[va + 1]],
                                  period[va], period[vb], params, names[va], names[vb], int(g))
    rows = _best_symmetry_per_span(rows)
    return pa.Table.from_pylist(rows, schema=SEGMENT_MATCH_SCHEMA) if rows else SEGMENT_MATCH_SCHEMA.empty_table()


def seed_pairs(h: np.ndarray, vid: np.ndarray, variants: np.ndarray, bits: int, max_df: int) -> list[tuple[int, int, int]]:
    """(video a, video b, symmetry g) with a < b where some sample of a, turned by g, equals a sample of b on a slice of bits."""
    found = []
    n_videos = int(vid.max()) + 1 if len(vid) else 0
    for lo_bit in range(0, 63, bits):  # bit 63 is the DC bit, always 1
        mask = np.uint64((1 << min(bits, 63 - lo_bit)) - 1)
        tkey = (h >> np.uint64(lo_bit)) & mask
        order = np.argsort(tkey, kind="stable")
        tsorted, tvid = tkey[order], vid[order]
        common = _common_keys(tsorted, tvid, max_df)
        for g in range(variants.shape[1]):
            qkey = (variants[:, g] >> np.uint64(lo_bit)) & mask
            qorder = np.argsort(qkey)  # sorted needles: binary searches walk the table in order (cache friendly)
            qsorted = qkey[qorder]
            lo = np.searchsorted(tsorted, qsorted, side="left")
            cnt = np.searchsorted(tsorted, qsorted, side="right") - lo
            if len(common):
                cnt[np.isin(qsorted, common)] = 0
            q = np.repeat(qorder, cnt)
            cand = order[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(len(q))]
            a, b = vid[q], vid[cand]
            if g == 0:  # identity is symmetric: orient as (smaller video, larger video)
                a, b = np.minimum(a, b), np.maximum(a, b)
            keep = a < b  # other symmetries: the (b, a) orientation is found under the inverse one
            found.append((a[keep] * n_videos + b[keep]) * 8 + g)
    keys = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    return [(int(k // 8 // n_videos), int(k // 8 % n_videos), int(k % 8)) for k in keys]


def _common_keys(sorted_keys: np.ndarray, vid: np.ndarray, max_df: int) -> np.ndarray:
    """Key values held by more than max_df distinct videos (stop words)."""
    if not len(sorted_keys):
        return sorted_keys
    # distinct (key, video) pairs: the keys are sorted, so a key change or a new video within a key starts one
    order = np.lexsort((vid, sorted_keys))
    k, v = sorted_keys[order], vid[order]
    new = np.r_[True, (k[1:] != k[:-1]) | (v[1:] != v[:-1])]
    values, df = np.unique(k[new], return_counts=True)
    return values[df > max_df]


def _sample_period(vid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Seconds between samples per video, the mean gap (0.5 s when a video has one sample)."""
    n = int(vid.max()) + 1 if len(vid) else 0
    order = np.lexsort((t, vid))
    vs, ts = vid[order], t[order]
    same = vs[1:] == vs[:-1]
    gaps = np.bincount(vs[1:][same], weights=np.diff(ts)[same], minlength=n)
    count = np.bincount(vs[1:][same], minlength=n)
    return np.where(count > 0, gaps / np.maximum(count, 1), 0.5)


def _segments_of_pair(ta, tb, dist, t_all_a, period_a, period_b, params: DedupParams, name_a, name_b, g) -> list[dict]:
    """Dense offset windows of one (video a, video b, symmetry) vote list, best first."""
    out = []
    off = tb - ta
    alive = np.ones(len(ta), bool)
    while alive.sum() >= params.segment_min_samples and len(out) < params.segment_max_per_pair:
        idx = np.flatnonzero(alive)
        o = off[idx]  # sorted (the caller sorted by offset)
        hi = np.searchsorted(o, o + params.segment_offset_tol_s, side="right")
        # distinct a-samples per window: count votes, a sample matched twice counts once (approximation below)
        best = int(np.argmax(hi - np.arange(len(o))))
        win = idx[best:hi[best]]
        matched_a = np.unique(ta[win])
        if len(matched_a) < params.segment_min_samples:
            break
        a0, a1 = matched_a[0], matched_a[-1]
        in_span = np.count_nonzero((t_all_a >= a0) & (t_all_a <= a1))
        alive[win] = False
        if len(matched_a) / max(1, in_span) < params.segment_min_density:
            continue
        offset = float(np.median(off[win]))
        out.append({
            "video_a": name_a, "video_b": name_b,
            # each sample stands for half a period either side; a video starts at 0 s
            "a_start_s": max(0.0, float(a0 - period_a / 2)), "a_end_s": float(a1 + period_a / 2),
            "b_start_s": max(0.0, float(a0 + offset - period_b / 2)), "b_end_s": float(a1 + offset + period_b / 2),
            "offset_s": offset, "samples": int(len(matched_a)),
            "mean_hamming": float(np.mean(dist[win])), "symmetry": g,
        })
    return out


def _best_symmetry_per_span(rows: list[dict]) -> list[dict]:
    """A symmetric picture (a centred face, a sky) matches under several symmetries: keep the best per span."""
    rows = sorted(rows, key=lambda r: (-r["samples"], r["mean_hamming"]))
    kept: list[dict] = []
    for r in rows:
        if any(k["video_a"] == r["video_a"] and k["video_b"] == r["video_b"]
               and min(k["a_end_s"], r["a_end_s"]) - max(k["a_start_s"], r["a_start_s"]) > 0
               and abs(k["offset_s"] - r["offset_s"]) <= 1.0 for k in kept):
            continue
        kept.append(r)
    return kept


def segment_edges(clips: pa.Table, matches: pa.Table, params: DedupParams = DedupParams()) -> Edges:
    """Clip pairs covered by a matched segment: overlap after shifting >= segment_min_cover of the shorter clip."""
    if matches.num_rows == 0 or clips.num_rows == 0:
        return Edges.empty()
    video = np.array(clips.column("video_id").to_pylist(), dtype=object)
    start = clips.column("start_s").to_numpy().astype(np.float64)
    end = clips.column("end_s").to_numpy().astype(np.float64)
    by_video: dict[str, np.ndarray] = {}
    for v in np.unique(video):
        by_video[v] = np.flatnonzero(video == v)
    a_out, b_out, s_out = [], [], []
    for m in matches.to_pylist():
        ra, rb = by_video.get(m["video_a"]), by_video.get(m["video_b"])
        if ra is None or rb is None:
            continue
        off = m["offset_s"]
        ra = ra[(end[ra] > m["a_start_s"]) & (start[ra] < m["a_end_s"])]
        rb = rb[(end[rb] > m["b_start_s"]) & (start[rb] < m["b_end_s"])]
        if not len(ra) or not len(rb):
            continue
        xa, xb = np.meshgrid(ra, rb, indexing="ij")
        xa, xb = xa.ravel(), xb.ravel()
        lo = np.maximum.reduce([start[xa], start[xb] - off, np.full(len(xa), m["a_start_s"])])
        hi = np.minimum.reduce([end[xa], end[xb] - off, np.full(len(xa), m["a_end_s"])])
        shorter = np.minimum(end[xa] - start[xa], end[xb] - start[xb])
        ok = (hi - lo) >= params.segment_min_cover * shorter
        a_out.append(xa[ok])
        b_out.append(xb[ok])
        s_out.append(np.full(int(ok.sum()), 1.0 - m["mean_hamming"] / 64.0, np.float32))
    if not a_out:
        return Edges.empty()
    return Edges.of(np.concatenate(a_out), np.concatenate(b_out), "segment", np.concatenate(s_out))
