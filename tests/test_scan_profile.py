"""The scan's per-component CPU tally (ScanResult.cpu_s) and the scan bench's profile built on it (no timing thresholds)."""
import dataclasses
import time

import pytest

from tests.test_bench_smoke import SHORT, scan_bench  # the bench's import path and its short real file
from curation.scan import CPU_COMPONENTS, scan_video


@pytest.fixture(scope="module")
def short():
    if not SHORT.exists():
        pytest.skip(f"test video {SHORT} not present")
    return str(SHORT)


def test_components_add_up_to_the_calls_process_cpu(short):
    params = scan_bench.pipeline_scan_params()
    scan_video(short, "warm", params, "t")  # first-call imports outside the comparison
    c = time.process_time()
    r = scan_video(short, "realshort.mp4", params, "t")
    spent = time.process_time() - c
    assert tuple(r.cpu_s) == CPU_COMPONENTS and all(v >= 0 for v in r.cpu_s.values())
    for k in ("decode", "frame_convert", "shot_detector", "defects", "flow", "quality", "phash", "jpeg"):
        assert r.cpu_s[k] > 0, k
    assert sum(r.cpu_s.values()) == pytest.approx(spent, abs=0.02)  # "decode" is the remainder: nothing is counted twice


def test_a_component_switched_off_costs_nothing(short):
    params = scan_bench.pipeline_scan_params()
    off = dataclasses.replace(params, audio=dataclasses.replace(params.audio, enabled=False),
                              defects=dataclasses.replace(params.defects, enabled=False))
    r = scan_video(short, "realshort.mp4", off, "t")
    assert r.cpu_s["audio_vad"] == 0 and r.cpu_s["defects"] == 0 and r.cpu_s["flow"] > 0


def test_profile_reports_every_component_commit_and_text(short):
    p = scan_bench.measure_profile([(short, scan_bench.probe_duration(short))] * 2)
    assert set(p["cpu_s"]) == {*CPU_COMPONENTS, "commit", "text"}
    assert p["clips"] >= 2 and p["cpu_s"]["commit"] > 0 and p["cpu_s"]["text"] > 0
    assert p["ocr_s_per_clip_median"] > 0 and p["decode_alone_cpu_s"] > 0
    table = scan_bench.profile_table(p)
    assert all(k in table for k in p["cpu_s"]) and "total" in table
