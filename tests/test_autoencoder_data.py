"""The clip-window dataset: split by clip across ranks and workers, corrupt clips skipped and counted."""
import itertools

import torch
from torch.utils.data import DataLoader, default_collate

from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.data import ClipWindows, DataPosition, advance, is_heldout, load_clips
from training.video_frames import read_frames, sample_indices, to_tensor

quiet_torch()


def _clips(tmp_path, test_videos, n=8, corrupt=False):
    video = test_videos / "carphone_pristine.mp4"  # 120 frames, 176x144, 29.97 fps
    spans = [(video, 15 * i, 15 * i + 15, 29.97) for i in range(n)]
    if corrupt:
        bad = tmp_path / "corrupt.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        spans.append((bad, 0, 10, 25.0))
    return load_clips(make_manifest(tmp_path, spans))


def test_sample_indices_resamples_within_span():
    assert sample_indices(10, 20, 25.0, None) == list(range(10, 20))
    idx = sample_indices(0, 100, 30.0, 10.0)
    assert idx[:4] == [0, 3, 6, 9] and idx[-1] < 100 and len(idx) == 34


def test_read_frames_exact_indices(test_videos):
    # counter.mp4: frame k shows k+1; we only check shape/order-preserving lookup here
    f = read_frames(str(test_videos / "counter.mp4"), [5, 2])
    g = read_frames(str(test_videos / "counter.mp4"), [2, 5])
    assert f.shape == (2, 1080, 1920, 3)
    assert (f[0] == g[1]).all() and (f[1] == g[0]).all() and not (f[0] == f[1]).all()


def test_split_across_ranks_and_workers_without_overlap_and_skip_corrupt(tmp_path, test_videos):
    clips = _clips(tmp_path, test_videos, corrupt=True)
    assert len(clips) == 9
    seen: dict[int, set[int]] = {}  # role -> clip indices
    failed = 0
    for rank in range(2):
        ds = ClipWindows(clips, size=16, fps=4.0, clip_frames=1, windows_per_clip=1, seed=3, rank=rank,
                         world_size=2, epochs=1)
        for batch in DataLoader(ds, batch_size=1, num_workers=2):
            assert batch["video"].shape == (1, 3, 1, 16, 16)
            assert -1.0 <= batch["video"].min() and batch["video"].max() <= 1.0
            seen.setdefault(int(batch["role"]), set()).add(int(batch["clip"]))
        failed += ds.num_failed
    assert sorted(seen) == [0, 1, 2, 3]  # 2 ranks x 2 workers, each got clips
    all_clips = [c for s in seen.values() for c in s]
    assert len(all_clips) == len(set(all_clips)), "a clip went to two roles"
    corrupt = next(i for i, c in enumerate(clips) if "corrupt" in c.uri)
    assert set(all_clips) == set(range(9)) - {corrupt}
    assert failed == 1


def test_plan_is_deterministic_per_seed_and_epoch(tmp_path, test_videos):
    clips = _clips(tmp_path, test_videos)
    ds = ClipWindows(clips, size=16, seed=1, rank=0, world_size=1)
    assert ds.epoch_plan(0, 0, 1) == ds.epoch_plan(0, 0, 1)
    assert ds.epoch_plan(0, 0, 1) != ds.epoch_plan(1, 0, 1)
    parts = [ds.epoch_plan(0, r, 3) for r in range(3)]
    assert sorted(c.clip_id for p in parts for c in p) == sorted(c.clip_id for c in clips)


def test_resume_continues_the_stream_exactly(tmp_path, test_videos):
    clips = _clips(tmp_path, test_videos, n=4)
    make = lambda: ClipWindows(clips, size=16, fps=8.0, clip_frames=1, windows_per_clip=3, seed=0, rank=0, world_size=1)
    straight = list(itertools.islice(iter(make()), 7))
    pos = DataPosition()
    for i in range(0, 4, 2):  # consume two batches of 2 (the second ends inside a clip visit)
        pos = advance(pos, default_collate(straight[i : i + 2]), num_workers=0)
    resumed_ds = make()
    resumed_ds.resume_from(DataPosition.from_dict(pos.to_dict()))
    resumed = list(itertools.islice(iter(resumed_ds), 3))
    for a, b in zip(straight[4:], resumed):
        assert (a["clip"], a["window"]) == (b["clip"], b["window"])
        assert torch.equal(a["video"], b["video"])


