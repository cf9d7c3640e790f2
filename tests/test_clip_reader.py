"""The seeking clip reader: bit-identical to sequential decoding on every shared video; display geometry; fsspec; fps."""
import hashlib
import logging
import random
import shutil
from fractions import Fraction

import av
import fsspec
import numpy as np
import pytest

from _barred_video import write_barred
from _geometry_videos import disk, quadrants, write_non_square, write_rotated, write_vfr_reordered
from conftest import TEST_VIDEOS
from training.video_frames import (
    CropBox, DisplayFrames, clear_frame_tables, read_clip, read_frames, sample_aspect_ratio,
)

SHARED = sorted(p.name for p in TEST_VIDEOS.glob("*") if p.suffix in (".mp4", ".avi", ".mkv", ".mov", ".webm"))
NOT_SEEKABLE = {"pedestrians.avi": "B-frames with timestamps in decode order"}  # AVI: decode-order pts


def _digest(rgb: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).digest()


def keyframes(path) -> tuple[int, list[int]]:
    """Frame count and keyframe indices from the demuxer's packet flags (rank of each keyframe's pts)."""
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
    order = sorted(pts for pts, _ in packets)
    return len(order), sorted(order.index(pts) for pts, key in packets if key)


def sequential_reference(path, keep: set[int] | None = None) -> list[bytes | None]:
    """Digest of each frame (those in `keep`, else all) by plain sequential decoding: what a decoded-frame index means."""
    digests = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        display = DisplayFrames(sample_aspect_ratio(s))
        for i, frame in enumerate(c.decode(s)):
            digests.append(_digest(display(frame)) if keep is None or i in keep else None)
    return digests


def spans(n: int, keys: list[int], rng: random.Random, count: int = 8) -> list[tuple[int, int]]:
    """Edges (first, last frame, around keyframes) and random spans of 1..12 frames."""
    out = [(0, 1), (n - 1, n), (max(0, n - 5), n)]
    for k in keys[1:4]:
        out += [(k - 1, k + 1), (k, min(n, k + 3))]
    for _ in range(count):
        a = rng.randrange(n)
        out.append((a, min(n, a + rng.randint(1, 12))))
    return out


@pytest.mark.parametrize("name", SHARED)
def test_seek_is_identical_to_sequential_decoding(name, test_videos):
    path = test_videos / name
    n, keys = keyframes(path)
    # the fallback path is plain sequential decoding: a few spans suffice there
    todo = spans(n, keys, random.Random(name), count=2 if name in NOT_SEEKABLE else 6)
    ref = sequential_reference(path, keep={i for a, b in todo for i in range(a, b)})
    assert len(ref) == n
    for a, b in todo:
        r = read_clip(str(path), a, b)
        assert r.indices == list(range(a, b))
        assert [_digest(f) for f in r.frames] == ref[a:b], f"{name} [{a}, {b}) differs from sequential decoding"
        if name in NOT_SEEKABLE:
            assert not r.seeked and NOT_SEEKABLE[name] in r.fallback_reason
        else:
            assert r.seeked, f"{name} [{a}, {b}) fell back: {r.fallback_reason}"
            key = max(k for k in keys if k <= a)  # decoding starts at the keyframe, not at the file's start
            assert r.decoded_frames <= (b - key) + 8


@pytest.mark.parametrize("ext", ["mkv", "ts"])
def test_other_containers_seek_exactly(tmp_path, test_videos, ext):
    # the same H.264 packets in Matroska (cue index) and MPEG-TS (byte seeks that may land past the keyframe)
    path = tmp_path / f"bikes.{ext}"
    with av.open(str(test_videos / "bikes.mp4")) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    n, keys = keyframes(path)
    todo = spans(n, keys, random.Random(ext), count=4)
    ref = sequential_reference(path, keep={i for a, b in todo for i in range(a, b)})
    for a, b in todo:
        r = read_clip(str(path), a, b)
        assert r.seeked, r.fallback_reason
        assert [_digest(f) for f in r.frames] == ref[a:b], f"{ext} [{a}, {b}) differs from sequential decoding"


def test_fallback_is_logged_once_per_file(test_videos, caplog):
    clear_frame_tables()
    with caplog.at_level(logging.WARNING, logger="training.video_frames"):
        for a in (700, 10, 300):
            assert not read_clip(str(test_videos / "pedestrians.avi"), a, a + 2).seeked
    assert sum("cannot seek exactly" in r.message for r in caplog.records) == 1


def test_variable_frame_rate_with_b_frames(tmp_path):
    path = write_vfr_reordered(tmp_path / "vfr.mp4", n=60, keyint=8)
    ref, (n, keys) = sequential_reference(path), keyframes(path)
    assert n == len(ref) == len(set(ref)) == 60 and len(keys) >= 6
    for a, b in spans(60, keys, random.Random(1), count=12):
        r = read_clip(str(path), a, b)
        assert r.seeked and [_digest(f) for f in r.frames] == ref[a:b]
    # a span of 3 gaps (20 + 40 + 120 ms) per 3 frames: 15 frames over 14 gaps
    r = read_clip(str(path), 0, 15)
    assert r.fps == pytest.approx(14 / (4 * 0.18 + 0.02 + 0.04), rel=1e-6)


