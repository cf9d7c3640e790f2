"""Bar variants of a video: letterbox, pillarbox and windowbox, in black and in a colour, with the true content box.

`write_variants(src, out)` decodes `src` with PyAV (sample aspect ratio applied,
so frames are at display geometry), scales it to at most WIDTH px wide, keeps its
first MAX_S seconds and writes, as H.264 (tests/_copies.write, square pixels):

    <stem>__plain.mp4               the scaled picture, no bars (the reference the variants are compared with)
    <stem>__letterbox_black.mp4     bars above and below
    <stem>__pillarbox_black.mp4     bars left and right
    <stem>__windowbox_black.mp4     bars on all four sides
    ... and the same three with a coloured bar (COLOURS["colour"]): __letterbox_colour.mp4, ...

It returns {file name: truth}: the source and the time of its first frame (the
variant's 0 s), the bars and colour, the frame size, the number of frames and frame
rate, and `content_box`: {x, y, w, h} in display px of
the picture inside the frame (the whole frame for plain). Bars are BAR_FRAC of the
picture's side on each side, rounded to an even number of pixels, so every
edge of the box sits on a chroma sample and the encoder cannot smear it.
"""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from _copies import write

KINDS = ("letterbox", "pillarbox", "windowbox")
COLOURS = {"black": (0, 0, 0), "colour": (40, 70, 160)}  # RGB; the colour is a mid blue (luma ~71)
WIDTH = 480  # px: the variants' picture is at most this wide (keeps a scan of all of them quick)
MAX_S = 8.0  # s: the first seconds of the source
BAR_FRAC = 0.125  # each bar's thickness as a share of the picture's side it borders


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def read_display_frames(path: Path, max_s: float = MAX_S, width: int = WIDTH) -> tuple[list[np.ndarray], float, float]:
    """RGB frames of the first max_s seconds at display aspect (SAR applied), at most `width` px wide, even sides;
    the frame rate; the first frame's time (s)."""
    frames = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate or 25)
        sar = s.sample_aspect_ratio or s.codec_context.sample_aspect_ratio
        sar = float(sar) if sar and sar.numerator > 0 else 1.0
        t0 = None
        for f in c.decode(s):
            t = float(f.time or 0.0)
            t0 = t if t0 is None else t0
            if t - t0 >= max_s - 0.5 / rate:  # max_s may be a clip's end: its next frame starts there
                break
            dw = f.width * sar
            w = _even(min(width, dw))
            h = _even(f.height * w / dw)
            frames.append(f.to_ndarray(format="rgb24", width=w, height=h))
    return frames, rate, t0 or 0.0


def bar_sizes(w: int, h: int, kind: str) -> tuple[int, int]:
    """(top/bottom bar, left/right bar) thickness in px for a w x h picture."""
    tb = _even(BAR_FRAC * h) if kind in ("letterbox", "windowbox") else 0
    lr = _even(BAR_FRAC * w) if kind in ("pillarbox", "windowbox") else 0
    return tb, lr


def pad(frame: np.ndarray, kind: str, rgb: tuple[int, int, int]) -> tuple[np.ndarray, dict]:
    """The frame inside bars of colour `rgb`, and its content box {x, y, w, h}."""
    h, w = frame.shape[:2]
    tb, lr = bar_sizes(w, h, kind)
    out = cv2.copyMakeBorder(frame, tb, tb, lr, lr, cv2.BORDER_CONSTANT, value=rgb)
    return out, {"x": lr, "y": tb, "w": w, "h": h}


def variant_names(stem: str) -> list[str]:
    return [f"{stem}__plain.mp4"] + [f"{stem}__{k}_{c}.mp4" for k in KINDS for c in COLOURS]


def write_variants(src: Path, out: Path, max_s: float = MAX_S, width: int = WIDTH, crf: int = 18) -> dict[str, dict]:
    """Write the plain copy and the six bar variants of `src` under `out`; return {file name: truth}."""
    out.mkdir(parents=True, exist_ok=True)
    frames, rate, t0 = read_display_frames(src, max_s, width)
    if not frames:
        raise ValueError(f"{src}: no frames decoded")
    h, w = frames[0].shape[:2]
    stem = Path(src).stem
    common = {"source": Path(src).name, "source_start_s": t0, "frames": len(frames), "fps": rate}
    write(out / f"{stem}__plain.mp4", frames, rate, crf=crf)
    truth = {f"{stem}__plain.mp4": {**common, "bars": None, "colour": None, "size": [w, h],
                                    "content_box": {"x": 0, "y": 0, "w": w, "h": h}}}
    for kind in KINDS:
        for colour, rgb in COLOURS.items():
            padded = [pad(f, kind, rgb)[0] for f in frames]
            name = f"{stem}__{kind}_{colour}.mp4"
            write(out / name, padded, rate, crf=crf)
            truth[name] = {**common, "bars": kind, "colour": colour, "size": [padded[0].shape[1], padded[0].shape[0]],
                           "content_box": pad(frames[0], kind, rgb)[1]}
    return truth
