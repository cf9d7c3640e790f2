"""Stage `caption`: VLM captions of the kept clips, partition by partition, cached per clip and config: one model per Ray
actor (backend local), or one actor keeping many requests in flight to an OpenAI-compatible endpoint (backend endpoint)."""
import hashlib
import json
import time
from collections.abc import Sequence
from functools import partial

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
from pipelines.table_parts import first_per_key, read_keyframes
from pipelines.table_shards import Shards, Step, ordered, read_rows, settle
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


class _EndpointCaptionWorker:
    """Holds one EndpointCaptioner (HTTP client, `caption.concurrency` requests in flight): the server batches them."""

    def __init__(self, c: dict, storage_options: dict):
        from curation.caption_endpoint import EndpointCaptioner

        self.captioner = EndpointCaptioner(
            c["endpoint"], c["endpoint_model"], c["prompt"], frames_per_clip=c["frames_per_clip"],
            max_new_tokens=c["max_new_tokens"], concurrency=c["concurrency"], timeout_s=c["timeout_s"], retries=c["retries"],
            api_key_env=c["api_key_env"], rewrite_prompt=c["rewrite_prompt"],
        )

    def caption(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        """{"clip_id", "caption", "s"} or {"clip_id", "error"} per clip (the keyframe JPEGs go out as stored)."""
        t0 = time.perf_counter()
        texts = self.captioner.caption_clips([jpegs for _, jpegs in batch])
        s = (time.perf_counter() - t0) / len(batch)  # wall seconds per clip with the requests in flight
        return [{"clip_id": cid, "caption": t, "s": s} if isinstance(t, str) else {"clip_id": cid, "error": str(t)}
                for (cid, _), t in zip(batch, texts)]


def with_captions(clips: pa.Table, captions: pa.Table, repetition_ngram: int, rules: Sequence[Rule]) -> pa.Table:
    """`clips` with the caption of each kept clip found in `captions` (clip_id, caption), its hygiene columns, and
    the caption rules applied (they could not fail before captions existed)."""
    found = dict(zip(captions.column("clip_id").to_pylist(), captions.column("caption").to_pylist()))
    texts = [found.get(cid) if k else None for cid, k in zip(clips.column("clip_id").to_pylist(), clips.column("kept").to_pylist())]
    hygiene = [hygiene_columns(t, repetition_ngram) for t in texts]
    for name in CAPTION_COLUMNS:
        values = texts if name == "caption" else [h[name] for h in hygiene]
        field = clips.schema.field(name)
        clips = clips.set_column(clips.schema.get_field_index(name), field, pa.array(values, field.type))
    return apply_filters(clips, [r for r in rules if r.column in CAPTION_COLUMNS])


def _caption_step(captions, repetition_ngram: int, rules: Sequence[Rule], t: pa.Table, group: int, offset: int) -> pa.Table:
    return with_captions(t, ray.get(captions) if isinstance(captions, ray.ObjectRef) else captions, repetition_ngram, rules)


@ray.remote(num_cpus=1, max_retries=3)
def _items_task(src, parts: list[str], path: str, group: int, offset: int, steps: list, cached: pa.Array):
    """The kept clips of one group that have no caption yet: ([(clip_id, keyframe JPEGs)], {clip_id: (uri, video_id)},
    kept clips, of which cached)."""
    store = src.store()
    t = read_rows(store, path, ["clip_id", "kept", "uri", "video_id"], steps, group, offset)
    t = t.filter(pc.equal(t.column("kept"), True))
    todo = t.filter(pc.invert(pc.is_in(t.column("clip_id"), value_set=cached)))
    ids = todo.column("clip_id").to_pylist()
    items = keyframes_by_clip(read_keyframes(store, src.scan_key, ids, parts)) if ids else []
    who = dict(zip(ids, zip(todo.column("uri").to_pylist(), todo.column("video_id").to_pylist())))
    return items, who, t.num_rows, t.num_rows - todo.num_rows


def run_caption_stage(sh: Shards, store: RunStore, caption_key: str, c: CaptionConfig, stage: StageConfig,
                      storage_options: dict, rules: Sequence[Rule], run_id: str) -> tuple[list[dict], dict]:
    """Caption the kept clips of every partition (cached ones are not captioned again), then add the step that
    joins the captions, their hygiene columns and the caption rules. Returns (error rows, stats).

    The captions of the run's kept clips (cached and new) go to the tasks as one table in the object store."""
    settle(sh)
    cached = first_per_key(store.read_parts(caption_key, "captions", store.committed_parts(caption_key, clean=True)), ["clip_id"])
    cached_ids = ray.put(cached.column("clip_id").combine_chunks())
    off = sh.offsets
    refs = (_items_task.remote(sh.src, sh.groups[g], sh.files[g], g, int(off[g]), sh.steps, cached_ids) for g in range(len(sh.files)))
    stats = {"kept_clips": 0, "already_captioned": 0, "clips_to_caption": 0}
    new, who, captioner = [], {}, None
    t0 = time.perf_counter()
    for items, group_who, n_kept, n_cached in ordered(refs, 2):  # a group's JPEGs on the driver at a time, the next one read
        stats["kept_clips"] += n_kept
        stats["already_captioned"] += n_cached
        stats["clips_to_caption"] += len(items)
        who.update(group_who)
        if items:
            captioner = captioner or _CaptionPool(store, caption_key, c, stage, storage_options)
            new += captioner.caption(items)
    if captioner is not None:
        captioner.close()
        stats.update(caption_s=time.perf_counter() - t0, clips_captioned=sum("caption" in r for r in new))
        generated = [r["s"] for r in new if "caption" in r]
        stats["generate_s_per_clip"] = sum(generated) / len(generated) if generated else None
    ok = [{"clip_id": r["clip_id"], "caption": r["caption"]} for r in new if "caption" in r]
    captions = pa.concat_tables([cached, table_from_rows(ok, TABLES["captions"], "captions")]) if ok else cached
    sh.add(Step(partial(_caption_step, ray.put(captions.select(["clip_id", "caption"])), c.repetition_ngram, list(rules)),
                ("clip_id", "kept", "drop_reasons"), ("kept", "drop_reasons", *CAPTION_COLUMNS)))
    errors = [error_row(who[r["clip_id"]][0], who[r["clip_id"]][1], "caption", "CaptionError", f"clip {r['clip_id']}: {r['error']}", run_id)
              for r in sorted((r for r in new if "error" in r), key=lambda r: r["clip_id"])]
    stats["caption_errors"] = len(errors)
    return errors, stats


class _CaptionPool:
    """Caption actors for the stage's lifetime; successful captions are committed as parts as they arrive."""

    def __init__(self, store: RunStore, caption_key: str, c: CaptionConfig, stage: StageConfig, storage_options: dict):
        self.store, self.key = store, caption_key
        if c.backend == "endpoint":  # one actor, many requests in flight; a task holds enough clips to keep them in flight
            self.per_task, n_actors = 4 * c.concurrency, 1
            actor_cls = ray.remote(_EndpointCaptionWorker).options(num_cpus=stage.num_cpus, num_gpus=0, max_restarts=2,
                                                                   max_task_retries=2)
        else:
            self.per_task, n_actors = max(1, c.batch_size), stage.concurrency
            actor_cls = ray.remote(_CaptionWorker).options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_restarts=2,
                                                           max_task_retries=2)
        self.actors = [actor_cls.remote(c.model_dump(), storage_options) for _ in range(n_actors)]
        self.pool = ActorPool(self.actors)
        self.bar = tqdm(desc="caption", unit="clip", dynamic_ncols=True)

    def caption(self, items: list[tuple[str, list[bytes]]]) -> list[dict]:
        batches = [items[i : i + self.per_task] for i in range(0, len(items), self.per_task)]
        results, pending = [], []
        for result in self.pool.map_unordered(lambda actor, b: actor.caption.remote(b), batches):
            results.extend(result)
            pending.extend(result)
            self.bar.update(len(result))
            if len(pending) >= 1024:
                self._commit(pending)
        self._commit(pending)
        return results

    def _commit(self, pending: list[dict]) -> None:
        ok = [{"clip_id": r["clip_id"], "caption": r["caption"]} for r in pending if "caption" in r]
        if ok:  # failed clips are not cached: the next run tries them again
            self.store.write_part(self.key, {"captions": table_from_rows(ok, TABLES["captions"], "captions")})
        pending.clear()

    def close(self) -> None:
        self.bar.close()
        for actor in self.actors:
            ray.kill(actor)


def caption_cache_key(cfg) -> str:
    """Work-folder key of the caption stage: what decides a caption's text (not batch size or device)."""
    from pipelines.params import scan_config_subset

    c = cfg.caption
    data = {"model": c.model, "prompt": c.prompt, "frames_per_clip": c.frames_per_clip, "max_new_tokens": c.max_new_tokens,
            "dtype": c.dtype, "scan": scan_config_subset(cfg)}
    if c.backend == "endpoint":  # the served model and the rewrite decide the text; not the URL, timeouts or concurrency
        data.update(backend="endpoint", rewrite_prompt=c.rewrite_prompt)
    return "caption-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
