"""Hostile inputs: every file with a video extension ends as a video row or an error row with a clear message.

The corpus is generated here (PyAV and a few raw bytes); one pipeline run on
the session Ray cluster covers all of it. Also: bad configs the config tests do
not cover, bounded memory on an 8K file, and the safe-loading audit.
"""
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from _videogen import write_audio_only, write_flat_yuv, write_timebase, write_vfr, write_video
from pipelines.config import ConfigError, load_config
from pipelines.run import run_pipeline
from schemas import read_table

REPO = Path(__file__).resolve().parents[1]
UNICODE_NAME = "ünïcødé clip — 日本 with spaces.mp4"

# name -> what the run must say about it: ("video", None) or ("error", regex on "stage error_type message")
EXPECT = {
    "good.mp4": ("video", None),
    "zero.mp4": ("error", r"probe EmptyFile .*empty \(0 bytes\)"),
    "truncated.mp4": ("video", r"decode FramesMissing decoded \d+ of the 75 frames the container declares"),  # 60% of a faststart mp4
    "truncated.webm": ("video", r"decode FramesMissing decoded \d+\.\d\d s of the 3\.\d\d s the container declares"),  # first half
    "index_missing.mp4": ("error", r"decode DecodeError truncated or index missing"),  # 60 % of an mp4 whose moov is at the end
    "random.mp4": ("error", r"decode DecodeError not a readable media file"),
    "notes.mp4": ("error", r"decode DecodeError not a readable media file"),
    "photo.mp4": ("error", r"decode DecodeError a still image \(jpeg_pipe\), not a video"),
    "picture_png.mp4": ("error", r"decode DecodeError a still image \(png_pipe\), not a video"),
    "audio_only.mp4": ("error", r"decode DecodeError no video stream"),
    "tiny_1x1.avi": ("video", None),
    "huge_8k.mkv": ("video", None),
    "vfr.mp4": ("video", None),
    "rot90.mp4": ("video", None),
    "fps_1e6.mp4": ("video", r"decode ImplausibleFrameRate timestamps claim 1e\+06 frames/s"),
    "one_frame_per_10s.mkv": ("video", None),
    UNICODE_NAME: ("video", None),
    "loop_a.mp4": ("error", r"list Unreadable broken symbolic link or symlink loop"),
    "loop_b.mp4": ("error", r"list Unreadable broken symbolic link or symlink loop"),
    "dangling.mp4": ("error", r"list Unreadable broken symbolic link or symlink loop"),
    "no_permission.mp4": ("unreadable", r"read PermissionError cannot read file"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile") / "in"
    write_video(d / "good.mp4", seed=1)
    (d / "zero.mp4").write_bytes(b"")
    whole = write_video(d.parent / "whole.mp4", seed=2, container_options={"movflags": "faststart"}, seconds=3)
    data = whole.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()
    whole = write_video(d.parent / "whole_moov_last.mp4", seed=2, seconds=2)
    data = whole.read_bytes()
    (d / "index_missing.mp4").write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()
    whole = write_video(d.parent / "whole.webm", seed=3, seconds=3, codec="libvpx", cut=False,
                        options={"deadline": "realtime", "cpu-used": "8"})
    data = whole.read_bytes()
    (d / "truncated.webm").write_bytes(data[: len(data) // 2])
    whole.unlink()
    (d / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 64_000, dtype=np.uint8).tobytes())
    (d / "notes.mp4").write_text("these are meeting notes, not a video\n" * 40)
    img = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8), (0, 0), 2)
    (d / "photo.mp4").write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    (d / "picture_png.mp4").write_bytes(cv2.imencode(".png", img)[1].tobytes())
    (d / "real_picture.png").write_bytes(cv2.imencode(".png", img)[1].tobytes())  # not a video extension: not an input
    write_audio_only(d / "audio_only.mp4")
    write_video(d / "tiny_1x1.avi", seed=3, width=1, height=1, codec="mpeg4", cut=False, seconds=1)  # x264 refuses 1x1
    write_flat_yuv(d / "huge_8k.mkv", 7680, 4320, 3)
    write_vfr(d / "vfr.mp4", seed=4)
    write_video(d / "rot90.mp4", seed=5, rotation=90)
    write_timebase(d / "fps_1e6.mp4", seed=6, time_base=Fraction(1, 1_000_000), step=1, rate=1_000_000)
    write_timebase(d / "one_frame_per_10s.mkv", seed=7, time_base=Fraction(1, 1), step=10, rate=25, n=12)
    write_video(d / UNICODE_NAME, seed=8)
    os.symlink("loop_b.mp4", d / "loop_a.mp4")
    os.symlink("loop_a.mp4", d / "loop_b.mp4")
    os.symlink("nowhere.mp4", d / "dangling.mp4")
    os.symlink("..", d / "parent_loop")  # a directory loop: listing must terminate
    write_video(d / "no_permission.mp4", seed=9)
    os.chmod(d / "no_permission.mp4", 0)
    return d


@pytest.fixture(scope="module")
def hostile_run(corpus, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile_out")
    record = run_pipeline(str(corpus), str(out), load_config(), log=lambda *_: None)
    tables = {n: read_table(str(out / n), n) for n in ("videos", "clips", "errors", "keyframes")}
    return record, tables


def _by_name(table, corpus: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(os.path.relpath(row["uri"], corpus), []).append(row)
    return out


def _can_read(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except PermissionError:
        return False


def test_every_input_is_a_video_or_an_error(hostile_run, corpus):
    record, t = hostile_run
    assert record.status == "succeeded"
    videos, errors = _by_name(t["videos"], corpus), _by_name(t["errors"], corpus)
    assert set(videos) | set(errors) == set(EXPECT)  # nothing missing, nothing extra (the .png is not an input)
    assert record.counts["inputs"] == len(EXPECT)
    for name, rows in errors.items():
        for r in rows:
            assert r["message"] and "\n" not in r["message"] and "Traceback" not in r["message"], (name, r)
            assert r["stage"] != "scan", f"{name}: the scan task itself failed: {r['message']}"


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_each_hostile_input_yields_what_it_should(hostile_run, corpus, name):
    _, t = hostile_run
    kind, pattern = EXPECT[name]
    videos, errors, clips = (_by_name(t[n], corpus) for n in ("videos", "errors", "clips"))
    said = [f"{e['stage']} {e['error_type']} {e['message']}" for e in errors.get(name, [])]
    if kind == "unreadable":  # chmod 000 blocks only non-root users
        kind = "video" if _can_read(corpus / name) else "error"
        pattern = None if kind == "video" else pattern
    if kind == "any":
        kind = "video" if name in videos else "error"
    if kind == "video":
        assert name in videos and name in clips, said
        for c in clips[name]:
            assert c["num_frames"] > 0 and c["duration_s"] > 0 and 0 < c["fps"] <= 1000
        if pattern is None:
            assert not said
    else:
        assert name not in videos and not clips.get(name)
    if pattern:
        assert any(re.search(pattern, s) for s in said), said


def test_rotation_swaps_clip_size(hostile_run, corpus):
    _, t = hostile_run
    (video,) = _by_name(t["videos"], corpus)["rot90.mp4"]
    assert (video["width"], video["height"], video["rotation"]) == (160, 90, 90)  # as stored
    clips = _by_name(t["clips"], corpus)["rot90.mp4"]
    assert {(c["width"], c["height"]) for c in clips} == {(90, 160)}  # as displayed
    keyframes = t["keyframes"].filter(
        __import__("pyarrow.compute", fromlist=["x"]).is_in(t["keyframes"].column("clip_id"),
                                                          value_set=__import__("pyarrow").array([c["clip_id"] for c in clips])))
    assert keyframes.num_rows and all(h > w for w, h in zip(keyframes.column("width").to_pylist(), keyframes.column("height").to_pylist()))


def test_vfr_and_time_base_tricks_give_consistent_spans(hostile_run, corpus):
    _, t = hostile_run
    videos, clips = _by_name(t["videos"], corpus), _by_name(t["clips"], corpus)
    (vfr,) = videos["vfr.mp4"]
    assert vfr["num_frames"] == 45 and abs(vfr["duration_s"] - 2.58 - 1 / vfr["fps"]) < 1e-6  # decoded timestamps, not frame count / rate
    spans = sorted((c["start_frame"], c["end_frame"]) for c in clips["vfr.mp4"])
    assert spans[0][0] == 0 and spans[-1][1] == 45 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    (fake,) = videos["fps_1e6.mp4"]
    assert fake["fps"] == 25.0 and fake["duration_s"] == 2.0  # rebuilt, with an error row saying so
    (slow,) = videos["one_frame_per_10s.mkv"]
    assert abs(slow["fps"] - 0.1) < 1e-9 and all(c["duration_s"] <= 20.0 + 1e-9 for c in clips["one_frame_per_10s.mkv"])


def test_tiny_and_huge_frames(hostile_run, corpus):
    _, t = hostile_run
    clips = _by_name(t["clips"], corpus)
    assert {(c["width"], c["height"]) for c in clips["tiny_1x1.avi"]} == {(1, 1)}
    assert all(c["motion"] is None for c in clips["tiny_1x1.avi"])  # no measurable flow in one pixel
    assert {(c["width"], c["height"]) for c in clips["huge_8k.mkv"]} == {(7680, 4320)}


# Peak RSS from VmHWM: ru_maxrss survives fork+exec, so a child of this (large) pytest
# process would report the parent's peak; VmHWM belongs to the new address space.
_MEASURE = """
import json, re, sys
from curation.scan import ScanParams, scan_video
def hwm_mib():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
base = hwm_mib()
r = scan_video(sys.argv[1], "x", ScanParams(), "mem")
print(json.dumps({"base_mib": base, "peak_mib": hwm_mib(), "clips": len(r.clips), "errors": len(r.errors)}))
"""


def _peak_rss(path: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_memory_stays_bounded_on_8k_frames(corpus):
    """Peak RSS of a process scanning 7680x4320 frames: one decoded frame is ~50 MB (yuv420p), and
    decoder threads are capped so frames in flight fit 128 MiB whatever the core count."""
    small, huge = _peak_rss(corpus / "good.mp4"), _peak_rss(corpus / "huge_8k.mkv")
    print(f"peak RSS: 160x90 {small['peak_mib']:.0f} MiB, 7680x4320 {huge['peak_mib']:.0f} MiB (after imports {huge['base_mib']:.0f} MiB)")
    assert huge["clips"] == 1 and huge["errors"] == 0
    assert huge["peak_mib"] - small["peak_mib"] < 600  # measured ~250 MiB: a few frames, not the whole video


# --- bad configs not covered by tests/test_config.py ---------------------------------------------

@pytest.mark.parametrize(
    "text, key",
    [
        ("output:\n  videos_per_part: 0\n", "output.videos_per_part"),
        ("output:\n  storage_options: [a, b]\n", "output.storage_options"),
        ("stages:\n  probe_split_score: {max_retries: -1}\n", "stages.probe_split_score.max_retries"),
        ("stages:\n  probe_split_score: {num_cpus: lots}\n", "stages.probe_split_score.num_cpus"),
        ("stages:\n  probe_split_score: {retries: 3}\n", "stages.probe_split_score.retries"),
        ("ray:\n  num_cpus: 0\n", "ray.num_cpus"),
        ("input:\n  extensions: []\n", "input.extensions"),
        ("decode:\n  sample_fps: 1000\n", "decode.sample_fps"),
        ("quality:\n  near_black_luma: 300\n", "quality.near_black_luma"),
        ("aesthetic:\n  frames_at: [0.5, 1.5]\n", "aesthetic.frames_at"),
        ("aesthetic:\n  device: tpu\n", "aesthetic.device"),
        ("filters:\n  - {column: motion, min: 0.5, max: 0.1, reason: odd}\n", "filters.0"),
        ("filters:\n  - {column: motion, min: 0.1, reason: Bad Reason}\n", "filters.0.reason"),
        ("dedup:\n  no_such_knob: 1\n", "dedup"),
        ("aesthetic:\n  head_checkpoint: /nonexistent/head.safetensors\n", "aesthetic.head_checkpoint"),
        ("- just\n- a list\n", "mapping"),
        ("split: [unclosed\n", "not valid YAML"),
        ("decode: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),  # safe_load refuses tags
    ],
)
def test_more_bad_configs_name_the_key(tmp_path, text, key):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(p)


# --- safe loading audit ----------------------------------------------------------------------------

def _source_files(*packages: str):
    for pkg in packages:
        yield from (REPO / pkg).rglob("*.py")


def test_no_shell_strings_in_library_code():
    bad = []
    for f in _source_files("pipelines", "curation", "training", "schemas"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput", line):
                bad.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert not bad, "shell command strings:\n" + "\n".join(bad)


def test_yaml_and_weights_load_safely():
    bad = []
    for f in _source_files("pipelines", "curation", "training", "schemas"):
        text = f.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            if re.search(r"yaml\.(load|load_all|unsafe_load|full_load)\(", line) and "safe_load" not in line:
                bad.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
            if re.search(r"pickle\.loads?\(|marshal\.loads?\(", line):
                bad.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    # model weights and checkpoints: safetensors or torch.load(weights_only=True), never pickle
    for f in _source_files("curation", "pipelines", "training"):
        text = f.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start(): text.find(")", text.find("weights_only", m.start())) + 1]
            if "weights_only=True" not in call[:400]:
                bad.append(f"{f.relative_to(REPO)}: torch.load without weights_only=True")
    assert not bad, "unsafe loading:\n" + "\n".join(bad)


def test_unlistable_subfolder_becomes_an_error_not_a_silent_gap(tmp_path, monkeypatch):
    """A folder we may not list (chmod 000 for a non-root user) is reported; root cannot be denied, so the
    listing error is injected at the filesystem layer."""
    from fsspec.implementations.local import LocalFileSystem

    from curation.sources import list_videos

    write_video(tmp_path / "in" / "ok.mp4", seed=11)
    write_video(tmp_path / "in" / "private" / "hidden.mp4", seed=12)
    real_ls = LocalFileSystem.ls

    def ls(self, path, detail=False, **kw):
        if str(path).rstrip("/").endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_ls(self, path, detail=detail, **kw)

    monkeypatch.setattr(LocalFileSystem, "ls", ls)
    videos, skipped = list_videos(str(tmp_path / "in"), [".mp4"])
    assert [v.relpath for v in videos] == ["ok.mp4"]
    assert skipped == [(str(tmp_path / "in" / "private"), "cannot list folder: Permission denied")]
