"""Encoding a manifest: one latents row per window, (C, T', H', W') shards, stats; resume skips; a new
checkpoint invalidates; 2-D and causal video autoencoders share the layout."""
import json

import pytest
import torch

import schemas
from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.encode import EncodeSettings, clip_windows, encode_manifest, read_latents
from training.autoencoder.train import make_trainer, save_checkpoint

quiet_torch()


def _checkpoint(path, seed, kind="image"):
    cfg = tiny_config(kind, seed=seed)
    trainer = make_trainer(cfg, torch.device("cpu"))  # random init: encoding mechanics do not need training
    return str(save_checkpoint(path, trainer, cfg))


def test_clip_windows_cut_consecutive_runs_and_a_short_tail():
    row = {"start_frame": 0, "end_frame": 60, "fps": 30.0}
    w = clip_windows(row, EncodeSettings(fps=10.0, frames=5), temporal_factor=4)  # 20 frames 3 apart
    assert w == [[0, 3, 6, 9, 12], [15, 18, 21, 24, 27], [30, 33, 36, 39, 42], [45, 48, 51, 54, 57]]
    assert clip_windows(row, EncodeSettings(fps=10.0, frames=5, max_windows=2), 4) == w[:2]
    short = {"start_frame": 0, "end_frame": 12, "fps": 30.0}  # 4 frames at 10 fps
    assert clip_windows(short, EncodeSettings(fps=10.0, frames=9), 4) == [[0]]  # 1 + 4k frames: just the first
    assert clip_windows(short, EncodeSettings(fps=10.0, frames=9), 1) == [[0, 3, 6, 9]]


def test_encode_reencode_and_invalidate(tmp_path, test_videos):
    car, bikes = test_videos / "carphone_pristine.mp4", test_videos / "bikes.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (car, 60, 120, 29.97), (bikes, 30, 76, 25.0)])
    ck1 = _checkpoint(tmp_path / "a.pt", seed=0)
    out = str(tmp_path / "latents")
    kw = dict(fps=4.0, size=32, frames=3, batch_size=4, clips_per_shard=2, progress=False)

    s1 = encode_manifest(manifest, ck1, out, **kw)
    assert (s1["encoded"], s1["skipped"], s1["failed"]) == (3, 0, [])
    rows = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()
    assert sorted((r["clip_id"], r["window"]) for r in rows) == [(f"clip00{i}", w) for i in range(3) for w in (0, 1)]
    assert len({r["shard"] for r in rows}) == 2  # clips_per_shard=2
    stats = json.loads((tmp_path / "latents" / "stats.json").read_text())
    assert stats["ae_hash"] == s1["ae_hash"] and stats["count"] == 6 and stats["clips"] == 3
    assert len(stats["mean"]) == len(stats["std"]) == 4 and all(s > 0 for s in stats["std"])
    for r in rows:
        mean, std = read_latents(out, r)
        assert list(mean.shape) == r["shape"] == [4, 3, 8, 8]  # (C, T'=T=3 for a 2-D AE, 32 px / f4)
        assert mean.shape == std.shape and (std > 0).all()
        assert r["ae_hash"] == s1["ae_hash"] and len(r["frame_indices"]) == 3
        assert (r["height"], r["width"]) == (32, 32) and r["fps"] == 4.0
    r0 = next(r for r in rows if r["clip_id"] == "clip000" and r["window"] == 1)
    assert r0["frame_indices"] == [22, 29, 37] and r0["aesthetic"] == 5.0
    has_caption = "caption" in schemas.TABLES["curated"].names
    assert r0["caption"] == ("caption of clip 0" if has_caption else None)
    # stats agree with the stored tensors
    means = torch.cat([read_latents(out, r)[0].flatten(1) for r in rows], dim=1)  # (C, all)
    assert torch.allclose(torch.tensor(stats["mean"]), means.mean(dim=1).double().float(), atol=1e-4)

    s2 = encode_manifest(manifest, ck1, out, **kw)
    assert (s2["encoded"], s2["skipped"], s2["invalidated"]) == (0, 3, False)
    assert schemas.read_table(f"{out}/latents.parquet", "latents").num_rows == 6

    ck2 = _checkpoint(tmp_path / "b.pt", seed=1)
    s3 = encode_manifest(manifest, ck2, out, **kw)
    assert s3["ae_hash"] != s1["ae_hash"]
    assert (s3["encoded"], s3["skipped"], s3["invalidated"]) == (3, 0, True)
    rows3 = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()
    assert {r["ae_hash"] for r in rows3} == {s3["ae_hash"]}
    shards = sorted(p.name for p in (tmp_path / "latents" / "shards").iterdir())
    assert len(shards) == 2 and all(p.startswith(s3["ae_hash"][:12]) for p in shards)  # old shards gone

    s4 = encode_manifest(manifest, ck2, out, **(kw | {"frames": 2}))  # other settings: encode again
    assert (s4["encoded"], s4["invalidated"]) == (3, True)


