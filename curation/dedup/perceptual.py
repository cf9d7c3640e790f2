"""Perceptual near-duplicates from keyframe phashes, via multi-index hashing with a chunk plan sized to N.

A clip is a list of K keyframe hashes (10/50/90 % of the clip, so K = 3).
Decision rule: two clips are perceptual duplicates when the median, over
aligned keyframes (i-th with i-th), of the Hamming distance is <= t
(`phash_max_hamming`). One odd keyframe (a flash, a subtitle) does not break a
match; two different keyframes do.

Candidates without comparing all pairs (multi-index hashing, Norouzi et al.
2012): if the median is <= t then at least ceil(K/2) aligned keyframes are
within t, so at least one of the first K - ceil(K/2) + 1 positions is
(pigeonhole). At such a position the 64 bits are cut into m chunks of widths
b_i with probe radii r_i; if sum_i (r_i + 1) > t, two hashes within t bits
agree on some chunk i up to r_i bits (generalised pigeonhole, Norouzi et al.
2014, Prop. 1). So for every chunk we look up, in a table sorted by chunk
value, the hashes whose chunk equals ours XOR any mask of <= r_i bits. No pair
within t is missed; each candidate is then checked on all K keyframes.

Cost: a chunk costs C(b, <= r) probes per query, each returning about
n / 2**b candidates, so the best widths grow with log2 n (`chunk_plan`). The 8
square symmetries (curation.hashes.d4_variants) are one table of 7 variants per
clip (the 270° rotation is found through the 90° one), so a probe serves all
of them at once.

Work splits into independent `Partition`s (keyframe position x chunk x range
of the query's chunk value); `partition_pairs` runs one and needs only the
unique hash lists, so a pipeline can run partitions as parallel tasks.
"""
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import pyarrow as pa

from curation.dedup.edges import Edges
from curation.hashes import FLAT_HASH, d4_variants


# D4 index (curation.hashes.D4) of the 90° rotation -> its inverse (the 270° one); every other element is
# its own inverse. Index 5 = transpose then up-down flip, 6 = transpose then left-right mirror.
ROTATION_INVERSE_OF = {5: 6}
SYMMETRIES = tuple(g for g in range(8) if g not in ROTATION_INVERSE_OF.values())  # g(a) ~ b <=> a ~ g^-1(b)
MAX_CHUNK_BITS = 24  # bucket offsets table: 2**24 int64 = 128 MiB
PROBE_COST = 3.0  # one probe per query, in candidate checks (measured at 1M: ~44 ns per probe, ~16 ns per candidate)


@dataclass(frozen=True)
class Chunk:
    """Bits [shift, shift + bits) of a 64-bit hash, probed up to `radius` flipped bits."""

    shift: int
    bits: int
    radius: int


@dataclass(frozen=True)
class Partition:
    """One independent unit of index work: keyframe `position`, one `chunk`, queries whose chunk value is in [lo, hi)."""

    position: int
    chunk: Chunk
    lo: int
    hi: int


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


def _probes(bits: int, radius: int) -> int:
    return sum(comb(bits, j) for j in range(radius + 1))


def _plan_cost(widths: list[int], radii: tuple[int, ...], n_table: int) -> float:
    """Estimated work per query: every probe, plus the n / 2**b random candidates it returns."""
    return sum(_probes(b, r) * (PROBE_COST + n_table / 2.0 ** b) for b, r in zip(widths, radii))


def _radius_splits(total: int, m: int, top: int):
    """Non-increasing tuples of m radii >= 0 summing to total (each <= top)."""
    if m == 0:
        if total == 0:
            yield ()
        return
    for r in range(min(total, top), -1, -1):
        if r * m < total:
            break
        for rest in _radius_splits(total - r, m - 1, r):
            yield (r,) + rest


