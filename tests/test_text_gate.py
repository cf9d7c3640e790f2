"""The text measure's detector skips (curation/text_area.py): the same input tensor as rapidocr's, the median of three
from two keyframes when they agree, and a repeated picture measured once; each against the ungated detector."""
import dataclasses

import numpy as np
import pytest

from curation.text_area import TextAreaMeter, TextAreaParams, same_picture
from tests.test_text_area import _outlined, _photo, _slide, _subtitles, _title

UNGATED = TextAreaParams(median_agree_frac=None, same_picture_diff=None, zero_check_short_side=None)


@pytest.fixture(scope="module")
def meters():
    return TextAreaMeter(UNGATED), TextAreaMeter(TextAreaParams())


def _subtitles_on(name: str) -> np.ndarray:
    """_subtitles()'s two lines on another photo."""
    img = _outlined(_photo(name), "I told you we should never", (70, 200), 0.65)
    return _outlined(img, "have come back to this place.", (70, 226), 0.65)


def _runs(meter, frames, small: bool = False):
    """(value, full-size detector runs), and the zero checks at the small size when `small`."""
    before, checks = meter.detector_runs, meter.zero_checks
    value = meter.clip_text_area(frames)
    runs = meter.detector_runs - before
    return (value, runs, meter.zero_checks - checks) if small else (value, runs)


def test_detector_input_is_rapidocrs_preprocessing(meters):
    ungated, _ = meters
    for frame in (_subtitles(), _photo("chelsea")[:200, :333]):  # 333 px: rapidocr rounds to multiples of 32
        want = ungated._det.get_preprocess()(np.ascontiguousarray(frame[..., ::-1]))
        got = ungated.detector_input(frame)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-6
    small = np.ascontiguousarray(_subtitles()[::3, ::3])  # 86x152: a tiny video's keyframe
    assert ungated.detector_input(small).shape[2] == 256  # the full measure scales it up to the detector's size,
    assert ungated.detector_input(small, 128).shape[2:] == (128, 224)  # the zero check to its own


def test_same_picture_tells_noise_from_a_subtitle():
    photo = _photo("coffee")
    noisy = np.clip(photo.astype(np.int16) + np.random.default_rng(0).integers(-2, 3, photo.shape), 0, 255).astype(np.uint8)
    assert same_picture(photo, noisy, 2.5)
    assert not same_picture(photo, _subtitles(), 2.5)  # the same photo with two lines of text: their tiles differ
    assert not same_picture(photo, photo[:, :-2], 2.5)  # another size is another picture


def test_two_agreeing_keyframes_decide_the_median(meters):
    ungated, ours = meters
    frames = [_subtitles(), _subtitles_on("astronaut"), _slide()]  # text in the middle one: the first is measured too
    value, runs = _runs(ours, frames)
    assert runs == 2 and value == pytest.approx(ungated.clip_text_area(frames), abs=TextAreaParams().median_agree_frac / 2)


def test_no_text_in_the_middle_and_an_outer_keyframe_is_checked_small(meters):
    ungated, ours = meters
    frames = [_photo("astronaut"), _photo("rocket"), _slide()]  # two without text, then a slide
    value, runs, checks = _runs(ours, frames, small=True)
    assert (runs, checks) == (1, 1) and value == ungated.clip_text_area(frames) == 0.0
    frames = [_title(), _photo("coins"), _outlined(_photo("coffee"), "APOLLO", (110, 140), 2.2, 4)]  # text in both outer ones only: the median is theirs
    value, runs, checks = _runs(ours, frames, small=True)
    assert checks == 2 and value == pytest.approx(ungated.clip_text_area(frames)) and value > 0.05


def test_disagreeing_keyframes_measure_the_third(meters):
    ungated, ours = meters
    frames = [_title(), _subtitles(), _photo("coins")]
    value, runs = _runs(ours, frames)
    assert runs == 3 and value == pytest.approx(ungated.clip_text_area(frames))


def test_a_repeated_picture_is_measured_once(meters):
    ungated, ours = meters
    frames = [_slide()] * 3  # a static page of text: the slide is far above the too_much_text threshold
    value, runs = _runs(ours, frames)
    assert runs == 1 and value == pytest.approx(ungated.clip_text_area(frames)) and value > 0.2


def test_the_skips_can_be_switched_off(meters):
    ungated, _ = meters
    _, runs = _runs(ungated, [_slide()] * 3)
    assert runs == 3
    for how in ("mean", "max"):  # only the median is bounded by two of its values
        m = TextAreaMeter(dataclasses.replace(TextAreaParams(), aggregate=how, same_picture_diff=None))
        assert _runs(m, [_photo("astronaut"), _photo("rocket"), _slide()])[1] == 3
