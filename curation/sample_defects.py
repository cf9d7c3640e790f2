"""Defect rate of generated clips: score decoded samples with the pipeline's own quality and motion scorers and
count which of the current filter rules would drop them, per reason.

A sample is scored like a clip in the scan stage: frame_quality() on every frame, pair_flow() between consecutive
frames (dt = 1 / fps), aggregated by aggregate_quality() / aggregate_motion(), then apply_filters() with the rules
whose column these scorers produce. Rules on other columns (duration, aesthetic, audio, text, captions) are listed
as not applicable: a sample's duration is fixed by the sampled shape, and those scorers need models or sound.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from curation.filters import Rule, apply_filters
from curation.motion import MotionParams, aggregate_motion, pair_flow, to_gray
from curation.quality import QualityParams, aggregate_quality, frame_quality

MIN_FLOW_SIDE_PX = 16  # as in scan.py: smaller frames get no motion scores (DIS needs a few pixels)
PICTURE_COLUMNS = ("motion", "camera_motion", "local_motion", "sharpness", "luma_mean", "clipped_dark_frac",
                   "clipped_bright_frac", "contrast", "colorfulness", "black_frac", "letterbox_frac", "quality")


def to_uint8_frames(clip: np.ndarray) -> np.ndarray:
    """(3, T, H, W) float in [-1, 1] (a decoder's output) → (T, H, W, 3) uint8 RGB."""
    x = (np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.ascontiguousarray(np.rint(x).astype(np.uint8).transpose(1, 2, 3, 0))


def score_sample(frames: np.ndarray, fps: float, quality: QualityParams | None = None,
                 motion: MotionParams | None = None) -> dict:
    """Clip score columns (PICTURE_COLUMNS and `static`) of one sample (T, H, W, 3) uint8 shown at fps frames/s."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    quality, motion = quality or QualityParams(), motion or MotionParams()
    row = aggregate_quality([frame_quality(f, quality) for f in frames], quality)
    pairs = []
    if min(frames.shape[1:3]) >= MIN_FLOW_SIDE_PX:
        grays = [to_gray(f) for f in frames]
        pairs = [pair_flow(a, b, 1.0 / fps, motion) for a, b in zip(grays[:-1], grays[1:])]
    row.update(aggregate_motion(pairs, motion))
    return row


def applicable_rules(rules: Sequence[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(rules on columns the sample scorers produce, the others)."""
    on = [r for r in rules if r.column in PICTURE_COLUMNS]
    return on, [r for r in rules if r.column not in PICTURE_COLUMNS]


def drop_reasons(rows: Sequence[dict], rules: Sequence[Rule]) -> list[list[str]]:
    """Every applicable rule each scored sample fails (an empty list: the filters would keep it)."""
    on, _ = applicable_rules(rules)
    if not rows:
        return []
    cols = {c: pa.array([r.get(c) for r in rows], pa.float64()) for c in PICTURE_COLUMNS}
    table = pa.table({**cols, "drop_reasons": pa.array([[] for _ in rows], pa.list_(pa.string())),
                      "kept": pa.array([True] * len(rows), pa.bool_())})
    return [list(r) for r in apply_filters(table, on).column("drop_reasons").to_pylist()]


def defect_rates(reasons: Sequence[Sequence[str]], rules: Sequence[Rule]) -> dict:
    """{"dropped": share of samples with any reason, "by_reason": {reason: share}} over every applicable reason."""
    on, _ = applicable_rules(rules)
    n = max(len(reasons), 1)
    names = sorted({r.reason for r in on})
    return {"dropped": sum(bool(r) for r in reasons) / n,
            "by_reason": {name: sum(name in r for r in reasons) / n for name in names}}
