"""Perceptual near-duplicates from keyframe phashes, via multi-index hashing (faiss).

A clip is a list of K keyframe hashes (10/50/90 % of the clip, so K = 3).
Decision rule: two clips are perceptual duplicates when the median, over
aligned keyframes (i-th with i-th), of the Hamming distance is <= t
(`phash_max_hamming`). One odd keyframe (a flash, a subtitle) does not break a
match; two different keyframes do.

Candidates without comparing all pairs: if the median is <= t then at least
ceil(K/2) aligned keyframes are within t, so at least one of the first
K - ceil(K/2) + 1 positions is (pigeonhole). For each of those positions, a
faiss IndexBinaryMultiHash splits the 64 bits into m chunks; a pair within t
agrees on some chunk up to floor(t/m) bits, which the index finds by probing
every chunk value within that many flips (nflip). The search is exact for
radius t, so no pair within t is missed; each candidate is then checked on all
K keyframes.
"""
import faiss
import numpy as np
import pyarrow as pa

from curation.dedup.edges import Edges


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


def _as_codes(h: np.ndarray) -> np.ndarray:
    """uint64 hashes -> (n, 8) uint8 codes for faiss binary indexes."""
    return np.ascontiguousarray(h.astype(">u8")).view(np.uint8).reshape(len(h), 8)


def _candidates_at(h: np.ndarray, max_hamming: int, chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) whose hashes h[i], h[j] differ in at most max_hamming bits."""
    codes = _as_codes(h)
    index = faiss.IndexBinaryMultiHash(64, chunks, 64 // chunks)
    index.nflip = max_hamming // chunks  # pigeonhole: some chunk differs by <= this many bits
    index.add(codes)
    lims, _, ids = index.range_search(codes, max_hamming + 1)  # faiss radius is strict (<)
    q = np.repeat(np.arange(len(h), dtype=np.int64), np.diff(lims).astype(np.int64))
    ids = ids.astype(np.int64)
    keep = q < ids
    return q[keep], ids[keep]


def perceptual_edges(rows: np.ndarray, hashes: np.ndarray, max_hamming: int, chunks: int = 4) -> Edges:
    """Edges between rows whose aligned keyframe phashes have median Hamming distance <= max_hamming."""
    n, k = hashes.shape
    if n < 2 or k == 0:
        return Edges.empty()
    if 64 % chunks:
        raise ValueError("phash_index_chunks must divide 64")
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
    qa, qb = [], []
    for p in range(positions):
        a, b = _candidates_at(uniq[:, p], max_hamming, chunks)
        qa.append(a)
        qb.append(b)
    ca, cb = np.concatenate(qa), np.concatenate(qb)
    if len(ca):
        pair = np.unique(ca * len(uniq) + cb)
        ca, cb = pair // len(uniq), pair % len(uniq)
        dist = np.median(np.bitwise_count(uniq[ca] ^ uniq[cb]), axis=1)  # (P,) over aligned keyframes
        ok = dist <= max_hamming
        parts.append(Edges.of(rows[first[ca[ok]]], rows[first[cb[ok]]], "perceptual", 1.0 - dist[ok] / 64.0))
    return Edges.concat(parts)


def median_hamming(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Row-wise median Hamming distance of aligned (n, K) uint64 hash lists."""
    return np.median(np.bitwise_count(h1 ^ h2), axis=1)
