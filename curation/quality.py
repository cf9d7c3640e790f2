"""Technical quality of a clip from its analysis samples: sharpness, exposure, colour.

frame_quality() turns one RGB sample into a few scalars; aggregate_quality()
turns the samples of a clip into the clips-table columns. Luma is BT.601
(0..255). Every statistic is computed on the picture inside the sample's content
box (curation/content_box.py), so bars never make a film dark, flat or soft.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from curation.content_box import Bars, crop


@dataclass(frozen=True)
class QualityParams:
    """Thresholds and weights of the technical quality scores."""

    # near-black / blank samples (EXPECTED.json: p99 of luma < 20 over the top 80%)
    black_luma_p99: float = 20.0  # luma 0..255
    black_top_frac: float = 0.8  # share of rows, from the top, examined (ignores captions)
    blank_luma_std: float = 2.0  # luma std below this over the same region = blank slate
    # clipping
    dark_clip_level: int = 2  # luma <= this is crushed black
    bright_clip_level: int = 253  # luma >= this is blown highlight
    # sharpness: variance of the Laplacian after resizing the short side to this size
    sharpness_short_side: int = 256  # px
    # px at analysis size; Gaussian pre-smoothing (Laplacian of Gaussian) so the score
    # reflects picture detail, not the resampling kernel that made the sample (0 = off)
    sharpness_sigma: float = 1.0
    # combined quality = weighted mean of three 0..1 sub-scores (see combined_quality)
    sharpness_lo: float = 1.0  # sharpness scoring 0 (a Gaussian blur of sigma 4 px at 480x270 reads 0.2..1.7)
    sharpness_hi: float = 100.0  # sharpness scoring 1, log scale in between (crisp footage reads 40..70)
    contrast_ref: float = 50.0  # luma std scoring 1
    w_sharpness: float = 0.5
    w_exposure: float = 0.25
    w_contrast: float = 0.25


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def dark_lines(luma: np.ndarray, axis: int, level: float, bright_share: float = 0.0,
               max_std: float | None = None) -> np.ndarray:
    """Bool per row (axis=1) or column (axis=0): at most bright_share of it at or above `level` (and luma std below max_std)."""
    if bright_share > 0:
        # "p(100 - share) below the level" as a count: O(n), no sort
        dark = (luma >= level).mean(axis=axis) <= bright_share
    else:
        dark = luma.max(axis=axis) < level  # the same test, cheaper
    if max_std is not None:
        dark &= luma.astype(np.float32).std(axis=axis) < max_std
    return dark


def _run_length(flags: np.ndarray) -> int:
    """Number of leading True values."""
    idx = np.flatnonzero(~flags)
    return int(idx[0]) if idx.size else int(flags.size)


def dark_bars(luma: np.ndarray, level: float, bright_share: float = 0.0,
              max_std: float | None = None) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) px: the runs of dark_lines() in from each edge of a (H, W) uint8 luma image.

    The pHash's crop of dark borders (curation.hashes.dark_border_box) reads it; the content box of
    a clip is curation.content_box. When every row is dark, top = bottom = H.
    """
    rows, cols = dark_lines(luma, 1, level, bright_share, max_std), dark_lines(luma, 0, level, bright_share, max_std)
    return _run_length(rows), _run_length(rows[::-1]), _run_length(cols), _run_length(cols[::-1])


