"""Defect scores (curation/defects.py): each separates a defective input from a clean one, on small synthetic data."""
import numpy as np
import pytest

from curation.content_box import frame_bars
from curation.defects import (
    DefectParams, FrameSignals, blocking_ratio, fade_fraction, fade_ramps, flicker, grid_crop, shake,
)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (luma 40..215), no 8 px structure."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (h // 6 + 2, w // 6 + 2)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w].clip(0, 255)


def _blocky(img: np.ndarray, block: int = 8, dy: int = 0, dx: int = 0) -> np.ndarray:
    """Each block x block tile replaced by its mean (a DC-only transform coder), grid offset by (dy, dx)."""
    out = img.copy()
    h, w = img.shape
    for y in range(-dy % block - block if dy else 0, h, block):
        for x in range(-dx % block - block if dx else 0, w, block):
            ys, xs = slice(max(y, 0), y + block), slice(max(x, 0), x + block)
            out[ys, xs] = img[ys, xs].mean()
    return out


# --------------------------------------------------------------------------- blocking


def test_blocking_ratio_separates_a_dc_only_coder_from_the_clean_picture():
    img = _texture(96, 128)
    clean = blocking_ratio(img.astype(np.uint8))
    blocky = blocking_ratio(_blocky(img).astype(np.uint8))
    assert 0.85 < clean < 1.15  # no grid: steps on boundaries are like steps inside blocks
    assert blocky > 3.0  # inside a DC-only block the luma is flat; every step is on the grid
    # the measure is tied to the grid: the same tiles off the grid by 4 px read as no blocking at all
    off = blocking_ratio(_blocky(img, dy=4, dx=4).astype(np.uint8))
    assert off < 0.5
    assert blocking_ratio(np.zeros((8, 64), np.uint8)) is None  # under two blocks high


def test_grid_crop_leaves_out_letterbox_bars_and_keeps_the_grid():
    pic = _texture(96, 128).astype(np.uint8)
    frame = np.zeros((96 + 2 * 18, 128), np.uint8)  # 18 px bars: the picture starts off the grid
    frame[18:-18] = pic
    crop = grid_crop(frame, 512, bars=frame_bars(frame))
    assert frame_bars(frame) == (18, 18, 0, 0)
    assert crop.shape[0] <= 96 and crop.min() > 0  # no bar rows
    row0 = next(y for y in range(frame.shape[0]) if np.array_equal(frame[y], crop[0]))
    assert row0 % 8 == 0 and row0 >= 18
    assert blocking_ratio(crop) < 1.15
    # bars of 16 px: their edges lie on the grid and would read as blocking
    frame = np.zeros((96 + 2 * 16, 128), np.uint8)
    frame[16:-16] = pic
    assert blocking_ratio(grid_crop(frame, 512, bars=frame_bars(frame))) < 1.15 < 1.5 < blocking_ratio(frame)
    assert grid_crop(np.zeros((1080, 1920), np.uint8)[:, :1000], 512).shape == (512, 512)


# --------------------------------------------------------------------------- flicker