def test_resample_to_target_fps(test_videos):
    r = read_clip(str(test_videos / "counter.mp4"), 0, 30, fps=5.0)  # 10 fps source
    assert r.indices == list(range(0, 30, 2)) and r.fps == 5.0 and r.frames.shape == (15, 1080, 1920, 3)
    assert read_clip(str(test_videos / "counter.mp4"), 3, 6, fps=50.0).fps == pytest.approx(10.0)


def test_read_frames_any_order_and_repeats(test_videos):
    f = read_frames(str(test_videos / "carphone_pristine.mp4"), [90, 7, 90])
    g = read_frames(str(test_videos / "carphone_pristine.mp4"), [7, 90])
    assert (f[0] == f[2]).all() and (f[0] == g[1]).all() and (f[1] == g[0]).all() and not (f[0] == f[1]).all()
    with pytest.raises(ValueError, match="stream ended"):
        read_frames(str(test_videos / "carphone_pristine.mp4"), [119, 120])


def test_fsspec_uri_reads_the_same_frames(test_videos):
    src = test_videos / "bikes.mp4"  # keyframes at 0, 30, 76, 137, 187, 242
    with fsspec.open("memory://reader-test/bikes.mp4", "wb") as f, open(src, "rb") as g:
        shutil.copyfileobj(g, f)
    remote = read_clip("memory://reader-test/bikes.mp4", 140, 150)
    local = read_clip(str(src), 140, 150)
    assert remote.seeked and remote.decoded_frames <= 20
    assert (remote.frames == local.frames).all()


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_is_read_upright(tmp_path, rotation):
    upright = quadrants(48, 32)  # portrait card: stored turned, with a display matrix that turns it back
    path = write_rotated(tmp_path / f"rot{rotation}.mp4", rotation, upright)
    with av.open(str(path)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == ((48, 32) if rotation % 180 else (32, 48))
    frames = read_clip(str(path), 0, 3).frames
    assert frames.shape == (3, 48, 32, 3)
    for y, x, colour in ((12, 8, 0), (12, 24, 1), (36, 8, 2), (36, 24, 3)):
        assert np.abs(frames[0, y, x].astype(int) - quadrants(48, 32)[y, x]).max() < 12, (rotation, y, x, colour)


def test_non_square_pixels_are_read_at_display_aspect(tmp_path):
    # a PAL-style frame: 176x144 stored, pixels 16:11 wide, so it shows as 256x144; a disk must come out round
    path = write_non_square(tmp_path / "sar.mp4", disk(144, 256, 50), stored_width=176, sar=Fraction(16, 11))
    with av.open(str(path)) as c:
        assert c.streams.video[0].width == 176 and c.streams.video[0].sample_aspect_ratio == Fraction(16, 11)
    f = read_clip(str(path), 0, 3).frames[1]
    assert f.shape == (144, 256, 3)
    ys, xs = np.nonzero(f[..., 0] > 128)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width - height) <= 3 and abs(height - 101) <= 3  # round, at its drawn size


def test_content_box_crops_the_frames_at_display_geometry(tmp_path):
    """A rotated, windowboxed clip: the box is in upright display px; seek and sequential reads crop alike."""
    path = write_barred(tmp_path / "wb.mp4", seed=3, top=10, left=14, rgb=(40, 70, 160), rotation=90)
    full = read_clip(str(path), 4, 9).frames  # (5, 188, 110, 3): stored 188x110, shown upright
    assert full.shape == (5, 188, 110, 3)
    box = CropBox(x=10, y=14, w=90, h=160, frame_w=110, frame_h=188)
    got = read_clip(str(path), 4, 9, box=box).frames
    assert got.shape == (5, 160, 90, 3) and np.array_equal(got, full[:, 14:174, 10:100])
    blue = np.array([40, 70, 160])
    assert np.abs(full[:, :12].astype(int) - blue).mean() < 8  # the bars are there in the full frame...
    for edge in (got[:, 0], got[:, -1], got[:, :, 0], got[:, :, -1]):
        assert np.abs(edge.astype(int) - blue).mean() > 20  # ...and not in the crop
    assert np.array_equal(read_frames(str(path), [8, 4], box=box), got[[4, 0]])
    # a box measured on a frame of another size is scaled to the decoded frame
    assert np.array_equal(read_clip(str(path), 4, 9, box=CropBox(5, 7, 45, 80, 55, 94)).frames, got)


def test_crop_box_from_manifest_row():
    row = {"content_x": 10, "content_y": 14, "content_w": 90, "content_h": 160, "width": 110, "height": 188}
    assert CropBox.from_row(row) == CropBox(10, 14, 90, 160, 110, 188)
    assert CropBox.from_row(dict(row, content_w=None)) is None  # null: an older run, the full frame
    assert CropBox.from_row({"width": 110, "height": 188}) is None  # a manifest without the columns
    assert CropBox(0, 0, 500, 500, 110, 188).slices(188, 110) == (slice(0, 188), slice(0, 110))  # clamped
