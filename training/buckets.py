"""Aspect-ratio buckets: a few fixed (h, w) sizes of about equal area, one chosen per clip (as SDXL / Open-Sora do).

A clip is chosen a bucket by its picture's shape: the manifest's `content_aspect`
(the picture inside letterbox/pillarbox bars) when it has one, else its frame's
width / height. It is cropped to its content box first, then resized to cover
its bucket and centre-cropped, so a 2.35:1 film letterboxed in 16:9 trains as
2.35:1, a 16:9 clip keeps its shape instead of losing its sides to a square crop,
and every bucket holds about the same number of latent tokens.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from training.video_frames import resize_center_crop

# width / height: portrait to landscape, the shapes footage comes in (9:16 phone … 21:9 cinema)
DEFAULT_RATIOS: tuple[float, ...] = (9 / 21, 9 / 16, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 16 / 9, 21 / 9)


def make_buckets(area: int, multiple: int, ratios: Sequence[float] = DEFAULT_RATIOS) -> list[tuple[int, int]]:
    """(h, w) buckets of about `area` pixels, one per width/height ratio, sides multiples of `multiple`.

    `multiple` is the model's spatial stride (autoencoder factor x DiT patch, e.g. 8 x 2 = 16).
    Sorted by aspect ratio (w / h), duplicates removed.
    """
    if area <= 0 or multiple <= 0:
        raise ValueError(f"buckets need area > 0 and multiple > 0 (got area={area}, multiple={multiple})")
    if not ratios or any(r <= 0 for r in ratios):
        raise ValueError(f"bucket ratios must be positive width/height values (got {list(ratios)})")
    out: set[tuple[int, int]] = set()
    for r in ratios:
        h = max(multiple, round(math.sqrt(area / r) / multiple) * multiple)
        w = max(multiple, round(math.sqrt(area * r) / multiple) * multiple)
        out.add((int(h), int(w)))
    return sorted(out, key=lambda hw: (hw[1] / hw[0], hw[0] * hw[1]))


def nearest_bucket(height: int, width: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to height x width's, by |log(w/h) - log(bw/bh)|."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive (got {height}x{width})")
    return bucket_for_aspect(width / height, buckets)


def bucket_for_aspect(aspect: float, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio (w / h) is closest to `aspect`, by |log(aspect) - log(bw/bh)|."""
    if not buckets:
        raise ValueError("no buckets to choose from")
    if not aspect > 0:
        raise ValueError(f"aspect ratio must be positive (got {aspect})")
    target = math.log(aspect)
    return min(buckets, key=lambda hw: abs(math.log(hw[1] / hw[0]) - target))


def resize_to_bucket(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (T, C, H, W) to cover the bucket's (h, w), then centre-crop to it: (T, C, h, w)."""
    return resize_center_crop(x, size)
