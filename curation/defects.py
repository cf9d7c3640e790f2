"""Defect scores measured in the scan's single decode pass: fades, flicker, camera shake, blocking artefacts.

Fades, flicker and shake change from one frame to the next, faster than the ~2 fps
analysis samples can see (a corpus fade lasts 0.8 s, one or two samples), so they
are measured on every frame the shot detector already gets (small BGR frames,
detector_width px wide): per frame, the mean luma and the global shift from the
previous frame (phase correlation on a further downscaled copy). Blocking is a
property of the coded 8x8 grid, which any rescaling destroys, so it is measured on
the decoded luma plane of each analysis sample (a grid-aligned central crop), before
scaling. Every signal is measured inside the content box the scan passes in
(curation/content_box.py): bars neither dilute a flicker nor hold a shake still.

FrameSignals collects the per-frame and per-sample values while the file decodes;
clip_scores() turns them into the clips-table columns for one clip span.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.signal import savgol_coeffs

from curation.content_box import Bars

EDGE_MARGIN_PX = 2  # px kept off the content box's edges when measuring blocking
# BT.601 luma weights in OpenCV's BGR channel order: the mean of the weighted channels is the mean luma
_BGR_LUMA = (0.114, 0.587, 0.299)


@dataclass(frozen=True)
class DefectParams:
    """Parameters of the per-frame defect signals (thresholds that drop clips live in the filter rules)."""

    enabled: bool = True  # false = no per-frame signals; fade_frac, flicker, shake, blockiness stay null
    fade_min_s: float = 0.3  # s; a luma ramp into/out of black shorter than this is not a fade
    fade_min_rate: float = 20.0  # luma/s; a ramp changes at least this fast (a dimming scene is not a fade)
    fade_min_delta: float = 10.0  # luma; between the ramp's first and last frame
    fade_hold_frames: int = 2  # frames; a ramp may pause this long (repeated frames) and go on
    flicker_luma_floor: float = 16.0  # luma; flicker is relative to max(mean luma, this) (noise on black is not flicker)
    shake_width: int = 96  # px; phase correlation runs on frames downscaled to this width
    shake_smooth_s: float = 0.3  # s; moving-average window that makes the smooth camera path
    shake_min_response: float = 0.05  # phase-correlation peak (0..1) below which a frame's shift is not measured
    block_size: int = 8  # px; the coding block grid (JPEG, MPEG-2/4, H.264's 8x8 transform)
    block_crop_px: int = 512  # px; side of the grid-aligned central crop of the decoded luma that is measured
    block_flat_luma: float = 0.1  # luma; added to the in-block step so flat pictures do not divide by ~0


# --------------------------------------------------------------------------- blocking


def blocking_ratio(luma: np.ndarray, block: int = 8, eps: float = 0.1) -> float | None:
    """Mean |luma step| across block boundaries / mean |luma step| inside blocks (1 = no grid; blocky > 1).

    The boundary and in-block activity terms B and A of Wang, Sheikh & Bovik, "No-reference
    perceptual quality assessment of JPEG compressed images", ICIP 2002, eqs. (1)-(4), for both
    directions, as a ratio: B / (A + eps). `luma` (H, W) uint8 must start on the coding grid. None
    when the picture is smaller than two blocks either way.
    """
    h, w = luma.shape[:2]
    if h < 2 * block or w < 2 * block:
        return None
    dh = cv2.absdiff(luma[:, 1:], luma[:, :-1])  # (H, W-1): step from column j to j+1
    dv = cv2.absdiff(luma[1:], luma[:-1])  # (H-1, W)
    bh, bv = dh[:, block - 1 :: block], dv[block - 1 :: block]  # steps from a block's last column (row) to the next block
    on_sum, on_n = cv2.sumElems(bh)[0] + cv2.sumElems(bv)[0], bh.size + bv.size
    all_sum, all_n = cv2.sumElems(dh)[0] + cv2.sumElems(dv)[0], dh.size + dv.size
    return float((on_sum / on_n) / ((all_sum - on_sum) / (all_n - on_n) + eps))


def grid_crop(luma: np.ndarray, side: int, block: int = 8, bars: Bars | None = None) -> np.ndarray:
    """A central crop of at most side x side px of the picture inside `bars` (coded px), its origin on the block grid.

    The bars' edge is a strong step that is on the grid or not by chance, so it is left out.
    """
    h, w = luma.shape
    # the lines where the picture meets a bar are a blurred step: stay EDGE_MARGIN_PX off them
    t, b, l, r = (v + EDGE_MARGIN_PX if v else 0 for v in (bars or (0, 0, 0, 0)))
    top, bottom, left, right = t, h - b, l, w - r
    top, left = -(-top // block) * block, -(-left // block) * block  # round inwards onto the grid
    h, w = max(0, bottom - top), max(0, right - left)
    ch, cw = min(h, side), min(w, side)
    y, x = top + (h - ch) // 2 // block * block, left + (w - cw) // 2 // block * block
    return luma[y : y + ch, x : x + cw]


# --------------------------------------------------------------------------- per-frame signals


class FrameSignals:
    """Feed every detector frame (BGR) and every analysis sample's decoded luma; then ask per clip."""

    def __init__(self, params: DefectParams):
        self.params = params
        self.luma: list[float] = []  # per frame: mean luma 0..255
        self.shift: list[tuple[float, float]] = []  # per frame: (dx, dy) from the previous frame, px at shake_width; nan = unmeasured
        self.block: dict[int, float] = {}  # sample frame index -> blocking ratio
        self._prev: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._diag = 1.0
        self._ramps: list[tuple[int, int]] | None = None  # fade ramps of the whole video, found at the first clip

    def feed_frame(self, index: int, bgr: np.ndarray) -> None:
        """One detector frame, in decode order."""
        self.luma.append(float(np.dot(cv2.mean(bgr)[:3], _BGR_LUMA)))
        h, w = bgr.shape[:2]
        sw = min(self.params.shake_width, w)
        sh = max(8, round(h * sw / w))
        small = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._prev is None or self._prev.shape != small.shape:
            self._window = cv2.createHanningWindow((sw, sh), cv2.CV_32F)
            self._diag = float(np.hypot(sw, sh))
            self.shift.append((np.nan, np.nan))
        else:
            (dx, dy), response = cv2.phaseCorrelate(self._prev, small, self._window)
            ok = response >= self.params.shake_min_response
            self.shift.append((dx, dy) if ok else (np.nan, np.nan))
        self._prev = small

    def feed_sample(self, index: int, luma: np.ndarray | None, bars: Bars | None = None) -> None:
        """One analysis sample's decoded luma plane (coded geometry; None when the format has none) and its bars."""
        if luma is None:
            return
        crop = grid_crop(luma, self.params.block_crop_px, self.params.block_size, bars)
        if crop.size == 0 or float(crop.std()) < 2.0:  # black or blank: no picture to see a grid on
            return
        ratio = blocking_ratio(crop, self.params.block_size, self.params.block_flat_luma)
        if ratio is not None:
            self.block[index] = ratio

    def clip_scores(self, start: int, end: int, black: list[bool], fps: float) -> dict:
        """fade_frac, flicker, shake and blockiness of frames [start, end) (None where not measurable)."""
        if not self.params.enabled or not self.luma:
            return {k: None for k in COLUMNS}
        # near-black samples (a copyright line on black) show no picture to judge
        blocks = [v for i, v in self.block.items() if start <= i < end and not (i < len(black) and black[i])]
        if self._ramps is None:  # every frame is in by now: the clips are asked for after decoding
            self._ramps = fade_ramps(self.luma, black, fps, self.params)
        # a fade needs its ramp, the scene frame before it and the black frame after it: a video shorter
        # than that cannot show one, so 0 would not be a measurement
        fade_visible = len(self.luma) >= fade_min_frames(fps, self.params) + 2
        return {
            "fade_frac": fade_fraction(self._ramps, start, end) if fade_visible else None,
            "flicker": flicker(self.luma[start:end], self.params.flicker_luma_floor),
            "shake": shake(np.array(self.shift[start + 1 : end], np.float64).reshape(-1, 2), fps,
                           self._diag, self.params.shake_smooth_s),
            "blockiness": float(np.mean(blocks)) if blocks else None,
        }


