"""The Ray encoder writes the same layout as the local one (tiny data, ray.init(num_cpus=2))."""
import pytest
import torch

import schemas
from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.encode import encode_manifest
from training.autoencoder.train import make_trainer, save_checkpoint

ray = pytest.importorskip("ray")
quiet_torch()


def test_ray_encode_then_local_reencode_skips(tmp_path, test_videos):
    from training.autoencoder.encode_ray import encode_manifest_ray

    car = test_videos / "carphone_pristine.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (car, 60, 120, 29.97)])
    cfg = tiny_config()
    ckpt = str(save_checkpoint(tmp_path / "a.pt", make_trainer(cfg, torch.device("cpu")), cfg))
    out = str(tmp_path / "latents")
    kw = dict(fps=2.0, size=32, frames=2, clips_per_shard=1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a `ray start` cluster
    try:
        s = encode_manifest_ray(manifest, ckpt, out, num_actors=2, num_cpus=1, **kw)
    finally:
        ray.shutdown()
    assert (s["encoded"], s["failed"]) == (2, [])
    rows = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()
    assert sorted({r["clip_id"] for r in rows}) == ["clip000", "clip001"] and len(rows) == 4
    assert len({r["shard"] for r in rows}) == 2 and all(r["shape"] == [4, 2, 8, 8] for r in rows)
    again = encode_manifest(manifest, ckpt, out, progress=False, **kw)
    assert (again["encoded"], again["skipped"]) == (0, 2)