def chunk_plan(n_table: int, max_hamming: int, chunks: int | None = None) -> tuple[Chunk, ...]:
    """The cheapest exact plan (widths summing to 64, radii with sum(r_i + 1) > max_hamming) for n_table hashes.

    chunks fixes the number of chunks (3..16); None tries 3..8 (64 bits in at most 24-bit chunks).
    """
    best, best_cost = None, np.inf
    for m in ([chunks] if chunks else range(-(-64 // MAX_CHUNK_BITS), 9)):
        if not (m * MAX_CHUNK_BITS >= 64 and m <= 16):
            raise ValueError(f"phash_index_chunks must be 0 (chosen from N) or 3..16, got {m}")
        for radii in _radius_splits(max(0, max_hamming + 1 - m), m, 6):
            widths = [64 // m + (i < 64 % m) for i in range(m)]
            cost = _plan_cost(widths, radii, n_table)
            improved = True
            while improved:  # move one bit between two chunks while that lowers the cost
                improved = False
                for i in range(m):
                    for j in range(m):
                        if i == j or widths[i] <= 1 or widths[j] >= MAX_CHUNK_BITS:
                            continue
                        w = list(widths)
                        w[i] -= 1
                        w[j] += 1
                        c = _plan_cost(w, radii, n_table)
                        if c < cost - 1e-9:
                            widths, cost, improved = w, c, True
            if cost < best_cost:
                shifts = np.cumsum([0] + widths[:-1])
                best, best_cost = tuple(Chunk(int(s), b, r) for s, b, r in zip(shifts, widths, radii)), cost
    return best


def _flip_masks(bits: int, r: int) -> np.ndarray:
    """Every value below 2**bits with at most r bits set (the XOR masks to probe)."""
    return np.array([sum(1 << i for i in c) for j in range(r + 1) for c in combinations(range(bits), j)], np.int64)


def _chunk_key(h: np.ndarray, chunk: Chunk) -> np.ndarray:
    return ((h >> np.uint64(chunk.shift)) & np.uint64((1 << chunk.bits) - 1)).astype(np.int64)


def chunk_candidates(query: np.ndarray, table: np.ndarray, chunk: Chunk, max_hamming: int,
                     max_pairs: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, int]:
    """(i, j, examined): query[i], table[j] within max_hamming bits that agree on `chunk` up to its radius.

    examined counts the candidates the chunk look-ups returned (before the Hamming check).
    """
    tkey = _chunk_key(table, chunk)
    order = np.argsort(tkey, kind="stable")
    sorted_table = table[order]  # candidates of one probe are contiguous here: cache-friendly checks
    bucket = np.zeros((1 << chunk.bits) + 1, np.int64)  # bucket v = sorted_table[bucket[v]:bucket[v+1]]
    np.cumsum(np.bincount(tkey, minlength=1 << chunk.bits), out=bucket[1:])
    qorder = np.argsort(_chunk_key(query, chunk), kind="stable")  # queries by key: probes walk the buckets in order
    query = query[qorder]
    qkey = _chunk_key(query, chunk)
    out_a, out_b, examined = [], [], 0
    for mask in _flip_masks(chunk.bits, chunk.radius):
        probe = qkey ^ mask
        lo = bucket[probe]
        cnt = bucket[probe + 1] - lo
        hit = np.flatnonzero(cnt)  # wide chunks: most probes find an empty bucket
        lo, cnt = lo[hit], cnt[hit]
        examined += int(cnt.sum())
        for s, e in _slices(cnt, max_pairs):  # expand (query, candidate) pairs in memory-bounded slices
            c_cnt = cnt[s:e]
            q = np.repeat(hit[s:e], c_cnt)
            first = np.repeat(lo[s:e] - np.cumsum(c_cnt) + c_cnt, c_cnt)
            cand = first + np.arange(len(q))
            close = np.bitwise_count(query[q] ^ sorted_table[cand]) <= max_hamming
            out_a.append(qorder[q[close]])
            out_b.append(order[cand[close]])
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64), examined
    return np.concatenate(out_a), np.concatenate(out_b), examined


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


def partitions(n_unique: int, k: int, max_hamming: int, symmetric: bool = True, chunks: int | None = None,
               splits: int = 1) -> list[Partition]:
    """The independent units of work for n_unique distinct hash lists of K keyframes: positions x chunks x splits."""
    n_table = n_unique * (len(SYMMETRIES) if symmetric else 1)
    plan = chunk_plan(max(n_table, 2), max_hamming, chunks)
    positions = k - (k + 1) // 2 + 1  # enough aligned positions to catch every median match
    out = []
    for p in range(positions):
        for c in plan:
            edges = np.linspace(0, 1 << c.bits, splits + 1).astype(np.int64)
            out += [Partition(p, c, int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    return out


def keyframe_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance of aligned uint64 hashes, 64 where either is FLAT_HASH: a flat keyframe (black, one colour)
    has no picture to match, so it never votes for a pair (two fades to black are not one footage)."""
    return np.where((a == FLAT_HASH) | (b == FLAT_HASH), 64, np.bitwise_count(a ^ b))


def partition_pairs(uniq: np.ndarray, part: Partition, max_hamming: int,
                    symmetric: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(a, b, dist, examined) for one partition: rows of the distinct hash lists `uniq` (U, K) whose median
    Hamming distance, smallest over the symmetries, is <= max_hamming. A pair may come from several partitions."""
    syms = SYMMETRIES if symmetric else (0,)
    col = uniq[:, part.position]
    table = (d4_variants(col)[:, list(syms)] if symmetric else col[:, None]).reshape(-1)  # (U * G,): row-major
    key = _chunk_key(col, part.chunk)
    queries = np.flatnonzero((key >= part.lo) & (key < part.hi) & (col != FLAT_HASH))  # flat: never a candidate
    qi, tj, examined = chunk_candidates(col[queries], table, part.chunk, max_hamming)
    b, a, g = queries[qi], tj // len(syms), np.asarray(syms)[tj % len(syms)]  # variant g of a is close to b
    # a clip matching its own mirror image is not a pair; every symmetry but the 90° rotation is an involution
    # (finds each pair in both orders), and so is the identity, so one order is enough
    keep = (a < b) | ((a != b) & np.isin(g, list(ROTATION_INVERSE_OF)))
    a, b, g = a[keep], b[keep], g[keep]
    va = d4_variants(uniq[a])[np.arange(len(a)), :, g] if symmetric else uniq[a]  # (P, K)
    dist = np.median(keyframe_distances(va, uniq[b]), axis=1)  # (P,) over aligned keyframes
    ok = dist <= max_hamming
    return a[ok], b[ok], dist[ok], examined


def unique_hash_lists(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(uniq, first, same_a, same_b): distinct hash lists, one row per list, and the pairs of identical lists that
    can match: more than half their keyframes textured (identical fades to black are not a pair)."""
    uniq, inverse = np.unique(hashes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.r_[True, inverse[order][1:] != inverse[order][:-1]]
    first = order[np.flatnonzero(starts)]  # one row per unique hash list (in uniq order)
    same_a, same_b = first[inverse[order][~starts]], order[~starts]
    textured = np.sum(hashes[same_b] != FLAT_HASH, axis=1) * 2 > hashes.shape[1]
    return uniq, first, same_a[textured], same_b[textured]


def perceptual_edges(rows: np.ndarray, hashes: np.ndarray, max_hamming: int, chunks: int | None = None,
                     symmetric: bool = True, stats: dict | None = None) -> Edges:
    """Edges between rows whose aligned keyframe phashes have median Hamming distance <= max_hamming.

    symmetric: also match a clip against every rotation/mirror of the other
    (curation.hashes.d4_variants): the distance is the smallest median over the 8.
    chunks: number of index chunks (None or 0: chosen from N). stats, if given, receives
    the plan and the number of candidates examined.
    """
    n, k = hashes.shape
    if n < 2 or k == 0:
        return Edges.empty()
    # Identical hash lists collapse to one node first: a blob of identical hashes
    # (e.g. black frames) would otherwise make the range search quadratic.
    uniq, first, same_a, same_b = unique_hash_lists(hashes)
    parts = [Edges.of(rows[same_a], rows[same_b], "perceptual", 1.0)]
    work = partitions(len(uniq), k, max_hamming, symmetric, chunks or None)
    found = [partition_pairs(uniq, part, max_hamming, symmetric) for part in work]
    a, b, dist = (np.concatenate([f[i] for f in found]) for i in range(3))
    parts.append(Edges.of(rows[first[a]], rows[first[b]], "perceptual", 1.0 - dist / 64.0))
    if stats is not None:
        stats.update(plan=[(c.bits, c.radius) for c in dict.fromkeys(p.chunk for p in work)],
                     partitions=len(work), candidates_examined=sum(f[3] for f in found))
    return Edges.concat(parts)


def median_hamming(h1: np.ndarray, h2: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """Row-wise median Hamming distance of aligned (n, K) uint64 hash lists (symmetric: smallest over the 8)."""
    if not symmetric:
        return np.median(keyframe_distances(h1, h2), axis=1)
    v = d4_variants(h1)  # (n, K, 8)
    return np.median(keyframe_distances(v, h2[..., None]), axis=1).min(axis=-1)
