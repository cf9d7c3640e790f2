"""The scan stage's Ray tasks, in a module a worker can import cheaply.

A Ray worker imports the module a remote function is defined in. This one
imports only what scanning and committing need (curation.scan, the store,
the schemas): no pydantic config, no progress bars, no torch.
"""
import ray

from curation.scan import ScanResult, error_row, scan_video
from pipelines.store import RunStore
from schemas import TABLES, table_from_rows

TABLE_NAMES = ("videos", "clips", "keyframes", "errors", "samples")
# Error rows of this stage name come from a task that died (worker crash, lost node, a bug
# raising in scan_video), which says nothing about the file: the next run retries it.
TASK_FAILED_STAGE = "scan"


@ray.remote
def _scan_task(uri: str | None, relpath: str, params, run_id: str, storage_options: dict,
               payload: bytes | None = None, cv2_threads: int = 0, warm_s: float = 0.0) -> ScanResult | int:
    """Scan one file. With no `uri` it is the warm-up: the worker loads this function and the parameters (the first
    call of a function on a worker costs ~1 s), stays busy `warm_s` so the next warm-up lands on another worker, and
    returns its pid, all before the stage's clock starts."""
    if uri is None:
        import os
        import time

        time.sleep(warm_s)
        return os.getpid()
    _use_threads(cv2_threads)
    return scan_video(uri, relpath, params, run_id, storage_options, payload)


def _use_threads(n: int) -> None:
    """OpenCV's thread pool to the task's CPUs: more threads than the task was given only contend with
    the other tasks on the node (Ray already sets OMP_NUM_THREADS to the task's num_cpus)."""
    if n > 0:
        import cv2

        cv2.setNumThreads(n)


# An item handed to a commit: (uri, the scan task's result ref or None, an error row or None).
Item = tuple[str, "list[ray.ObjectRef] | None", "dict | None"]


@ray.remote(num_cpus=0)
def _commit_task(output_uri: str, storage_options: dict, stage_key: str, items: list[Item], run_id: str) -> dict:
    """Fetch finished scan results from the object store and commit them as one part.

    Runs on a worker, so keyframe JPEGs never pass through the driver. The refs come
    wrapped in a list so that Ray does not resolve them first: a task that died gives
    an error row here instead of failing the commit.
    """
    results = resolve_items(items, run_id)
    commit_results(RunStore(output_uri, storage_options), stage_key, results)
    return {"videos": sum(r.video is not None for r in results), "clips": sum(len(r.clips) for r in results),
            "errors": sum(len(r.errors) for r in results)}


def resolve_items(items: list[Item], run_id: str) -> list[ScanResult]:
    """The scan results of commit items; a task that died gives a task-failure error row."""
    results = []
    for uri, wrapped, error in items:
        if error is not None:
            results.append(ScanResult(errors=[error]))
            continue
        try:
            results.append(ray.get(wrapped[0]))
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None) or e
            message = " ".join(str(cause).split())[:500]
            results.append(ScanResult(errors=[error_row(uri, None, TASK_FAILED_STAGE, type(e).__name__,
                                                        f"scan task failed after retries: {message}", run_id)]))
    return results


def commit_results(store: RunStore, stage_key: str, results: list[ScanResult]) -> str:
    """Write scan results as one committed part; returns its name."""
    rows = {name: [] for name in TABLE_NAMES}
    for r in results:
        if r.video is not None:
            rows["videos"].append(r.video)
        rows["clips"].extend(r.clips)
        rows["keyframes"].extend(r.keyframes)
        rows["errors"].extend(r.errors)
        rows["samples"].extend(r.samples)
    return store.write_part(stage_key, {name: table_from_rows(rows[name], TABLES[name], name) for name in TABLE_NAMES})
