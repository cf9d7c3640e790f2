"""Segment-level copies: temporal alignment of per-sample phash sequences (survives re-cutting).

Every video contributes its analysis samples (~2 per second, the frames the
scan already hashes) as (video, t, phash). Copy detection follows temporal
Hough voting (Douze et al., "Compact video description for copy detection
with precise temporal alignment", ECCV 2010):

1. seeds (candidate video pairs, no all-pairs comparison): samples of two
   videos whose hashes agree exactly on one `segment_seed_bits`-bit slice of
   the 63 AC bits, under any of the 8 square symmetries
   (curation.hashes.d4_variant), and whose whole hashes are within the vote
   limit -- a sort-merge join per slice and symmetry (2 x 8 joins at 32 bits)
   over packed (key, row) words, each symmetry turned one chunk of rows at a
   time. Hashes within 1 bit always seed (pigeonhole); a copy has many
   samples and only one needs to. The distance check drops the chance slice
   agreements (~1 in 200 of them are within 8 bits), which would otherwise be
   most of the aligned pairs at scale. Slice values held by more than
   `segment_max_df` videos (a logo, a title card) are stop words;
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
from curation.hashes import D4, FLAT_HASH, REGION_FRACS, d4_variant
from schemas import TABLES

# The tables are defined once, in schemas/: per-sample hashes in, matched segments out.
SEGMENT_MATCH_SCHEMA = TABLES["dup_segments"]
SAMPLES_SCHEMA = TABLES["samples"]


REGIONS_COLUMN = "regions"  # optional samples column: list of region hashes (curation.hashes.region_hashes)


def samples_table(video_ids: list[str], t: list[float], phash: list[int], regions: list[list[int]] | None = None) -> pa.Table:
    """The per-sample input of segment matching: one row per analysis sample (with its region hashes, if given)."""
    regions = pa.array(regions, pa.list_(pa.uint64())) if regions is not None else pa.nulls(len(t), pa.list_(pa.uint64()))
    return pa.table({"video_id": video_ids, "t": t, "phash": pa.array(phash, pa.uint64()), REGIONS_COLUMN: regions},
                    schema=SAMPLES_SCHEMA)


def _hash_matrix(samples: pa.Table, regions: bool) -> np.ndarray:
    """(N, 1 + R) uint64: each sample's whole-frame hash, then its R region hashes (FLAT_HASH where missing)."""
    whole = samples.column("phash").to_numpy()
    if not regions or REGIONS_COLUMN not in samples.column_names:
        return whole.astype(np.uint64)[:, None]
    lists = samples.column(REGIONS_COLUMN).combine_chunks()
    lengths = np.asarray(lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    r = int(lengths.max()) if len(lengths) else 0
    out = np.full((len(lengths), 1 + r), FLAT_HASH, np.uint64)
    out[:, 0] = whole
    full = lengths == r  # a sample hashed with other fractions (or none) takes part as a whole frame
    if r and full.all():
        out[:, 1:] = lists.flatten().to_numpy(zero_copy_only=False).reshape(-1, r)
    elif r and full.any():
        idx = np.flatnonzero(full)
        out[idx, 1:] = lists.take(pa.array(idx)).flatten().to_numpy(zero_copy_only=False).reshape(-1, r)
    return out


def segment_matches(samples: pa.Table, params: DedupParams = DedupParams(), near: list[dict] | None = None) -> pa.Table:
    """Matched segments between videos (SEGMENT_MATCH_SCHEMA) from a SAMPLES_SCHEMA table.

    With "edited" in params.kinds and a regions column, every pair of regions (whole frame or centred crops) of
    two videos is a hypothesis too; a span found only that way has edited = True.
    near, if given, receives the near misses: seeded (video a, video b, symmetry) triples that matched no segment but
    whose best region pair has >= verify_min_votes samples within verify_extra_bits more than the vote limit, as
    {video_a, video_b, symmetry, ta, tb, hamming} (the loose votes' sample times): candidates for
    curation/dedup/verify.py."""
    vids_all = samples.column("video_id").combine_chunks()
    codes = pc.dictionary_encode(vids_all)
    names = codes.dictionary.to_pylist()
    vid = codes.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    del vids_all, codes
    t = samples.column("t").to_numpy().astype(np.float64)
    every = np.lexsort((t, vid))  # all samples (flat ones too) per video, in time order: the density denominator
    period = _sample_period(vid[every], t[every], len(names))
    hm = _hash_matrix(samples, "edited" in params.kinds)  # (N, 1 + R)
    live_rows = np.any(hm != FLAT_HASH, axis=1)[every]  # flat frames (black, one colour) carry no identity
    keep = every[live_rows]  # the samples that take part, per video in time order
    t_every = t[every]
    first_every = np.searchsorted(vid[every], np.arange(len(names) + 1))
    del every, live_rows
    if len(keep) == len(hm) and bool(np.all(keep[1:] > keep[:-1])):  # in order already, nothing flat: no copies
        hv, vv, tv = hm, vid, t
    else:
        hv, vv, tv = hm[keep], vid[keep], t[keep]
    del hm, keep, vid, t
    first = np.searchsorted(vv, np.arange(len(names) + 1))  # video v = [first[v], first[v+1])
    n_reg = hv.shape[1]
    live = hv != FLAT_HASH  # (N, 1 + R)
    # a region pair's votes need edited_max_hamming bits (the whole frames' segment_max_hamming)
    limit = np.full((n_reg, n_reg), params.edited_max_hamming, np.int64)
    limit[0, 0] = params.segment_max_hamming
    # seeds need one sample pair within the vote limit (within the near-miss limit when near misses are wanted)
    # (or, two hits within verify_extra_bits more: a graded copy seeds on samples a few bits past the limit); with
    # near misses wanted, one hit within those extra bits
    near_wanted = near is not None and params.verify_max_per_clip > 0
    seed_limit = limit + (params.verify_extra_bits if near_wanted else 0)
    extra = 0 if near_wanted else params.verify_extra_bits
    # seeds: the whole-frame hashes at segment_seed_bits, and with regions every (sample, region) at edited_seed_bits
    # (one join over all columns when the two widths agree)
    syms = len(D4) if params.phash_symmetric else 1
    if n_reg == 1 or params.edited_seed_bits != params.segment_seed_bits:
        seeds = seed_pairs(hv[:, :1], vv, params.segment_seed_bits, params.segment_max_df, syms, seed_limit[:1, :1], extra)
    else:
        seeds = np.empty((0, 3), np.int64)
    if n_reg > 1:
        seeds = np.unique(np.concatenate([seeds, seed_pairs(hv, vv, params.edited_seed_bits, params.segment_max_df,
                                                            syms, seed_limit, extra)]), axis=0)

    by_pair: dict[tuple[int, int], list[dict]] = {}
    for va, vb, g in seeds.tolist():
        qa, qb = slice(first[va], first[va + 1]), slice(first[vb], first[vb + 1])
        dist = np.bitwise_count(d4_variant(hv[qa], g)[:, :, None, None] ^ hv[qb][None, None, :, :])  # (na, Ra, nb, Rb)
        close = (dist <= limit[None, :, None, :]) & live[qa][:, :, None, None] & live[qb][None, None, :, :]
        votes = close.any(axis=2).sum(axis=0)  # (Ra, Rb): distinct a-samples with a close b-sample
        n_found = 0
        for ra, rb in _hypotheses(votes, params):
            ia, ib = np.nonzero(close[:, ra, :, rb])
            ta, tb = tv[qa][ia], tv[qb][ib]
            found = _segments_of_pair(ta, tb, dist[ia, ra, ib, rb].astype(np.float32), t_every[first_every[va]:first_every[va + 1]],
                                      period[va], period[vb], params, names[va], names[vb], int(g))
            for r in found:
                r.update(ra=int(ra), rb=int(rb), edited=bool(ra or rb))
            by_pair.setdefault((va, vb), []).extend(found)
            n_found += len(found)
        if near is not None and not n_found and params.verify_max_per_clip > 0:
            miss = _near_miss(dist, live[qa], live[qb], limit + params.verify_extra_bits, params.verify_min_votes)
            if miss is not None:
                ia, ib, ra, rb = miss
                near.append({"video_a": names[va], "video_b": names[vb], "symmetry": int(g), "ta": tv[qa][ia],
                             "tb": tv[qb][ib], "hamming": float(np.mean(dist[ia, ra, ib, rb]))})
    rows = [r for found in by_pair.values() for r in _best_hypothesis_per_span(found)]
    return _match_table(rows, REGION_FRACS)


def _near_miss(dist: np.ndarray, live_a: np.ndarray, live_b: np.ndarray, loose: np.ndarray, min_votes: int):
    """(a rows, b rows, region a, region b) of the sample pairs within the `loose` limits under the region pair with
    most such a-samples, or None under min_votes. dist: (na, Ra, nb, Rb) Hamming distances of one video pair."""
    close = (dist <= loose[None, :, None, :]) & live_a[:, :, None, None] & live_b[None, None, :, :]
    votes = close.any(axis=2).sum(axis=0)  # (Ra, Rb)
    ra, rb = np.unravel_index(int(np.argmax(votes)), votes.shape)
    if votes[ra, rb] < min_votes:
        return None
    ia, ib = np.nonzero(close[:, ra, :, rb])
    return ia, ib, int(ra), int(rb)


def _hypotheses(votes: np.ndarray, params: DedupParams) -> list[tuple[int, int]]:
    """(region of a, region of b) pairs worth aligning: whole frames when they have enough votes, then the
    params.edited_hypotheses region pairs with the most votes (neighbouring crops of one picture all agree)."""
    ok = votes >= params.segment_min_samples
    out = [(0, 0)] if ok[0, 0] else []
    ok[0, 0] = False
    ra, rb = np.nonzero(ok)
    best = np.argsort(-votes[ra, rb], kind="stable")[:params.edited_hypotheses]
    return out + [(int(ra[i]), int(rb[i])) for i in best]


def _match_table(rows: list[dict], fracs: tuple[float, ...]) -> pa.Table:
    """Rows as SEGMENT_MATCH_SCHEMA; region indices become the share of the picture they hash (1.0 = whole frame)."""
    share = (1.0,) + tuple(fracs)
    for r in rows:
        r["region_a"], r["region_b"] = share[r.pop("ra", 0)], share[r.pop("rb", 0)]
        r.setdefault("edited", False)
    names = SEGMENT_MATCH_SCHEMA.names
    return pa.Table.from_pylist([{k: r[k] for k in names} for r in rows], schema=SEGMENT_MATCH_SCHEMA) \
        if rows else SEGMENT_MATCH_SCHEMA.empty_table()


INVERSE = (0, 1, 2, 3, 4, 6, 5, 7)  # D4 index of each symmetry's inverse (5 and 6: the two quarter turns)
_LOW32 = np.uint64(0xFFFFFFFF)
SEED_CHUNK = 1 << 20  # rows turned and packed at a time: bounds the temporaries of a symmetry (~30 B a row)


def seed_pairs(h: np.ndarray, vid: np.ndarray, bits: int, max_df: int, symmetries: int = 8,
               limit: np.ndarray | None = None, extra_bits: int = 0) -> np.ndarray:
    """(S, 3) int64 rows (video a, video b, symmetry g), a < b, sorted and distinct: some hash of a (any column of
    h), turned by D4[g], equals a hash of b on a slice of `bits` of the 63 AC bits. h: (N,) or (N, C) uint64,
    FLAT_HASH entries never seed; vid: (N,).

    With `limit` ((C, C) bits), a pair seeds when one such hit is within limit[column in a, column in b] bits, or
    when SEED_LOOSE_HITS distinct hits are within extra_bits more than that: a chance agreement on a slice is one
    hit whose other bits are random (~1 in 200 within 8 of 31 bits), while a graded or cropped copy agrees on slices
    of several samples, some of them a few bits past the vote limit.

    Per slice, the table is one sorted array of packed words (key << 32 | flat row), so a sort needs no index array;
    per symmetry, the rows are turned (curation.hashes.d4_variant, a chunk at a time), packed and sorted the same
    way. Both are cut into key ranges of ~SEED_PART rows and joined range by range (binary searches that stay in
    cache); the identity join is the table's own runs of equal keys. A hit with a > b under g is kept as
    (b, a, inverse of g): the same pair of frames, so no seed depends on which video is the query."""
    h = np.asarray(h, np.uint64)
    h = h[:, None] if h.ndim == 1 else h
    n, c = h.shape
    if n * c >= 1 << 31:
        raise ValueError("seed_pairs: 2**31 or more (sample, region) hashes; split the samples")
    flat = np.ascontiguousarray(h).reshape(-1)
    vid = np.asarray(vid, np.int64)
    n_videos = max(1, int(vid.max()) + 1 if len(vid) else 0)
    pos = np.flatnonzero(flat != FLAT_HASH).astype(np.uint32)  # rows that seed
    # symmetries 4..7 transpose first (D4): transpose every hash once, then each of them is a XOR mask of it
    turned = d4_variant(flat, 4) if symmetries > 4 else flat
    part_bits = int(np.ceil(np.log2(max(1.0, len(pos) / SEED_PART))))
    hits = [np.empty((0, 3), np.int64)]  # (seed key, row pair, within the limit)
    for lo_bit in range(0, 63, bits):  # bit 63 is the DC bit, always 1
        key_bits = min(bits, 63 - lo_bit)
        shift, mask = np.uint64(lo_bit), np.uint64((1 << key_bits) - 1)
        pb = min(part_bits, key_bits)
        cuts = (np.arange(1, 1 << pb, dtype=np.uint64) << np.uint64(key_bits - pb)) << np.uint64(32)  # key ranges
        table = _packed(flat, turned, pos, shift, mask, 0)
        t_cut = np.r_[0, np.searchsorted(table, cuts), len(table)]
        for g in range(symmetries):
            query = table if g == 0 else _packed(flat, turned, pos, shift, mask, g)
            q_cut = t_cut if g == 0 else np.r_[0, np.searchsorted(query, cuts), len(query)]
            for i in range(len(t_cut) - 1):
                qrow, trow = _join(table[t_cut[i]:t_cut[i + 1]], query[q_cut[i]:q_cut[i + 1]], g == 0, vid, c, max_df)
                hits.append(_seed_hits(flat, turned, qrow, trow, vid, c, g, limit, extra_bits, n_videos))
            del query
        del table
    hits = np.concatenate(hits)
    if limit is None:
        keys = np.unique(hits[:, 0])
    else:  # within the limit, or SEED_LOOSE_HITS distinct row pairs within extra_bits more
        loose = np.unique(hits[:, :2], axis=0)[:, 0]
        values, count = np.unique(loose, return_counts=True)
        keys = np.union1d(hits[hits[:, 2] == 1, 0], values[count >= SEED_LOOSE_HITS])
    return np.stack([keys // 8 // n_videos, keys // 8 % n_videos, keys % 8], axis=1)


SEED_PART = 1 << 20  # rows of one key range of the seed join (~8 MB of packed words: binary searches in cache)


def _turn(flat: np.ndarray, turned: np.ndarray, rows: np.ndarray, g: int) -> np.ndarray:
    """flat[rows] turned by D4[g]; turned: flat transposed (D4[4]), so that g >= 4 is a XOR mask of it."""
    return d4_variant(turned[rows], g - 4) if g >= 4 else d4_variant(flat[rows], g)


def _packed(flat: np.ndarray, turned: np.ndarray, pos: np.ndarray, shift: np.uint64, mask: np.uint64, g: int) -> np.ndarray:
    """Sorted words (slice key of flat[pos] turned by D4[g]) << 32 | pos, built SEED_CHUNK rows at a time."""
    out = np.empty(len(pos), np.uint64)
    for s in range(0, len(pos), SEED_CHUNK):
        p = pos[s:s + SEED_CHUNK]
        out[s:s + SEED_CHUNK] = (((_turn(flat, turned, p, g) >> shift) & mask) << np.uint64(32)) | p
    out.sort()
    return out


def _join(table: np.ndarray, query: np.ndarray, self_join: bool, vid: np.ndarray, c: int, max_df: int):
    """(query rows, table rows) int64 of the equal keys of two sorted packed arrays of one key range; keys held by
    more than max_df videos of the table are stop words. self_join: query is the table itself (its runs)."""
    if not len(table):  # a key range that no sample falls in (or no samples at all)
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tkeys = (table >> np.uint64(32)).astype(np.uint32)
    stop = _common_keys(tkeys, table, vid, c, max_df)
    if self_join:
        dup = tkeys[1:] == tkeys[:-1]
        query = table[np.r_[dup, False] | np.r_[False, dup]]
    qkeys = (query >> np.uint64(32)).astype(np.uint32)
    lo = np.searchsorted(tkeys, qkeys)
    hit = np.flatnonzero(tkeys[np.minimum(lo, len(tkeys) - 1)] == qkeys) if len(tkeys) else lo[:0]
    if len(stop):
        hit = hit[~np.isin(qkeys[hit], stop)]
    lo, qkeys = lo[hit], qkeys[hit]
    cnt = np.searchsorted(tkeys, qkeys, side="right") - lo
    qrow = np.repeat((query[hit] & _LOW32).astype(np.int64), cnt)
    trow = (table[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(len(qrow))] & _LOW32).astype(np.int64)
    return qrow, trow


SEED_LOOSE_HITS = 2  # hits past the vote limit (by at most extra_bits) that seed a pair together


def _seed_hits(flat: np.ndarray, turned: np.ndarray, qrow: np.ndarray, trow: np.ndarray, vid: np.ndarray, c: int, g: int,
               limit: np.ndarray | None, extra_bits: int, n_videos: int) -> np.ndarray:
    """(H, 3) int64: seed key (a * n_videos + b) * 8 + g, the row pair and whether it is within the limit, of the
    hits (flat row qrow turned by g ~ flat row trow) between two videos, oriented a < b (rows and g with them);
    hits past limit + extra_bits are dropped."""
    within = np.ones(len(qrow), np.int64)
    if limit is not None and len(qrow):
        d = np.bitwise_count(_turn(flat, turned, qrow, g) ^ flat[trow])
        lim = limit[qrow % c, trow % c]
        ok = d <= lim + extra_bits
        qrow, trow, within = qrow[ok], trow[ok], (d[ok] <= lim[ok]).astype(np.int64)
    a, b = vid[qrow // c], vid[trow // c]
    swap = a > b  # b's frame turned by the inverse is a's frame
    g_out = np.where(swap, INVERSE[g], g)
    a, b, qrow, trow = np.where(swap, b, a), np.where(swap, a, b), np.where(swap, trow, qrow), np.where(swap, qrow, trow)
    keep = a < b
    key = (a * n_videos + b) * 8 + g_out
    return np.stack([key[keep], (qrow[keep] << 31) | trow[keep], within[keep]], axis=1)


def _common_keys(sorted_keys: np.ndarray, table: np.ndarray, vid: np.ndarray, c: int, max_df: int) -> np.ndarray:
    """Key values held by more than max_df distinct videos (stop words). sorted_keys: the table's keys in order;
    table: its packed words (key << 32 | flat row), c columns per sample."""
    n, max_df = len(sorted_keys), max(0, max_df)
    if n <= max_df:
        return sorted_keys[:0]
    # only a key with more than max_df rows can be held by more than max_df videos
    many = np.unique(sorted_keys[:n - max_df][sorted_keys[max_df:] == sorted_keys[:n - max_df]])
    if not len(many):
        return many
    lo, hi = np.searchsorted(sorted_keys, many), np.searchsorted(sorted_keys, many, side="right")
    idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
    k, v = sorted_keys[idx].astype(np.int64), vid[(table[idx] & _LOW32).astype(np.int64) // c]
    kv = np.unique(k * (int(vid.max()) + 1) + v)  # distinct (key, video)
    values, df = np.unique(kv // (int(vid.max()) + 1), return_counts=True)
    return values[df > max_df].astype(sorted_keys.dtype)


def _sample_period(vs: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Seconds between samples per video, the mean gap (0.5 s when a video has one sample); samples in (video, t) order."""
    same = vs[1:] == vs[:-1]
    gaps = np.bincount(vs[1:][same], weights=np.diff(ts)[same], minlength=n)
    count = np.bincount(vs[1:][same], minlength=n)
    return np.where(count > 0, gaps / np.maximum(count, 1), 0.5)


def time_scales(lo: float, hi: float, step: float) -> np.ndarray:
    """Speed factors (1 + step)**k within [lo, hi], nearest to 1.0 first (1.0 wins ties)."""
    k = np.arange(np.floor(np.log(lo) / np.log1p(step)), np.ceil(np.log(hi) / np.log1p(step)) + 1)
    k = k[np.argsort(np.abs(k) - 0.1 * (k > 0), kind="stable")]  # 0, 1, -1, 2, -2, ...
    s = (1.0 + step) ** k
    return s[(s >= lo - 1e-9) & (s <= hi + 1e-9)]


def _densest_line(ta: np.ndarray, tb: np.ndarray, alive: np.ndarray, scales: np.ndarray, tol: float):
    """(scale, window rows): the line t_b = scale * t_a + offset through most votes of the alive ones, offsets
    within tol; the first scale wins ties (1.0 first). All scales at once: one sorted row of offsets per scale."""
    idx = np.flatnonzero(alive)
    off = tb[idx][None, :] - scales[:, None] * ta[idx][None, :]  # (S, n)
    o = np.argsort(off, axis=1, kind="stable")
    so = np.take_along_axis(off, o, axis=1)
    span = float(so.max() - so.min()) + 2 * tol + 1.0
    flat = (so - so.min() + np.arange(len(scales))[:, None] * span).ravel()  # rows apart: one sorted array
    count = np.searchsorted(flat, flat + tol, side="right") - np.arange(flat.size)
    best = int(np.argmax(count))  # first maximum: the scale nearest 1.0, then the earliest window
    s, i = divmod(best, len(idx))
    return float(scales[s]), idx[o[s, i:i + count[best]]]


def _segments_of_pair(ta, tb, dist, t_all_a, period_a, period_b, params: DedupParams, name_a, name_b, g) -> list[dict]:
    """Dense lines t_b = scale * t_a + offset of one (video a, video b, hypothesis) vote list, best first.

    The scale (a speed change) is searched over params.segment_time_scales (1.0 only: a plain time shift), then
    fitted by least squares to the votes of its window."""
    out = []
    alive = np.ones(len(ta), bool)
    scales = time_scales(*params.segment_speed_range, params.segment_speed_step) \
        if params.segment_speed_range != (1.0, 1.0) else np.ones(1)
    while alive.sum() >= params.segment_min_samples and len(out) < params.segment_max_per_pair:
        scale, win = _densest_line(ta, tb, alive, scales, params.segment_offset_tol_s)
        matched_a = np.unique(ta[win])
        if len(matched_a) < params.segment_min_samples:
            break
        a0, a1 = matched_a[0], matched_a[-1]
        in_span = np.count_nonzero((t_all_a >= a0) & (t_all_a <= a1))
        alive[win] = False
        if len(matched_a) / max(1, in_span) < params.segment_min_density:
            continue
        if scale != 1.0 and a1 > a0:  # refine the speed on the window's votes
            fit = np.polyfit(ta[win], tb[win], 1)
            lo, hi = params.segment_speed_range
            scale = float(np.clip(fit[0], lo, hi)) if len(np.unique(ta[win])) >= 3 else scale
        offset = float(np.median(tb[win] - scale * ta[win]))
        out.append({
            "video_a": name_a, "video_b": name_b,
            # each sample stands for half a period either side; a video starts at 0 s
            "a_start_s": max(0.0, float(a0 - period_a / 2)), "a_end_s": float(a1 + period_a / 2),
            "b_start_s": max(0.0, float(scale * a0 + offset - period_b / 2)), "b_end_s": float(scale * a1 + offset + period_b / 2),
            "offset_s": offset, "time_scale": scale, "samples": int(len(matched_a)),
            "mean_hamming": float(np.mean(dist[win])), "symmetry": g,
        })
    return out


def _best_hypothesis_per_span(rows: list[dict]) -> list[dict]:
    """A symmetric picture (a centred face, a sky) matches under several symmetries, a picture under several region
    pairs: keep the best per span -- whole-frame matches first (an edit-tolerant one only where none overlaps)."""
    rows = sorted(rows, key=lambda r: (r.get("edited", False), -r["samples"], r["mean_hamming"]))
    kept: list[dict] = []

    def same_span(k: dict, r: dict) -> bool:
        lo, hi = max(k["a_start_s"], r["a_start_s"]), min(k["a_end_s"], r["a_end_s"])
        mid = (lo + hi) / 2  # where both put a's footage in b
        return (k["video_a"] == r["video_a"] and k["video_b"] == r["video_b"] and hi > lo
                and abs(k["time_scale"] * mid + k["offset_s"] - r["time_scale"] * mid - r["offset_s"]) <= 1.0)

    for r in rows:
        if not any(same_span(k, r) for k in kept):
            kept.append(r)
    return kept


def segment_edges(clips: pa.Table, matches: pa.Table, params: DedupParams = DedupParams()) -> Edges:
    """Clip pairs covered by a matched segment: overlap, in a's time, >= segment_min_cover of the shorter clip.

    Kind "segment" (whole-frame match) or "edited" (found through region hashes); similarity 1 - mean Hamming / 64."""
    if matches.num_rows == 0 or clips.num_rows == 0:
        return Edges.empty()
    video = np.array(clips.column("video_id").to_pylist(), dtype=object)
    start = clips.column("start_s").to_numpy().astype(np.float64)
    end = clips.column("end_s").to_numpy().astype(np.float64)
    by_video: dict[str, np.ndarray] = {}
    for v in np.unique(video):
        by_video[v] = np.flatnonzero(video == v)
    out: dict[str, tuple[list, list, list]] = {"segment": ([], [], []), "edited": ([], [], [])}
    for m in matches.to_pylist():
        ra, rb = by_video.get(m["video_a"]), by_video.get(m["video_b"])
        if ra is None or rb is None:
            continue
        off, scale = m["offset_s"], m.get("time_scale") or 1.0  # b's time = scale * a's time + offset
        ra = ra[(end[ra] > m["a_start_s"]) & (start[ra] < m["a_end_s"])]
        rb = rb[(end[rb] > m["b_start_s"]) & (start[rb] < m["b_end_s"])]
        if not len(ra) or not len(rb):
            continue
        xa, xb = np.meshgrid(ra, rb, indexing="ij")
        xa, xb = xa.ravel(), xb.ravel()
        b_start, b_end = (start[xb] - off) / scale, (end[xb] - off) / scale  # clip of b in a's time
        lo = np.maximum.reduce([start[xa], b_start, np.full(len(xa), m["a_start_s"])])
        hi = np.minimum.reduce([end[xa], b_end, np.full(len(xa), m["a_end_s"])])
        shorter = np.minimum(end[xa] - start[xa], b_end - b_start)
        ok = (hi - lo) >= params.segment_min_cover * shorter
        a_out, b_out, s_out = out["edited" if m.get("edited") else "segment"]
        a_out.append(xa[ok])
        b_out.append(xb[ok])
        s_out.append(np.full(int(ok.sum()), 1.0 - m["mean_hamming"] / 64.0, np.float32))
    return Edges.concat([Edges.of(np.concatenate(a), np.concatenate(b), kind, np.concatenate(sim))
                         for kind, (a, b, sim) in out.items() if a])


def segment_pairs(clips: pa.Table, samples: pa.Table, params: DedupParams = DedupParams(),
                  near: list[dict] | None = None) -> tuple[Edges, pa.Table]:
    """(clip pairs, matched segments) of the configured time-aligned kinds: "segment" (whole frames), "edited"
    (region hashes). `clips` needs video_id, start_s and end_s. near: see segment_matches."""
    matches = segment_matches(samples, params, near)
    wanted = [k in params.kinds for k in ("segment", "edited")]
    if not all(wanted):  # one of the two kinds: its rows only
        matches = matches.filter(pc.equal(matches.column("edited"), pa.scalar(wanted[1])))
    return segment_edges(clips, matches, params), matches


def segment_note(matches: pa.Table, edges: Edges) -> str:
    """The run note of segment and edited matching."""
    n_edited = int(pc.sum(matches.column("edited")).as_py() or 0)
    return (f"segment dedup: {matches.num_rows} matched segment(s) between videos ({n_edited} through region hashes: "
            f"edited), {edges.count('segment')} segment and {edges.count('edited')} edited clip pair(s)")