def test_holdout_split_is_stable():
    ids = [f"c{i}" for i in range(1000)]
    held = [i for i in ids if is_heldout(i, 0.1)]
    assert 50 < len(held) < 150 and held == [i for i in ids if is_heldout(i, 0.1)]


def test_windows_are_consecutive_frames_at_target_fps_with_one_crop(tmp_path, test_videos):
    clips = _clips(tmp_path, test_videos, n=1)  # frames 0-14 at 29.97 fps
    ds = ClipWindows(clips, size=144, fps=15.0, clip_frames=5, windows_per_clip=2, min_crop_scale=1.0, seed=0,
                     rank=0, world_size=1, epochs=1)
    windows = list(ds)
    assert len(windows) == 2 and all(w["video"].shape == (3, 5, 144, 144) for w in windows)
    # full-height crop (scale 1): each window equals some run of 5 frames 2 apart (29.97 -> 15 fps)
    full = to_tensor(read_frames(clips[0].uri, sample_indices(0, 15, 29.97, 15.0)))  # (8, 3, 144, 176)
    for w in windows:
        v = w["video"].transpose(0, 1)  # (T, 3, 144, 144)
        matches = [(s, i) for s in range(4) for i in range(33)
                   if torch.allclose(v, full[s : s + 5, :, :, i : i + 144], atol=1e-4)]
        assert matches, "a window is not 5 consecutive resampled frames under one crop"


def test_clip_shorter_than_a_window_is_counted_not_fatal(tmp_path, test_videos):
    clips = _clips(tmp_path, test_videos, n=2)  # 15 frames each: 4 at 8 fps
    ds = ClipWindows(clips, size=16, fps=8.0, clip_frames=9, seed=0, rank=0, world_size=1, epochs=1)
    assert list(ds) == [] and ds.num_failed == 2


def test_windows_are_cropped_to_the_content_box(tmp_path):
    """A letterboxed clip (160x90 picture in a 160x114 frame): full-height random crops hold picture, never bars."""
    from _barred_video import barred_manifest, write_barred
    from training.video_frames import CropBox

    video = write_barred(tmp_path / "lb.mp4", seed=4, top=12, left=0, n=20)
    clips = load_clips(barred_manifest(tmp_path, video, (0, 12, 160, 90), (160, 114), end=20))
    assert clips[0].box == CropBox(0, 12, 160, 90, 160, 114)
    ds = ClipWindows(clips, size=90, fps=None, clip_frames=4, windows_per_clip=3, min_crop_scale=1.0, seed=0,
                     rank=0, world_size=1, epochs=1)
    windows = list(ds)
    assert len(windows) == 3 and all(w["video"].shape == (3, 4, 90, 90) for w in windows)
    full = to_tensor(read_frames(str(video), list(range(20))))  # (20, 3, 114, 160), bars included
    picture = full[:, :, 12:102]  # (20, 3, 90, 160)
    for w in windows:
        v = w["video"].transpose(0, 1)  # (T, 3, 90, 90)
        assert v[:, :, :2].mean() > -0.9 and v[:, :, -2:].mean() > -0.9  # black bars would read -1
        assert [(s, i) for s in range(17) for i in range(71) if torch.allclose(v, picture[s:s + 4, :, :, i:i + 90],
                                                                                atol=1e-4)]
    # an older manifest (null box columns) reads the full frame: a full-height crop takes in the bars
    old = load_clips(barred_manifest(tmp_path / "old", video, None, (160, 114), end=20))
    assert old[0].box is None
    v = next(iter(ClipWindows(old, size=114, fps=None, clip_frames=4, windows_per_clip=1, min_crop_scale=1.0,
                              seed=0, rank=0, world_size=1, epochs=1)))["video"]
    assert v[:, :, :10].max() < -0.9  # the top bar, black
