"""The content box: bars of one level are found exactly, pictures on plain backgrounds are not mistaken for bars,
and a real video behind letterbox, pillarbox or windowbox bars (black or a colour) scores like the original."""
import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest
import skimage.data

from _bars import write_variants
from curation.content_box import BoxParams, box_columns, clip_box, frame_bars, rotate_bars, scale_bars
from curation.filters import apply_filters

REAL = Path(os.environ.get("VIDCURATE_REAL_VIDEOS", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def _gray(name: str, w: int = 480, h: int = 270) -> np.ndarray:
    return cv2.cvtColor(cv2.resize(getattr(skimage.data, name)(), (w, h), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_RGB2GRAY)


def _framed(pic: np.ndarray, top: int, bottom: int, left: int, right: int, level: int) -> np.ndarray:
    return cv2.copyMakeBorder(pic, top, bottom, left, right, cv2.BORDER_CONSTANT, value=level)


@pytest.mark.parametrize("level", [0, 16, 90, 200])
@pytest.mark.parametrize("bars", [(40, 40, 0, 0), (0, 0, 64, 64), (30, 30, 48, 48), (20, 36, 10, 70)])
def test_bars_of_any_level_are_found_to_the_pixel(bars, level):
    frame = _framed(_gray("coffee"), *bars, level)
    assert frame_bars(frame) == bars


def test_an_inset_picture_on_a_plain_background_is_a_small_box():
    pic = _gray("astronaut", 192, 108)
    frame = _framed(pic, 20, 142, 30, 258, 128)  # 480 x 270, the picture near the top-left corner
    t, b, l, r = frame_bars(frame)
    cols = box_columns((t, b, l, r), 480, 270)
    assert (cols["content_x"], cols["content_y"], cols["content_w"], cols["content_h"]) == (30, 20, 192, 108)
    assert cols["content_frac"] == pytest.approx(192 * 108 / (480 * 270)) and cols["content_frac"] < 0.35


def test_flat_sides_of_a_picture_are_not_bars():
    img = _gray("astronaut")
    sky = img.copy()
    sky[:60] = 3  # a dark sky on one side only
    assert frame_bars(sky) == (0, 0, 0, 0)
    dim = (img * 0.25).astype(np.uint8)  # textured shadows, no bars
    assert frame_bars(dim) == (0, 0, 0, 0)
    assert frame_bars(np.full((270, 480), 40, np.uint8)) is None  # a flat frame has no picture to box
    # digits on a plain background (counter.mp4): no straight edge meets the background, so no box
    digits = np.full((270, 480), 30, np.uint8)
    cv2.putText(digits, "17", (190, 170), cv2.FONT_HERSHEY_SIMPLEX, 3, 235, 8)
    assert frame_bars(digits) is None


def test_strays_on_a_bar_do_not_end_it():
    frame = _framed(_gray("coffee"), 34, 34, 0, 0, 0)
    frame[5, 100:103] = 30  # coding noise
    frame[10, 400:405] = 200  # a few pixels of a logo
    assert frame_bars(frame) == (34, 34, 0, 0)
    assert frame_bars(frame, BoxParams(max_outliers=0.0))[0] < 34


def test_a_clip_box_is_the_largest_picture_over_its_samples():
    # a dark scene eats into the bars in one sample; the other shows where the picture really ends
    assert clip_box([(60, 40, 0, 0), (40, 40, 0, 0), None]) == (40, 40, 0, 0)
    assert clip_box([None, None]) is None
    assert box_columns(None, 640, 360)["content_frac"] == 1.0


def test_bars_follow_rotation_and_scaling():
    # coded (top, bottom, left, right) turned 90 degrees counter-clockwise: the right bar goes on top
    assert rotate_bars((1, 2, 3, 4), 90) == (4, 3, 1, 2)
    assert rotate_bars(rotate_bars((1, 2, 3, 4), 90), -90) == (1, 2, 3, 4)
    assert rotate_bars((1, 2, 3, 4), 180) == (2, 1, 4, 3)
    # a 720 px wide coded frame with 16:11 pixels is 1047 px wide on screen: bars scale, rounded inwards
    assert scale_bars((10, 10, 88, 88), (720, 576), (1047, 576)) == (10, 10, 128, 128)


# --------------------------------------------------------------------------- real footage behind bars

SOURCES = ("chaplin.mp4", "fire2.mp4", "bbb_excerpt_2s.mp4")
PICTURE_SCORES = {"luma_mean": (3.0, 0.0), "luma_p99": (6.0, 0.0), "contrast": (3.0, 0.0), "sharpness": (0.0, 0.15),
                  "motion": (0.003, 0.25), "blockiness": (0.06, 0.0)}  # (absolute, relative) tolerance
# motion: 25 %: behind bars the picture is smaller in the analysis samples, and optical flow at 2 fps reads a
# whip pan (fire2) 20 % slower on it


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    from pipelines.config import load_config
    from pipelines.params import filter_rules, scan_params
    from curation.scan import scan_video

    if not REAL.is_dir():
        pytest.skip(f"real footage not found at {REAL}")
    cfg = load_config()
    out, truth = tmp_path_factory.mktemp("bars"), {}
    for name in SOURCES:
        truth.update(write_variants(REAL / name, out, max_s=4.0))
    clips = {n: scan_video(str(out / n), n, scan_params(cfg), "test").clips for n in truth}
    return truth, clips, filter_rules(cfg)


def _verdicts(clips: list[dict], rules) -> list[list[str]]:
    cols = {r.column for r in rules}
    table = pa.table({**{c: pa.array([row.get(c) for row in clips], pa.float64()) for c in cols},
                      "drop_reasons": pa.array([[] for _ in clips], pa.list_(pa.string())),
                      "kept": pa.array([True] * len(clips))})
    return apply_filters(table, rules).column("drop_reasons").to_pylist()


def test_bar_variants_keep_the_box_scores_and_verdicts_of_the_original(variants):
    truth, clips, rules = variants
    for name, t in truth.items():
        plain = clips[name.split("__")[0] + "__plain.mp4"]
        got = clips[name]
        assert [(c["start_frame"], c["end_frame"]) for c in got] == [(c["start_frame"], c["end_frame"]) for c in plain]
        box = t["content_box"]
        for c, ref in zip(got, plain):
            # the box within 4 px of the truth (the plain copy's own box, e.g. chaplin's pillarbox, shifted by the bars)
            want = (box["x"] + ref["content_x"], box["y"] + ref["content_y"], ref["content_w"], ref["content_h"])
            have = (c["content_x"], c["content_y"], c["content_w"], c["content_h"])
            assert max(abs(a - b) for a, b in zip(have, want)) <= 4, (name, have, want)
            for col, (absolute, relative) in PICTURE_SCORES.items():
                if ref[col] is None:
                    continue
                assert c[col] == pytest.approx(ref[col], abs=absolute, rel=relative), (name, col)
        assert _verdicts(got, rules) == _verdicts(plain, rules), name


def test_the_pillarboxed_film_is_kept_with_a_four_by_three_box(variants):
    truth, clips, rules = variants
    (chaplin,) = clips["chaplin__plain.mp4"]
    assert 1.25 <= chaplin["content_aspect"] <= 1.45
    assert _verdicts([chaplin], rules) == [[]]