COLUMNS = ("fade_frac", "flicker", "shake", "blockiness")


# --------------------------------------------------------------------------- fades


def fade_min_frames(fps: float, p: DefectParams) -> int:
    """Frames a luma ramp must span to be a fade: fade_min_s at fps, at least 2."""
    return max(2, round(p.fade_min_s * fps))


def fade_ramps(luma: list[float], black: list[bool], fps: float, p: DefectParams) -> list[tuple[int, int]]:
    """[start, end) frame ranges of luma ramps into or out of a near-black run (the black frames excluded).

    A fade out is the run of frames before the first frame of a near-black run over which
    the mean luma falls at least fade_min_rate (luma/s) per frame, pausing at most
    fade_hold_frames; a fade in is the same after the last black frame, read backwards.
    """
    n = min(len(luma), len(black))
    min_step = p.fade_min_rate / max(fps, 1e-6)
    min_len = fade_min_frames(fps, p)
    ramps = []
    for e in range(1, n):
        # the ramp's far end is the last (first) frame at the scene's own brightness: not part of the fade
        if black[e] and not black[e - 1]:  # fade out ends at e
            s = _ramp_start(luma, e, -1, min_step, p.fade_hold_frames)
            if e - (s + 1) >= min_len and luma[s] - luma[e - 1] >= p.fade_min_delta:
                ramps.append((s + 1, e))
        if black[e - 1] and not black[e]:  # fade in starts at e
            t = _ramp_start(luma, e - 1, +1, min_step, p.fade_hold_frames, n)
            if (t - 1) - e >= min_len and luma[t - 1] - luma[e] >= p.fade_min_delta:
                ramps.append((e, t - 1))
    return ramps


