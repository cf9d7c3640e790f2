"""64-bit DCT perceptual hash (pHash) of frames, and the keyframe choice the pipeline hashes.

The hash follows imagehash.phash: grey, resize to 32x32, 2-D DCT, keep the
top-left 8x8 low frequencies, one bit per coefficient set where it exceeds the
median. We take the median over the 63 AC coefficients (the DC term is the
mean brightness, far larger than the rest, and would only bias the median);
the DC bit itself is kept so the hash stays 64 bits.
"""
from collections.abc import Sequence

import cv2
import numpy as np

# Where in a clip its keyframes sit, as fractions of the clip length.
KEYFRAME_FRACTIONS: tuple[float, ...] = (0.1, 0.5, 0.9)
# Frames are resized to this short side (pixels) before hashing, as the pipeline does.
KEYFRAME_SHORT_SIDE = 256

_HASH_SIZE = 8  # 8x8 low-frequency block -> 64 bits
_DCT_SIZE = 32  # grey image size fed to the DCT
_BIT_WEIGHTS = np.array([1 << (63 - i) for i in range(64)], dtype=np.uint64)  # first coefficient = top bit


def phash(rgb_or_gray: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB (H, W, 3) or grey (H, W) uint8 image; fits uint64."""
    img = np.asarray(rgb_or_gray)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"phash expects an (H, W) or (H, W, 3) image, got shape {np.shape(rgb_or_gray)}")
    # INTER_AREA averages pixels (anti-aliasing), like PIL's ANTIALIAS in imagehash.
    small = cv2.resize(img.astype(np.float32), (_DCT_SIZE, _DCT_SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:_HASH_SIZE, :_HASH_SIZE].ravel()  # (64,), row-major, DC first
    median = np.median(low[1:])
    bits = low > median
    return int(np.sum(_BIT_WEIGHTS[bits], dtype=np.uint64))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return int((int(a) ^ int(b)).bit_count())


def keyframe_indices(start_frame: int, end_frame: int, fractions: Sequence[float] = KEYFRAME_FRACTIONS) -> list[int]:
    """Decoded-frame indices of a clip's keyframes: `fractions` of the way through [start, end)."""
    n = max(1, int(end_frame) - int(start_frame))
    return [int(start_frame) + min(n - 1, int(f * n)) for f in fractions]


def resize_short_side(frame: np.ndarray, short_side: int = KEYFRAME_SHORT_SIDE) -> np.ndarray:
    """Resize so the shorter side is `short_side` pixels, keeping the aspect ratio."""
    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interp)


def keyframe_phashes(frames: Sequence[np.ndarray], short_side: int = KEYFRAME_SHORT_SIDE) -> list[int]:
    """Phashes of a clip's keyframes (RGB uint8), each resized to `short_side` first, as the pipeline does."""
    return [phash(resize_short_side(f, short_side)) for f in frames]
