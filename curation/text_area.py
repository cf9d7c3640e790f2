"""On-screen text: the share of a frame covered by text lines, from rapidocr's bundled PP-OCR detector.

Only the detector runs (no recognition). Its raw boxes cannot be taken at face
value: on natural footage it sometimes returns one box covering most of the
frame (measured 0.85-0.997 of the frame on a film trailer and a TV documentary).
So each box must look like a line of text (confident, wide and short, not huge),
the kept boxes are rasterised so overlaps count once, and a clip's value is a
robust aggregate (default: median) over its keyframes.
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
    threads: int = 1  # onnxruntime threads per detector


@dataclass(frozen=True)
class TextBox:
    points: np.ndarray  # (4, 2) float32 corners, frame pixels
    score: float  # detector's mean text probability inside the box


AGGREGATES = {"median": np.median, "mean": np.mean, "max": np.max}


def box_is_text_line(box: TextBox, width: int, height: int, p: TextAreaParams) -> bool:
    """Whether a detected box has the score, shape and size of a line of text."""
    (_, _), (w, h), _ = cv2.minAreaRect(box.points.astype(np.float32))
    long_side, short_side = max(w, h), min(w, h)
    if box.score < p.min_box_score or short_side <= 0:
        return False
    # the rotated rectangle's short side is the line height, whatever its angle
    if long_side / short_side < p.min_box_aspect or short_side > p.max_box_height_frac * height:
        return False
    return long_side * short_side <= p.max_box_area_frac * width * height


def covered_fraction(boxes: Sequence[TextBox], width: int, height: int) -> float:
    """Share of the frame inside the union of `boxes` (overlaps count once)."""
    if not boxes:
        return 0.0
    mask = np.zeros((height, width), np.uint8)
    for b in boxes:  # one call per box: fillPoly given several polygons leaves their overlaps unfilled (even-odd)
        cv2.fillConvexPoly(mask, np.round(b.points).astype(np.int32), 1)
    return float(mask.mean())


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

    def detect(self, rgb: np.ndarray) -> list[TextBox]:
        """Every box the detector returns for an RGB uint8 frame, with its score."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # rapidocr takes OpenCV's BGR order
        x = self._det.get_preprocess()(bgr)
        if x is None:
            return []
        boxes, scores = self._det.postprocess_op(self._det.session(x), bgr.shape[:2])
        return [TextBox(np.asarray(b, np.float32), float(s)) for b, s in zip(boxes, scores)]

    def frame_text_area(self, rgb: np.ndarray) -> float:
        """Share of one frame covered by boxes that look like text lines, 0..1."""
        h, w = rgb.shape[:2]
        lines = [b for b in self.detect(rgb) if box_is_text_line(b, w, h, self.params)]
        return covered_fraction(lines, w, h)

    def clip_text_area(self, frames: Sequence[np.ndarray]) -> float | None:
        """The clip's text area: the configured aggregate of its frames' values; None without frames."""
        return aggregate_frames([self.frame_text_area(f) for f in frames], self.params.aggregate)