def _colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003): std_rgyb + 0.3 * mean_rgyb on opponent channels."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _sharpness(pic: np.ndarray, k: float, sigma: float) -> float:
    """Variance of the Laplacian of pic resized by k (to the fixed analysis scale)."""
    h, w = pic.shape
    size = (max(1, round(w * k)), max(1, round(h * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    g = pic.astype(np.float32) if size == (w, h) else cv2.resize(pic, size, interpolation=interp).astype(np.float32)
    if sigma > 0:
        g = cv2.GaussianBlur(g, (0, 0), sigma)
    return float(cv2.Laplacian(g, cv2.CV_32F, ksize=1).var())


def detail_sharpness(luma: np.ndarray, sar: float, full_range: bool, params: QualityParams) -> float:
    """Sharpness of a picture from its decoded luma (coded geometry, cropped to the content box): resized to
    display aspect with its short side at sharpness_short_side, so the score does not depend on the bars
    around the picture (an analysis sample of a letterboxed frame holds the picture at a smaller scale)."""
    h, w = luma.shape
    k = params.sharpness_short_side / min(w * sar, h)
    size = (max(1, round(w * sar * k)), max(1, round(h * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    g = cv2.resize(luma, size, interpolation=interp).astype(np.float32)
    if params.sharpness_sigma > 0:
        g = cv2.GaussianBlur(g, (0, 0), params.sharpness_sigma)
    # video-range luma (16..235) spans 219/255 of the grey levels the RGB samples' luma does
    gain = 1.0 if full_range else (255.0 / 219.0) ** 2
    return float(cv2.Laplacian(g, cv2.CV_32F, ksize=1).var()) * gain


def black_or_blank(rgb: np.ndarray, params: QualityParams) -> tuple[bool, bool]:
    """(near_black, blank) of a picture (the frame, or the frame inside its bars), judged on its top rows (captions
    are left out), as EXPECTED.json does."""
    h = rgb.shape[0]
    top = _luma(rgb[: max(1, int(round(h * params.black_top_frac)))])
    return float(np.percentile(top, 99)) < params.black_luma_p99, float(top.std()) < params.blank_luma_std


def frame_quality(rgb: np.ndarray, params: QualityParams, bars: Bars | None = None,
                  sharpness: float | None = None) -> dict:
    """Per-sample scalars from one RGB uint8 (H, W, 3) frame, measured inside `bars` (the sample's content box).

    near_black and blank judge the picture inside the bars (black_or_blank), so a black picture inside coloured
    bars is black. `sharpness` measured elsewhere (detail_sharpness on the decoded luma) replaces the sample's.
    """
    h, w = rgb.shape[:2]
    pic_rgb = crop(rgb, bars)
    near_black, blank = black_or_blank(pic_rgb, params)
    pic = _luma(pic_rgb)
    if sharpness is None:  # scale set by the whole frame, so cropping bars never upscales the picture
        sharpness = _sharpness(pic, params.sharpness_short_side / min(h, w), params.sharpness_sigma)
    return {
        "near_black": near_black,
        "blank": blank,
        "luma_mean": float(pic.mean()),
        # the bright end of the picture: a night scene keeps its lights, an underexposed clip has none
        "luma_p99": float(np.percentile(pic, 99)),
        "contrast": float(pic.std()),
        "clipped_dark_frac": float((pic <= params.dark_clip_level).mean()),
        "clipped_bright_frac": float((pic >= params.bright_clip_level).mean()),
        "colorfulness": _colorfulness(pic_rgb),
        "sharpness": sharpness,
    }


def combined_quality(sharpness: float, luma_mean: float, clipped: float, contrast: float, p: QualityParams) -> float:
    """Technical quality in 0..1: weighted mean of sharpness, exposure and contrast scores.

    sharpness: log-scale ramp from sharpness_lo (0) to sharpness_hi (1), since
      Laplacian variance spans orders of magnitude between blurry and crisp;
    exposure: 1 at mid-grey luma 128, falling linearly to 0 at 0 or 255, times
      the share of pixels not clipped to black or white;
    contrast: luma std / contrast_ref, capped at 1.
    """
    s = np.log(max(sharpness, 1e-6) / p.sharpness_lo) / np.log(p.sharpness_hi / p.sharpness_lo)
    s_sharp = float(np.clip(s, 0.0, 1.0))
    s_expo = float(np.clip(1.0 - abs(luma_mean - 128.0) / 128.0, 0.0, 1.0) * (1.0 - min(clipped, 1.0)))
    s_contrast = float(min(contrast / p.contrast_ref, 1.0))
    wsum = p.w_sharpness + p.w_exposure + p.w_contrast
    return (p.w_sharpness * s_sharp + p.w_exposure * s_expo + p.w_contrast * s_contrast) / wsum


_COLUMNS = (
    "sharpness",
    "luma_mean",
    "clipped_dark_frac",
    "clipped_bright_frac",
    "contrast",
    "colorfulness",
    "black_frac",
    "luma_p99",
    "quality",
)


def aggregate_quality(frames: Sequence[dict], params: QualityParams) -> dict:
    """Clip quality columns: means over the clip's samples (all None when it has none)."""
    if not frames:
        return {k: None for k in _COLUMNS}
    out = {
        k: float(np.mean([f[k] for f in frames]))
        for k in ("sharpness", "luma_mean", "luma_p99", "clipped_dark_frac", "clipped_bright_frac", "contrast",
                  "colorfulness")
    }
    out["black_frac"] = float(np.mean([f["near_black"] or f["blank"] for f in frames]))
    out["quality"] = combined_quality(
        out["sharpness"], out["luma_mean"], out["clipped_dark_frac"] + out["clipped_bright_frac"], out["contrast"], params
    )
    return out
