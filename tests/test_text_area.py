"""On-screen text area with rapidocr's bundled PP-OCR detector: rendered text against photos without text,
the frame-sized false boxes on natural footage, and the default threshold on real and demo videos."""
import shutil

import av
import cv2
import numpy as np
import pytest
import skimage.data

from curation.text_area import TextAreaMeter, TextAreaParams, TextBox, aggregate_frames, box_is_text_line, covered_fraction
from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import read_table

W, H = 455, 256  # keyframe geometry: short side 256 px (decode.analysis_short_side)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _threshold() -> float:
    """The default too_much_text threshold, as configured."""
    return next(r.max for r in load_config().filters if r.reason == "too_much_text")


@pytest.fixture(scope="module")
def meter():
    return TextAreaMeter()


def _photo(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    return np.ascontiguousarray(cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA))


def _outlined(img, text, org, scale, thickness=1):
    cv2.putText(img, text, org, FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return img


def _subtitles() -> np.ndarray:
    img = _photo("coffee")
    _outlined(img, "I told you we should never", (70, 200), 0.65)
    return _outlined(img, "have come back to this place.", (70, 226), 0.65)


def _title() -> np.ndarray:
    return _outlined(_photo("rocket"), "APOLLO", (110, 140), 2.2, 4)


def _slide() -> np.ndarray:
    img = np.full((H, W, 3), 245, np.uint8)
    cv2.putText(img, "Results on the benchmark", (30, 40), FONT, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    lines = ["- curated clips train faster", "- captions from a VLM", "- on-screen text is filtered",
             "- duplicates removed by pHash", "- aesthetic score from CLIP", "- motion from optical flow"]
    for i, line in enumerate(lines):
        cv2.putText(img, line, (40, 80 + 28 * i), FONT, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    return img


def test_rendered_text_is_found_and_grows_with_the_text(meter):
    subs, title, slide = (meter.frame_text_area(f) for f in (_subtitles(), _title(), _slide()))
    assert 0.03 < subs < title < slide
    assert subs < _threshold() < title  # subtitled footage stays, a title card and a slide are too much text
    assert slide > 2 * _threshold()


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera", "grass", "gravel", "moon", "coins"])
def test_photos_without_text_measure_no_text(meter, name):
    assert meter.frame_text_area(_photo(name)) < 0.01


def test_frame_sized_false_boxes_are_rejected(meter):
    """The trap: the raw detector covers most of a textured photo (coffee, panned in the demo set) with one box."""
    frame = _photo("coffee")
    crop = np.ascontiguousarray(cv2.resize(skimage.data.coffee()[40:328, 0:512], (W, H), interpolation=cv2.INTER_AREA))
    raw = max(covered_fraction(meter.detect(f), W, H) for f in (frame, crop))
    assert raw > 0.5  # what taking the boxes at face value would say
    assert max(meter.frame_text_area(f) for f in (frame, crop)) == 0.0


def test_box_rules():
    p = TextAreaParams()
    line = TextBox(np.array([[10, 10], [210, 10], [210, 30], [10, 30]], np.float32), 0.9)
    assert box_is_text_line(line, W, H, p)
    assert not box_is_text_line(TextBox(line.points, 0.3), W, H, p)  # not confident
    frame = TextBox(np.array([[0, 0], [W, 0], [W, H - 5], [0, H - 5]], np.float32), 0.9)
    assert not box_is_text_line(frame, W, H, p)  # frame-sized
    square = TextBox(np.array([[10, 10], [60, 10], [60, 60], [10, 60]], np.float32), 0.9)
    assert not box_is_text_line(square, W, H, p)  # not a line
    tilted = TextBox(cv2.boxPoints(((200, 100), (200, 20), 30)).astype(np.float32), 0.9)
    assert box_is_text_line(tilted, W, H, p)  # a rotated line is still a line
    # two overlapping boxes count once
    assert covered_fraction([line, line], W, H) == pytest.approx(covered_fraction([line], W, H))
    assert aggregate_frames([0.0, 0.9, 0.05]) == pytest.approx(0.05)  # one odd frame does not decide
    assert aggregate_frames([]) is None


def _frames_of(path, num_frames: int) -> list[np.ndarray]:
    """Frames at 10/50/90% of the file, short side 256 px (the keyframes' geometry)."""
    wanted = set((np.array([0.1, 0.5, 0.9]) * (num_frames - 1)).round().astype(int).tolist())
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i in wanted]
    out = []
    for f in frames:
        s = 256 / min(f.shape[:2])
        out.append(cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA))
    return out


def test_threshold_on_the_shared_videos(meter, test_videos, expected):
    """Natural footage (with and without a small overlay line) stays under the default threshold."""
    values = {name: meter.clip_text_area(_frames_of(test_videos / name, expected[name]["frames"]))
              for name in ("bikes.mp4", "cockatoo.mp4", "carphone_distorted.mp4", "realshort.mp4", "testvideo.mp4")}
    assert all(v < _threshold() for v in values.values()), values
    assert values["testvideo.mp4"] > 0.02  # its copyright line is text, and is found


def test_default_run_measures_every_clip_and_drops_the_text_page(ray_local, demo_data, tmp_path):
    data = tmp_path / "input"  # the page of text (short.mp4) and natural footage whose raw boxes cover the frame (pan_h2)
    data.mkdir()
    for name in ("short.mp4", "pan_h2.mp4", "zoom_in.mp4"):
        shutil.copy(demo_data / name, data / name)
    record = run_pipeline(str(data), str(tmp_path / "out"), load_config(), log=lambda *_: None)
    clips = read_table(str(tmp_path / "out" / "clips"), "clips")
    frac = dict(zip([u.rsplit("/", 1)[-1] for u in clips.column("uri").to_pylist()], clips.column("text_area_frac").to_pylist()))
    assert clips.column("text_area_frac").null_count == 0
    assert frac["short.mp4"] > _threshold() and frac["pan_h2.mp4"] < 0.01 and frac["zoom_in.mp4"] < 0.01
    assert record.counts["drop_reasons"].get("too_much_text") == 1
    assert record.counts["text"]["clips_measured"] == clips.num_rows
    assert clips.column("caption").null_count == clips.num_rows
    assert any(line.startswith("caption: not configured (") for line in record.not_configured)
    from curation.dashboard.build import build_dashboard

    page = build_dashboard(str(tmp_path / "out"))[1].read_text()
    assert 'id="score-text_area_frac"' in page and "too_much_text" in page


def test_a_bad_keyframe_gives_an_error_for_its_clip_only():
    from pipelines.text_stage import _TextWorker

    worker = _TextWorker(load_config().text.model_dump(), threads=1)
    good = cv2.imencode(".jpg", _title()[..., ::-1])[1].tobytes()
    rows = worker.measure([("a", [good]), ("b", [b"not a jpeg"])])
    assert rows[0]["clip_id"] == "a" and rows[0]["text_area_frac"] > 0.1
    assert rows[1] == {"clip_id": "b", "error": "ValueError: keyframe is not a decodable JPEG (10 bytes)"}
