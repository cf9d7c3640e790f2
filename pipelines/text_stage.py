"""Stage `text`: on-screen text area of every clip from its keyframes, one text detector per Ray worker process.

Work goes out one scan part at a time, as a Ray task: the task reads that part's
keyframes itself and writes a text part of the same name, so keyframe JPEGs never
pass through the driver, "already measured" is one listing, and the table stages
join a part's text areas by the part's name.
"""
import collections
import functools
import hashlib
import json
import time
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from tqdm import tqdm

from pipelines.config import StageConfig, TextConfig
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8 frame of a keyframe JPEG."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"keyframe is not a decodable JPEG ({len(data)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class DecodedOnUse(Sequence):
    """Keyframe JPEGs as RGB frames, each decoded when first used: the text measure often leaves one untouched."""

    def __init__(self, jpegs: list[bytes]):
        self._jpegs, self._frames = jpegs, {}

    def __len__(self) -> int:
        return len(self._jpegs)

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self._frames:
            self._frames[i] = decode_jpeg(self._jpegs[i])
        return self._frames[i]


def keyframes_by_clip(keyframes: pa.Table, skip: set[str] = frozenset(), only: set[str] | None = None) -> list[tuple[str, list[bytes]]]:
    """(clip_id, keyframe JPEGs in clip order) per clip, sorted by clip_id, leaving out `skip` and clips not in `only`."""
    by_clip: dict[str, list[tuple[float, bytes]]] = {}
    for cid, pos, jpg in zip(*(keyframes.column(c).to_pylist() for c in ("clip_id", "position", "jpeg"))):
        if cid not in skip and (only is None or cid in only):
            by_clip.setdefault(cid, []).append((pos, jpg))
    return [(cid, [j for _, j in sorted(v)]) for cid, v in sorted(by_clip.items())]


def per_clip(batch: list[tuple[str, list[bytes]]], fn, value: str, seconds: str) -> list[dict]:
    """{"clip_id", value: fn(keyframe JPEGs), seconds: its time} per clip, or {"clip_id", "error"} for a clip whose
    keyframes fail (null for that clip, retried next run): one bad clip does not stop a keyframe stage."""
    rows = []
    for cid, jpegs in batch:
        t0 = time.perf_counter()
        try:
            v = fn(jpegs)
        except Exception as e:
            rows.append({"clip_id": cid, "error": f"{type(e).__name__}: {e}"})
            continue
        rows.append({"clip_id": cid, value: v, seconds: time.perf_counter() - t0})
    return rows


class _TextWorker:
    """Holds one TextAreaMeter for a worker process's lifetime (_keyframe_worker): the detector loads once, never per clip."""

    def __init__(self, t: dict, threads: int):
        from curation.text_area import TextAreaMeter, TextAreaParams

        self.meter = TextAreaMeter(TextAreaParams(**t, threads=threads))

    def measure(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        """{"clip_id", "text_area_frac", "ocr_s"} per clip, or {"clip_id", "error"}: one bad clip does not stop the stage."""
        return per_clip(batch, lambda jpegs: self.meter.clip_text_area(DecodedOnUse(jpegs)), "text_area_frac", "ocr_s")

    def measure_part(self, output_uri: str, storage_options: dict, scan_key: str, text_key: str, part: str) -> list[dict]:
        """Measure every clip of one committed scan part and commit the text part of the same name."""
        store = RunStore(output_uri, storage_options)
        rows = self.measure(keyframes_by_clip(store.read_part(scan_key, part, "keyframes")))
        commit_text_part(store, text_key, part, rows)
        return rows


def commit_text_part(store: RunStore, text_key: str, part: str, rows: list[dict]) -> None:
    """The measured clips of one scan part as the text part of the same name (a clip that failed stays null)."""
    ok = [r for r in rows if "error" not in r]
    store.write_part(text_key, {"text_areas": table_from_rows(ok, TABLES["text_areas"], "text_areas")}, part=part)


@functools.lru_cache(maxsize=4)
def _keyframe_worker(cls: type, params: str, threads: int):
    return cls(json.loads(params), threads)


@ray.remote
def _keyframe_part(cls: type, method: str, params: str, threads: int, *args) -> list[dict]:
    """cls(params, threads).method(*args) for one scan part, on whichever worker is free: the worker (a text or safety
    detector) is built once per worker process and cached."""
    return getattr(_keyframe_worker(cls, params, threads), method)(*args)


def part_tasks(cls: type, method: str, params: dict, stage: StageConfig, parts: list[str], desc: str, *args) -> Iterator[list[dict]]:
    """cls(params, threads).method(*args, part) for every part as Ray tasks (_keyframe_part), at most
    stage.concurrency at once; yields each part's rows as it finishes. Tasks, not actors: they land on workers that
    are already up (the scan's, imports done), where a new actor would start a process and load its model while the
    stage waits (most of the stage on a small run)."""
    task = _keyframe_part.options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_retries=2)
    head = (cls, method, json.dumps(params), max(1, int(stage.num_cpus)), *args)
    queue, pending = collections.deque(parts), []
    with tqdm(total=len(parts), desc=desc, unit="part", dynamic_ncols=True) as bar:
        while queue or pending:
            while queue and len(pending) < stage.concurrency:
                pending.append(task.remote(*head, queue.popleft()))
            ready, pending = ray.wait(pending, num_returns=1)
            bar.update(1)
            yield ray.get(ready[0])


def run_text_stage(store: RunStore, scan_key: str, text_key: str, t: TextConfig, stage: StageConfig) -> dict:
    """Measure the clips of every committed scan part that has no committed text part yet."""
    done = set(store.committed_parts(text_key, clean=True))
    todo = [p for p in store.committed_parts(scan_key) if p not in done]
    stats = {"parts_to_measure": len(todo), "parts_already_measured": len(done)}
    if not todo:
        return stats
    t0 = time.perf_counter()
    ocr_s, measured, failed = 0.0, 0, []
    for rows in part_tasks(_TextWorker, "measure_part", t.model_dump(), stage, todo, "text", store.output_uri,
                           store.storage_options, scan_key, text_key):
        failed += [r for r in rows if "error" in r]
        ok = [r for r in rows if "error" not in r]
        measured += len(ok)
        ocr_s += sum(r["ocr_s"] for r in ok)
    stats.update(text_s=time.perf_counter() - t0, clips_measured=measured, ocr_s_per_clip=ocr_s / measured if measured else None,
                 text_errors=[f"{r['clip_id']}: {r['error']}" for r in failed[:20]], clips_failed=len(failed))
    return stats


def join_text_areas(clips: pa.Table, text_areas: pa.Table) -> pa.Table:
    """Fill clips' text_area_frac from the text stage's results (null where not measured; vectorised lookup)."""
    idx = pc.index_in(clips.column("clip_id"), value_set=text_areas.column("clip_id").combine_chunks())
    col = text_areas.column("text_area_frac").take(idx).cast(clips.schema.field("text_area_frac").type)
    return clips.set_column(clips.schema.get_field_index("text_area_frac"), "text_area_frac", col)


def text_cache_key(cfg) -> str:
    """Work-folder key of the text stage: its settings and the scan settings that made the keyframes."""
    from pipelines.params import scan_config_subset

    data = {"text": cfg.text.model_dump(mode="json"), "scan": scan_config_subset(cfg), "layout": "one text part per scan part"}
    return "text-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
