"""Smoke test of the scan benchmark's measuring functions on one short real file (no timing thresholds)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import scan_bench  # noqa: E402

VIDEOS = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO.parent / "shared" / "data" / "videos"))
SHORT = VIDEOS / "realshort.mp4"  # 1.2 s, 320x240, 36 frames


@pytest.fixture(scope="module")
def files():
    if not SHORT.exists():
        pytest.skip(f"test video {SHORT} not present")
    seconds = scan_bench.probe_duration(str(SHORT))
    assert 1.0 < seconds < 1.5
    return [(str(SHORT), seconds)]


def test_repeated_reaches_the_requested_length(files):
    rep = scan_bench.repeated(files, 10.0)
    assert sum(d for _, d in rep) >= 10.0
    assert sum(d for _, d in rep[:-1]) < 10.0 and set(p for p, _ in rep) == {str(SHORT)}


def test_decode_ours_and_baseline_rates_are_video_seconds_per_wall_second(files):
    a = scan_bench.measure_decode(files, workers=0)
    b = scan_bench.measure_ours_pool(files, workers=1)  # a real 1-process pool: the spawn/pickle path works
    c = scan_bench.measure_baseline(files, workers=0)
    assert a["frames"] == 36 and b["clips"] >= 1 and b["peak_rss_tree_mb"] > 0
    assert sum(b["cpu_s_by_process"].values()) > 0  # the pool worker was seen in /proc
    for m in (a, b, c):
        assert m["video_s"] == round(files[0][1], 2) and m["wall_s"] > 0
        # rate x wall = video seconds, up to the rounding of wall_s (3 decimals) and video_s (2)
        assert m["rate"] * m["wall_s"] == pytest.approx(m["video_s"], abs=m["rate"] * 0.0005 + 0.005), m


def test_farneback_pass_measures_the_pan_in_pixels(tmp_path):
    from _videogen import write_video

    # 1 px/frame at 10 fps, flow between samples at SAMPLE_FPS (2/s): 5 px
    pan = write_video(tmp_path / "pan.mp4", seed=3, width=320, height=180, seconds=3, fps=10, cut=False)
    expected = 10 / scan_bench.SAMPLE_FPS
    assert scan_bench.farneback_pass(str(pan)) == pytest.approx(expected, rel=0.1)


def test_summary_ratios_and_targets():
    runs = [
        {"variant": "a_decode", "round": 0, "rate": 40.0, "wall_s": 1.0, "video_s": 40.0, "peak_rss_tree_mb": 1, "peak_rss_process_mb": 1},
        {"variant": "b_ours_pool", "round": 0, "rate": 10.0, "wall_s": 4.0, "video_s": 40.0, "peak_rss_tree_mb": 1, "peak_rss_process_mb": 1},
        {"variant": "c_baseline", "round": 0, "rate": 4.0, "wall_s": 10.0, "video_s": 40.0, "peak_rss_tree_mb": 1, "peak_rss_process_mb": 1},
    ]
    s = scan_bench.summarise(runs)
    assert s["ratios"]["b_ours_pool/a_decode"] == {"ratio": 0.25, "target": ">= 0.5", "met": False}
    assert s["ratios"]["b_ours_pool/c_baseline"]["ratio"] == 2.5 and s["ratios"]["b_ours_pool/c_baseline"]["met"]
