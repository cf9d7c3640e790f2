"""The crop an export applies: the clip's content box at the written picture's size, rounded inwards to even px.

The clips table gives the box (`content_x/y/w/h`) in display px of a frame of the
row's `width` x `height`. The writer's display size can differ from that by a
pixel (it rounds to even, as yuv420p needs), so the box is scaled to the written
frame first, then each edge moves inwards to an even coordinate: x and y on a
chroma sample, w and h even, the box never larger than the content.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

BOX_COLUMNS = ("content_x", "content_y", "content_w", "content_h")


@dataclass(frozen=True)
class Box:
    x: int  # left edge, px
    y: int  # top edge, px
    w: int  # px
    h: int  # px

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class ContentBox:
    """A manifest row's content box and the frame size it was measured on (display px)."""

    box: Box
    frame_w: int
    frame_h: int


def content_box(clip: dict) -> ContentBox | None:
    """The row's content box, or None when any box column is null or missing (older runs: export the full frame)."""
    vals = [clip.get(k) for k in BOX_COLUMNS]
    if any(v is None for v in vals) or not clip.get("width") or not clip.get("height"):
        return None
    x, y, w, h = (int(v) for v in vals)
    if w <= 0 or h <= 0:
        return None
    return ContentBox(Box(x, y, w, h), int(clip["width"]), int(clip["height"]))


def _up_even(v: float) -> int:
    return 2 * math.ceil(v / 2 - 1e-9)


def _down_even(v: float) -> int:
    return 2 * math.floor(v / 2 + 1e-9)


def even_box(cb: ContentBox, width: int, height: int) -> Box | None:
    """The box on a `width` x `height` frame, edges moved inwards to even px; None when less than 2x2 px is left."""
    sx, sy = width / cb.frame_w, height / cb.frame_h
    b = cb.box
    x0 = _up_even(max(0.0, b.x * sx))
    y0 = _up_even(max(0.0, b.y * sy))
    x1 = _down_even(min(float(width), (b.x + b.w) * sx))
    y1 = _down_even(min(float(height), (b.y + b.h) * sy))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)
