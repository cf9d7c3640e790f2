"""Perceptual near-duplicates from keyframe phashes, via multi-index hashing (sorted chunk tables).

A clip is a list of K keyframe hashes (10/50/90 % of the clip, so K = 3).
Decision rule: two clips are perceptual duplicates when the median, over
aligned keyframes (i-th with i-th), of the Hamming distance is <= t
(`phash_max_hamming`). One odd keyframe (a flash, a subtitle) does not break a
match; two different keyframes do.

Candidates without comparing all pairs (multi-index hashing, Norouzi et al.
2012): if the median is <= t then at least ceil(K/2) aligned keyframes are
within t, so at least one of the first K - ceil(K/2) + 1 positions is
(pigeonhole). At such a position the 64 bits are cut into m chunks of 64/m
bits; hashes within t bits agree on some chunk up to r = floor(t/m) bits
(pigeonhole again). So for every chunk we look up, in a table sorted by chunk
value, the hashes whose chunk equals ours XOR any mask of <= r bits. No pair
within t is missed; each candidate is then checked on all K keyframes. With
m = 4 (16-bit chunks) and t <= 7 that is 17 look-ups per chunk; cost grows with
C(16, <= r) for larger t.
"""
import numpy as np
import pyarrow as pa

from curation.dedup.edges import Edges
from curation.hashes import d4_variants


# D4 index (curation.hashes.D4) of the 90° rotation -> its inverse (the 270° one); every other element is
# its own inverse. Index 5 = transpose then up-down flip, 6 = transpose then left-right mirror.
ROTATION_INVERSE_OF = {5: 6}


