"""Stage `probe_split_score`: one Ray task per video, committed in parts by Ray tasks as results arrive.

The driver only schedules: it waits on task refs without fetching them, hands
each full part's refs to a commit task (rows and keyframe JPEGs go from the
object store straight to storage), and cancels a task that runs past its
timeout, which becomes a `Timeout` error row.
"""
import collections
import time

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import ray
from tqdm import tqdm

from curation.scan import ScanParams, error_row
from curation.sources import VideoFile
from pipelines.config import StageConfig
from pipelines.scan_task import TABLE_NAMES, TASK_FAILED_STAGE, _commit_task, _scan_task, commit_results
from pipelines.store import RunStore

STAGE = "probe_split_score"
# Filesystems that live inside one process: workers cannot open their paths, so the driver
# reads the bytes and ships them through the object store.
_PROCESS_LOCAL_PROTOCOLS = ("memory",)


def _payload(uri: str, storage_options: dict) -> bytes | None:
    if uri.split("://", 1)[0] not in _PROCESS_LOCAL_PROTOCOLS:
        return None
    with fsspec.open(uri, "rb", **storage_options) as f:
        return f.read()


def done_uris(store: RunStore, stage_key: str) -> pa.Array:
    """Input URIs that a committed part already holds (as a video or as an error about the file).

    A file whose only record is a failed task is not done: the next run retries it.
    Only the uri and stage columns are read.
    """
    parts = store.committed_parts(stage_key, clean=True)
    videos = store.read_parts(stage_key, "videos", parts, columns=["uri"]).column("uri")
    errors = store.read_parts(stage_key, "errors", parts, columns=["uri", "stage"])
    errors = errors.filter(pc.not_equal(errors.column("stage"), TASK_FAILED_STAGE)).column("uri")
    return pc.unique(pa.concat_arrays([videos.combine_chunks(), errors.combine_chunks()]).cast(pa.string()))


def task_timeout_s(f: VideoFile, stage: StageConfig) -> float:
    """Seconds a scan task may run: proportional to the file's size, never below the floor."""
    return max(stage.timeout_floor_s, stage.timeout_s_per_gb * max(f.size, 0) / 1e9)


def run_scan_stage(
    files: list[VideoFile],
    store: RunStore,
    stage_key: str,
    params: ScanParams,
    stage: StageConfig,
    run_id: str,
    storage_options: dict,
    videos_per_part: int,
    slots: int,
) -> dict:
    """Scan every file not yet committed; `slots` = tasks that run at once. Returns counts and timings."""
    uris = pa.array([f.uri for f in files], pa.string())
    todo_mask = pc.invert(pc.is_in(uris, value_set=done_uris(store, stage_key))).to_pylist()
    # longest first: the big files do not end up alone at the tail of the run
    todo = collections.deque(sorted((f for f, t in zip(files, todo_mask) if t), key=lambda f: -f.size))
    stats = {"files": len(files), "already_done": len(files) - len(todo), "scanned": 0, "parts_written": 0, "timeouts": 0}
    if not todo:
        return stats
    slots = max(1, slots)
    t0 = time.perf_counter()
    task = _scan_task.options(num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, max_retries=stage.max_retries)
    params_ref = ray.put(params)
    ray.get([task.remote(None, "", params_ref, run_id, {}, warm_s=0.2) for _ in range(min(slots, len(todo)))])
    stats["workers_start_s"] = time.perf_counter() - t0
    cv2_threads = max(1, round(stage.num_cpus))  # OpenCV's pool sized to the CPUs a task holds, not the node's
    max_in_flight = slots + max(1, slots // 2)  # a few queued so a worker never waits for the driver
    pending: dict[ray.ObjectRef, tuple[VideoFile, float | None]] = {}  # insertion order = submission order
    buffer: list = []
    commits: list[ray.ObjectRef] = []
    t0 = time.perf_counter()

    def commit() -> None:
        commits.append(_commit_task.remote(store.output_uri, store.storage_options, stage_key, list(buffer), run_id))
        buffer.clear()
        stats["parts_written"] += 1

    with tqdm(total=len(todo), desc="scan", unit="video", dynamic_ncols=True) as bar:
        while todo or pending:
            while todo and len(pending) < max_in_flight:
                f = todo.popleft()
                pending[task.remote(f.uri, f.relpath, params_ref, run_id, storage_options, _payload(f.uri, storage_options),
                                    cv2_threads)] = (f, None)
            now = time.monotonic()
            deadline = _next_deadline(pending, slots, stage, now)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, min(deadline - now, 5.0)), fetch_local=False)
            for ref in ready:
                f, _ = pending.pop(ref)
                buffer.append((f.uri, [ref], None))
            timed_out = _cancel_overdue(pending, stage, run_id)
            buffer.extend(timed_out)
            stats["timeouts"] += len(timed_out)
            stats["scanned"] += len(ready) + len(timed_out)
            bar.update(len(ready) + len(timed_out))
            if len(buffer) >= videos_per_part or (not todo and not pending and buffer):
                commit()
    for c in ray.get(commits):  # a commit that cannot write fails the run: the output is unusable
        for k, v in c.items():
            stats[k] = stats.get(k, 0) + v
    stats["scan_s"] = time.perf_counter() - t0
    stats["task_failures_retired"] = _retire_task_failures(store, stage_key)
    return stats


