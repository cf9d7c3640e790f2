"""tests/_bars.py: bar variants put the picture where their truth says, inside bars of the stated colour."""
import os
import sys
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bars import COLOURS, KINDS, variant_names, write_variants  # noqa: E402

VIDEOS = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", Path(__file__).resolve().parents[2] / "shared/data/videos"))


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.int16)


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    src = VIDEOS / "carphone_pristine.mp4"  # 176x144 stored with a 128/117 pixel aspect: shown 192x144
    if not src.exists():
        pytest.skip(f"{src} not present")
    out = tmp_path_factory.mktemp("bars")
    return out, write_variants(src, out, max_s=0.5)


def test_every_variant_is_written_with_its_box(variants):
    out, truth = variants
    assert sorted(truth) == sorted(variant_names("carphone_pristine")) and len(truth) == 1 + len(KINDS) * len(COLOURS)
    plain = truth["carphone_pristine__plain.mp4"]
    assert plain["size"] == [192, 144]  # display geometry: the pixel aspect is applied
    assert truth["carphone_pristine__windowbox_colour.mp4"]["content_box"] == {"x": 24, "y": 18, "w": 192, "h": 144}
    assert truth["carphone_pristine__letterbox_black.mp4"]["size"] == [192, 180]
    assert truth["carphone_pristine__pillarbox_black.mp4"]["content_box"]["x"] == 24
    assert all(t["frames"] == plain["frames"] > 10 for t in truth.values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("colour", list(COLOURS))
def test_bars_hold_the_colour_and_the_box_holds_the_picture(variants, kind, colour):
    out, truth = variants
    t = truth[f"carphone_pristine__{kind}_{colour}.mp4"]
    frame = _first_frame(out / f"carphone_pristine__{kind}_{colour}.mp4")
    assert [frame.shape[1], frame.shape[0]] == t["size"]
    b = t["content_box"]
    inside = np.zeros(frame.shape[:2], bool)
    inside[b["y"]:b["y"] + b["h"], b["x"]:b["x"] + b["w"]] = True
    bars = frame[~inside]
    assert np.abs(bars - np.array(COLOURS[colour])).mean() < 6  # the bars are the colour, give or take the codec
    picture = frame[inside].reshape(b["h"], b["w"], 3)
    plain = _first_frame(out / "carphone_pristine__plain.mp4")
    assert np.abs(picture - plain).mean() < 4  # the picture is the plain copy's, not shifted or scaled
    assert picture.std() > 20  # and it is a picture, not more bar
