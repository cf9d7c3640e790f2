"""Encoding a manifest: latents table + shards + stats; re-encode skips; a new checkpoint invalidates."""
import json

import torch

import schemas
from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.encode import encode_manifest, read_latents
from training.autoencoder.train import make_trainer, save_checkpoint

quiet_torch()


def _checkpoint(path, seed):
    cfg = tiny_config(seed=seed)
    trainer = make_trainer(cfg, torch.device("cpu"))  # random init: encoding mechanics do not need training
    return str(save_checkpoint(path, trainer, cfg))


def test_encode_reencode_and_invalidate(tmp_path, test_videos):
    car, bikes = test_videos / "carphone_pristine.mp4", test_videos / "bikes.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (car, 60, 120, 29.97), (bikes, 30, 76, 25.0)])
    ck1 = _checkpoint(tmp_path / "a.pt", seed=0)
    out = str(tmp_path / "latents")
    kw = dict(fps=4.0, size=32, max_frames=3, batch_size=4, clips_per_shard=2, progress=False)

    s1 = encode_manifest(manifest, ck1, out, **kw)
    assert (s1["encoded"], s1["skipped"], s1["failed"]) == (3, 0, [])
    table = schemas.read_table(f"{out}/latents.parquet", "latents")
    rows = table.to_pylist()
    assert sorted(r["clip_id"] for r in rows) == ["clip000", "clip001", "clip002"]
    assert len({r["shard"] for r in rows}) == 2  # clips_per_shard=2
    stats = json.loads((tmp_path / "latents" / "stats.json").read_text())
    assert stats["ae_hash"] == s1["ae_hash"] and stats["count"] == 3
    assert len(stats["mean"]) == len(stats["std"]) == 4 and all(s > 0 for s in stats["std"])
    for r in rows:
        mean, std = read_latents(out, r)
        assert list(mean.shape) == r["shape"] == [3, 4, 8, 8]  # T=3 frames, c4, 32 px / f4
        assert mean.shape == std.shape and (std > 0).all()
        assert r["ae_hash"] == s1["ae_hash"] and len(r["frame_indices"]) == 3
    r0 = next(r for r in rows if r["clip_id"] == "clip000")
    assert r0["frame_indices"] == [0, 7, 14] and r0["aesthetic"] == 5.0
    # stats agree with the stored tensors
    means = torch.cat([read_latents(out, r)[0] for r in rows])
    assert torch.allclose(torch.tensor(stats["mean"]), means.mean(dim=(0, 2, 3)).double().float(), atol=1e-4)

    s2 = encode_manifest(manifest, ck1, out, **kw)
    assert (s2["encoded"], s2["skipped"], s2["invalidated"]) == (0, 3, False)
    assert schemas.read_table(f"{out}/latents.parquet", "latents").num_rows == 3

    ck2 = _checkpoint(tmp_path / "b.pt", seed=1)
    s3 = encode_manifest(manifest, ck2, out, **kw)
    assert s3["ae_hash"] != s1["ae_hash"]
    assert (s3["encoded"], s3["skipped"], s3["invalidated"]) == (3, 0, True)
    rows3 = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()
    assert {r["ae_hash"] for r in rows3} == {s3["ae_hash"]}
    shards = sorted(p.name for p in (tmp_path / "latents" / "shards").iterdir())
    assert len(shards) == 2 and all(p.startswith(s3["ae_hash"][:12]) for p in shards)  # old shards gone


def test_encode_counts_undecodable_clip(tmp_path, test_videos):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    manifest = make_manifest(tmp_path, [(test_videos / "carphone_pristine.mp4", 0, 30, 29.97), (bad, 0, 10, 25.0)])
    s = encode_manifest(manifest, _checkpoint(tmp_path / "a.pt", 0), str(tmp_path / "lat"),
                        fps=2.0, size=32, max_frames=2, progress=False)
    assert s["encoded"] == 1 and [f["clip_id"] for f in s["failed"]] == ["clip001"]
    assert schemas.read_table(str(tmp_path / "lat" / "latents.parquet"), "latents").num_rows == 1
