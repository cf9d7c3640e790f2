"""Camera-motion labels: the camera model recovers known moves from flow fields, clips get the right label."""
import math

import numpy as np
import pytest

from curation.camera_motion import LABELS, CameraMotionParams, CameraMove, classify
from curation.motion import MotionParams, camera_fit

W, H, DT = 455, 256, 0.5
DIAG = math.hypot(W, H)
PARAMS = CameraMotionParams()


def _field(shift=(0.0, 0.0), scale=1.0, roll_deg=0.0, outliers=0.0, noise=0.1, seed=0):
    """Grid points (N, 2) and the flow (N, 2) px of a similarity move about the frame centre, with Gaussian
    noise and a share of points replaced by an unrelated motion (an object crossing the frame)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[12:H - 12:8, 22:W - 22:8]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    r = math.radians(roll_deg)
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    moved = c + (pts - c) @ (scale * rot).T + np.array(shift)
    vec = (moved - pts + rng.normal(0, noise, pts.shape)).astype(np.float32)
    k = int(outliers * len(pts))
    if k:
        idx = rng.choice(len(pts), k, replace=False)
        vec[idx] = rng.normal(0, 1, (k, 2)) + np.array([-9.0, 6.0])  # a walking person: a motion of its own
    return pts, vec


@pytest.mark.parametrize("outliers", [0.0, 0.3])
def test_fit_recovers_translation(outliers):
    pts, vec = _field(shift=(12.0, -5.0), outliers=outliers)
    _, move = camera_fit(pts, vec, (W, H), DT, MotionParams())
    assert move.shift_x == pytest.approx(12.0 / (DT * DIAG), rel=0.03)
    assert move.shift_y == pytest.approx(-5.0 / (DT * DIAG), rel=0.05)
    assert abs(move.zoom) < 0.005 and abs(move.roll) < 0.1


@pytest.mark.parametrize("outliers", [0.0, 0.3])
def test_fit_recovers_zoom(outliers):
    pts, vec = _field(scale=1.06, outliers=outliers)
    _, move = camera_fit(pts, vec, (W, H), DT, MotionParams())
    assert move.zoom == pytest.approx(math.log(1.06) / DT, rel=0.03)
    assert abs(move.shift_x) < 0.002 and abs(move.shift_y) < 0.002  # a zoom about the centre does not shift it
    _, out = camera_fit(*_field(scale=1 / 1.06, outliers=outliers), (W, H), DT, MotionParams())
    assert out.zoom == pytest.approx(-math.log(1.06) / DT, rel=0.03)


@pytest.mark.parametrize("outliers", [0.0, 0.3])
def test_fit_recovers_rotation(outliers):
    pts, vec = _field(roll_deg=3.0, shift=(2.0, 0.0), outliers=outliers)
    _, move = camera_fit(pts, vec, (W, H), DT, MotionParams())
    assert move.roll == pytest.approx(3.0 / DT, rel=0.03)  # degrees per second, + = clockwise on screen
    assert move.shift_x == pytest.approx(2.0 / (DT * DIAG), rel=0.1)
    assert abs(move.zoom) < 0.005


def _moves(*comps):
    return [CameraMove(*c) for c in comps]


def test_classify_directions_and_signs():
    v = 0.08  # diagonals/s
    assert classify(_moves(*[(v, 0.01, 0, 0)] * 4), PARAMS) == "pan_left"  # picture moves right: camera turns left
    assert classify(_moves(*[(-v, 0, 0, 0)] * 4), PARAMS) == "pan_right"
    assert classify(_moves(*[(0, v, 0, 0)] * 4), PARAMS) == "tilt_up"  # picture moves down: camera tilts up
    assert classify(_moves(*[(0, -v, 0, 0)] * 4), PARAMS) == "tilt_down"
    assert classify(_moves(*[(0, 0, 0.3, 0)] * 4), PARAMS) == "zoom_in"
    assert classify(_moves(*[(0, 0, -0.3, 0)] * 4), PARAMS) == "zoom_out"
    assert classify(_moves(*[(0, 0, 0, -15.0)] * 4), PARAMS) == "roll"
    assert classify(_moves(*[(0.001, -0.002, 0.001, 0.05)] * 4), PARAMS) == "static"
    assert classify([], PARAMS) is None


def test_classify_inconsistent_motion_is_handheld():
    shake = _moves((0.05, 0.02, 0, 0), (-0.06, 0.01, 0, 0), (0.04, -0.03, 0, 0), (-0.05, -0.02, 0, 0),
                   (0.06, 0.03, 0, 0))
    assert classify(shake, PARAMS) == "handheld"
    # one pair out of five against the pan keeps it a pan only while consistency allows it
    mostly = _moves(*[(0.08, 0, 0, 0)] * 4, (-0.08, 0, 0, 0))
    assert classify(mostly, CameraMotionParams(min_consistency=0.75)) == "pan_left"
    assert classify(mostly, CameraMotionParams(min_consistency=0.9)) == "handheld"
    assert set(LABELS) >= {"static", "handheld", "roll"}


def test_config_defaults_match_params():
    from pipelines.config import load_config
    from pipelines.params import scan_params

    cfg = load_config()
    assert scan_params(cfg).camera == CameraMotionParams(**cfg.camera_motion.model_dump())
    assert CameraMotionParams(**cfg.camera_motion.model_dump()) == CameraMotionParams()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """camera_motion_type of generated clips (demo-set photos, H.264), scanned with the default scan."""
    from curation.sample_data import encode, load_photo, pan_shot, zoom_shot
    from curation.scan import ScanParams, scan_video

    out = tmp_path_factory.mktemp("camera")
    rng = np.random.default_rng(0)
    clips = {
        "pan_right": pan_shot(load_photo("coffee"), 60, -3, 0, rng),  # picture moves left
        "tilt_up": pan_shot(load_photo("astronaut"), 60, 0, 2, rng),  # picture moves down
        "zoom_in": zoom_shot(load_photo("rocket"), 60, 1.01),
        "static": [pan_shot(load_photo("chelsea"), 1, 0, 0, rng)[0]] * 60,
    }
    labels = {}
    for name, frames in clips.items():
        path = out / f"{name}.mp4"
        encode(path, frames)
        res = scan_video(str(path), path.name, ScanParams(), "test")
        labels[name] = [c["camera_motion_type"] for c in res.clips]
    return labels


@pytest.mark.parametrize("name", ["pan_right", "tilt_up", "zoom_in", "static"])
def test_scanned_clip_gets_its_label(scanned, name):
    assert scanned[name] == [name]
