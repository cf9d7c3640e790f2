"""Perceptual index plans and partitions: exact (equal to brute force) for every chunk plan and partition split."""
import numpy as np
import pytest

from curation.dedup.perceptual import chunk_plan, partition_pairs, partitions, perceptual_edges, unique_hash_lists
from curation.hashes import d4_variants

RNG = np.random.default_rng(7)


def _clips(n: int = 240, near: int = 60, max_flips: int = 9, identical: int = 0) -> np.ndarray:
    """Random (n, 3) hash lists, `near` copies with 0..max_flips bits flipped per keyframe (a third turned), and
    `identical` repeated lists (those pair with the first of their kind only: one node per distinct list)."""
    h = RNG.integers(0, 2**63, size=(n, 3), dtype=np.int64).astype(np.uint64) * np.uint64(2)
    src = RNG.choice(n, near, replace=False)
    copies = h[src].copy()
    turned = np.arange(near) % 3 == 0
    g = RNG.integers(1, 8, int(turned.sum()))
    copies[turned] = d4_variants(copies[turned])[np.arange(len(g)), :, g]
    for i in range(near):
        for j in range(3):
            for bit in RNG.choice(64, RNG.integers(0, max_flips + 1), replace=False):
                copies[i, j] ^= np.uint64(1) << np.uint64(bit)
    return np.concatenate([h, copies, h[:identical]])


def _truth(h: np.ndarray, t: int, symmetric: bool) -> set:
    if symmetric:
        d = np.median(np.bitwise_count(d4_variants(h)[:, None, :, :] ^ h[None, :, :, None]), axis=2).min(axis=-1)
    else:
        d = np.median(np.bitwise_count(h[:, None, :] ^ h[None, :, :]), axis=2)
    return {(a, b) for a, b in zip(*np.nonzero(np.triu((d <= t) | (d.T <= t), 1)))}


@pytest.mark.parametrize("t", [3, 6, 8])
@pytest.mark.parametrize("chunks", [None, 3, 4, 5, 8])
def test_every_plan_is_exact(t, chunks):
    h = _clips()
    plan = chunk_plan(len(h) * 7, t, chunks)
    assert sum(c.bits for c in plan) == 64 and sum(c.radius + 1 for c in plan) > t
    for symmetric in (True, False):
        e = perceptual_edges(np.arange(len(h)), h, t, chunks, symmetric=symmetric)
        assert set(zip(e.a.tolist(), e.b.tolist())) == _truth(h, t, symmetric)


def test_partitions_split_the_work_without_losing_pairs():
    h = _clips(identical=3)
    uniq, first, _, _ = unique_hash_lists(h)
    whole = perceptual_edges(np.arange(len(h)), h, 6)
    parts = partitions(len(uniq), 3, 6, splits=5)
    assert len(parts) == 5 * len({p.chunk for p in parts}) * 2  # 2 positions catch a median of 3
    found = set()
    for part in parts:
        a, b, _, _ = partition_pairs(uniq, part, 6)
        found |= {tuple(sorted(p)) for p in zip(first[a].tolist(), first[b].tolist())}
    identical = {(a, b) for a, b in zip(whole.a.tolist(), whole.b.tolist()) if (h[a] == h[b]).all()}
    assert found | identical == set(zip(whole.a.tolist(), whole.b.tolist()))


def test_plan_widens_chunks_as_n_grows():
    small, big = chunk_plan(10_000, 6), chunk_plan(10_000_000, 6)
    assert max(c.bits for c in big) > max(c.bits for c in small)


@pytest.mark.parametrize("chunks", [1, 2, 17])
def test_bad_chunk_count_fails_fast(chunks):
    with pytest.raises(ValueError, match="phash_index_chunks"):
        chunk_plan(1000, 6, chunks)


def test_flat_keyframes_never_vote():
    """Fades to black (FLAT_HASH keyframes) are no footage: clips whose keyframes are mostly flat pair with nothing,
    identical lists included; a flat keyframe next to matching textured ones does not stop a pair."""
    from curation.hashes import FLAT_HASH

    h = RNG.integers(0, 2**63, size=(4, 3), dtype=np.int64).astype(np.uint64) | np.uint64(1 << 63)
    flat = np.uint64(FLAT_HASH)
    lists = np.array([
        [flat, flat, flat],  # 0: a fade to black
        [flat, flat, flat],  # 1: another one, in another video
        [flat, flat, h[0, 2]],  # 2: a fade that ends on a picture
        [flat, flat, h[1, 2]],  # 3: another fade, ending on another picture
        [h[2, 0], h[2, 1], flat],  # 4: a shot that fades out
        [h[2, 0] ^ np.uint64(0b101), h[2, 1], flat],  # 5: its re-encoded copy (2 bits off)
    ], np.uint64)
    for symmetric in (True, False):
        e = perceptual_edges(np.arange(len(lists)), lists, 6, symmetric=symmetric)
        assert set(zip(e.a.tolist(), e.b.tolist())) == {(4, 5)}, symmetric
    _, _, same_a, same_b = unique_hash_lists(lists)
    assert len(same_a) == 0  # identical flat lists are not a pair
