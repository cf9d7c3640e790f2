"""Shot detection on the real test videos against EXPECTED.json, and decode-once."""
import pytest

from curation import decode as decode_mod
from curation.decode import DecodePlan, decode
from curation.scan import ScanParams, scan_video
from curation.split import ShotDetector, Span, SplitParams, clip_spans, split_black_runs


def _shot_starts(path) -> tuple[list[int], int]:
    det = ShotDetector(SplitParams())
    with open(path, "rb") as f:
        result = decode(f, DecodePlan(), det.feed, None)
    return det.shot_starts(), result.num_frames


def _close(found: list[int], truth: list[int], tol: int = 1) -> bool:
    return len(found) == len(truth) and all(abs(a - b) <= tol for a, b in zip(found, truth))


def test_bikes_shot_starts(test_videos, expected):
    starts, n = _shot_starts(test_videos / "bikes.mp4")
    assert n == expected["bikes.mp4"]["frames"]
    assert _close(starts, expected["bikes.mp4"]["shot_starts"]), starts


def test_testvideo_hard_cuts(test_videos, expected):
    starts, _ = _shot_starts(test_videos / "testvideo.mp4")
    for cut in expected["testvideo.mp4"]["hard_cuts"]:
        assert any(abs(s - cut) <= 1 for s in starts), (cut, starts)


@pytest.mark.parametrize("name", ["fades.mp4", "counter.mp4", "bigbuckbunny.mp4", "pedestrians.avi"])
def test_no_false_cuts(test_videos, expected, name):
    starts, n = _shot_starts(test_videos / name)
    assert starts == [0], starts
    assert n == expected[name]["frames"]


def test_counter_is_one_frame_accurate_clip(test_videos):
    r = scan_video(str(test_videos / "counter.mp4"), "counter.mp4", ScanParams(), "t")
    assert not r.errors
    assert [(c["start_frame"], c["end_frame"]) for c in r.clips] == [(0, 30)]  # frames 0..29
    clip = r.clips[0]
    assert clip["start_s"] == pytest.approx(0.0, abs=1e-6)
    assert clip["end_s"] == pytest.approx(3.0, abs=1e-6)  # last frame PTS 2.9 s + one frame


def test_each_video_is_decoded_once(test_videos, monkeypatch):
    """One container open per video, and no second reader behind its back: no OpenCV capture, no fsspec open."""
    import cv2
    import fsspec
    from fsspec.spec import AbstractFileSystem

    opened, captures, fs_opens = [], [], []
    real_open = decode_mod.av.open
    monkeypatch.setattr(decode_mod.av, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: captures.append(a) or real_capture(*a, **k))
    real_fs_open = AbstractFileSystem.open
    monkeypatch.setattr(AbstractFileSystem, "open", lambda self, path, *a, **k: fs_opens.append(path) or real_fs_open(self, path, *a, **k))
    real_fsspec_open = fsspec.open
    monkeypatch.setattr(fsspec, "open", lambda url, *a, **k: fs_opens.append(url) or real_fsspec_open(url, *a, **k))
    r = scan_video(str(test_videos / "bikes.mp4"), "bikes.mp4", ScanParams(), "t")
    assert len(r.clips) == 6 and all(c["motion"] is not None for c in r.clips[:-1])
    assert len(opened) == 1
    assert r.video["decoder_opens"] == 1
    assert captures == [] and [p for p in fs_opens if "bikes" in str(p)] == []


def test_decode_once_check_sees_a_second_reader(test_videos, monkeypatch):
    """The spies above are live: a scorer that reopened the file through OpenCV or fsspec would be caught."""
    import cv2
    import fsspec
    from fsspec.spec import AbstractFileSystem

    captures, fs_opens = [], []
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a, **k: captures.append(a) or real_capture(*a, **k))
    real_fs_open = AbstractFileSystem.open
    monkeypatch.setattr(AbstractFileSystem, "open", lambda self, path, *a, **k: fs_opens.append(path) or real_fs_open(self, path, *a, **k))
    cv2.VideoCapture(str(test_videos / "bikes.mp4")).release()
    with fsspec.open(str(test_videos / "bikes.mp4"), "rb") as f:
        f.read(4)
    assert len(captures) == 1 and any("bikes" in str(p) for p in fs_opens)


def test_long_shots_are_windowed():
    spans = clip_spans([0, 100], num_frames=1000, fps=25.0, max_clip_s=10.0)
    assert [(s.start, s.end, s.reason) for s in spans[:1]] == [(0, 100, "cut")]
    assert all(s.end - s.start <= 250 for s in spans)
    assert spans[-1].end == 1000 and {s.reason for s in spans[1:]} == {"window"}
    assert sum(s.end - s.start for s in spans) == 1000


def test_black_runs_snap_to_detected_cuts():
    """A black run ending 3 frames after a detected cut ends at the cut; runs far from cuts stay as they are."""
    black = [False] * 100
    for i in range(40, 63):
        black[i] = True
    spans = [Span(0, 100, "whole")]
    plain = split_black_runs(spans, black, 10)
    assert [(s.start, s.end) for s in plain] == [(0, 40), (40, 63), (63, 100)]
    snapped = split_black_runs(spans, black, 10, cuts=[60], snap=6)
    assert [(s.start, s.end, s.reason) for s in snapped] == [(0, 40, "whole"), (40, 60, "black"), (60, 100, "whole")]
    assert [(s.start, s.end) for s in split_black_runs(spans, black, 10, cuts=[80], snap=6)] == [(0, 40), (40, 63), (63, 100)]


def test_testvideo_cut_at_394_is_not_moved(test_videos, expected):
    """The fade-in after the deer starts with a cut at 394 (inside near-black frames): the clip starts there, not at 397."""
    det = ShotDetector(SplitParams())
    with open(test_videos / "testvideo.mp4", "rb") as f:
        result = decode(f, DecodePlan(), det.feed, None)
    spans = split_black_runs(clip_spans(det.shot_starts(), result.num_frames, 29.97, 20.0), det.black, round(29.97),
                             det.detected_cuts(), SplitParams().black_snap_frames)
    starts = [s.start for s in spans]
    assert any(abs(s - 394) <= 1 for s in det.detected_cuts()), det.detected_cuts()
    assert any(abs(s - 394) <= 1 for s in starts) and not any(395 < s <= 400 for s in starts), starts
    for cut in expected["testvideo.mp4"]["hard_cuts"]:
        assert cut in starts or cut - 1 in starts or cut + 1 in starts, (cut, starts)