def phash_matrix(phash_col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, H, K): rows having K hashes (the most common count) and their (n, K) uint64 hashes."""
    lists = phash_col.combine_chunks() if isinstance(phash_col, pa.ChunkedArray) else phash_col
    lengths = np.asarray(lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if not np.any(lengths > 0):
        return np.empty(0, np.int64), np.empty((0, 0), np.uint64), 0
    k = int(np.bincount(lengths[lengths > 0]).argmax())
    rows = np.flatnonzero(lengths == k)
    sub = lists.take(pa.array(rows))
    values = sub.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    return rows, values.reshape(len(rows), k), k


def _flip_masks(bits: int, r: int) -> np.ndarray:
    """Every value below 2**bits with at most r bits set (the XOR masks to probe)."""
    values = np.arange(1 << bits, dtype=np.int64)
    return values[np.bitwise_count(values) <= r]


def close_pairs(query: np.ndarray, table: np.ndarray | None, max_hamming: int, chunks: int,
                max_pairs: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with query[i] and table[j] at most max_hamming bits apart (exact).

    table=None is a self-join of `query`, each unordered pair once (i < j).
    """
    same = table is None
    table = query if same else table
    bits = 64 // chunks
    masks = _flip_masks(bits, max_hamming // chunks)
    out_a, out_b = [], []
    for c in range(chunks):
        tkey = ((table >> np.uint64(bits * c)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        qkey = tkey if same else ((query >> np.uint64(bits * c)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        order = np.argsort(tkey, kind="stable")
        bucket = np.searchsorted(tkey[order], np.arange((1 << bits) + 1))  # bucket v = order[bucket[v]:bucket[v+1]]
        for mask in masks:
            probe = qkey ^ mask
            lo, cnt = bucket[probe], bucket[probe + 1] - bucket[probe]
            # expand (query, candidate) pairs in slices that keep memory bounded
            for s, e in _slices(cnt, max_pairs):
                c_cnt = cnt[s:e]
                q = np.repeat(np.arange(s, e), c_cnt)
                first = np.repeat(lo[s:e] - np.cumsum(c_cnt) + c_cnt, c_cnt)
                cand = order[first + np.arange(len(q))]
                if same:
                    keep = q < cand  # each unordered pair once (mask XOR is symmetric)
                    q, cand = q[keep], cand[keep]
                close = np.bitwise_count(query[q] ^ table[cand]) <= max_hamming
                out_a.append(q[close])
                out_b.append(cand[close])
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a, b = np.concatenate(out_a), np.concatenate(out_b)
    if chunks > 1 and len(a):  # a pair close on several chunks is found once per chunk
        key = np.unique(a * np.int64(len(table)) + b)
        a, b = key // len(table), key % len(table)
    return a, b


def _slices(counts: np.ndarray, max_total: int):
    """(start, end) ranges of `counts` whose sums stay near max_total."""
    total = np.cumsum(counts)
    start = 0
    while start < len(counts):
        base = total[start - 1] if start else 0
        end = int(np.searchsorted(total, base + max_total, side="right"))
        end = max(end, start + 1)
        yield start, min(end, len(counts))
        start = end


def perceptual_edges(rows: np.ndarray, hashes: np.ndarray, max_hamming: int, chunks: int = 4,
                     symmetric: bool = True) -> Edges:
    """Edges between rows whose aligned keyframe phashes have median Hamming distance <= max_hamming.

    symmetric: also match a clip against every rotation/mirror of the other
    (curation.hashes.d4_variants): the distance is the smallest median over the 8.
    """
    n, k = hashes.shape
    if n < 2 or k == 0:
        return Edges.empty()
    if 64 % chunks or 64 // chunks > 24:
        raise ValueError("phash_index_chunks must divide 64 into chunks of at most 24 bits")
    # Identical hash lists collapse to one node first: a blob of identical hashes
    # (e.g. black frames) would otherwise make the range search quadratic.
    uniq, inverse = np.unique(hashes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[True, inverse[order][1:] != inverse[order][:-1]]
    first = order[np.flatnonzero(starts)]  # one row per unique hash list (in uniq order)
    same_a = first[inverse[order][~starts]]
    same_b = order[~starts]
    parts = [Edges.of(rows[same_a], rows[same_b], "perceptual", 1.0)]

    positions = k - (k + 1) // 2 + 1  # enough aligned positions to catch every median match
    variants = d4_variants(uniq) if symmetric else uniq[..., None]  # (U, K, G)
    for g in range(variants.shape[-1]):
        if g in ROTATION_INVERSE_OF.values():
            continue  # g(a) ~ b  <=>  a ~ g^-1(b): one of the two 90° rotations finds both orientations
        qa, qb = [], []
        for p in range(positions):
            a, b = close_pairs(variants[:, p, g], None if g == 0 else uniq[:, p], max_hamming, chunks)
            qa.append(a)
            qb.append(b)
        ca, cb = np.concatenate(qa), np.concatenate(qb)
        # a clip matching its own mirror image is not a pair; an involution (mirror, flip, 180°) finds
        # every pair in both orders, so one order is enough
        keep = (ca < cb) if g != 0 and g not in ROTATION_INVERSE_OF else (ca != cb)
        ca, cb = ca[keep], cb[keep]
        if not len(ca):
            continue
        pair = np.unique(ca * len(uniq) + cb)
        ca, cb = pair // len(uniq), pair % len(uniq)
        dist = np.median(np.bitwise_count(variants[ca, :, g] ^ uniq[cb]), axis=1)  # (P,) over aligned keyframes
        ok = dist <= max_hamming
        parts.append(Edges.of(rows[first[ca[ok]]], rows[first[cb[ok]]], "perceptual", 1.0 - dist[ok] / 64.0))
    return Edges.concat(parts)


def median_hamming(h1: np.ndarray, h2: np.ndarray, symmetric: bool = True) -> np.ndarray:
    """Row-wise median Hamming distance of aligned (n, K) uint64 hash lists (smallest over the 8 symmetries)."""
    if not symmetric:
        return np.median(np.bitwise_count(h1 ^ h2), axis=1)
    v = d4_variants(h1)  # (n, K, 8)
    return np.median(np.bitwise_count(v ^ h2[..., None]), axis=1).min(axis=-1)
def median_hamming(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Row-wise median Hamming distance of aligned (n, K) uint64 hash lists."""
    return np.median(np.bitwise_count(h1 ^ h2), axis=1)
