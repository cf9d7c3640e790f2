"""The content box: the active picture inside uniform bars (letterbox, pillarbox, windowbox, a coloured border).

ffmpeg's `cropdetect` finds black bars by a luma limit; here a bar is any run of
lines, in from an edge of the frame, that are flat and of one level (black, grey or
a colour's luma), so coloured borders and a picture-in-picture on a plain
background are found too. Bars come in opposite pairs of one level (top and bottom,
left and right): a single flat side is a sky or a wall, not a bar, unless a pair on
the other axis has its level (an off-centre window). Bars are found on the decoded
luma plane at full resolution (lines are read with a stride along them, every line
across them), so the box is exact to a pixel or two at display geometry.

A sample's bars can eat into a dark or flat edge of the picture (a night sky meeting
the letterbox); a clip's box is therefore the largest picture over its samples
(`clip_box`): a bar is only what stays a bar in every sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Bars = tuple[int, int, int, int]  # (top, bottom, left, right) px
NO_BARS: Bars = (0, 0, 0, 0)


@dataclass(frozen=True)
class BoxParams:
    """How flat a line must be to be a bar."""

    max_dev: float = 10.0  # luma; a bar line's pixels stay within this of the bar's level
    max_outliers: float = 0.02  # share of a bar line's pixels that may stray (a logo or a caption over the bar)
    max_std: float = 2.0  # luma; std along a bar line, strays left out (real bars read 0-1.5; a dim picture more)
    min_bar_frac: float = 0.01  # share of the side: thinner bars are edge rows of the encoder, not bars
    # a picture meets its bars along straight edges: its first lines off the bars differ from the bar level
    # (by more than edge_dev) over this share of their length, averaged over the sides (generated boxes 0.5-1,
    # real films 0.8-1; a counter's digits on a flat background 0.2-0.25)
    min_edge_share: float = 0.45
    edge_dev: float = 4.0  # luma
    # and fills its box: at least this share of the box differs from the bar level by more than edge_dev
    # (a photo 0.9-1; thick digits on a plain background 0.2-0.3)
    min_inside_share: float = 0.5
    edge_lines: int = 4  # lines inside each bar that are read (an anti-aliased edge blurs 1-2)
    line_px: int = 480  # pixels read along each line (strided); every line across is read


def _flat_run(lines: np.ndarray, level: float, p: BoxParams) -> int:
    """Number of leading rows of `lines` (N, M) that are flat at `level`, read in growing chunks from the edge.

    A flat line: at least 1 - max_outliers of its pixels within max_dev of the level, and those pixels' std at
    most max_std (the strays, a logo or coding noise, are left out of the std).
    """
    n, start, chunk = len(lines), 0, 8
    while start < n:
        d = lines[start : start + chunk].astype(np.float32) - level  # (k, M)
        inlier = np.abs(d) <= p.max_dev
        count = np.maximum(inlier.sum(axis=1), 1)
        mean = (d * inlier).sum(axis=1) / count
        var = (d * d * inlier).sum(axis=1) / count - mean * mean
        ok = (inlier.mean(axis=1) >= 1.0 - p.max_outliers) & (var <= p.max_std**2)
        bad = np.flatnonzero(~ok)
        if bad.size:
            return start + int(bad[0])
        start, chunk = start + chunk, chunk * 4
    return n


def frame_bars(luma: np.ndarray, p: BoxParams = BoxParams(), nested: bool = True) -> Bars | None:
    """(top, bottom, left, right) px of uniform bars on a (H, W) uint8 luma image; None when the image is flat
    (a black or blank frame has no picture to find a box in) or when what the bars hold is not a picture.

    Bars inside bars (a pillarboxed film re-uploaded inside a coloured border) are followed one level in.
    """
    h, w = luma.shape
    if h < 4 or w < 4:
        return NO_BARS
    sx, sy = max(1, w // p.line_px), max(1, h // p.line_px)
    rows, cols = luma[:, ::sx], luma[::sy, :].T  # (H, W'), (W, H'): lines across each axis
    sides = (rows, rows[::-1], cols, cols[::-1])
    levels = [float(np.median(s[0])) for s in sides]
    runs = [_flat_run(s, lv, p) for s, lv in zip(sides, levels)]
    if runs[0] >= h or runs[2] >= w:
        return None
    mins = (p.min_bar_frac * h, p.min_bar_frac * h, p.min_bar_frac * w, p.min_bar_frac * w)
    found = [r >= m for r, m in zip(runs, mins)]

    def same(a: int, b: int) -> bool:
        return abs(levels[a] - levels[b]) <= p.max_dev

    pairs = [(0, 1), (2, 3)]
    accepted = [False] * 4
    for a, b in pairs:
        if found[a] and found[b] and same(a, b):
            accepted[a] = accepted[b] = True
    # a lone bar counts when a pair on the other axis has its level (a window off the centre)
    for a, b in pairs:
        for side in (a, b):
            others = [o for o in range(4) if o not in (a, b) and accepted[o]]
            if found[side] and not accepted[side] and any(same(side, o) for o in others):
                accepted[side] = True
    t, b, l, r = (run if ok else 0 for run, ok in zip(runs, accepted))
    if t + b >= h or l + r >= w:
        return None
    # a picture meets its bars along straight edges; a title or a digit on a plain background does not
    spans = ((l, w - r), (l, w - r), (t, h - b), (t, h - b))
    edges = [_edge_share(sides[i], runs[i], levels[i], spans[i], (sx, sx, sy, sy)[i], p) for i in range(4) if accepted[i]]
    if edges and float(np.mean(edges)) < p.min_edge_share:
        return None
    if any(accepted):
        level = levels[accepted.index(True)]
        inside = luma[t : h - b : max(1, (h - t - b) // 64), l : w - r : max(1, (w - l - r) // 64)]
        if float((np.abs(inside.astype(np.float32) - level) > p.edge_dev).mean()) < p.min_inside_share:
            return None
        inner = frame_bars(luma[t : h - b, l : w - r], p, nested=False) if nested else None
        if inner is not None:
            t, b, l, r = t + inner[0], b + inner[1], l + inner[2], r + inner[3]
    return t, b, l, r


def _edge_share(lines: np.ndarray, run: int, level: float, span: tuple[int, int], stride: int, p: BoxParams) -> float:
    """Share of the first `edge_lines` lines past a bar of `run` lines that differs from its level, over the
    picture's extent along them (`span`, px of the full line; `lines` were read every `stride` px)."""
    inner = lines[run : run + p.edge_lines, span[0] // stride : -(-span[1] // stride)].astype(np.float32)
    return float((np.abs(inner - level) > p.edge_dev).mean()) if inner.size else 0.0


def scale_bars(bars: Bars, src: tuple[int, int], dst: tuple[int, int]) -> Bars:
    """Bars measured on a (W, H) `src` image, in px of a (W, H) `dst` image of the same picture (rounded inwards)."""
    fx, fy = dst[0] / src[0], dst[1] / src[1]
    t, b, l, r = bars
    return (int(np.ceil(t * fy)), int(np.ceil(b * fy)), int(np.ceil(l * fx)), int(np.ceil(r * fx)))


def rotate_bars(bars: Bars, rotation: int) -> Bars:
    """Bars of an image turned `rotation` degrees counter-clockwise (as np.rot90 with k = rotation // 90)."""
    t, b, l, r = bars
    for _ in range((rotation // 90) % 4):
        t, b, l, r = r, l, t, b  # a quarter turn counter-clockwise: the right edge goes on top
    return t, b, l, r


def clip_box(sample_bars: Sequence[Bars | None]) -> Bars | None:
    """The clip's bars: the smallest bar on each side over its measurable samples (None when none is)."""
    live = [b for b in sample_bars if b is not None]
    if not live:
        return None
    return tuple(int(v) for v in np.min(np.array(live), axis=0))


def box_columns(bars: Bars | None, width: int, height: int) -> dict:
    """content_x, content_y, content_w, content_h (display px), content_aspect and content_frac of a clip."""
    t, b, l, r = bars if bars is not None else NO_BARS
    w, h = max(1, width - l - r), max(1, height - t - b)
    return {"content_x": l, "content_y": t, "content_w": w, "content_h": h,
            "content_aspect": w / h, "content_frac": (w * h) / (width * height)}


def crop(img: np.ndarray, bars: Bars | None) -> np.ndarray:
    """The image inside its bars (a view)."""
    if bars is None:
        return img
    t, b, l, r = bars
    h, w = img.shape[:2]
    return img[t : h - b, l : w - r]
