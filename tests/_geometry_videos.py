"""Tiny videos with display metadata, written with PyAV: rotated (display matrix), non-square pixels (SAR), VFR with B-frames.

Each holds a picture whose upright / display-aspect appearance is known, so a
test can check the reader's output against what a viewer would show.
"""
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

QUADRANT_COLOURS = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30]], np.uint8)  # TL TR BL BR


def quadrants(height: int, width: int) -> np.ndarray:
    """An upright test card: four flat colours, top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    img = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2], img[:h2, w2:] = QUADRANT_COLOURS[0], QUADRANT_COLOURS[1]
    img[h2:, :w2], img[h2:, w2:] = QUADRANT_COLOURS[2], QUADRANT_COLOURS[3]
    return img


def disk(height: int, width: int, radius: int) -> np.ndarray:
    """A white disk on black, centred: round only when shown at the right aspect."""
    img = np.zeros((height, width, 3), np.uint8)
    cv2.circle(img, (width // 2, height // 2), radius, (255, 255, 255), thickness=-1)
    return img


def _write(path: Path, stored: np.ndarray, n: int, rate: int = 10, rotation: int | None = None,
           sar: Fraction | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = stored.shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1"}
        if rotation is not None:
            s.set_display_rotation(rotation)
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar  # x264 writes it to the VUI, the muxer to 'pasp'
        for _ in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_rotated(path: Path, rotation: int, upright: np.ndarray, n: int = 3) -> Path:
    """Store `upright` turned as a camera would, with display-matrix `rotation` (degrees, counter-clockwise) that turns it back."""
    stored = np.ascontiguousarray(np.rot90(upright, k=-(rotation // 90)))  # the viewer rotates it CCW by `rotation`
    return _write(path, stored, n, rotation=rotation)


def write_non_square(path: Path, display: np.ndarray, stored_width: int, sar: Fraction, n: int = 3) -> Path:
    """Store `display` squeezed to `stored_width` pixels with sample aspect ratio `sar` (display width = stored x SAR)."""
    stored = cv2.resize(display, (stored_width, display.shape[0]), interpolation=cv2.INTER_AREA)
    return _write(path, stored, n, sar=sar)


def write_vfr_reordered(path: Path, n: int = 60, width: int = 64, height: int = 48, keyint: int = 8) -> Path:
    """Variable frame rate (gaps of 20, 40, 120 ms) with B-frames and a keyframe every `keyint` frames; each frame differs."""
    path = Path(path)
    gaps = [20, 40, 120]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(height, width + n, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1", "bf": "2", "g": str(keyint), "keyint_min": str(keyint),
                     "sc_threshold": "0"}
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i:i + width]), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += gaps[i % 3]
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
