"""Non-square pixels: a 704x576 broadcast frame with SAR 16:11 is analysed at its 16:9 display aspect."""
from fractions import Fraction

import numpy as np
import pytest

from curation.scan import ScanParams, scan_video
from tests._audiogen import write_sar
from tests._videogen import texture


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 16:9 picture stored anamorphic (704x576, SAR 16:11) and with square pixels (1024x576)."""
    d = tmp_path_factory.mktemp("sar")
    picture = texture(11, 576, 1024)
    picture[:, 500:524] = 255  # a vertical bar at the centre: its width shows any squash
    anamorphic = write_sar(d / "pal_16x9.mp4", 704, 576, Fraction(16, 11), picture=picture)
    square = write_sar(d / "square.mp4", 1024, 576, None, picture=picture)
    squashed = write_sar(d / "squashed.mp4", 704, 576, None, picture=picture)  # same pixels, no SAR flag
    return [scan_video(str(p), p.name, ScanParams(), "t") for p in (anamorphic, square, squashed)]


def test_sample_and_display_aspect_recorded(pair):
    v = pair[0].video
    assert v["width"] == 704 and v["height"] == 576  # as stored
    assert v["sar"] == pytest.approx(16 / 11)
    assert (v["display_width"], v["display_height"]) == (1024, 576)
    assert v["display_aspect"] == pytest.approx(16 / 9, rel=1e-3)
    assert pair[2].video["sar"] == 1.0 and pair[2].video["display_aspect"] == pytest.approx(704 / 576)
    assert (pair[0].clips[0]["width"], pair[0].clips[0]["height"]) == (1024, 576)


def test_keyframes_at_display_geometry(pair):
    anamorphic, square, squashed = ([k for k in r.keyframes] for r in pair)
    w, h = anamorphic[0]["width"], anamorphic[0]["height"]
    assert h == 256 and w / h == pytest.approx(16 / 9, abs=0.01)
    assert (w, h) == (square[0]["width"], square[0]["height"])
    assert squashed[0]["width"] / squashed[0]["height"] == pytest.approx(704 / 576, abs=0.01)
    import cv2

    a, s = (cv2.imdecode(np.frombuffer(k[0]["jpeg"], np.uint8), cv2.IMREAD_GRAYSCALE).astype(float) for k in (anamorphic, square))
    assert np.abs(a - s).mean() < 6  # same pixels as the square-pixel copy, up to compression
    assert pair[0].clips[0]["phash"] is not None
