"""Stage `probe_split_score`: one Ray task per video, results committed in parts as they arrive."""
import time
from dataclasses import asdict

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import ray
from tqdm import tqdm

from curation.scan import ScanParams, ScanResult, error_row, scan_video
from curation.sources import VideoFile
from pipelines.config import StageConfig
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows

TABLE_NAMES = ("videos", "clips", "keyframes", "errors")
# Error rows of this stage name come from `_result`: the task itself died (worker
# crash, lost node, a bug raising in scan_video), which says nothing about the file.
TASK_FAILED_STAGE = "scan"


# Filesystems that live inside one process: workers cannot open their paths, so the driver
# reads the bytes and ships them through the object store.
_PROCESS_LOCAL_PROTOCOLS = ("memory",)


@ray.remote
def _scan_task(uri: str, relpath: str, params: ScanParams, run_id: str, storage_options: dict,
               payload: bytes | None = None) -> dict:
    return asdict(scan_video(uri, relpath, params, run_id, storage_options, payload))


def _payload(uri: str, storage_options: dict) -> bytes | None:
    if uri.split("://", 1)[0] not in _PROCESS_LOCAL_PROTOCOLS:
        return None
    with fsspec.open(uri, "rb", **storage_options) as f:
        return f.read()


def done_uris(store: RunStore, stage_key: str) -> set[str]:
    """Input URIs that a committed part already holds (as a video or as an error about the file).

    A file whose only record is a failed task is not done: the next run retries it.
    """
    parts = store.committed_parts(stage_key, clean=True)
    done = set(store.read_parts(stage_key, "videos", parts).column("uri").to_pylist())
    errors = store.read_parts(stage_key, "errors", parts)
    for uri, stage in zip(errors.column("uri").to_pylist(), errors.column("stage").to_pylist()):
        if stage != TASK_FAILED_STAGE:
            done.add(uri)
    return done


def run_scan_stage(
    files: list[VideoFile],
    store: RunStore,
    stage_key: str,
    params: ScanParams,
    stage: StageConfig,
    run_id: str,
    storage_options: dict,
    videos_per_part: int,
    max_in_flight: int,
) -> dict:
    """Scan every file not yet committed; returns counts for the run record."""
    done = done_uris(store, stage_key)
    todo = [f for f in files if f.uri not in done]
    stats = {"files": len(files), "already_done": len(files) - len(todo), "scanned": 0, "parts_written": 0}
    if not todo:
        return stats
    task = _scan_task.options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_retries=stage.max_retries)
    params_ref = ray.put(params)
    pending: dict = {}
    buffer: list[ScanResult] = []
    queue = list(todo)
    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc="scan", unit="video", dynamic_ncols=True) as bar:
        while queue or pending:
            while queue and len(pending) < max_in_flight:
                f = queue.pop(0)
                pending[task.remote(f.uri, f.relpath, params_ref, run_id, storage_options,
                                    _payload(f.uri, storage_options))] = f
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                f = pending.pop(ref)
                buffer.append(_result(ref, f, run_id))
                bar.update(1)
                stats["scanned"] += 1
            if len(buffer) >= videos_per_part or (not queue and not pending and buffer):
                _commit(store, stage_key, buffer)
                stats["parts_written"] += 1
                buffer = []
    stats["scan_s"] = time.perf_counter() - t0
    stats["task_failures_retired"] = _retire_task_failures(store, stage_key)
    return stats


def _retire_task_failures(store: RunStore, stage_key: str) -> int:
    """Drop task-failure error rows of files that now have a real result (a retry on a later run succeeded).

    Parts are immutable, so a part holding such rows is rewritten without them: the
    copy is committed before the original is removed, and a kill in between only
    leaves duplicate rows, which the final assembly drops (it keeps one row per key).
    """
    parts = store.committed_parts(stage_key)
    errors = {p: store.read_parts(stage_key, "errors", [p]) for p in parts}
    failed = {u for t in errors.values() for u, s in zip(t.column("uri").to_pylist(), t.column("stage").to_pylist())
              if s == TASK_FAILED_STAGE}
    if not failed:
        return 0
    resolved = failed & done_uris(store, stage_key)
    retired = 0
    for part, table in errors.items():
        stale = pc.and_(pc.equal(table.column("stage"), TASK_FAILED_STAGE),
                        pc.is_in(table.column("uri"), value_set=pa.array(sorted(resolved), pa.string())))
        n = pc.sum(stale).as_py() or 0
        if not n:
            continue
        tables = {name: store.read_parts(stage_key, name, [part]) for name in TABLE_NAMES}
        tables["errors"] = table.filter(pc.invert(stale))
        store.write_part(stage_key, tables)
        store.remove_part(stage_key, part)
        retired += n
    return retired


def _result(ref, f: VideoFile, run_id: str) -> ScanResult:
    """The task's rows, or an error row when the task itself died (worker crash, lost node)."""
    try:
        return ScanResult(**ray.get(ref))
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None) or e
        message = " ".join(str(cause).split())[:500]
        return ScanResult(errors=[error_row(f.uri, None, TASK_FAILED_STAGE, type(e).__name__, f"scan task failed after retries: {message}", run_id)])


def _commit(store: RunStore, stage_key: str, results: list[ScanResult]) -> None:
    rows = {name: [] for name in TABLE_NAMES}
    for r in results:
        if r.video is not None:
            rows["videos"].append(r.video)
        rows["clips"].extend(r.clips)
        rows["keyframes"].extend(r.keyframes)
        rows["errors"].extend(r.errors)
    tables: dict[str, pa.Table] = {name: table_from_rows(rows[name], TABLES[name], name) for name in TABLE_NAMES}
    store.write_part(stage_key, tables)