def _next_deadline(pending: dict, slots: int, stage: StageConfig, now: float) -> float:
    """The earliest timeout among the running tasks. A task's clock starts once it is among the first `slots` in
    flight (Ray runs them in order)."""
    for ref in list(pending)[:slots]:
        f, started = pending[ref]
        if started is None:
            pending[ref] = (f, now)
    return min(s + task_timeout_s(f, stage) for f, s in list(pending.values())[:slots])


def _cancel_overdue(pending: dict, stage: StageConfig, run_id: str) -> list:
    """Cancel the started tasks past their timeout; returns their commit items (a `Timeout` error row each)."""
    now, out = time.monotonic(), []
    for ref, (f, started) in list(pending.items()):
        limit = task_timeout_s(f, stage)
        if started is not None and now - started > limit:
            ray.cancel(ref, force=True)  # kills the worker: a read blocked in C code cannot be interrupted
            del pending[ref]
            out.append((f.uri, None, error_row(f.uri, None, STAGE, "Timeout",
                                               f"scan did not finish within {limit:.0f} s (stages.{STAGE}.timeout_*)", run_id)))
    return out


def _retire_task_failures(store: RunStore, stage_key: str) -> int:
    """Drop task-failure error rows of files that now have a real result (a retry on a later run succeeded).

    Parts are immutable, so a part holding such rows is rewritten without them: the
    copy is committed before the original is removed, and a kill in between only
    leaves duplicate rows, which the final assembly drops (it keeps one row per key).
    """
    all_errors = store.read_parts(stage_key, "errors", columns=["uri", "stage"])
    if not pc.any(pc.equal(all_errors.column("stage"), TASK_FAILED_STAGE)).as_py():
        return 0  # the usual case: one listing and one column scan, no per-part reads
    resolved = done_uris(store, stage_key)
    retired = 0
    for part in store.committed_parts(stage_key):
        table = store.read_parts(stage_key, "errors", [part])
        stale = pc.and_(pc.equal(table.column("stage"), TASK_FAILED_STAGE), pc.is_in(table.column("uri"), value_set=resolved))
        n = pc.sum(stale).as_py() or 0
        if not n:
            continue
        tables = {name: store.read_parts(stage_key, name, [part]) for name in TABLE_NAMES}
        tables["errors"] = table.filter(pc.invert(stale))
        store.write_part(stage_key, tables)
        store.remove_part(stage_key, part)
        retired += n
    return retired


__all__ = ["STAGE", "commit_results", "done_uris", "run_scan_stage", "task_timeout_s"]