def test_flicker_separates_jumping_brightness_from_smooth_changes():
    t = np.arange(60)
    smooth = 100 + 0.8 * t + 5 * np.sin(t / 9)  # a pan onto a brighter scene
    fade = np.linspace(120, 0, 60)  # a fade is linear: no second difference
    gains = np.where((t // 2) % 2 == 0, 1.0, 0.55)  # brightness toggles every 2 frames
    assert flicker(smooth) < 0.005
    assert flicker(fade) < 0.001
    assert flicker(100 * gains) > 0.2
    flash = smooth.copy()
    flash[30] += 80  # one camera flash: the median ignores it
    assert flicker(flash) < 0.005
    # relative to the mean luma, floored: noise of 1 luma on black is not flicker
    noise = 2 + np.where(t % 2 == 0, 1.0, 0.0)
    assert flicker(noise, floor=16.0) == pytest.approx(2.0 / 16.0)
    assert flicker([10, 20]) is None


# --------------------------------------------------------------------------- shake


def test_shake_is_the_jitter_around_the_camera_path_not_the_pan():
    rng = np.random.default_rng(0)
    n, diag = 50, 100.0
    pan = np.tile([2.0, 0.5], (n, 1))
    jitter = rng.integers(-4, 5, (n + 1, 2)).astype(float)
    shaky = pan + np.diff(jitter, axis=0)  # positions = pan + jitter
    assert shake(pan, 25.0, diag, 0.3) == pytest.approx(0.0, abs=1e-9)
    value = shake(shaky, 25.0, diag, 0.3)
    # RMS 2-D residual of white jitter (std 2.58 px per axis) after a 7-frame quadratic fit (centre weight 1/3):
    # sqrt(2 * 2/3) * 2.58 / 100 = 0.030
    assert 0.022 < value < 0.038
    # an accelerating pan is smooth too
    accel = np.stack([np.linspace(0, 6, n), np.zeros(n)], axis=1)
    assert shake(accel, 25.0, diag, 0.3) == pytest.approx(0.0, abs=1e-9)
    # windows holding an unmeasured step are skipped, not filled with 0 (which would read as a jolt)
    gaps = pan.copy()
    gaps[20] = np.nan
    assert shake(gaps, 25.0, diag, 0.3) == pytest.approx(0.0, abs=1e-9)
    assert shake(pan[:4], 25.0, diag, 0.3) is None
    # under 11.7 fps the 0.3 s window is 3 frames, which a quadratic fits exactly: unmeasured, not 0
    assert shake(shaky, 10.0, diag, 0.3) is None and shake(shaky, 12.0, diag, 0.3) > 0.01


def test_frame_signals_measure_shake_and_flicker_from_bgr_frames():
    p = DefectParams()
    big = np.stack([_texture(200, 300, seed=3)] * 3, axis=-1).astype(np.uint8)
    rng = np.random.default_rng(1)

    def frames(jitter: bool, gain_toggle: bool):
        out = []
        for i in range(40):
            jx, jy = rng.integers(-4, 5, 2) if jitter else (0, 0)
            x, y = 20 + 2 * i + jx, 30 + jy
            f = big[y : y + 72, x : x + 128].astype(np.float32)
            if gain_toggle and (i // 2) % 2:
                f *= 0.55
            out.append(f.round().astype(np.uint8))
        return out

    scores = {}
    for name, (jit, flick) in {"clean": (False, False), "shake": (True, False), "flicker": (False, True)}.items():
        s = FrameSignals(p)
        for i, f in enumerate(frames(jit, flick)):
            s.feed_frame(i, f)
        scores[name] = s.clip_scores(0, 40, [False] * 40, 25.0)
    assert scores["clean"]["shake"] < 0.002 < 0.01 < scores["shake"]["shake"]
    assert scores["clean"]["flicker"] < 0.01 < 0.2 < scores["flicker"]["flicker"]
    assert scores["shake"]["flicker"] < 0.05  # jitter moves content, not brightness
    assert scores["clean"]["fade_frac"] == 0.0 and scores["clean"]["blockiness"] is None  # no sample fed
    assert FrameSignals(DefectParams(enabled=False)).clip_scores(0, 40, [], 25.0) == dict.fromkeys(scores["clean"])
    # 9 frames at 25 fps cannot hold a 0.3 s ramp with a scene frame before it and a black frame after it
    short = FrameSignals(p)
    for i, f in enumerate(frames(False, False)[:9]):
        short.feed_frame(i, f)
    assert short.clip_scores(0, 9, [False] * 9, 25.0)["fade_frac"] is None


# --------------------------------------------------------------------------- fades


def _fade_video():
    """40 frames at luma 100, a 20-frame linear fade out, 30 black, a 15-frame fade in, 30 frames at 90."""
    luma = [100.0] * 40 + list(np.linspace(95, 5, 20)) + [1.0] * 30 + list(np.linspace(6, 90, 15)) + [90.0] * 30
    black = [v < 4 for v in luma]
    return luma, black


def test_fade_ramps_find_fades_into_and_out_of_black():
    luma, black = _fade_video()
    p = DefectParams()
    ramps = fade_ramps(luma, black, 25.0, p)
    assert ramps == [(40, 60), (90, 104)]
    # the picture clip before the black run (the black run is a clip of its own): a third of it fades
    assert fade_fraction(ramps, 0, 60) == pytest.approx(20 / 60)
    assert fade_fraction(ramps, 60, 90) == 0.0  # black is not fade
    assert fade_fraction(ramps, 90, 135) == pytest.approx(14 / 45)  # the 15th frame is at full level


def test_a_cut_to_black_or_a_slow_dimming_is_not_a_fade():
    p = DefectParams()
    cut = [100.0] * 40 + [1.0] * 30
    assert fade_ramps(cut, [v < 4 for v in cut], 25.0, p) == []
    # a scene dimming by 0.2 luma/frame (5 luma/s) before a cut to black
    dim = list(100 - 0.2 * np.arange(40)) + [1.0] * 30
    assert fade_ramps(dim, [v < 4 for v in dim], 25.0, p) == []
    # a fade with repeated frames (12 fps content in 25 fps): pauses are bridged
    steps = np.repeat(np.linspace(95, 5, 10), 2)
    held = [100.0] * 20 + list(steps) + [1.0] * 20
    (a, b), = fade_ramps(held, [v < 4 for v in held], 25.0, p)
    assert b == 40 and a <= 21


# --------------------------------------------------------------------------- through the scan


def test_scan_scores_separate_corpus_defects_from_clean(tmp_path):
    """The defect corpus's own generators, encoded and scanned: each defect raises its score."""
    from curation.defect_corpus import _video
    from curation.sample_data import encode
    from curation.scan import ScanParams, scan_video

    rows = {}
    for kind, crf in (("clean", None), ("flicker", None), ("shake", None), ("fade", None), ("blocky", 48)):
        rng = np.random.default_rng([5, 1])  # clean and blocky: the same frames, two bitrates
        frames, _ = _video("clean" if kind == "blocky" else kind, rng)
        path = tmp_path / f"{kind}.mp4"
        encode(path, frames, **({"crf": crf} if crf else {}))
        clips = scan_video(str(path), path.name, ScanParams(), "t").clips
        rows[kind] = clips[0]  # fade: the clip before the black run
    clean = rows["clean"]
    assert clean["fade_frac"] == 0.0 and clean["flicker"] < 0.01 and clean["shake"] < 0.002
    assert rows["flicker"]["flicker"] > 0.2
    assert rows["shake"]["shake"] > 0.005
    assert rows["fade"]["fade_frac"] > 0.3
    assert clean["blockiness"] < 1.06 < rows["blocky"]["blockiness"]


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "nv12", "gray", "yuv444p", "yuv420p10le", "rgb24", "gbrp"])
def test_luma_plane_is_the_decoded_luma_in_any_pixel_format(fmt):
    """Plane 0 read in place for YUV/grey (padded rows cut off, 10 bits shifted to 8), other formats via swscale."""
    import av
    from av.video.reformatter import VideoReformatter

    from curation.decode import luma_plane

    gray = _texture(36, 50).astype(np.uint8)  # odd width: rows are padded to the line size
    frame = av.VideoFrame.from_ndarray(np.stack([gray] * 3, axis=-1), format="rgb24").reformat(format=fmt)
    ref = frame.reformat(format="gray").to_ndarray().astype(int)
    got = luma_plane(frame, VideoReformatter())
    assert got.dtype == np.uint8 and got.shape == (36, 50)
    # limited-range YUV stores luma in 16..235; swscale's grey is full range: compare up to that scale
    a, b = np.polyfit(got.ravel().astype(float), ref.ravel(), 1)
    assert abs(a - 1) < 0.2 and np.abs(a * got + b - ref).max() <= 3
