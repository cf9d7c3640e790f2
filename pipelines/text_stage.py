"""Stage `text`: on-screen text area of every clip from its keyframes, one text detector per Ray actor."""
import hashlib
import json
import time

import cv2
import numpy as np
import pyarrow as pa
import ray
from ray.util import ActorPool
from tqdm import tqdm

from pipelines.config import StageConfig, TextConfig
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8 frame of a keyframe JPEG."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def keyframes_by_clip(keyframes: pa.Table, skip: set[str] = frozenset(), only: set[str] | None = None) -> list[tuple[str, list[bytes]]]:
    """(clip_id, keyframe JPEGs in clip order) per clip, sorted by clip_id, leaving out `skip` and clips not in `only`."""
    by_clip: dict[str, list[tuple[float, bytes]]] = {}
    for cid, pos, jpg in zip(*(keyframes.column(c).to_pylist() for c in ("clip_id", "position", "jpeg"))):
        if cid not in skip and (only is None or cid in only):
            by_clip.setdefault(cid, []).append((pos, jpg))
    return [(cid, [j for _, j in sorted(v)]) for cid, v in sorted(by_clip.items())]


class _TextWorker:
    """Holds one TextAreaMeter for the actor's lifetime: the detector loads once, never per clip."""

    def __init__(self, t: dict, threads: int):
        from curation.text_area import TextAreaMeter, TextAreaParams

        fields = {k: v for k, v in t.items() if k != "clips_per_task"}
        self.meter = TextAreaMeter(TextAreaParams(**fields, threads=threads))

    def measure(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        rows = []
        for cid, jpegs in batch:
            t0 = time.perf_counter()
            frac = self.meter.clip_text_area([decode_jpeg(j) for j in jpegs])
            rows.append({"clip_id": cid, "text_area_frac": frac, "ocr_s": time.perf_counter() - t0})
        return rows


def run_text_stage(store: RunStore, scan_key: str, text_key: str, t: TextConfig, stage: StageConfig) -> dict:
    """Measure text_area_frac of every scanned clip that has keyframes and no cached value."""
    done = set(store.read_parts(text_key, "text_areas", store.committed_parts(text_key, clean=True)).column("clip_id").to_pylist())
    items = keyframes_by_clip(store.read_parts(scan_key, "keyframes"), skip=done)
    stats = {"clips_to_measure": len(items), "already_measured": len(done)}
    if not items:
        return stats
    batches = [items[i : i + t.clips_per_task] for i in range(0, len(items), t.clips_per_task)]
    actor_cls = ray.remote(_TextWorker).options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_restarts=2, max_task_retries=2)
    actors = [actor_cls.remote(t.model_dump(), max(1, int(stage.num_cpus))) for _ in range(min(stage.concurrency, len(batches)))]
    pool = ActorPool(actors)
    t0 = time.perf_counter()
    rows: list[dict] = []
    ocr_s = 0.0
    with tqdm(total=len(items), desc="text", unit="clip", dynamic_ncols=True) as bar:
        for result in pool.map_unordered(lambda actor, b: actor.measure.remote(b), batches):
            rows.extend(result)
            ocr_s += sum(r["ocr_s"] for r in result)
            bar.update(len(result))
            if len(rows) >= 4096:
                store.write_part(text_key, {"text_areas": table_from_rows(rows, TABLES["text_areas"], "text_areas")})
                rows = []
    if rows:
        store.write_part(text_key, {"text_areas": table_from_rows(rows, TABLES["text_areas"], "text_areas")})
    for actor in actors:
        ray.kill(actor)
    stats.update(text_s=time.perf_counter() - t0, clips_measured=len(items), ocr_s_per_clip=ocr_s / len(items))
    return stats


def join_text_areas(clips: pa.Table, text_areas: pa.Table) -> pa.Table:
    """Fill clips' text_area_frac from the text stage's results (null where not measured)."""
    lookup = {cid: i for i, cid in enumerate(text_areas.column("clip_id").to_pylist())}
    idx = pa.array([lookup.get(cid) for cid in clips.column("clip_id").to_pylist()], pa.int64())
    col = text_areas.column("text_area_frac").take(idx).cast(clips.schema.field("text_area_frac").type)
    return clips.set_column(clips.schema.get_field_index("text_area_frac"), "text_area_frac", col)


def text_cache_key(cfg) -> str:
    """Work-folder key of the text stage: its settings and the scan settings that made the keyframes."""
    from pipelines.params import scan_config_subset

    data = {"text": cfg.text.model_dump(mode="json"), "scan": scan_config_subset(cfg)}
    return "text-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
