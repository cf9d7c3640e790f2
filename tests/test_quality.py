"""Technical quality: real photos degraded in known ways, bars, and the real test videos."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from _samples import analysis_samples
from curation.content_box import box_columns, clip_box, frame_bars
from curation.quality import QualityParams, aggregate_quality, combined_quality, frame_quality

P = QualityParams()
# Proposed default filter thresholds (see the report of issue 3); the pipeline config owns them.
BLURRY_SHARPNESS_MIN = 2.5
DARK_LUMA_MIN = 30.0
BLACK_FRAC_MAX = 0.5
COLUMNS = {"sharpness", "luma_mean", "clipped_dark_frac", "clipped_bright_frac", "contrast",
           "colorfulness", "black_frac", "luma_p99", "quality"}
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"]


def _photo(name: str, w: int = 480, h: int = 270) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)(), (w, h), interpolation=cv2.INTER_AREA)


def _bars(rgb: np.ndarray):
    return frame_bars(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _clip(*frames: np.ndarray) -> dict:
    """Quality columns and the content box of a clip of these samples, as the scan measures them."""
    q = aggregate_quality([frame_quality(f, P, _bars(f)) for f in frames], P)
    return q | box_columns(clip_box([_bars(f) for f in frames]), frames[0].shape[1], frames[0].shape[0])


@pytest.mark.parametrize("name", PHOTOS)
def test_gaussian_blur_is_blurry_and_lowers_quality(name):
    img = _photo(name)
    blurred = cv2.GaussianBlur(img, (0, 0), 4.0)
    sharp, blur = _clip(img), _clip(blurred)
    assert blur["sharpness"] < BLURRY_SHARPNESS_MIN < sharp["sharpness"]
    assert blur["quality"] < sharp["quality"]


@pytest.mark.parametrize("name", PHOTOS)
def test_underexposed_photo_is_dark(name):
    img = _photo(name)
    dark = np.clip(img.astype(np.float32) * 0.12, 0, 255).astype(np.uint8)
    assert _clip(dark)["luma_mean"] < DARK_LUMA_MIN < _clip(img)["luma_mean"]
    assert _clip(dark)["quality"] < _clip(img)["quality"]


@pytest.mark.parametrize("name", ["astronaut", "coffee", "rocket"])
def test_sharpness_is_resolution_normalised(name):
    # the same picture at two resolutions is analysed at one fixed size
    big = getattr(skimage.data, name)()
    small = cv2.resize(big, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    assert _clip(small)["sharpness"] == pytest.approx(_clip(big)["sharpness"], rel=0.15)


def test_columns_and_ranges():
    q = _clip(_photo("astronaut"), _photo("coffee"))
    assert COLUMNS <= set(q)
    assert 0.0 <= q["quality"] <= 1.0 and 0.0 < q["luma_mean"] < q["luma_p99"] <= 255.0
    assert q["black_frac"] == 0.0 and q["content_frac"] == 1.0
    assert aggregate_quality([], P) == {k: None for k in COLUMNS}


def test_colorfulness_matches_hasler_suesstrunk_by_hand():
    grey = np.full((8, 8, 3), 128, np.uint8)
    assert _clip(grey)["colorfulness"] == pytest.approx(0.0, abs=1e-6)
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, :] = (200, 50, 10)  # top row orange, bottom row blue
    img[1, :] = (20, 40, 220)
    rg = np.array([150, 150, -20, -20], float)
    yb = np.array([115, 115, -190, -190], float)
    by_hand = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    assert frame_quality(img, P)["colorfulness"] == pytest.approx(by_hand, rel=1e-5)


def test_clipping_fractions():
    img = np.full((100, 100, 3), 128, np.uint8)
    img[:10] = 0  # 10% crushed (a stripe at the top only: not a letterbox)
    img[:, :5] = 255  # 5% blown
    q = frame_quality(img, P)
    assert q["clipped_bright_frac"] == pytest.approx(0.05)
    assert q["clipped_dark_frac"] == pytest.approx(0.095)


def _letterbox(img: np.ndarray, top: int, side: int) -> np.ndarray:
    out = img.copy()
    out[:top], out[out.shape[0] - top :] = 0, 0
    out[:, :side], out[:, out.shape[1] - side :] = 0, 0
    return out


def test_letterbox_and_pillarbox_are_measured_and_excluded_from_stats():
    img = _photo("astronaut", 480, 270)
    boxed = _letterbox(img, 34, 0)  # 2 x 34 of 270 rows
    q = _clip(boxed, _letterbox(_photo("coffee", 480, 270), 34, 0))
    assert (q["content_y"], q["content_h"], q["content_w"]) == (34, 270 - 68, 480)
    assert q["content_frac"] == pytest.approx(1 - 68 / 270, abs=0.01)
    # statistics are taken on the picture inside the bars
    inside = frame_quality(boxed, P, _bars(boxed))
    for k in ("luma_mean", "luma_p99", "contrast", "colorfulness"):
        assert inside[k] == pytest.approx(frame_quality(img[34:-34], P)[k], rel=0.02), k
    assert q["clipped_dark_frac"] < _clip(img)["clipped_dark_frac"] + 0.01
    pillar = _clip(_letterbox(img, 0, 60))  # 2 x 60 of 480 columns
    assert pillar["content_frac"] == pytest.approx(1 - 120 / 480, abs=0.01)
    assert pillar["content_aspect"] == pytest.approx(360 / 270, abs=0.01)
    both = _clip(_letterbox(img, 20, 40))
    assert both["content_frac"] == pytest.approx((230 * 400) / (270 * 480), abs=0.01)


def test_dark_scene_is_not_a_letterbox():
    img = _photo("astronaut", 480, 270)
    # dark sky on top only: one-sided, not a bar
    sky = img.copy()
    sky[:60] = 3
    assert _clip(sky)["content_frac"] == 1.0
    # dark bands top and bottom in one sample, picture there in the next: content, not bars
    bands = _letterbox(img, 30, 0)
    assert _clip(bands, img)["content_frac"] == 1.0
    # a dim real photo (textured shadows) has no bars
    dim = np.clip(img.astype(np.float32) * 0.25, 0, 255).astype(np.uint8)
    assert _clip(dim)["content_frac"] == 1.0


def test_black_and_blank_samples():
    black = np.zeros((270, 480, 3), np.uint8)
    black[-30:, 100:300] = 230  # a caption in the bottom 20% does not make it non-black
    slate = np.full((270, 480, 3), 200, np.uint8)
    img = _photo("coffee")
    f = frame_quality(black, P)
    assert f["near_black"] and not frame_quality(img, P)["near_black"]
    assert frame_quality(slate, P)["blank"] and not frame_quality(slate, P)["near_black"]
    q = _clip(black, slate, img, img)
    assert q["black_frac"] == pytest.approx(0.5)
    assert clip_box([None]) is None  # the scan gives a black sample no box: bars are unmeasurable on black


def test_combined_quality_is_monotone():
    base = combined_quality(300.0, 120.0, 0.0, 50.0, P)
    assert combined_quality(30.0, 120.0, 0.0, 50.0, P) < base
    assert combined_quality(300.0, 20.0, 0.0, 50.0, P) < base
    assert combined_quality(300.0, 120.0, 0.3, 50.0, P) < base
    assert combined_quality(300.0, 120.0, 0.0, 10.0, P) < base
    assert combined_quality(1e9, 128.0, 0.0, 1e3, P) == pytest.approx(1.0)


def _rgb_samples(path: Path):
    """(frame_index, rgb) analysis samples of the whole video."""
    return ((i, f) for i, _, f in analysis_samples(path))


def test_compressed_copy_scores_lower(test_videos, expected):
    assert expected["carphone_distorted.mp4"]["near_duplicate_of"] == "carphone_pristine.mp4"
    q = {n: aggregate_quality([frame_quality(f, P) for _, f in _rgb_samples(test_videos / n)], P)
         for n in ("carphone_pristine.mp4", "carphone_distorted.mp4")}
    assert q["carphone_distorted.mp4"]["quality"] < q["carphone_pristine.mp4"]["quality"]
    assert q["carphone_distorted.mp4"]["sharpness"] < q["carphone_pristine.mp4"]["sharpness"]


def test_testvideo_near_black_ranges(test_videos, expected):
    ranges = expected["testvideo.mp4"]["near_black_frames"]
    tol = 10  # fade edges, frames (EXPECTED.json)
    inside = lambda i, m: any(a + m <= i <= b - m for a, b in ranges)  # noqa: E731
    samples = [(i, frame_quality(f, P)) for i, f in _rgb_samples(test_videos / "testvideo.mp4")]
    deep = [f for i, f in samples if inside(i, tol)]
    clear = [f for i, f in samples if not inside(i, -tol)]
    assert len(deep) >= 4 and len(clear) >= 20
    assert all(f["near_black"] for f in deep)
    assert not any(f["near_black"] or f["blank"] for f in clear)
    # the black lead-in [0, 30) is a black clip; the leaf shot [30, 180) is not
    lead = aggregate_quality([f for i, f in samples if i < 30], P)
    leaf = aggregate_quality([f for i, f in samples if 30 <= i < 180], P)
    assert lead["black_frac"] > BLACK_FRAC_MAX and leaf["black_frac"] == 0.0


def test_the_hash_crop_of_dark_borders():
    from curation.hashes import dark_border_box
    from curation.quality import dark_bars

    img = _letterbox(_photo("astronaut", 480, 270), 34, 0)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert dark_bars(gray, 24) == (34, 34, 0, 0)
    assert dark_border_box(gray) == (34, 270 - 34, 0, 480)
    assert _bars(img) == (34, 34, 0, 0)
    # coding noise just above the level in the top bar: the content box lets 2% of a flat line stray,
    # the hash crop (any pixel) keeps the rows from the noise down
    img[5, 100:103] = 30
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert _bars(img) == (34, 34, 0, 0)
    assert dark_border_box(gray)[0] == 5
    assert dark_border_box(np.zeros((10, 12), np.uint8)) == (0, 10, 0, 12)  # all dark: the whole image
