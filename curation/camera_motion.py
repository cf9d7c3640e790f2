"""Camera-motion labels (`camera_motion_type`) from the camera model the motion scorer already fits.

curation/motion.py fits a similarity model (shift, rotation, uniform zoom; RANSAC, then a least-squares
refinement on the inliers) to the optical flow of every pair of consecutive analysis samples, inside the
content box. `camera_move` reads that model's parameters; `classify` turns a clip's pairs into one label:

    static      the camera model moves less than `static_speed` (a fixed camera; people may still move in it)
    pan_left    the camera turns left: the picture moves right        (horizontal shift dominates)
    pan_right   the camera turns right: the picture moves left
    tilt_up     the camera tilts up: the picture moves down           (vertical shift dominates)
    tilt_down   the camera tilts down: the picture moves up
    zoom_in     the picture grows about the centre (zoom or dolly in)
    zoom_out    the picture shrinks
    roll        the picture turns about the centre (either way)
    handheld    the camera moves, but no one direction holds over the clip: handheld shake, or a move that
                changes direction (a pan then a tilt, a shake about a still framing)

A diagonal move gets the label of its larger axis. Every component is compared in one unit, frame diagonals
per second of picture motion: the shift at the frame centre as it is, a zoom or roll as the motion it causes
at RADIUS diagonals from the centre (about the mean distance of a pixel from the centre).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LABELS = ("static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "roll", "handheld")
RADIUS = 0.25  # frame diagonals: where a zoom's or a roll's motion is read (a 16:9 pixel is 0.27 from the centre on average)


@dataclass(frozen=True)
class CameraMove:
    """One sample pair's camera model: the flow of the picture, not of the camera (they are opposite)."""

    shift_x: float  # flow at the frame centre, frame diagonals per second; + = picture moves right
    shift_y: float  # same unit; + = picture moves down
    zoom: float  # ln(scale) per second; + = picture grows (zoom in)
    roll: float  # degrees per second; + = picture turns clockwise on screen

    def components(self) -> np.ndarray:
        """(shift_x, shift_y, zoom, roll) as picture motion in frame diagonals per second (see RADIUS)."""
        return np.array([self.shift_x, self.shift_y, self.zoom * RADIUS, math.radians(self.roll) * RADIUS])


@dataclass(frozen=True)
class CameraMotionParams:
    """When a clip's camera moves, and when its move has one direction."""

    static_speed: float = 0.01  # frame diagonals/s: median camera speed below this -> static
    min_directed: float = 0.5  # |median of the largest component| / median camera speed, 0..1, for a directed move
    min_consistency: float = 0.75  # share of sample pairs whose largest component has the clip's sign, 0..1


def camera_move(m: np.ndarray, size: tuple[int, int], dt: float) -> CameraMove:
    """The parameters of a 2x3 similarity matrix m (x' = A x + t, px of a (w, h) frame) over dt seconds."""
    w, h = size
    diag = math.hypot(w, h)
    a, b = float(m[0, 0]), float(m[1, 0])
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    shift = m[:, :2] @ c + m[:, 2] - c  # (2,) px: where the centre goes
    return CameraMove(
        shift_x=float(shift[0]) / (dt * diag),
        shift_y=float(shift[1]) / (dt * diag),
        zoom=math.log(max(math.hypot(a, b), 1e-6)) / dt,
        roll=math.degrees(math.atan2(b, a)) / dt,
    )


def translation_move(shift: np.ndarray, size: tuple[int, int], dt: float) -> CameraMove:
    """A shift-only camera model (the median flow), same units as camera_move."""
    diag = math.hypot(*size)
    return CameraMove(float(shift[0]) / (dt * diag), float(shift[1]) / (dt * diag), 0.0, 0.0)


_DIRECTIONS = (("pan_left", "pan_right"), ("tilt_up", "tilt_down"), ("zoom_in", "zoom_out"), ("roll", "roll"))


def classify(moves: Sequence[CameraMove], p: CameraMotionParams) -> str | None:
    """One label of LABELS for a clip's sample pairs (None when it has none)."""
    if not moves:
        return None
    comps = np.stack([m.components() for m in moves])  # (P, 4) diagonals/s
    speed = float(np.median(np.linalg.norm(comps, axis=1)))
    if speed < p.static_speed:
        return "static"
    med = np.median(comps, axis=0)  # (4,)
    k = int(np.argmax(np.abs(med)))
    directed = abs(float(med[k])) / speed
    consistency = float(np.mean(np.sign(comps[:, k]) == np.sign(med[k])))
    if directed < p.min_directed or consistency < p.min_consistency:
        return "handheld"
    return _DIRECTIONS[k][0 if med[k] > 0 else 1]
