"""A generated copy-detection set from the shared videos: each source plus re-published copies of it.

Copies: re-encoded at a low bitrate, at half the frame rate, start shifted by
0.3 s, re-cut (another start and end), horizontally mirrored, letterboxed,
grayscale, and re-muxed with rotation side data (90/180/270: the copy shows
sideways, as a re-upload with a wrong rotation flag does). Sources are cut to
their first seconds at 320 px wide so a scan stays fast; the truth is "same
source" for every pair of files.
"""
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from curation.decode import DecodePlan, decode
from curation.hashes import phash

SOURCES = ("bikes.mp4", "testvideo.mp4", "cockatoo.mp4", "bigbuckbunny.mp4", "pedestrians.avi", "carphone_pristine.mp4",
           "realshort.mp4", "fades.mp4")
COPIES = ("reencode", "halffps", "shift", "recut", "mirror", "letterbox", "gray", "rot90", "rot180", "rot270")
WIDTH = 320
MAX_S = 8.0


def read_frames(path: Path, start_s: float = 0.0, max_s: float = MAX_S) -> tuple[list[np.ndarray], float]:
    """RGB frames of [start_s, start_s + max_s) at WIDTH px wide (even height), and the frame rate."""
    frames = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate or 25)
        for f in c.decode(s):
            t = float(f.time or 0.0)
            if t < start_s:
                continue
            if t >= start_s + max_s:
                break
            h = max(2, round(f.height * WIDTH / f.width / 2) * 2)
            frames.append(f.to_ndarray(format="rgb24", width=WIDTH, height=h))
    return frames, rate


def write(path: Path, frames: list[np.ndarray], rate: float, crf: int = 23, rotation: int | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1", "crf": str(crf)}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for fr in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _letterbox(fr: np.ndarray) -> np.ndarray:
    h, w = fr.shape[:2]
    pad = max(16, (w * 3 // 4 - h) // 2 // 2 * 2)
    return cv2.copyMakeBorder(fr, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def make_copy(how: str, frames: list[np.ndarray], rate: float, out: Path) -> Path:
    if how == "reencode":
        return write(out, frames, rate, crf=38)
    if how == "halffps":
        return write(out, frames[::2], rate / 2)
    if how == "shift":
        return write(out, frames[round(0.3 * rate):], rate)
    if how == "recut":
        n = len(frames)  # another start and end: cut points that fall inside the source's shots
        return write(out, frames[min(round(1.7 * rate), n // 4):n - min(round(1.1 * rate), n // 6)], rate)
    if how == "mirror":
        return write(out, [f[:, ::-1] for f in frames], rate)
    if how == "letterbox":
        return write(out, [_letterbox(f) for f in frames], rate)
    if how == "gray":
        return write(out, [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in frames], rate)
    if how.startswith("rot"):
        return write(out, frames, rate, rotation=int(how[3:]))
    raise ValueError(how)


def build(videos: Path, out: Path, sources=SOURCES, copies=COPIES) -> dict[str, str]:
    """Write sources and copies under `out`; return {file name: source name}."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name in sources:
        frames, rate = read_frames(videos / name)
        stem = Path(name).stem
        truth[write(out / f"{stem}.mp4", frames, rate).name] = stem
        for how in copies:
            truth[make_copy(how, frames, rate, out / f"{stem}__{how}.mp4").name] = stem
    return truth


def sample_hashes(path: Path) -> tuple[list[float], list[int]]:
    """(t, phash) of every analysis sample, decoded and hashed as curation.scan does it."""
    ts, hs = [], []

    def on_sample(s) -> None:
        ts.append(s.t)
        hs.append(phash(s.rgb))

    with open(path, "rb") as f:
        decode(f, DecodePlan(detector_width=0), None, on_sample)
    return ts, hs


def pair_scores(found: set[frozenset], truth: dict[str, str]) -> dict:
    """Precision / recall of found video pairs against "same source", and the false pairs."""
    names = sorted(truth)
    true_pairs = {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:] if truth[a] == truth[b]}
    tp = len(found & true_pairs)
    return {"true_pairs": len(true_pairs), "found": len(found), "tp": tp,
            "precision": tp / len(found) if found else 1.0, "recall": tp / len(true_pairs) if true_pairs else 1.0,
            "false": sorted(tuple(sorted(p)) for p in found - true_pairs),
            "missed": sorted(tuple(sorted(p)) for p in true_pairs - found)}
