"""Encode a large manifest with a Ray actor pool: one model per actor, the driver owns the table.

Actors encode chunks of clips into their own shards (`encode_clips_to_shard`,
the same function as the local loop); the driver commits table + stats after
every finished chunk, so an interrupted run resumes like the local one.
"""
from __future__ import annotations

import ray
import torch
from ray.util import ActorPool

from training.autoencoder.encode import (
    EncodeSettings,
    LatentStore,
    check_window,
    encode_clips_to_shard,
    encode_summary,
    manifest_rows,
)
from training.autoencoder.model import checkpoint_hash, load_autoencoder


class LatentEncoder:
    """Holds one autoencoder for its lifetime (models load once per actor, never per clip)."""

    def __init__(self, checkpoint: str, use_ema: bool, batch_size: int, storage_options: dict | None):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.ae = load_autoencoder(checkpoint, use_ema=use_ema).to(self.device)
        self.batch_size, self.storage_options = batch_size, storage_options

    def encode(self, clips: list[dict], out_dir: str, ae_hash: str, settings: EncodeSettings):
        return encode_clips_to_shard(
            self.ae, clips, out_dir, ae_hash, settings, self.batch_size, self.device, self.storage_options
        )


def encode_manifest_ray(
    manifest_uri: str,
    checkpoint: str,
    out_dir: str,
    *,
    num_actors: int = 2,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    fps: float | None = 8.0,
    size: int = 256,
    frames: int = 17,
    max_windows: int | None = None,
    bucket_area: int | None = None,
    bucket_multiple: int = 16,
    batch_size: int = 4,
    clips_per_shard: int = 64,
    use_ema: bool = True,
    table: str = "curated",
    storage_options: dict | None = None,
) -> dict:
    """Like encode_manifest, with `num_actors` Ray actors (num_gpus / num_cpus each). Calls ray.init if needed."""
    if not ray.is_initialized():
        ray.init()
    ae_hash = checkpoint_hash(checkpoint)
    settings = EncodeSettings(fps, size, frames, max_windows, bucket_area, bucket_multiple)
    check_window(load_autoencoder(checkpoint), settings)  # fail fast, before any actor starts
    store = LatentStore(out_dir, ae_hash, settings, storage_options)
    rows = manifest_rows(manifest_uri, table, storage_options)
    todo = [r for r in rows if r["clip_id"] not in store.done]
    failures: list[dict] = []
    if todo:
        actor_cls = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus)(LatentEncoder)
        actors = [actor_cls.remote(checkpoint, use_ema, batch_size, storage_options) for _ in range(num_actors)]
        pool = ActorPool(actors)
        chunks = [todo[i : i + clips_per_shard] for i in range(0, len(todo), clips_per_shard)]
        for new_rows, stats, failed in pool.map_unordered(
            lambda a, chunk: a.encode.remote(chunk, out_dir, ae_hash, settings), chunks
        ):
            store.add(new_rows, stats)
            failures.extend(failed)
            store.commit()
        for a in actors:
            ray.kill(a)
    elif store.invalidated or not store.rows:
        store.commit()
    return encode_summary(ae_hash, rows, todo, failures, store, out_dir)
