"""Perceptual hash: robust to re-encoding, resizing, small crops and colour shifts; far apart for different photos."""
import itertools

import cv2
import numpy as np
import pytest
from skimage import data

from curation.hashes import hamming, keyframe_indices, keyframe_phashes, phash, resize_short_side

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
    assert bin(h).count("1") == 32  # 31 AC bits above the median of 63, plus the DC bit


def test_hamming():
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64


@pytest.mark.parametrize("transform,max_bits", [(_jpeg, 8), (_half, 8), (_brighter, 8), (_colour_shift, 8), (_crop5, 12)])
def test_small_edits_keep_hashes_close(photos, transform, max_bits):
    dists = {name: hamming(phash(x), phash(transform(x))) for name, x in photos.items()}
    assert max(dists.values()) <= max_bits, dists


def test_different_photos_are_far_apart(photos):
    hashes = {name: phash(x) for name, x in photos.items()}
    dists = {(a, b): hamming(hashes[a], hashes[b]) for a, b in itertools.combinations(hashes, 2)}
    assert min(dists.values()) >= 20, min(dists.items(), key=lambda kv: kv[1])


def test_keyframes_and_resize():
    assert keyframe_indices(0, 100) == [10, 50, 90]
    assert keyframe_indices(30, 76) == [34, 53, 71]
    assert keyframe_indices(5, 6) == [5, 5, 5]  # a one-frame clip hashes its only frame
    frame = np.zeros((144, 176, 3), np.uint8)
    assert resize_short_side(frame).shape == (256, 313, 3)
    assert len(keyframe_phashes([frame, frame])) == 2
