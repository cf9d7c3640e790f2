"""Perceptual hash: robust to re-encoding, resizing, crops, colour shifts and letterboxing; exact under the 8 square symmetries; far apart for different photos."""
import itertools

import cv2
import numpy as np
import pytest
from skimage import data

from curation.hashes import D4, FLAT_HASH, d4_variants, hamming, phash

PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "moon"]


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: getattr(data, name)() for name in PHOTOS}


def _jpeg(x, quality=40):
    ok, buf = cv2.imencode(".jpg", x[..., ::-1] if x.ndim == 3 else x, [cv2.IMWRITE_JPEG_QUALITY, quality])
    y = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return y[..., ::-1] if y.ndim == 3 else y


def _half(x):
    return cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _crop5(x):  # 5 % of width and height removed, half on each side
    h, w = x.shape[:2]
    dy, dx = int(h * 0.025), int(w * 0.025)
    return x[dy:h - dy, dx:w - dx]


def _brighter(x):
    return np.clip(x.astype(np.int16) + 40, 0, 255).astype(np.uint8)


def _colour_shift(x):
    gain = [1.15, 0.95, 0.85] if x.ndim == 3 else 1.2
    return np.clip(x.astype(np.float32) * gain + 10, 0, 255).astype(np.uint8)


def test_phash_is_a_64_bit_int_and_deterministic(photos):
    h = phash(photos["astronaut"])
    assert isinstance(h, int) and 0 <= h < 2**64
    assert phash(photos["astronaut"].copy()) == h
    assert np.array([h], dtype=np.uint64)[0] == h  # fits the clips.phash list<uint64> column
    assert h >> 63 == 1  # the DC bit
    assert 20 <= bin(h).count("1") <= 44  # signs of 63 AC coefficients: about half positive


def test_hamming():
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64


@pytest.mark.parametrize("transform,max_bits", [(_jpeg, 8), (_half, 8), (_brighter, 8), (_colour_shift, 8), (_crop5, 12)])
def test_small_edits_keep_hashes_close(photos, transform, max_bits):
    dists = {name: hamming(phash(x), phash(transform(x))) for name, x in photos.items()}
    assert max(dists.values()) <= max_bits, dists


def _turn(x, transpose, lr, ud):
    y = np.swapaxes(x, 0, 1) if transpose else x
    y = y[:, ::-1] if lr else y
    return np.ascontiguousarray(y[::-1] if ud else y)


def test_every_rotation_and_mirror_is_a_bit_operation(photos):
    """d4_variants(phash(x))[g] == phash(g(x)) exactly: the index can compare turned copies without their pixels."""
    for name, x in photos.items():
        variants = d4_variants(np.array([phash(x)], np.uint64))[0]
        assert [int(v) for v in variants] == [phash(_turn(x, *g)) for g in D4], name
        assert len(set(variants.tolist())) == 8, name  # no photo is its own mirror image


def test_rotated_and_mirrored_copies_without_symmetry_are_far(photos):
    """Why the index needs the variants: a plain comparison puts a turned copy ~32 bits away."""
    x = photos["astronaut"]
    assert hamming(phash(x), phash(np.rot90(x))) >= 20
    assert hamming(phash(x), phash(x[:, ::-1])) >= 20


def test_different_photos_are_far_apart_under_every_symmetry(photos):
    hashes = {name: phash(x) for name, x in photos.items()}
    dists = {(a, b): min(hamming(int(v), hashes[b]) for v in d4_variants(np.array([hashes[a]], np.uint64))[0])
             for a, b in itertools.permutations(hashes, 2)}
    assert min(dists.values()) >= 16, min(dists.items(), key=lambda kv: kv[1])


def test_letterbox_and_pillarbox_bars_are_ignored(photos):
    for name in ("astronaut", "coffee", "chelsea"):
        x = photos[name]
        bars = cv2.copyMakeBorder(x, 60, 60, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        side = cv2.copyMakeBorder(x, 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=(5, 5, 5))
        assert hamming(phash(x), phash(bars)) <= 4, name
        assert hamming(phash(x), phash(side)) <= 4, name


def test_flat_frames_hash_to_zero():
    assert phash(np.zeros((64, 80, 3), np.uint8)) == FLAT_HASH
    assert phash(np.full((64, 80, 3), 128, np.uint8)) == FLAT_HASH
    assert phash(np.tile(np.arange(80, dtype=np.uint8) * 3, (64, 1))) != FLAT_HASH


def test_d4_names_say_what_each_symmetry_does():
    """The dashboard names a matched copy's symmetry with D4_NAMES: each name's picture operation gives that index."""
    from curation.hashes import D4_NAMES

    img = data.astronaut()
    ops = {"as is": img, "flipped upside down": img[::-1], "mirrored": img[:, ::-1], "turned 180°": img[::-1, ::-1],
           "transposed": img.transpose(1, 0, 2), "turned 90° counter-clockwise": np.rot90(img, 1),
           "turned 90° clockwise": np.rot90(img, -1), "anti-transposed": np.rot90(img, 1)[:, ::-1]}
    variants = d4_variants(np.uint64(phash(img)))
    for g, name in enumerate(D4_NAMES):
        assert int(variants[g]) == phash(np.ascontiguousarray(ops[name])), name
