"""Stage `caption`: VLM captions of the kept clips, one model per Ray actor, cached per clip and config."""
import hashlib
import json
import time
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.util import ActorPool
from tqdm import tqdm

from curation.caption_hygiene import hygiene_columns
from curation.filters import Rule, apply_filters
from curation.scan import error_row
from pipelines.config import CaptionConfig, StageConfig
from pipelines.store import RunStore
from pipelines.text_stage import decode_jpeg, keyframes_by_clip
from schemas import TABLES, table_from_rows

CAPTION_COLUMNS = ("caption", "caption_words", "caption_repetition", "caption_boilerplate_words")


class _CaptionWorker:
    """Holds one VlmCaptioner for the actor's lifetime: the model loads once, never per clip."""

    def __init__(self, c: dict, storage_options: dict):
        from curation.captions import VlmCaptioner

        self.captioner = VlmCaptioner(
            c["model"], c["prompt"], frames_per_clip=c["frames_per_clip"], max_new_tokens=c["max_new_tokens"],
            batch_size=c["batch_size"], device=c["device"], dtype=c["dtype"], storage_options=storage_options,
        )

    def caption(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        """{"clip_id", "caption", "s"} or {"clip_id", "error"} per clip: one bad clip does not lose the batch."""
        frames = [[decode_jpeg(j) for j in jpegs] for _, jpegs in batch]
        t0 = time.perf_counter()
        try:
            texts = self.captioner.caption_clips(frames)
            s = (time.perf_counter() - t0) / len(batch)  # generation seconds per clip, model load excluded
            return [{"clip_id": cid, "caption": text, "s": s} for (cid, _), text in zip(batch, texts)]
        except Exception:
            if len(batch) == 1:
                raise
        out = []
        for (cid, _), f in zip(batch, frames):  # the batch failed: find the clip(s) that make it fail
            try:
                t0 = time.perf_counter()
                out.append({"clip_id": cid, "caption": self.captioner.caption_clips([f])[0], "s": time.perf_counter() - t0})
            except Exception as e:
                out.append({"clip_id": cid, "error": f"{type(e).__name__}: {e}"})
        return out


def run_caption_stage(clips: pa.Table, keyframes: pa.Table, store: RunStore, caption_key: str, c: CaptionConfig,
                      stage: StageConfig, storage_options: dict, rules: Sequence[Rule], run_id: str) -> tuple[pa.Table, list[dict], dict]:
    """Caption the kept clips (cached ones are not captioned again), add hygiene columns, apply the caption rules.

    Returns (clips, error rows, stats).
    """
    kept = set(clips.filter(pc.equal(clips.column("kept"), True)).column("clip_id").to_pylist())
    cached_table = store.read_parts(caption_key, "captions", store.committed_parts(caption_key, clean=True))
    captions = dict(zip(cached_table.column("clip_id").to_pylist(), cached_table.column("caption").to_pylist()))
    items = keyframes_by_clip(keyframes, skip=set(captions), only=kept)
    stats = {"kept_clips": len(kept), "already_captioned": len(kept & set(captions)), "clips_to_caption": len(items)}
    failures: dict[str, str] = {}
    if items:
        t0 = time.perf_counter()
        new = _caption_on_ray(items, store, caption_key, c, stage, storage_options)
        stats.update(caption_s=time.perf_counter() - t0, clips_captioned=sum("caption" in r for r in new))
        generated = [r["s"] for r in new if "caption" in r]
        stats["generate_s_per_clip"] = sum(generated) / len(generated) if generated else None
        captions.update({r["clip_id"]: r["caption"] for r in new if "caption" in r})
        failures = {r["clip_id"]: r["error"] for r in new if "error" in r}
    ids = clips.column("clip_id").to_pylist()
    texts = [captions.get(cid) if cid in kept else None for cid in ids]
    hygiene = [hygiene_columns(t, c.repetition_ngram) for t in texts]
    for name in CAPTION_COLUMNS:
        values = texts if name == "caption" else [h[name] for h in hygiene]
        field = clips.schema.field(name)
        clips = clips.set_column(clips.schema.get_field_index(name), field, pa.array(values, field.type))
    # the caption rules could not fail before captions existed: apply them now
    clips = apply_filters(clips, [r for r in rules if r.column in CAPTION_COLUMNS])
    uri_of = dict(zip(ids, zip(clips.column("uri").to_pylist(), clips.column("video_id").to_pylist())))
    errors = [error_row(uri_of[cid][0], uri_of[cid][1], "caption", "CaptionError", f"clip {cid}: {msg}", run_id)
              for cid, msg in sorted(failures.items())]
    stats["caption_errors"] = len(errors)
    return clips, errors, stats


def _caption_on_ray(items, store: RunStore, caption_key: str, c: CaptionConfig, stage: StageConfig, storage_options: dict) -> list[dict]:
    """Caption `items` on an actor pool; successful captions are committed as parts as they arrive."""
    per_task = max(1, c.batch_size)
    batches = [items[i : i + per_task] for i in range(0, len(items), per_task)]
    actor_cls = ray.remote(_CaptionWorker).options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_restarts=2, max_task_retries=2)
    actors = [actor_cls.remote(c.model_dump(), storage_options) for _ in range(min(stage.concurrency, len(batches)))]
    pool = ActorPool(actors)
    results, pending = [], []

    def commit() -> None:
        ok = [{"clip_id": r["clip_id"], "caption": r["caption"]} for r in pending if "caption" in r]
        if ok:  # failed clips are not cached: the next run tries them again
            store.write_part(caption_key, {"captions": table_from_rows(ok, TABLES["captions"], "captions")})
        pending.clear()

    with tqdm(total=len(items), desc="caption", unit="clip", dynamic_ncols=True) as bar:
        for result in pool.map_unordered(lambda actor, b: actor.caption.remote(b), batches):
            results.extend(result)
            pending.extend(result)
            bar.update(len(result))
            if len(pending) >= 1024:
                commit()
    commit()
    for actor in actors:
        ray.kill(actor)
    return results


def caption_cache_key(cfg) -> str:
    """Work-folder key of the caption stage: what decides a caption's text (not batch size or device)."""
    from pipelines.params import scan_config_subset

    c = cfg.caption
    data = {"model": c.model, "prompt": c.prompt, "frames_per_clip": c.frames_per_clip, "max_new_tokens": c.max_new_tokens,
            "dtype": c.dtype, "scan": scan_config_subset(cfg)}
    return "caption-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
