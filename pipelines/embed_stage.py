"""Stage `embed`: CLIP embeddings and aesthetic scores from keyframes, one model per Ray actor.

Work goes out one scan part at a time: the actor reads that part's keyframes
from storage itself and writes an embed part of the same name, so keyframe
JPEGs never pass through the driver and "already embedded" is one listing.
A batch the model fails on becomes error rows for its clips, not a failed run.
"""
import json
import time

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from tqdm import tqdm

from pipelines.config import AestheticConfig, StageConfig
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows

STAGE = "embed"


class _EmbedWorker:
    """Holds one ClipScorer for the actor's lifetime: models load once, never per clip."""

    def __init__(self, a: dict, storage_options: dict, output_uri: str, output_options: dict):
        from curation.aesthetics import ClipScorer

        model_config = None
        if a["model_config_file"]:
            with fsspec.open(a["model_config_file"], "r", **storage_options) as f:
                model_config = json.load(f)
        self.scorer = ClipScorer(
            a["clip_model"], a["clip_checkpoint"], a["head_checkpoint"], device=a["device"],
            batch_size=a["batch_size"], reduce=a["reduce"], storage_options=storage_options, model_config=model_config,
        )
        self.clips_per_batch = max(1, a["batch_size"] // max(1, len(a["frames_at"])))
        self.store = RunStore(output_uri, output_options)

    def embed_part(self, scan_key: str, embed_key: str, part: str, run_id: str) -> dict:
        """Embed one scan part's clips and commit the result as the embed part of the same name."""
        keyframes = self.store.read_parts(scan_key, "keyframes", [part])
        rows, errors = self.embed_keyframes(keyframes, _clip_owners(self.store, scan_key, part), run_id)
        commit_embed_part(self.store, embed_key, part, rows, errors)
        return {"clips_embedded": len(rows), "errors": len(errors)}

    def embed_keyframes(self, keyframes: pa.Table, owners: dict, run_id: str) -> tuple[list[dict], list[dict]]:
        """(embedding rows, error rows) for the clips of a keyframes table, in batches of clips."""
        keyframes = keyframes.sort_by([("clip_id", "ascending"), ("position", "ascending")])
        by_clip: dict[str, list[bytes]] = {}
        for cid, jpg in zip(keyframes.column("clip_id").to_pylist(), keyframes.column("jpeg").to_pylist()):
            by_clip.setdefault(cid, []).append(jpg)
        items = sorted(by_clip.items())
        rows, errors = [], []
        for i in range(0, len(items), self.clips_per_batch):
            batch = items[i : i + self.clips_per_batch]
            try:
                scored = self.scorer.score_clips([[_decode_jpeg(j) for j in jpegs] for _, jpegs in batch])
            except Exception as e:  # one bad batch (a corrupt JPEG, a model error) is data, not a failed run
                errors += [embed_error(owners, cid, type(e).__name__, f"embedding failed for this batch: {e}", run_id) for cid, _ in batch]
                continue
            rows += [{"clip_id": cid, "embedding": emb, "aesthetic": aes} for (cid, _), (emb, aes) in zip(batch, scored)]
        return rows, errors


def _decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("keyframe is not a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _clip_owners(store: RunStore, scan_key: str, part: str) -> dict[str, tuple[str, str]]:
    """clip_id -> (uri, video_id) of one scan part, for error rows."""
    t = store.read_parts(scan_key, "clips", [part], columns=["clip_id", "uri", "video_id"])
    return {c: (u, v) for c, u, v in zip(*(t.column(n).to_pylist() for n in ("clip_id", "uri", "video_id")))}


def embed_error(owners: dict, clip_id: str, error_type: str, message: str, run_id: str) -> dict:
    from curation.scan import error_row

    uri, video_id = owners.get(clip_id, (clip_id, None))
    return error_row(uri, video_id, STAGE, error_type, f"clip {clip_id}: {message}", run_id)


def commit_embed_part(store: RunStore, embed_key: str, part: str, rows: list[dict], errors: list[dict]) -> None:
    store.write_part(embed_key, {"embeddings": table_from_rows(rows, TABLES["embeddings"], "embeddings"),
                                 "errors": table_from_rows(errors, TABLES["errors"], "errors")}, part=part)


def run_embed_stage(store: RunStore, scan_key: str, embed_key: str, a: AestheticConfig, stage: StageConfig,
                    storage_options: dict, run_id: str) -> dict:
    """Embed every committed scan part that has no committed embed part yet."""
    done = set(store.committed_parts(embed_key, clean=True))
    todo = [p for p in store.committed_parts(scan_key) if p not in done]
    stats = {"parts_to_embed": len(todo), "parts_already_embedded": len(done), "clips_embedded": 0, "errors": 0}
    if not todo:
        return stats
    actor_cls = ray.remote(_EmbedWorker).options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_restarts=2, max_task_retries=2)

    def new_actor():
        return actor_cls.remote(a.model_dump(), storage_options, store.output_uri, store.storage_options)

    actors = [new_actor() for _ in range(min(stage.concurrency, len(todo)))]
    idle, queue, pending = list(range(len(actors))), list(reversed(todo)), {}
    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc="embed", unit="part", dynamic_ncols=True) as bar:
        while queue or pending:
            while queue and idle:
                i, part = idle.pop(), queue.pop()
                ref = actors[i].embed_part.remote(scan_key, embed_key, part, run_id)
                pending[ref] = (i, part)
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i, part = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as e:  # the actor died past its restarts: its part's clips get error rows
                result = _fail_part(store, scan_key, embed_key, part, e, run_id)
                ray.kill(actors[i])
                actors[i] = new_actor()
            for k, v in result.items():
                stats[k] += v
            idle.append(i)
            bar.update(1)
    for actor in actors:
        ray.kill(actor)
    stats["embed_s"] = time.perf_counter() - t0
    return stats


def _fail_part(store: RunStore, scan_key: str, embed_key: str, part: str, e: Exception, run_id: str) -> dict:
    owners = _clip_owners(store, scan_key, part)
    with_keyframes = set(store.read_parts(scan_key, "keyframes", [part], columns=["clip_id"]).column("clip_id").to_pylist())
    message = " ".join(str(getattr(e, "cause", None) or e).split())[:300]
    errors = [embed_error(owners, cid, type(e).__name__, f"embed actor failed after retries: {message}", run_id) for cid in sorted(with_keyframes)]
    commit_embed_part(store, embed_key, part, [], errors)
    return {"clips_embedded": 0, "errors": len(errors)}


def join_embeddings(clips: pa.Table, embeddings: pa.Table) -> pa.Table:
    """Fill clips' embedding and aesthetic columns from the embed stage's results (vectorised lookup)."""
    idx = pc.index_in(clips.column("clip_id"), value_set=embeddings.column("clip_id"))
    for name in ("embedding", "aesthetic"):
        col = embeddings.column(name).take(idx)
        clips = clips.set_column(clips.schema.get_field_index(name), name, col.cast(clips.schema.field(name).type))
    return clips
