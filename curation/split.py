"""Shot detection (PySceneDetect used as a library, TransNetV2, or both), and shots → clip spans.

`split.detector` names the detector: adaptive | content | threshold are ours
(PySceneDetect detectors plus our structure check; `ours` = adaptive),
`transnetv2` is the learned detector in curation/transnet.py, `ensemble`
combines TransNetV2 with `ensemble_with` by `ensemble_mode`. Whatever finds the
cuts, the same post-processing turns them into clip spans.
"""
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect.detectors import AdaptiveDetector, ContentDetector, ThresholdDetector


@dataclass(frozen=True)
class SplitParams:
    detector: str = "adaptive"  # adaptive | content | threshold | ours (= adaptive) | transnetv2 | ensemble
    ensemble_with: str = "adaptive"  # our detector that `ensemble` pairs with TransNetV2: adaptive | content | threshold
    ensemble_mode: str = "union"  # union: a cut either finds | vote: our cuts that TransNetV2 confirms
    ensemble_tolerance: int = 2  # frames around a TransNetV2 transition within which two cuts are the same cut
    transnet_threshold: float = 0.5  # TransNetV2 single-frame transition probability above which a frame is a transition (0..1)
    transnet_device: str = "cpu"  # torch device TransNetV2 runs on (cpu, cuda, cuda:1, ...)
    adaptive_threshold: float = 3.0  # ratio of a frame's score to its rolling average
    adaptive_window: int = 2  # frames on each side of the rolling average
    min_content_val: float = 15.0  # minimum HSV change to count as a cut (0..255)
    content_threshold: float = 27.0  # ContentDetector HSV threshold (0..255)
    fade_threshold: float = 12.0  # ThresholdDetector black level (0..255)
    min_scene_frames: int = 15  # shortest shot (frames)
    cut_max_structure_corr: float | None = 0.8  # reject a cut whose two sides have this edge correlation (-1..1)
    black_min_s: float | None = 1.0  # near-black runs at least this long become clips of their own (s)
    black_snap_frames: int = 6  # a black-run edge this close to a detected cut moves onto the cut (frames)
    near_black_luma: float = 20.0  # a frame is near-black when the p99 of luma (top 80% of rows) is below (0..255)
    min_clip_s: float = 1.0  # shorter clips are kept but dropped as too_short (s)
    max_clip_s: float = 20.0  # longer shots are cut into windows (s)


OURS = ("adaptive", "content", "threshold", "ours")
DETECTORS = (*OURS, "transnetv2", "ensemble")


def ours_name(p: SplitParams) -> str | None:
    """The PySceneDetect detector this config runs (None for transnetv2 alone)."""
    if p.detector == "ensemble":
        return p.ensemble_with
    if p.detector == "transnetv2":
        return None
    return "adaptive" if p.detector == "ours" else p.detector


def uses_transnet(p: SplitParams) -> bool:
    return p.detector in ("transnetv2", "ensemble")


def make_detector(p: SplitParams):
    """One PySceneDetect detector object, fed frames by our single decode loop (None: TransNetV2 alone)."""
    name = ours_name(p)
    if name is None and p.detector == "transnetv2":
        return None
    if name == "adaptive":
        return AdaptiveDetector(
            adaptive_threshold=p.adaptive_threshold,
            min_scene_len=p.min_scene_frames,
            window_width=p.adaptive_window,
            min_content_val=p.min_content_val,
        )
    if name == "content":
        return ContentDetector(threshold=p.content_threshold, min_scene_len=p.min_scene_frames)
    if name == "threshold":
        return ThresholdDetector(threshold=p.fade_threshold, min_scene_len=p.min_scene_frames)
    raise ValueError(f"unknown detector {p.detector!r} (ensemble_with {p.ensemble_with!r}): "
                     f"split.detector is one of {' | '.join(DETECTORS)}, split.ensemble_with one of adaptive | content | threshold")


