"""Motion scores from dense optical flow between consecutive analysis samples.

Every speed is in "frame diagonals per second": the flow (pixels) between two
samples divided by the time between them (s) and by the diagonal (pixels) of
the frame the flow was computed on. A pan of v px/frame at f frames/s on a
frame of diagonal d therefore scores v*f/d at any resolution.

The flow field is split into a camera part (a global similarity model: shift,
rotation, zoom, fitted robustly with RANSAC, so people walking in front of a
fixed camera are not camera motion while pans, zooms and rolls are) and a
local part (what is left). The camera part's parameters are kept per pair
(PairMotion.move) for the camera-motion label (curation/camera_motion.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from curation.camera_motion import CameraMove, camera_move, translation_move


@dataclass(frozen=True)
class MotionParams:
    """Optical-flow and aggregation parameters (defaults tuned on the test videos)."""

    method: str = "dis"  # "dis" (OpenCV DIS, robust to 50+ px jumps at 2 fps) | "farneback"
    max_short_side: int = 256  # px; frames with a larger short side are downscaled first
    # Farneback (cv2.calcOpticalFlowFarneback); set min_texture ~3 with it (see below)
    fb_pyr_scale: float = 0.5  # ratio between pyramid levels
    fb_levels: int = 5  # pyramid levels
    fb_winsize: int = 15  # px, averaging window
    fb_iterations: int = 3  # iterations per level
    fb_poly_n: int = 5  # px, neighbourhood of the polynomial expansion
    fb_poly_sigma: float = 1.1  # Gaussian sigma of the polynomial expansion
    # cv2.DISOPTICAL_FLOW_PRESET_{ULTRAFAST=0, FAST=1, MEDIUM=2}; FAST reads pans up to ~80 px
    # between samples (0.3 diagonals/s at 2 fps) and saturates above; MEDIUM to ~0.37
    dis_preset: int = 1
    # finest pyramid level DIS refines to (0 = full size); None = the preset's (medium: 1). The flow is read on an
    # 8-px grid, so level 2 keeps the readings (same pans, same saturation) for 40% of medium's time
    dis_finest_scale: int | None = None
    normalize_brightness: bool = True  # match mean/std of both frames so fades are not motion
    border_frac: float = 0.05  # share of each side ignored (content entering the frame)
    grid_step: int = 8  # px, flow vectors sampled every grid_step
    # luma/px; grid points whose mean gradient is below this are ignored (0 = use all).
    # Farneback needs ~3: it returns ~0 flow in flat areas, so pans read too slow.
    # DIS fills flat areas from their surroundings, and masking them would let
    # small changing details (a ticking counter) dominate a still frame.
    min_texture: float = 0.0
    global_model: str = "affine"  # "affine" (RANSAC partial affine) | "median" (translation)
    ransac_thresh: float = 1.0  # px, inlier threshold of the affine fit
    static_threshold: float = 0.002  # diagonals/s (~1 px/s at 256x455); below -> static


@dataclass(frozen=True)
class PairMotion:
    """Motion between two consecutive samples, in frame diagonals per second."""

    total: float  # mean flow magnitude
    camera: float  # mean magnitude of the global (camera) flow field
    local: float  # mean magnitude of flow minus global flow
    move: CameraMove | None = None  # the camera model's parameters (curation/camera_motion.py); None = not measured


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> luma uint8 (H, W) (BT.601 weights)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _analysis_size(gray: np.ndarray, max_short_side: int) -> np.ndarray:
    h, w = gray.shape[:2]
    s = min(h, w)
    if s <= max_short_side:
        return gray
    k = max_short_side / s
    return cv2.resize(gray, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)


def _match_brightness(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring both frames to the same mean/std: brightness changes (fades) are not motion."""
    out = []
    for g in (a, b):
        f = g.astype(np.float32)
        m, s = float(f.mean()), float(f.std())
        # near-flat frames (black) keep their contrast: amplifying noise invents motion
        f = (f - m) * (48.0 / s) + 128.0 if s > 4.0 else f - m + 128.0
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out[0], out[1]


