"""Truncated files: found by the decoded end time where the container has no frame count (WebM), and an MP4 cut
before its index says so."""
import re

from _videogen import write_video
from curation.scan import ScanParams, _time_missing, scan_video


def _errors(r) -> list[str]:
    return [f"{e['stage']} {e['error_type']} {e['message']}" for e in r.errors]


def test_first_half_of_a_webm_is_reported(tmp_path):
    whole = write_video(tmp_path / "whole.webm", seed=1, width=96, height=64, seconds=4, codec="libvpx", cut=False,
                        options={"deadline": "realtime", "cpu-used": "8"})
    half = tmp_path / "half.webm"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    full = scan_video(str(whole), "whole.webm", ScanParams(), "t")
    assert full.video["num_frames_meta"] is None  # WebM carries no frame count: the old check could not see it
    assert not full.errors, _errors(full)
    r = scan_video(str(half), "half.webm", ScanParams(), "t")
    assert r.video is not None and r.clips  # the decoded part is still processed
    msgs = _errors(r)
    assert any(re.match(r"decode (FramesMissing|PartialDecode) ", m) for m in msgs), msgs
    hit = [m for m in msgs if m.startswith("decode FramesMissing")]
    if hit:  # the usual case: the prefix decodes cleanly, only the end time tells
        assert re.search(r"decoded \d+\.\d\d s of the 4\.\d\d s the container declares", hit[0]), hit


def test_mp4_without_its_index_says_truncated_or_index_missing(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", seed=2, seconds=2)  # no faststart: the 'moov' index is at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    r = scan_video(str(cut), "cut.mp4", ScanParams(), "t")
    assert r.video is None
    msgs = _errors(r)
    assert len(msgs) == 1 and msgs[0].startswith("decode DecodeError truncated or index missing"), msgs
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 5000)
    assert "index missing" not in _errors(scan_video(str(junk), "junk.mp4", ScanParams(), "t"))[0]


def test_time_tolerance():
    assert _time_missing(None, 3.0) == 0.0
    assert _time_missing(10.0, 9.5) == 0.0  # rounding, audio a little longer than the picture
    assert _time_missing(10.0, 5.0) == 5.0
    assert _time_missing(100.0, 96.0) == 0.0 and _time_missing(100.0, 94.0) == 6.0