def structure_correlation(bgr_a: np.ndarray, bgr_b: np.ndarray) -> float:
    """Correlation of the blurred gradient magnitudes of two frames (-1..1).

    Across a real cut the image structure changes (≈0); a colour or exposure
    change within one shot (a flash, a background turning from red to green)
    keeps it (≈1). Colour-histogram detectors cannot tell these apart.
    """
    a, b = _gradient_magnitude(bgr_a), _gradient_magnitude(bgr_b)
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _gradient_magnitude(bgr: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    return cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), 2)


def is_near_black(bgr: np.ndarray, luma_p99: float, top_frac: float = 0.8) -> bool:
    """p99 of luma over the top rows below `luma_p99` (the bottom is skipped: captions, logos)."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    top = gray[: max(1, int(gray.shape[0] * top_frac))].ravel()
    k = int(0.99 * (top.size - 1))
    # near-black puts k + 1 pixels below luma_p99 and the rest at most 255, which bounds the mean: a brighter
    # mean (most frames) rules it out without the partition
    below = (k + 1) / top.size
    if cv2.mean(top)[0] >= luma_p99 * below + 255.0 * (1.0 - below):
        return False
    return float(np.partition(top, k)[k]) < luma_p99


class ShotDetector:
    """Feed BGR frames in order; `shot_starts()` returns the frame indices where shots begin."""

    def __init__(self, params: SplitParams):
        self._params = params
        self._detector = make_detector(params)
        self._cuts: list[int] = []
        self._last = -1
        # the detector reports cuts a few frames late: keep enough frames to verify them
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=params.adaptive_window + 4)
        self.rejected_cuts: list[int] = []
        self._flushed = False
        self.black: list[bool] = []  # per frame: near-black?

    def feed(self, index: int, bgr: np.ndarray, picture: np.ndarray | None = None) -> None:
        """One frame; `picture` (the frame inside its bars, default the frame) is what near-black is judged on."""
        self.black.append(is_near_black(bgr if picture is None else picture, self._params.near_black_luma))
        if self._detector is not None:
            self._recent.append((index, bgr))
            self._accept(self._detector.process_frame(index, bgr))
        self._last = index

    def _accept(self, cuts: list[int]) -> None:
        limit = self._params.cut_max_structure_corr
        frames = dict(self._recent)
        for cut in cuts:
            before, after = frames.get(cut - 1), frames.get(cut)
            if limit is not None and before is not None and after is not None:
                if structure_correlation(before, after) >= limit:
                    self.rejected_cuts.append(cut)
                    continue
            self._cuts.append(cut)

    def detected_cuts(self) -> list[int]:
        """Every cut the detector reported, kept or rejected by the structure check (rejected ones are
        content changes inside near-black or same-structure frames, e.g. the first frame of a fade-in)."""
        self.shot_starts()
        return sorted(set(self._cuts) | set(self.rejected_cuts))

    def shot_starts(self) -> list[int]:
        if self._last >= 0 and not self._flushed and self._detector is not None:
            self._accept(self._detector.post_process(self._last))
            self._flushed = True
        return [0] + sorted({c for c in self._cuts if 0 < c <= self._last})


def combine_cuts(p: SplitParams, ours: ShotDetector, transnet: np.ndarray | None) -> tuple[list[int], list[int]]:
    """(shot starts, every detected cut) for the configured detector, from our detector and TransNetV2's
    per-frame predictions (None when it did not run). The detected cuts are what black-run edges snap to.

    ensemble, union: our cuts, plus each TransNetV2 cut with none of ours within its transition run
    ± ensemble_tolerance frames. ensemble, vote: our cuts that lie within a TransNetV2 run ± tolerance
    (both detectors agree; the cut stays where ours put it).
    """
    from curation.transnet import transition_runs

    starts, detected = ours.shot_starts(), ours.detected_cuts()
    if not uses_transnet(p):
        return starts, detected
    if transnet is None:
        raise ValueError(f"split.detector {p.detector!r} needs TransNetV2's predictions")
    last = len(transnet) - 1
    runs = [(a, b) for a, b in transition_runs(transnet, p.transnet_threshold) if b < last]  # a run at the end starts no shot
    tn_cuts = [b + 1 for _, b in runs]
    if p.detector == "transnetv2":
        return [0] + tn_cuts, tn_cuts
    tol = p.ensemble_tolerance
    zones = [(a - tol, b + 1 + tol) for a, b in runs]
    in_zone = lambda c, z: z[0] <= c <= z[1]  # noqa: E731
    mine = starts[1:]
    if p.ensemble_mode == "union":
        cuts = sorted(set(mine) | {c for c, z in zip(tn_cuts, zones) if not any(in_zone(m, z) for m in mine)})
    elif p.ensemble_mode == "vote":
        cuts = [m for m in mine if any(in_zone(m, z) for z in zones)]
    else:
        raise ValueError(f"unknown split.ensemble_mode {p.ensemble_mode!r} (union | vote)")
    return [0] + cuts, sorted(set(detected) | set(tn_cuts))


@dataclass(frozen=True)
class Span:
    start: int  # inclusive frame index
    end: int  # exclusive
    reason: str  # cut | window | whole


def clip_spans(shot_starts: list[int], num_frames: int, fps: float, max_clip_s: float) -> list[Span]:
    """Turn shot starts into clip spans; shots longer than `max_clip_s` become equal windows."""
    bounds = sorted(set(s for s in shot_starts if 0 <= s < num_frames) | {0}) + [num_frames]
    single = len(bounds) == 2
    max_frames = max(1, int(round(max_clip_s * fps)))
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = b - a
        if n <= max_frames:
            spans.append(Span(a, b, "whole" if single else "cut"))
            continue
        k = math.ceil(n / max_frames)
        edges = [a + round(i * n / k) for i in range(k + 1)]
        spans.extend(Span(s, e, "window") for s, e in zip(edges[:-1], edges[1:]))
    return spans


def split_black_runs(spans: list[Span], black: list[bool], min_run: int, cuts: list[int] = (), snap: int = 6) -> list[Span]:
    """Cut near-black runs of at least `min_run` frames out of spans as clips of their own.

    A fade to black inside one shot (no cut to detect) otherwise leaves a clip
    that is half black; this way the black part is one clip (dropped for
    black_frames) and the picture keeps its own clip. A run edge within `snap`
    frames of a detected cut moves onto the cut: the luma test lags a fade-in
    by a few frames, and a hard cut the detector saw must not move.
    """
    cuts = np.asarray(sorted(cuts), np.int64)

    def snapped(edge: int, lo: int, hi: int) -> int:
        if not len(cuts):
            return edge
        near = cuts[(np.abs(cuts - edge) <= snap) & (cuts > lo) & (cuts < hi)]
        return int(near[np.argmin(np.abs(near - edge))]) if len(near) else edge

    out = []
    for span in spans:
        edges, i = [], span.start
        while i < span.end:
            if i < len(black) and black[i]:
                j = i
                while j < span.end and j < len(black) and black[j]:
                    j += 1
                if j - i >= min_run:
                    edges.append((i, j))
                i = j
            else:
                i += 1
        edges = [(snapped(a, span.start, b) if a > span.start else a, snapped(b, a, span.end) if b < span.end else b)
                 for a, b in edges]
        edges = [(a, b) for a, b in edges if b > a]
        if not edges:
            out.append(span)
            continue
        cursor = span.start
        for a, b in edges:
            a = max(a, cursor)
            if a > cursor:
                out.append(Span(cursor, a, span.reason))
            out.append(Span(a, b, "black"))
            cursor = b
        if cursor < span.end:
            out.append(Span(cursor, span.end, span.reason))
    return out
