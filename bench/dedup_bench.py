"""Semantic dedup at scale: 10k / 100k / 1M synthetic 512-d unit embeddings with planted duplicate groups.

Run: python -m bench.dedup_bench [--sizes 10000,100000,1000000] [--phash-sizes 100000,1000000 [--phash-faiss]] [--segment-sizes 1000000]
Each size runs in its own subprocess so peak memory (ru_maxrss, which counts
faiss' native allocations, unlike tracemalloc) belongs to that size alone.
Writes bench/results/dedup.json and prints a table. Compared side by side in
the same process: ours (SemDeDup + border spill) and plain SemDeDup (no
spill), both against planted pairs and against exact brute force on a 50k
subset.

Data: topics (k-means-like structure, cos(point, topic) ~ 0.6, topic sizes
log-normal) so clusters exist, as with real CLIP embeddings; 2 % of points
get 1-4 planted copies at cos(copy, base) 0.975-0.9988, so every planted pair
is above the 0.95 threshold.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D = 512
EPS = 0.05
SUBSET = 50_000
RESULTS = Path(__file__).resolve().parent / "results" / "dedup.json"


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, D) float32 unit rows, group (n,) int64: planted group id or -1)."""
    rng = np.random.default_rng(seed)
    n_topics = max(10, n // 500)
    centers = _normalise(rng.standard_normal((n_topics, D), dtype=np.float32))
    weights = rng.lognormal(0.0, 1.0, n_topics)
    topic = rng.choice(n_topics, n, p=weights / weights.sum())
    x = np.empty((n, D), np.float32)
    for s in range(0, n, 100_000):  # chunks: no float64 (n, D) temporaries
        e = min(n, s + 100_000)
        x[s:e] = centers[topic[s:e]] + rng.standard_normal((e - s, D), dtype=np.float32) * np.float32(1.33 / np.sqrt(D))
        _normalise(x[s:e])
    group = np.full(n, -1, np.int64)
    n_bases = int(0.02 * n)
    perm = rng.permutation(n)
    bases, pos = perm[:n_bases], n_bases
    for g, b in enumerate(bases):
        copies = perm[pos:pos + rng.integers(1, 5)]
        pos += len(copies)
        tau = rng.uniform(0.05, 0.2, size=(len(copies), 1)).astype(np.float32)
        x[copies] = _normalise(x[b] + rng.standard_normal((len(copies), D), dtype=np.float32) * tau / np.float32(np.sqrt(D)))
        group[b] = g
        group[copies] = g
    return x, group


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.unique(lo.astype(np.int64) * n + hi)


def planted_pairs(group: np.ndarray, n: int) -> np.ndarray:
    """Keys of every pair inside a planted group."""
    rows = np.flatnonzero(group >= 0)
    order = rows[np.argsort(group[rows], kind="stable")]
    g = group[order]
    a, b = [], []
    for d in range(1, 5):  # groups have at most 5 members
        same = g[:-d] == g[d:]
        a.append(order[:-d][same])
        b.append(order[d:][same])
    return _pair_keys(np.concatenate(a), np.concatenate(b), n)


def brute_force_pairs(x: np.ndarray, threshold: float, key_base: int, block: int = 1024) -> np.ndarray:
    """Keys (lo * key_base + hi) of all pairs with cos >= threshold, exact, by blocked matrix products."""
    n, a, b = len(x), [], []
    for i in range(0, n, block):
        sims = x[i:i + block] @ x[i:].T
        r, c = np.nonzero(sims >= threshold)
        c = c + i
        r = r + i
        keep = r < c
        a.append(r[keep])
        b.append(c[keep])
    return _pair_keys(np.concatenate(a), np.concatenate(b), key_base)


def _pr(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = len(np.intersect1d(found, truth, assume_unique=True))
    return (hit / len(found) if len(found) else 1.0), (hit / len(truth) if len(truth) else 1.0)


def group_pairs(roots: np.ndarray, n: int) -> np.ndarray:
    """Keys of every pair that ends up in one dedup group (connected component)."""
    size = np.bincount(roots, minlength=n)
    rows = np.flatnonzero(size[roots] >= 2)
    order = rows[np.argsort(roots[rows], kind="stable")]
    r = roots[order]
    a, b = [], []
    for d in range(1, int(size.max())):
        same = r[:-d] == r[d:]
        if not same.any():
            break
        a.append(order[:-d][same])
        b.append(order[d:][same])
    if not a:
        return np.empty(0, np.int64)
    return _pair_keys(np.concatenate(a), np.concatenate(b), n)


def run_one(n: int) -> dict:
    """Generate n points, dedup them two ways, score both; runs inside its own process."""
    from curation.dedup import DedupParams, semantic_edges
    from curation.dedup.unionfind import union_find

    t = time.perf_counter()
    x, group = make_data(n)
    gen_s = time.perf_counter() - t
    truth_planted = planted_pairs(group, n)
    sub = min(n, SUBSET)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    out = {"n": n, "dim": D, "eps": EPS, "generate_s": round(gen_s, 2), "planted_pairs": int(len(truth_planted)),
           "rss_after_data_mib": round(rss_data)}
    found_by = {}
    # ours first, so its peak RSS is its own (ru_maxrss only grows); brute force last
    for name, spill in (("ours", 2), ("plain_semdedup", 1)):
        params = DedupParams(semantic_eps=EPS, max_clusters_per_point=spill)
        t = time.perf_counter()
        edges, stats = semantic_edges(x, params)
        roots = union_find(n, edges.a, edges.b)
        wall = time.perf_counter() - t
        found = _pair_keys(edges.a, edges.b, n)
        found_by[name] = found[(found // n < sub) & (found % n < sub)]
        grouped = group_pairs(roots, n)
        p_edge, r_edge = _pr(found, truth_planted)
        p_grp, r_grp = _pr(grouped, truth_planted)
        out[name] = {
            "wall_s": round(wall, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "k": stats["k"], "largest_cluster": stats["largest_cluster"], "secondary_members": stats["secondary_members"],
            "pairs_found": int(len(found)),
            "planted_pair_precision": round(p_edge, 4), "planted_pair_recall": round(r_edge, 4),
            "planted_group_precision": round(p_grp, 4), "planted_group_recall": round(r_grp, 4),
        }
        print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    t = time.perf_counter()
    truth_sub = brute_force_pairs(x[:sub], 1.0 - EPS, key_base=n)
    out.update({f"brute_force_{sub}_s": round(time.perf_counter() - t, 2), "brute_force_subset": sub,
                "subset_true_pairs": int(len(truth_sub))})
    for name, found in found_by.items():
        p_sub, r_sub = _pr(found, truth_sub)
        out[name].update(bruteforce_subset_precision=round(p_sub, 4), bruteforce_subset_recall=round(r_sub, 4))
    return out


BEFORE_COMMIT = "a76774e"  # the perceptual index before chunk plans sized to N (4 x 16-bit chunks, 14 passes)
BEFORE_MAX_N = 200_000  # above this the old index is not run (hours at 1M); its cost is estimated from its candidates


def _before_module():
    """curation/dedup/perceptual.py as of BEFORE_COMMIT, imported from git (the baseline, side by side)."""
    import importlib.util
    import tempfile

    src = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:curation/dedup/perceptual.py"], cwd=Path(__file__).resolve().parents[1],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "perceptual_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("perceptual_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _before_candidates(h: np.ndarray, max_hamming: int, symmetric: bool = True, chunks: int = 4) -> int:
    """Exact count of the candidates the old index examines: 7 symmetry passes x 2 positions x 4 chunks x masks,
    each probe returning its whole bucket (its self-join pass keeps half)."""
    from curation.dedup.perceptual import SYMMETRIES, _flip_masks
    from curation.hashes import d4_variants

    uniq = np.unique(h, axis=0)
    bits = 64 // chunks
    masks = _flip_masks(bits, max_hamming // chunks)
    total = 0
    for p in range(h.shape[1] - (h.shape[1] + 1) // 2 + 1):
        var = d4_variants(uniq[:, p]) if symmetric else uniq[:, p, None]
        for c in range(chunks):
            key = lambda x: ((x >> np.uint64(bits * c)) & np.uint64((1 << bits) - 1)).astype(np.int64)
            counts = np.bincount(key(uniq[:, p]), minlength=1 << bits)
            for g in (SYMMETRIES if symmetric else (0,)):
                q = key(var[:, g])
                n_g = sum(int(counts[q ^ m].sum()) for m in masks)
                total += (n_g - len(q)) // 2 if g == 0 else n_g  # self-join: pairs i < j only
    return total


def _faiss_position0(h: np.ndarray, max_hamming: int) -> dict:
    """faiss IndexBinaryMultiHash (4 x 16 bits, 1 flip: exact for t <= 7) range search, 1 thread, keyframe position 0
    only (half the candidate work), over the same stacked table of the 7 symmetries."""
    import faiss

    from curation.dedup.perceptual import SYMMETRIES
    from curation.hashes import d4_variants

    faiss.omp_set_num_threads(1)
    col = np.ascontiguousarray(np.unique(h, axis=0)[:, 0])
    table = np.ascontiguousarray(d4_variants(col)[:, list(SYMMETRIES)].reshape(-1))
    t, c = time.perf_counter(), time.process_time()
    idx = faiss.IndexBinaryMultiHash(64, 4, 16)
    idx.nflip = 1
    idx.add(table.view(np.uint8).reshape(-1, 8))
    lims, _, _ = idx.range_search(col.view(np.uint8).reshape(-1, 8), max_hamming + 1)  # faiss: distance < radius
    return {"faiss_multihash_position0_wall_s": round(time.perf_counter() - t, 2),
            "faiss_multihash_position0_cpu_s": round(time.process_time() - c, 2), "faiss_position0_hits": int(lims[-1])}


def run_one_phash(n: int, max_hamming: int = 6, sub: int = 2_000, with_faiss: bool = False) -> dict:
    """Perceptual dedup on n clips x 3 random keyframe hashes, 1 % with a planted copy (0-6 flipped bits each),
    1/8 of the copies turned (a random one of the 8 square symmetries). Side by side: ours (chunk plan sized to
    N, all 8 symmetries), the index before it (BEFORE_COMMIT: run up to BEFORE_MAX_N, else estimated from its
    exact candidate count at its measured CPU time per candidate), ours identity-only (misses turned copies)."""
    from curation.dedup.perceptual import perceptual_edges
    from curation.hashes import d4_variants

    rng = np.random.default_rng(1)
    h = rng.integers(0, 2**63, size=(n, 3), dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(n, 3)).astype(np.uint64)
    src = rng.choice(n, n // 100, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), n // 100, replace=False)
    flips = np.zeros((len(dst), 3), np.uint64)
    for j in range(3):
        for r in range(len(dst)):
            for bit in rng.choice(64, rng.integers(0, max_hamming + 1), replace=False):
                flips[r, j] |= np.uint64(1) << np.uint64(bit)
    h[dst] = h[src] ^ flips
    turned = rng.random(len(dst)) < 1 / 8
    g = rng.integers(1, 8, int(turned.sum()))
    h[dst[turned]] = d4_variants(h[dst[turned]])[np.arange(len(g)), :, g]
    planted = _pair_keys(src, dst, n)
    # ours first, so its peak RSS is its own (ru_maxrss only grows)
    stats = {}
    t, c = time.perf_counter(), time.process_time()
    edges = perceptual_edges(np.arange(n), h, max_hamming, None, symmetric=True, stats=stats)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found = _pair_keys(edges.a, edges.b, n)
    p, r = _pr(found, planted)
    plain_stats = {}
    t, c = time.perf_counter(), time.process_time()
    plain = perceptual_edges(np.arange(n), h, max_hamming, None, symmetric=False, stats=plain_stats)
    wall_plain, cpu_plain = time.perf_counter() - t, time.process_time() - c
    p_plain, r_plain = _pr(_pair_keys(plain.a, plain.b, n), planted)
    out = {"n": n, "max_hamming": max_hamming, "plan": stats["plan"], "partitions": stats["partitions"],
           "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "candidates": stats["candidates_examined"],
           "peak_rss_mib": round(rss), "pairs_found": int(len(found)), "planted_precision": round(p, 4),
           "planted_recall": round(r, 4), "identity_only_wall_s": round(wall_plain, 2),
           "identity_only_cpu_s": round(cpu_plain, 2), "identity_only_candidates": plain_stats["candidates_examined"],
           "identity_only_planted_recall": round(r_plain, 4), "identity_only_planted_precision": round(p_plain, 4)}
    print(json.dumps(out), file=sys.stderr, flush=True)
    out["before_candidates"] = _before_candidates(h, max_hamming)
    if n <= BEFORE_MAX_N:
        before = _before_module()
        t, c = time.perf_counter(), time.process_time()
        old = before.perceptual_edges(np.arange(n), h, max_hamming, 4, symmetric=True)
        out.update(before_wall_s=round(time.perf_counter() - t, 2), before_cpu_s=round(time.process_time() - c, 2))
        old_found = _pair_keys(old.a, old.b, n)
        out.update(before_same_pairs=bool(np.array_equal(old_found, found)),
                   before_planted_recall=round(_pr(old_found, planted)[1], 4))
    if with_faiss:
        out.update(_faiss_position0(h, max_hamming))
    # brute force on a subset (a quarter planted sources, a quarter their copies, half other rows, so it holds
    # true pairs): every pair's median Hamming distance over aligned keyframes, smallest over the 8 symmetries
    t = time.perf_counter()
    idx = np.unique(np.concatenate([src[:sub // 4], dst[:sub // 4], np.arange(sub // 2)]))
    hs, a, b = h[idx], [], []
    vs = d4_variants(hs)  # (sub, 3, 8)
    for i in range(0, len(hs), 64):
        d = np.median(np.bitwise_count(vs[i:i + 64, None, :, :] ^ hs[None, :, :, None]), axis=2).min(axis=-1)
        d = np.minimum(d, np.median(np.bitwise_count(hs[i:i + 64, None, :, None] ^ vs[None, :, :, :]), axis=2).min(axis=-1))
        ri, ci = np.nonzero(d <= max_hamming)
        keep = ri + i < ci
        a.append(ri[keep] + i)
        b.append(ci[keep])
    truth = _pair_keys(idx[np.concatenate(a)], idx[np.concatenate(b)], n)
    in_sub = found[np.isin(found // n, idx) & np.isin(found % n, idx)]
    ps, rs = _pr(in_sub, truth)
    out.update({f"brute_force_{len(idx)}_s": round(time.perf_counter() - t, 2), "bruteforce_subset_precision": round(ps, 4),
                "bruteforce_subset_recall": round(rs, 4), "subset_true_pairs": int(len(truth))})
    return out


def _phash_table(rows: list[dict]) -> str:
    """Ours vs the index before, side by side; the old CPU time above BEFORE_MAX_N is estimated (est) from its exact
    candidate count at its CPU time per candidate measured at the largest size it ran."""
    timed = [r for r in rows if "before_cpu_s" in r]
    per_cand = timed[-1]["before_cpu_s"] / timed[-1]["before_candidates"] if timed else None
    head = (f"{'N':>9} {'plan (bits,r)':>28} {'ours wall':>9} {'ours CPU':>8} {'ours cand':>12} {'before CPU':>11} "
            f"{'before cand':>13} {'CPU ratio':>9} {'cand ratio':>10} {'MiB':>6} {'recall':>6} {'id-only R':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        est = "before_cpu_s" not in r
        before = r.get("before_cpu_s", per_cand * r["before_candidates"] if per_cand else float("nan"))
        plan = ",".join(f"{b}/{k}" for b, k in r["plan"])
        lines.append(f"{r['n']:>9} {plan:>28} {r['wall_s']:>9.1f} {r['cpu_s']:>8.1f} {r['candidates']:>12,} "
                     f"{before:>10.1f}{'e' if est else ' '} {r['before_candidates']:>13,} {before / r['cpu_s']:>8.1f}x "
                     f"{r['before_candidates'] / r['candidates']:>9.1f}x {r['peak_rss_mib']:>6} {r['planted_recall']:>6.3f} "
                     f"{r['identity_only_planted_recall']:>9.3f}")
    return "\n".join(lines) + "\n(e = estimated: old index not run at this size)"


def make_segment_data(n: int, samples_per_clip: int = 10, seed: int = 2):
    """(h (m, 1 + R) uint64 hashes, vid (m,), t (m,), src, dst, edited): n clips x samples_per_clip random sample
    hashes (2/s), each with R random region hashes; planted copies as described in run_one_segments."""
    from curation.hashes import REGION_FRACS, d4_variants

    rng = np.random.default_rng(seed)
    m, r = n * samples_per_clip, len(REGION_FRACS)
    h = (rng.integers(0, 2**63, size=(m, 1 + r), dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63))
    vid = np.repeat(np.arange(n), samples_per_clip)
    t = np.tile(np.arange(samples_per_clip) * 0.5, n)
    src = rng.choice(n, n // 50, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), n // 50, replace=False)
    edited = np.zeros(len(src), bool)
    edited[len(src) // 2:] = True
    for s_, d_, e in zip(src, dst, edited):
        rows_s, rows_d = slice(s_ * samples_per_clip, (s_ + 1) * samples_per_clip), slice(d_ * samples_per_clip, (d_ + 1) * samples_per_clip)
        hs = h[rows_s].copy()
        if e:  # only one region survives the edit: region i of the source is region j of the copy
            i, j = rng.integers(0, 1 + r, 2)
            if i == j == 0:
                i = 1
            hs[:, j] = hs[:, i]
            keep = hs[:, j].copy()
            hs = h[rows_d].copy()
            hs[:, j] = keep
        for k in range(len(hs)):
            for bit in rng.choice(63, rng.integers(0, 5), replace=False):
                hs[k] ^= np.uint64(1) << np.uint64(bit)
        if rng.random() < 1 / 8:
            hs = d4_variants(hs)[:, :, rng.integers(1, 8)]
        h[rows_d] = hs
        t[rows_d] += 0.2
    return h, vid, t, src, dst, edited


def segment_samples_table(h: np.ndarray, vid: np.ndarray, t: np.ndarray):
    """The SAMPLES_SCHEMA table of make_segment_data's arrays, built from numpy buffers (no per-sample Python
    objects: at 1M clips x 10 samples those lists alone would take several GB, which is the harness, not the matcher)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curation.dedup.segments import SAMPLES_SCHEMA

    names = pa.array([f"v{v:07d}" for v in range(int(vid.max()) + 1)], pa.string())
    video_id = pc.take(names, pa.array(vid.astype(np.int32)))
    r = h.shape[1] - 1
    regions = pa.ListArray.from_arrays(pa.array(np.arange(0, len(h) * r + 1, r, dtype=np.int32)),
                                       pa.array(np.ascontiguousarray(h[:, 1:]).ravel(), pa.uint64()))
    return pa.table([video_id, pa.array(t, pa.float64()), pa.array(h[:, 0], pa.uint64()), regions], schema=SAMPLES_SCHEMA)


def run_one_segments(n: int, samples_per_clip: int = 10, seed_bits: int = 32, variant: str = "after") -> dict:
    """Segment matching on n clips x samples_per_clip random sample hashes (2/s), each with 5 random region hashes.
    Planted: 1 % are copies of another clip (shifted by 0.2 s, 0-4 bits flipped per sample, 1/8 turned) and 1 % are
    edited copies (the whole-frame hashes replaced, one region of the source -- a random centred crop -- found in a
    random region of the copy, 0-4 bits flipped). variant "before": today's matcher before region hashes (whole
    frames, time shift only); "after": the default (region hashes, speed 0.8-1.25x). Times candidate generation
    (seed_pairs) and the whole match. peak_rss_mib is the process peak (data included); matcher_peak_mib is the
    matcher's own rise above the RSS it started from (sampled every 20 ms)."""
    from curation.dedup import DedupParams
    from curation.dedup.segments import seed_pairs, segment_matches

    h, vid, t, src, dst, edited = make_segment_data(n, samples_per_clip)
    params = DedupParams(segment_seed_bits=seed_bits) if variant == "after" else \
        DedupParams(segment_seed_bits=seed_bits, kinds=("segment",), segment_speed_range=(1.0, 1.0))
    order = np.lexsort((t, vid))
    t0, c0 = time.perf_counter(), time.process_time()
    seeds = seed_pairs(h[order, :1], vid[order], seed_bits, params.segment_max_df, 8,
                       np.array([[params.segment_max_hamming]]))  # whole frames only, as the matcher seeds them
    seed_s, seed_cpu = time.perf_counter() - t0, time.process_time() - c0
    table = segment_samples_table(h, vid, t)
    del h, vid, t, order
    sampler = _RssSampler()
    t0, c0 = time.perf_counter(), time.process_time()
    with sampler:
        matches = segment_matches(table, params)
    match_s, match_cpu = time.perf_counter() - t0, time.process_time() - c0
    found = {(int(a[1:]), int(b[1:])) for a, b in zip(matches.column("video_a").to_pylist(), matches.column("video_b").to_pylist())}
    planted = {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist())}
    planted_edited = {(min(a, b), max(a, b)) for a, b, e in zip(src.tolist(), dst.tolist(), edited) if e}
    tp = len(found & planted)
    return {"variant": variant, "n_clips": n, "samples": n * samples_per_clip, "seed_bits": seed_bits,
            "whole_frame_seed_pairs": len(seeds),
            "whole_frame_candidate_generation_s": round(seed_s, 2), "whole_frame_candidate_generation_cpu_s": round(seed_cpu, 2),
            "segment_matches_s": round(match_s, 2), "segment_matches_cpu_s": round(match_cpu, 2), "planted": len(planted),
            "found": len(found), "precision": round(tp / max(1, len(found)), 4), "recall": round(tp / max(1, len(planted)), 4),
            "recall_plain_copies": round(len(found & (planted - planted_edited)) / max(1, len(planted - planted_edited)), 4),
            "recall_edited_copies": round(len(found & planted_edited) / max(1, len(planted_edited)), 4),
            "rss_before_match_mib": round(sampler.start_mib), "matcher_peak_mib": round(sampler.peak_mib - sampler.start_mib),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


class _RssSampler:
    """Peak resident memory (MiB) of this process while the block runs, sampled from /proc every 20 ms by a thread."""

    def __enter__(self):
        import threading

        self.start_mib = self.peak_mib = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak_mib = max(self.peak_mib, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss())

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _segment_table(segments: dict) -> str:
    """Segment matching, the old matcher (before) and ours (after) side by side per clip count."""
    head = f"{'N clips':>9} {'matcher':>7} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'match MiB':>9} {'recall':>7} {'plain R':>8} {'edited R':>9} {'precision':>9}"
    lines = [head, "-" * len(head)]
    for n in sorted(segments, key=int):
        for variant in ("before", "after"):
            r = segments[n].get(variant)
            if r:
                lines.append(f"{r['n_clips']:>9} {variant:>7} {r['segment_matches_s']:>8.1f} {r['segment_matches_cpu_s']:>7.1f} "
                             f"{r['peak_rss_mib']:>9} {r.get('matcher_peak_mib', float('nan')):>9} {r['recall']:>7.3f} {r['recall_plain_copies']:>8.3f} "
                             f"{r['recall_edited_copies']:>9.3f} {r['precision']:>9.3f}")
    return "\n".join(lines)


def _table(rows: list[dict]) -> str:
    head = f"{'N':>9} {'method':>15} {'wall s':>8} {'peak MiB':>9} {'k':>6} {'pairs':>8} {'planted P':>9} {'planted R':>9} {'grp R':>7} {'BF50k P':>8} {'BF50k R':>8} {'BF s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        bf_s = r["brute_force_%d_s" % r["brute_force_subset"]]
        for name in ("ours", "plain_semdedup"):
            m = r[name]
            lines.append(
                f"{r['n']:>9} {name:>15} {m['wall_s']:>8.1f} {m['peak_rss_mib']:>9} {m['k']:>6} {m['pairs_found']:>8} "
                f"{m['planted_pair_precision']:>9.4f} {m['planted_pair_recall']:>9.4f} {m['planted_group_recall']:>7.4f} "
                f"{m['bruteforce_subset_precision']:>8.4f} {m['bruteforce_subset_recall']:>8.4f} {bf_s:>7.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--phash-sizes", default="", help="also bench perceptual dedup at these sizes, e.g. 100000,1000000")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    ap.add_argument("--one-phash", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--phash-faiss", action="store_true", help="also time faiss IndexBinaryMultiHash (position 0, 1 thread)")
    ap.add_argument("--segment-sizes", default="", help="also bench segment matching (re-cut copies) at these clip counts")
    ap.add_argument("--one-segments", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--segment-variant", default="after", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    if args.one_phash:
        print(json.dumps(run_one_phash(args.one_phash, with_faiss=args.phash_faiss)))
        return 0
    if args.one_segments:
        print(json.dumps(run_one_segments(args.one_segments, variant=args.segment_variant)))
        return 0
    rows = []
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    for n in [int(s) for s in args.phash_sizes.split(",") if s]:
        proc = subprocess.run([sys.executable, "-m", "bench.dedup_bench", "--one-phash", str(n)]
                              + (["--phash-faiss"] if args.phash_faiss and n <= BEFORE_MAX_N else []), cwd=repo, env=env,
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode == 0:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            previous.setdefault("perceptual", {})[str(n)] = row
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(previous, indent=1))
            print(json.dumps(row), flush=True)
    if args.phash_sizes:
        rows_ph = [r for r in previous.get("perceptual", {}).values() if "plan" in r]  # rows of this bench version
        print(_phash_table(sorted(rows_ph, key=lambda r: r["n"])), flush=True)
    for n in [int(s) for s in args.segment_sizes.split(",") if s]:
        for variant in ("before", "after"):  # side by side: today's matcher before region hashes, and ours
            proc = subprocess.run([sys.executable, "-m", "bench.dedup_bench", "--one-segments", str(n), "--segment-variant", variant],
                                  cwd=repo, env=env, stdout=subprocess.PIPE, text=True)
            if proc.returncode == 0:
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                previous.setdefault("segments", {}).setdefault(str(n), {})[variant] = row
                out_path.parent.mkdir(parents=True, exist_ok=True)
                out_path.write_text(json.dumps(previous, indent=1))
                print(json.dumps(row), flush=True)
            else:
                print(f"segments {n} {variant}: child failed with exit code {proc.returncode}", file=sys.stderr)
    if args.segment_sizes:
        print(_segment_table(previous.get("segments", {})), flush=True)
    for n in [int(s) for s in args.sizes.split(",") if s]:
        proc = subprocess.run([sys.executable, "-m", "bench.dedup_bench", "--one", str(n)], cwd=repo, env=env,
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"size {n}: child failed with exit code {proc.returncode}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        previous.update({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared)",
                         "python": platform.python_version(), "sizes": rows})
        Path(args.out).write_text(json.dumps(previous, indent=1))  # after every size: partial results survive
        print(_table(rows), flush=True)
    return 0 if rows or args.phash_sizes or args.segment_sizes else 1


if __name__ == "__main__":
    sys.exit(main())