def _ramp_start(luma: list[float], edge: int, direction: int, min_step: float, hold: int, n: int = 0) -> int:
    """Walk away from a black frame at `edge` while luma keeps rising (direction -1: backwards; +1: forwards).

    Returns the far end of the ramp: its first frame going backwards, one past its last going forwards.
    """
    i, last_good, paused = edge, edge, 0
    while True:
        j = i + direction
        if j < 0 or (direction > 0 and j >= n):
            break
        step = luma[j] - luma[i]  # rising away from black
        if step >= min_step:
            paused, last_good = 0, j
        elif step >= -min_step and paused < hold:
            paused += 1
        else:
            break
        i = j
    return last_good if direction < 0 else last_good + 1


def fade_fraction(ramps: list[tuple[int, int]], start: int, end: int) -> float | None:
    """Share of the clip's frames [start, end) that lie on one of the video's fade ramps (0..1)."""
    if end <= start:
        return None
    covered = np.zeros(end - start, bool)
    # the ramp may end on a black frame outside the clip (the black run is a clip of its own)
    for a, b in ramps:
        lo, hi = max(a, start), min(b, end)
        if lo < hi:
            covered[lo - start : hi - start] = True
    return float(covered.mean())


# --------------------------------------------------------------------------- flicker and shake


def flicker(luma: list[float] | np.ndarray, floor: float = 16.0) -> float | None:
    """Median |second difference| of per-frame mean luma over the clip, as a share of its mean luma.

    Smooth brightness changes (a pan onto a brighter scene, a fade, exposure adaptation)
    are close to linear from frame to frame and have a second difference near 0;
    brightness that jumps up and down every frame or few does not. The median
    ignores a single flash or a missed cut.
    """
    y = np.asarray(luma, np.float64)
    if y.size < 3:
        return None
    d2 = np.abs(y[2:] - 2 * y[1:-1] + y[:-2])
    return float(np.median(d2) / max(float(y.mean()), floor))


def shake(shifts: np.ndarray, fps: float, diagonal: float, smooth_s: float) -> float | None:
    """Typical distance of the camera path from its smoothed path: sqrt of the median squared residual, in
    frame diagonals.

    `shifts` (N, 2): global shift between consecutive frames (px). The camera path
    is their running sum. Stabilisers estimate the intended path by smoothing this
    one and call the rest shake (Matsushita et al., "Full-frame video stabilization",
    CVPR 2005, sec. 3); here the smoother is a Savitzky-Golay quadratic fit over
    smooth_s seconds, which reproduces a pan and a steadily accelerating pan exactly,
    so only motion that reverses within the window remains. The median over frames
    (not the mean) makes it jitter, not camera work: jitter moves every frame off the
    path, while a whip pan, a jolt or a subject crossing the frame moves a few
    (a synthetic whip pan reads 0.00005 by the median and 0.0018 by the RMS; +-4 px
    jitter 0.008 by both). Windows that contain an unmeasured shift are skipped; None
    when no window is left, or when smooth_s spans under 5 frames (fps < 11.7 at 0.3 s).
    """
    k = int(round(smooth_s * fps)) | 1  # odd window, frames
    # a quadratic fits any 3 points exactly: a shorter window would call every path smooth (0, not a measurement)
    if k < 5 or len(shifts) < k:
        return None
    path = np.vstack([np.zeros((1, 2)), np.cumsum(np.nan_to_num(shifts), axis=0)])  # (N+1, 2) px
    bad = np.concatenate([[0], np.cumsum(np.isnan(shifts[:, 0]))])  # unmeasured steps up to each path point
    half = k // 2
    kernel = savgol_coeffs(k, 2)  # symmetric: convolution = correlation
    resid = []
    for c in range(2):
        smooth = np.convolve(path[:, c], kernel, mode="valid")  # (N+2-k,) centred on path[half:-half]
        resid.append(path[half : len(path) - half, c] - smooth)
    # a window is clean when no step inside it is unmeasured
    clean = (bad[k - 1 :] - bad[: len(bad) - k + 1]) == 0
    r = np.stack(resid, axis=1)[clean]
    if not len(r):
        return None
    return float(np.sqrt(np.median(np.sum(r**2, axis=1))) / diagonal)