def _texture(gray: np.ndarray, window: int) -> np.ndarray:
    """Mean gradient magnitude (luma/px) over a window around each pixel."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
    return cv2.blur(mag, (window + 1, window + 1))


def _flow(a: np.ndarray, b: np.ndarray, p: MotionParams) -> np.ndarray:
    if p.method == "farneback":
        return cv2.calcOpticalFlowFarneback(
            a, b, None, p.fb_pyr_scale, p.fb_levels, p.fb_winsize, p.fb_iterations, p.fb_poly_n, p.fb_poly_sigma, 0
        )
    if p.method == "dis":
        dis = cv2.DISOpticalFlow_create(p.dis_preset)
        if p.dis_finest_scale is not None:
            dis.setFinestScale(p.dis_finest_scale)
        return dis.calc(a, b, None)
    raise ValueError(f"unknown optical flow method {p.method!r} (farneback | dis)")


def _global_flow(pts: np.ndarray, vec: np.ndarray, p: MotionParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Flow predicted by the camera model at pts (N, 2) given observed vectors (N, 2), and the model as a 2x3
    similarity matrix (None for the median model, or when the fit is degenerate)."""
    if p.global_model == "median":
        return np.broadcast_to(np.median(vec, axis=0), vec.shape), None
    if p.global_model != "affine":
        raise ValueError(f"unknown global motion model {p.global_model!r} (affine | median)")
    # similarity transform (translation, rotation, uniform zoom): what a camera does. RANSAC, then
    # Levenberg-Marquardt on the inliers (OpenCV's refineIters)
    m, _ = cv2.estimateAffinePartial2D(
        pts, pts + vec, method=cv2.RANSAC, ransacReprojThreshold=p.ransac_thresh, maxIters=500, confidence=0.99
    )
    if m is None:  # degenerate field: fall back to the median translation
        return np.broadcast_to(np.median(vec, axis=0), vec.shape), None
    return pts @ m[:, :2].T + m[:, 2] - pts, m


def camera_fit(pts: np.ndarray, vec: np.ndarray, size: tuple[int, int], dt: float,
               params: MotionParams) -> tuple[np.ndarray, CameraMove]:
    """The camera model of a flow field: its flow at pts (N, 2) px, and its parameters (size = (w, h) px of the
    frame the flow was measured on, dt seconds between the frames)."""
    glob, m = _global_flow(pts, vec, params)  # (N, 2) px, 2x3 or None
    move = camera_move(m, size, dt) if m is not None else translation_move(np.median(vec, axis=0), size, dt)
    return glob, move


def pair_flow(prev_gray: np.ndarray, gray: np.ndarray, dt: float, params: MotionParams) -> PairMotion:
    """Total / camera / local motion between two gray uint8 frames dt seconds apart."""
    if dt <= 0:
        raise ValueError(f"dt must be > 0 s, got {dt}")
    a = _analysis_size(prev_gray, params.max_short_side)
    b = _analysis_size(gray, params.max_short_side)
    if params.normalize_brightness:
        a, b = _match_brightness(a, b)
    flow = _flow(a, b, params)  # (H, W, 2) px
    h, w = flow.shape[:2]
    my, mx = int(h * params.border_frac), int(w * params.border_frac)
    ys, xs = np.mgrid[my : h - my : params.grid_step, mx : w - mx : params.grid_step]
    ys, xs = ys.ravel(), xs.ravel()
    # flow is only observable where there is texture (aperture problem)
    if params.min_texture > 0:
        keep = _texture(a, params.grid_step)[ys, xs] >= params.min_texture
        if keep.sum() < 3:  # nothing observable: a black or blank pair
            return PairMotion(total=0.0, camera=0.0, local=0.0)
        ys, xs = ys[keep], xs[keep]
    pts = np.stack([xs, ys], axis=1).astype(np.float32)  # (N, 2) x, y
    vec = flow[ys, xs].astype(np.float32)  # (N, 2) px
    glob, move = camera_fit(pts, vec, (w, h), dt, params)  # (N, 2) px, the model's parameters
    scale = 1.0 / (dt * float(np.hypot(h, w)))  # px -> diagonals per second
    return PairMotion(
        total=float(np.linalg.norm(vec, axis=1).mean() * scale),
        camera=float(np.linalg.norm(glob, axis=1).mean() * scale),
        local=float(np.linalg.norm(vec - glob, axis=1).mean() * scale),
        move=move,
    )


def aggregate_motion(pairs: Sequence[PairMotion], params: MotionParams) -> dict:
    """Clip motion columns: means over the clip's sample pairs (None when it has none)."""
    if not pairs:
        return {"motion": None, "camera_motion": None, "local_motion": None, "static": None}
    motion = float(np.mean([p.total for p in pairs]))
    return {
        "motion": motion,
        "camera_motion": float(np.mean([p.camera for p in pairs])),
        "local_motion": float(np.mean([p.local for p in pairs])),
        "static": bool(motion < params.static_threshold),
    }
