"""On-screen text: the share of a frame covered by text lines, from rapidocr's bundled PP-OCR detector.

Only the detector runs (no recognition). Its raw boxes cannot be taken at face
value: on natural footage it sometimes returns one box covering most of the
frame (measured 0.85-0.997 of the frame on a film trailer and a TV documentary).
So each box must look like a line of text (confident, wide and short, not huge),
the kept boxes are rasterised so overlaps count once, and a clip's value is a
robust aggregate (default: median) over its keyframes.

The detector is the cost (~20 ms a 256x456 keyframe on one core), so a clip skips
the runs whose answer is already bounded. For the median of three keyframes the
middle one is measured first, then:
- a keyframe showing the same picture as one already measured (every 16-px tile's
  mean grey within `same_picture_diff` levels) takes that keyframe's value;
- no text in the middle keyframe and none in an outer one make the median 0. The
  outer one is checked at `zero_check_short_side` (128 px: a quarter of the
  pixels). The check can only miss faint text: the shared videos' semi-transparent
  copyright line (0.06 of the frame) vanishes at 128 px, so a clip whose text is
  in both outer keyframes, missing from the middle one and too faint for 128 px
  would read 0; the same line in the middle keyframe is measured at full size;
- otherwise the first keyframe is measured: when it agrees with the middle one
  within `median_agree_frac`, their mean is within half of that of the median,
  and the third keyframe is not measured.
A cheap gate before the detector (edges, a smaller detector input for every
keyframe) was measured and left out: that copyright line has gradients under 48
grey levels and vanishes at a 160-px detector input.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TextAreaParams:
    detector_short_side: int = 256  # frames are scaled so their short side is this before detection (px)
    min_box_score: float = 0.6  # mean text probability inside a box (0..1)
    min_box_aspect: float = 1.2  # width / height of a box's rotated rectangle: text lines are wide
    max_box_height_frac: float = 0.3  # a box taller than this share of the frame height is not a text line
    max_box_area_frac: float = 0.25  # a single box larger than this share of the frame is not a text line
    aggregate: str = "median"  # median | mean | max over a clip's keyframes
    median_agree_frac: float | None = 0.01  # median of 3: skip the third keyframe when the first two differ by <= this (share of the frame); None = measure all
    zero_check_short_side: int | None = 128  # median of 3, no text in the middle keyframe: an outer one without text at this short side (px) makes it 0; None = off
    same_picture_diff: float | None = 2.5  # a keyframe whose 16-px tiles' mean |grey diff| to a measured one is <= this (levels 0..255) reuses its value; None = off
    threads: int = 1  # onnxruntime threads per detector


SAME_PICTURE_TILE_PX = 16  # tile side for same_picture (px of the keyframe)


@dataclass(frozen=True)
class TextBox:
    points: np.ndarray  # (4, 2) float32 corners, frame pixels
    score: float  # detector's mean text probability inside the box


AGGREGATES = {"median": np.median, "mean": np.mean, "max": np.max}


def box_is_text_line(box: TextBox, width: int, height: int, p: TextAreaParams, size_caps: bool = True) -> bool:
    """Whether a detected box has the score, shape and (with `size_caps`) size of a line of text."""
    (_, _), (w, h), _ = cv2.minAreaRect(box.points.astype(np.float32))
    long_side, short_side = max(w, h), min(w, h)
    if box.score < p.min_box_score or short_side <= 0 or long_side / short_side < p.min_box_aspect:
        return False
    if not size_caps:
        return True
    # the rotated rectangle's short side is the line height, whatever its angle
    return short_side <= p.max_box_height_frac * height and long_side * short_side <= p.max_box_area_frac * width * height


def covered_fraction(boxes: Sequence[TextBox], width: int, height: int) -> float:
    """Share of the frame inside the union of `boxes` (overlaps count once)."""
    if not boxes:
        return 0.0
    mask = np.zeros((height, width), np.uint8)
    for b in boxes:  # one call per box: fillPoly given several polygons leaves their overlaps unfilled (even-odd)
        cv2.fillConvexPoly(mask, np.round(b.points).astype(np.int32), 1)
    return float(mask.mean())


def same_picture(a: np.ndarray, b: np.ndarray, max_diff: float, tile: int = SAME_PICTURE_TILE_PX) -> bool:
    """Whether two RGB frames show the same picture: equal size and every tile's mean |grey difference| <= max_diff."""
    if a.shape != b.shape:
        return False
    d = cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    h, w = d.shape
    if h < tile or w < tile:
        return float(d.mean()) <= max_diff
    tiles = cv2.resize(d[: h // tile * tile, : w // tile * tile], (w // tile, h // tile), interpolation=cv2.INTER_AREA)
    return float(tiles.max()) <= max_diff


def aggregate_frames(values: Sequence[float], how: str = "median") -> float | None:
    """A clip's text area from its frames' values; None without frames."""
    return float(AGGREGATES[how](np.asarray(values, np.float64))) if len(values) else None


class TextAreaMeter:
    """Holds one PP-OCR text detector (loaded once) and measures text area on RGB frames."""

    def __init__(self, params: TextAreaParams = TextAreaParams()):
        from rapidocr import RapidOCR

        if params.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {params.aggregate!r}")
        self.params = params
        engine = RapidOCR(params={
            "Global.log_level": "warning", "Global.use_cls": False, "Global.use_rec": False,
            "Det.limit_side_len": params.detector_short_side, "Det.limit_type": "min",
            "EngineConfig.onnxruntime.intra_op_num_threads": params.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        # rapidocr 3.10's TextDetector.__call__ sorts the boxes top-to-bottom but not
        # their scores, so boxes and scores no longer pair up: run its own three steps
        self._det = engine._load_det_model()
        self._resize = self._det.get_preprocess().resize
        self.detector_runs = 0  # frames the detector ran on at full size (the bench counts them)
        self.zero_checks = 0  # frames it ran on at zero_check_short_side

    def detector_input(self, rgb: np.ndarray, short_side: int | None = None) -> np.ndarray | None:
        """The detector's input tensor (1, 3, H, W) for an RGB frame: rapidocr's resize to multiples of 32, its
        normalisation ((x / 255 - 0.5) / 0.5, BGR) in float32 (rapidocr's own goes through float64: 5x the time).
        `short_side` scales the frame to it instead, down or up (a 90-px keyframe is checked at 128 px, where the full
        measure scales it up to detector_short_side), sides multiples of 32."""
        h, w = rgb.shape[:2]
        if short_side is not None:
            s = short_side / min(h, w)
            img = cv2.resize(rgb, (max(32, round(w * s / 32) * 32), max(32, round(h * s / 32) * 32)),
                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        else:
            img = self._resize(rgb)  # per-channel: the same pixels as resizing the BGR frame
        if img is None:
            return None
        x = img.transpose(2, 0, 1)[::-1].astype(np.float32)  # (3, H, W) BGR
        x *= np.float32(2 / 255)
        x -= np.float32(1)
        return x[None]

    def detect(self, rgb: np.ndarray, short_side: int | None = None) -> list[TextBox]:
        """Every box the detector returns for an RGB uint8 frame (at `short_side`, see detector_input), with its
        score, in the frame's pixels."""
        x = self.detector_input(rgb, short_side)
        if x is None:
            return []
        if short_side is None:
            self.detector_runs += 1
        else:
            self.zero_checks += 1
        boxes, scores = self._det.postprocess_op(self._det.session(x), rgb.shape[:2])
        return [TextBox(np.asarray(b, np.float32), float(s)) for b, s in zip(boxes, scores)]

    def frame_text_area(self, rgb: np.ndarray) -> float:
        """Share of one frame covered by boxes that look like text lines, 0..1."""
        h, w = rgb.shape[:2]
        lines = [b for b in self.detect(rgb) if box_is_text_line(b, w, h, self.params)]
        return covered_fraction(lines, w, h)

    def may_hold_text(self, rgb: np.ndarray, short_side: int) -> bool:
        """Whether the detector at `short_side` finds a confident, wide box: a text line of any size (boxes grow
        coarser on a smaller input, so a big title can outgrow the size caps there)."""
        return any(box_is_text_line(b, 0, 0, self.params, size_caps=False) for b in self.detect(rgb, short_side))

    def clip_text_area(self, frames: Sequence[np.ndarray]) -> float | None:
        """The clip's text area: the configured aggregate of its frames' values; None without frames.

        Skips the detector where the answer is bounded without it (see the module's docstring)."""
        p, values = self.params, {}

        def value(i: int) -> float:
            if i not in values:
                same = [v for j, v in values.items()
                        if p.same_picture_diff is not None and same_picture(frames[i], frames[j], p.same_picture_diff)]
                values[i] = same[0] if same else self.frame_text_area(frames[i])
            return values[i]

        if p.aggregate == "median" and len(frames) == 3:
            return self._median_of_three(value, frames)
        return aggregate_frames([value(i) for i in range(len(frames))], p.aggregate)

    def _median_of_three(self, value, frames: Sequence[np.ndarray]) -> float:
        """The median of three keyframes' values, from as few detector runs as bound it (the module's docstring)."""
        p = self.params
        if p.median_agree_frac is None:
            return float(np.median([value(i) for i in range(3)]))
        middle = value(1)
        if middle == 0 and p.zero_check_short_side is not None:
            for i in (0, 2):
                if (p.same_picture_diff is not None and same_picture(frames[i], frames[1], p.same_picture_diff)) \
                        or not self.may_hold_text(frames[i], p.zero_check_short_side):
                    return 0.0  # median(0, 0, x) = 0
        first = value(0)
        if abs(first - middle) <= p.median_agree_frac:
            return (first + middle) / 2  # the median lies between them
        return float(np.median([first, middle, value(2)]))
