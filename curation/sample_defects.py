"""Defect rate of generated clips: score decoded samples with the pipeline's own quality, motion and defect scorers
and count which of the current filter rules would drop them, per reason.

A sample is scored like a clip in the scan stage: frame_quality() on every frame, pair_flow() between consecutive
frames (dt = 1 / fps), the per-frame defect signals (curation.defects.FrameSignals: every frame is both a detector
frame and an analysis sample), aggregated by aggregate_quality() / aggregate_motion() / clip_scores(), then
apply_filters() with the rules whose column these scorers produce. Rules on other columns (duration, aesthetic,
audio, text, captions) are listed as not applicable: a sample's duration is fixed by the sampled shape, and those
scorers need models or sound.

Where a score means nothing at a sample's size it is null, and a rule never fails on null (curation.filters):
- blockiness: null unless the frame is a whole number of 8x8 coding blocks and at least 8 blocks each way
  (64 px). On smaller crops of clean photos the ratio is noise: 16-33 % of 16-40 px crops read above the
  1.12 rule, 9 % at 64 px, 4 % at 96-128 px (notes/darkbars.md).
- shake: null when the 0.3 s smoothing window is under 5 frames (fps < 11.7: a quadratic fits 3 points
  exactly, so the residual would always be 0) or the sample has fewer frames than that window + 1
  (curation.defects.shake).
- fade_frac: null when the sample is shorter than a fade (fade_min_s = 0.3 s) plus the scene frame before it
  and the black frame after it (e.g. under 10 frames at 25 fps); otherwise a ramp must reach a near-black frame
  inside the sample to count.
- flicker: null under 3 frames; from 3 to 4 frames the median is of 1-2 second differences, so one flash counts.
- the content box (content_frac, ...) and the quality/motion scores as in the scan: every frame's bars
  (curation.content_box), the picture scores inside them (motion null under 16 px).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pyarrow as pa

from curation.content_box import Bars, box_columns, clip_box, crop, frame_bars
from curation.defects import COLUMNS as DEFECT_COLUMNS
from curation.defects import DefectParams, FrameSignals
from curation.filters import Rule, apply_filters
from curation.motion import MotionParams, aggregate_motion, pair_flow, to_gray
from curation.quality import QualityParams, aggregate_quality, frame_quality

MIN_FLOW_SIDE_PX = 16  # as in scan.py: smaller frames get no motion scores (DIS needs a few pixels)
MIN_BLOCKS = 8  # blocks each way: fewer, and the blocking ratio of a clean picture is noise (module docstring)
PICTURE_COLUMNS = ("motion", "camera_motion", "local_motion", "sharpness", "luma_mean", "clipped_dark_frac",
                   "clipped_bright_frac", "contrast", "colorfulness", "black_frac", "luma_p99", "content_frac", "quality",
                   *DEFECT_COLUMNS)


def to_uint8_frames(clip: np.ndarray) -> np.ndarray:
    """(3, T, H, W) float in [-1, 1] (a decoder's output) → (T, H, W, 3) uint8 RGB."""
    x = (np.clip(np.asarray(clip, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.ascontiguousarray(np.rint(x).astype(np.uint8).transpose(1, 2, 3, 0))


def score_sample(frames: np.ndarray, fps: float, quality: QualityParams | None = None,
                 motion: MotionParams | None = None, defects: DefectParams | None = None) -> dict:
    """Clip score columns (PICTURE_COLUMNS and `static`) of one sample (T, H, W, 3) uint8 shown at fps frames/s."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    quality, motion, defects = quality or QualityParams(), motion or MotionParams(), defects or DefectParams()
    bars = [frame_bars(to_gray(f)) for f in frames]
    per_frame = [frame_quality(f, quality, b) for f, b in zip(frames, bars)]
    bars = [None if q["near_black"] or q["blank"] else b for q, b in zip(per_frame, bars)]
    row = aggregate_quality(per_frame, quality)
    row.update(box_columns(clip_box(bars), frames.shape[2], frames.shape[1]))
    row.update(defect_scores(frames, fps, [f["near_black"] for f in per_frame], defects, clip_box(bars)))
    pairs = []
    if min(frames.shape[1:3]) >= MIN_FLOW_SIDE_PX:
        grays = [to_gray(f) for f in frames]
        pairs = [pair_flow(a, b, 1.0 / fps, motion) for a, b in zip(grays[:-1], grays[1:])]
    row.update(aggregate_motion(pairs, motion))
    return row


def defect_scores(frames: np.ndarray, fps: float, black: Sequence[bool], params: DefectParams,
                  bars: Bars | None = None) -> dict:
    """fade_frac, flicker, shake, blockiness of a (T, H, W, 3) uint8 RGB sample inside `bars` (its content box);
    black: near-black flag per frame."""
    signals = FrameSignals(params)
    h, w = frames.shape[1:3]
    b = params.block_size
    # the coding grid of a decoder's output starts at the origin and tiles the frame
    grid = h % b == 0 and w % b == 0 and min(h, w) >= MIN_BLOCKS * b
    for i, rgb in enumerate(frames if params.enabled else ()):  # disabled: clip_scores is all null
        signals.feed_frame(i, cv2.cvtColor(crop(rgb, bars), cv2.COLOR_RGB2BGR))
        signals.feed_sample(i, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grid else None, bars)
    return signals.clip_scores(0, len(frames), list(black), fps)


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
