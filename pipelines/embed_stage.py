"""Stage `embed`: CLIP embeddings and aesthetic scores from keyframes, one model per Ray actor."""
import json
import time

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import ray
from ray.util import ActorPool
from tqdm import tqdm

from pipelines.config import AestheticConfig, StageConfig
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows


class _EmbedWorker:
    """Holds one ClipScorer for the actor's lifetime: models load once, never per clip."""

    def __init__(self, a: dict, storage_options: dict):
        from curation.aesthetics import ClipScorer

        model_config = None
        if a["model_config_file"]:
            with fsspec.open(a["model_config_file"], "r", **storage_options) as f:
                model_config = json.load(f)
        self.scorer = ClipScorer(
            a["clip_model"], a["clip_checkpoint"], a["head_checkpoint"], device=a["device"],
            batch_size=a["batch_size"], reduce=a["reduce"], storage_options=storage_options, model_config=model_config,
        )

    def score(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        frames = [[_decode_jpeg(j) for j in jpegs] for _, jpegs in batch]
        scored = self.scorer.score_clips(frames)
        return [{"clip_id": cid, "embedding": emb, "aesthetic": aes} for (cid, _), (emb, aes) in zip(batch, scored)]


def _decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run_embed_stage(
    store: RunStore,
    scan_key: str,
    embed_key: str,
    a: AestheticConfig,
    stage: StageConfig,
    storage_options: dict,
) -> dict:
    """Embed every scanned clip that has keyframes and no cached embedding."""
    keyframes = store.read_parts(scan_key, "keyframes")
    done = set(store.read_parts(embed_key, "embeddings", store.committed_parts(embed_key, clean=True)).column("clip_id").to_pylist())
    by_clip: dict[str, list[tuple[float, bytes]]] = {}
    for cid, pos, jpg in zip(*(keyframes.column(c).to_pylist() for c in ("clip_id", "position", "jpeg"))):
        if cid not in done:
            by_clip.setdefault(cid, []).append((pos, jpg))
    stats = {"clips_to_embed": len(by_clip), "already_embedded": len(done)}
    if not by_clip:
        return stats
    items = [(cid, [j for _, j in sorted(v)]) for cid, v in sorted(by_clip.items())]
    clips_per_batch = max(1, a.batch_size // max(1, len(a.frames_at)))
    batches = [items[i : i + clips_per_batch] for i in range(0, len(items), clips_per_batch)]
    actor_cls = ray.remote(_EmbedWorker).options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_restarts=2, max_task_retries=2)
    actors = [actor_cls.remote(a.model_dump(), storage_options) for _ in range(min(stage.concurrency, len(batches)))]
    pool = ActorPool(actors)
    t0 = time.perf_counter()
    rows: list[dict] = []
    with tqdm(total=len(items), desc="embed", unit="clip", dynamic_ncols=True) as bar:
        for result in pool.map_unordered(lambda actor, b: actor.score.remote(b), batches):
            rows.extend(result)
            bar.update(len(result))
            if len(rows) >= 4096:
                store.write_part(embed_key, {"embeddings": table_from_rows(rows, TABLES["embeddings"], "embeddings")})
                rows = []
    if rows:
        store.write_part(embed_key, {"embeddings": table_from_rows(rows, TABLES["embeddings"], "embeddings")})
    for actor in actors:
        ray.kill(actor)
    stats["embed_s"] = time.perf_counter() - t0
    stats["clips_embedded"] = len(items)
    return stats


def join_embeddings(clips: pa.Table, embeddings: pa.Table) -> pa.Table:
    """Fill clips' embedding and aesthetic columns from the embed stage's results."""
    lookup = {cid: i for i, cid in enumerate(embeddings.column("clip_id").to_pylist())}
    idx = pa.array([lookup.get(cid) for cid in clips.column("clip_id").to_pylist()], pa.int64())
    for name in ("embedding", "aesthetic"):
        col = embeddings.column(name).take(idx)
        clips = clips.set_column(clips.schema.get_field_index(name), name, col.cast(clips.schema.field(name).type))
    return clips