def test_video_autoencoder_latents_compress_time(tmp_path, test_videos):
    car, bikes = test_videos / "carphone_pristine.mp4", test_videos / "bikes.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (bikes, 30, 40, 25.0)])
    ck = _checkpoint(tmp_path / "v.pt", seed=0, kind="video")
    out = str(tmp_path / "vlat")
    s = encode_manifest(manifest, ck, out, fps=8.0, size=32, frames=5, progress=False)
    assert (s["encoded"], s["failed"]) == (2, [])
    rows = sorted(schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist(), key=lambda r: r["key"])
    long = [r for r in rows if r["clip_id"] == "clip000"]
    assert len(long) == 3 and all(r["shape"] == [8, 2, 8, 8] for r in long)  # 5 frames -> T' = 2; f4; c8
    assert long[1]["frame_indices"] == [18, 22, 26, 29, 33] and long[0]["fps"] == 8.0
    short = next(r for r in rows if r["clip_id"] == "clip001")  # 3 frames at 8 fps: one 1-frame window
    assert short["shape"] == [8, 1, 8, 8] and short["frame_indices"] == [30]
    mean, _ = read_latents(out, long[2])
    assert list(mean.shape) == long[2]["shape"]
    with pytest.raises(ValueError, match="1 \\+ 4\\*k"):
        encode_manifest(manifest, ck, str(tmp_path / "bad"), fps=8.0, size=32, frames=4, progress=False)


def test_encode_into_aspect_buckets(tmp_path, test_videos):
    pytest.importorskip("training.buckets")
    from training.buckets import make_buckets, nearest_bucket

    manifest = make_manifest(tmp_path, [(test_videos / "carphone_pristine.mp4", 0, 30, 29.97)])  # 176x144
    out = str(tmp_path / "blat")
    s = encode_manifest(manifest, _checkpoint(tmp_path / "a.pt", 0), out, fps=4.0, frames=2,
                        bucket_area=48 * 48, bucket_multiple=8, progress=False)
    assert s["encoded"] == 1
    row = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()[0]
    h, w = nearest_bucket(144, 176, make_buckets(48 * 48, 8))
    assert (row["height"], row["width"]) == (h, w) and row["shape"][2:] == [h // 4, w // 4]


def test_encode_counts_undecodable_clip(tmp_path, test_videos):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    manifest = make_manifest(tmp_path, [(test_videos / "carphone_pristine.mp4", 0, 30, 29.97), (bad, 0, 10, 25.0)])
    s = encode_manifest(manifest, _checkpoint(tmp_path / "a.pt", 0), str(tmp_path / "lat"),
                        fps=2.0, size=32, frames=2, progress=False)
    assert s["encoded"] == 1 and [f["clip_id"] for f in s["failed"]] == ["clip001"]
    assert schemas.read_table(str(tmp_path / "lat" / "latents.parquet"), "latents").num_rows == 1


def test_window_the_model_would_cut_short_fails_fast(tmp_path, test_videos):
    cfg = tiny_config("video")
    cfg.model.temporal_factor = 2  # 1 + 2k frames by its factor, but Wan encodes 4-frame chunks after the first
    ck = str(save_checkpoint(tmp_path / "t2.pt", make_trainer(cfg, torch.device("cpu")), cfg))
    manifest = make_manifest(tmp_path, [(test_videos / "carphone_pristine.mp4", 0, 60, 29.97)])
    with pytest.raises(ValueError, match="latent frames"):
        encode_manifest(manifest, ck, str(tmp_path / "bad"), fps=8.0, size=32, frames=3, progress=False)
    s = encode_manifest(manifest, ck, str(tmp_path / "ok"), fps=8.0, size=32, frames=5, progress=False)
    row = schemas.read_table(str(tmp_path / "ok" / "latents.parquet"), "latents").to_pylist()[0]
    assert s["encoded"] == 1 and row["shape"] == [8, 3, 8, 8]  # 5 frames / 2x -> 1 + 2 latent frames
