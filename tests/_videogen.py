"""Small synthetic videos for the reliability tests: textured pans with a hard cut, written with PyAV.

Each video is seeded, so its bytes (and so its ids) are reproducible and two
seeds never give the same content.
"""
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def texture(seed: int, h: int, w: int) -> np.ndarray:
    """Smooth random RGB texture (blurred noise: optical flow can track it)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    # a per-seed colour cast, so two shots differ in hue as well as in structure
    tint = rng.uniform(0.3, 1.0, size=3)
    return (img * tint).astype(np.uint8)


def frames(seed: int, width: int, height: int, n: int, cut_at: int | None) -> list[np.ndarray]:
    """n frames panning (1 px/frame) over one texture, switching to another texture at `cut_at`."""
    out = []
    for i in range(n):
        shot = 0 if cut_at is None or i < cut_at else 1
        tex = _cache(seed * 2 + shot, height, width + n)
        x = i
        out.append(np.ascontiguousarray(tex[:, x:x + width]))
    return out


_TEX: dict = {}


def _cache(seed: int, h: int, w: int) -> np.ndarray:
    key = (seed, h, w)
    if key not in _TEX:
        _TEX.clear()
        _TEX[key] = texture(seed, h, w)
    return _TEX[key]


def write_video(path: Path, seed: int, width: int = 160, height: int = 90, seconds: float = 2.0, fps: int = 25,
                cut: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p", options: dict | None = None,
                rotation: int | None = None, container_options: dict | None = None) -> Path:
    """Write a short video; `rotation` sets display-matrix rotation metadata (degrees);
    `container_options` go to the muxer (e.g. {"movflags": "faststart"})."""
    n = max(1, int(round(seconds * fps)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options=container_options or {}) as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = {"preset": "ultrafast", "threads": "1", **(options or {})} if codec == "libx264" else dict(options or {})
        if rotation is not None:
            s.set_display_rotation(rotation)
        for img in frames(seed, width, height, n, n // 2 if cut else None):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_vfr(path: Path, seed: int, width: int = 160, height: int = 90) -> Path:
    """Variable frame rate: frame gaps alternate between 20 ms, 40 ms and 120 ms (ms time base)."""
    path = Path(path)
    gaps = [20, 40, 120]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1", "bf": "0"}
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, img in enumerate(frames(seed, width, height, 45, 22)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += gaps[i % 3]
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_flat_yuv(path: Path, width: int, height: int, n: int, codec: str = "mpeg4") -> Path:
    """A few frames of a moving gradient built directly in YUV 4:2:0 (no colour conversion: cheap at 8K)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (np.arange(width, dtype=np.uint32) // 16).astype(np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            yuv = np.full((height * 3 // 2, width), 128, np.uint8)
            yuv[:height] = x + np.uint8(8 * i)
            for p in s.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_timebase(path: Path, seed: int, time_base: Fraction, step: int, rate: int, n: int = 50) -> Path:
    """Frames `step` ticks of `time_base` apart, declared at `rate` fps (time-base tricks, absurd frame rates)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = 160, 90, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1", "bf": "0"}
        s.codec_context.time_base = time_base
        for i, img in enumerate(frames(seed, 160, 90, n, n // 2)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i * step, time_base
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4 holding one AAC audio stream and no video."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=16000)
        for i in range(int(seconds * 16000 / 1024) + 1):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, i * 1024
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
