"""Stage `safety`: nsfw_score of every clip from its keyframes, one NudeNet detector per Ray worker process.

The text stage's shape: work goes out one scan part at a time as a Ray task, which reads that part's
keyframes (already cropped to the content box) itself and commits a safety part of the same
name, "already scored" is one listing, and the table stages join a part's scores by its name
(pipelines.table_parts.join_by_clip).
The `unsafe` filter rule on nsfw_score does the dropping.
"""
import hashlib
import json
import time

from pipelines.config import SafetyConfig, StageConfig
from pipelines.store import RunStore
from pipelines.text_stage import keyframes_by_clip, part_tasks, per_clip
from schemas import TABLES, table_from_rows


class _SafetyWorker:
    """Holds one NsfwDetector for a worker process's lifetime (text_stage._keyframe_worker): the ONNX session loads once, never per clip."""

    def __init__(self, s: dict, threads: int):
        from curation.nsfw import NsfwDetector, NsfwParams

        self.detector = NsfwDetector(NsfwParams(classes=tuple(s["classes"]), keyframe_rank=s["keyframe_rank"], threads=threads))

    def score(self, batch: list[tuple[str, list[bytes]]]) -> list[dict]:
        """{"clip_id", "nsfw_score", "nsfw_s"} per clip, or {"clip_id", "error"}: one bad clip does not stop the stage."""
        return per_clip(batch, self.detector.clip_nsfw_score, "nsfw_score", "nsfw_s")

    def score_part(self, output_uri: str, storage_options: dict, scan_key: str, safety_key: str, part: str) -> list[dict]:
        """Score every clip of one committed scan part and commit the safety part of the same name."""
        store = RunStore(output_uri, storage_options)
        rows = self.score(keyframes_by_clip(store.read_part(scan_key, part, "keyframes")))
        ok = [r for r in rows if "error" not in r]  # a clip that failed stays null
        store.write_part(safety_key, {"nsfw_scores": table_from_rows(ok, TABLES["nsfw_scores"], "nsfw_scores")}, part=part)
        return rows


def run_safety_stage(store: RunStore, scan_key: str, safety_key: str, s: SafetyConfig, stage: StageConfig) -> dict:
    """Score the clips of every committed scan part that has no committed safety part yet."""
    done = set(store.committed_parts(safety_key, clean=True))
    todo = [p for p in store.committed_parts(scan_key) if p not in done]
    stats = {"parts_to_score": len(todo), "parts_already_scored": len(done)}
    if not todo:
        return stats
    t0, seconds, failed, scores = time.perf_counter(), 0.0, [], []
    for rows in part_tasks(_SafetyWorker, "score_part", s.model_dump(), stage, todo, "safety", store.output_uri,
                           store.storage_options, scan_key, safety_key):
        failed += [r for r in rows if "error" in r]
        scores += [r["nsfw_score"] for r in rows if "error" not in r]
        seconds += sum(r["nsfw_s"] for r in rows if "error" not in r)
    stats.update(safety_s=time.perf_counter() - t0, clips_scored=len(scores),
                 nsfw_s_per_clip=seconds / len(scores) if scores else None,
                 max_nsfw_score=max((x for x in scores if x is not None), default=None),
                 safety_errors=[f"{r['clip_id']}: {r['error']}" for r in failed[:20]], clips_failed=len(failed))
    return stats


def safety_cache_key(cfg) -> str:
    """Work-folder key of the safety stage: its settings, the detector's wheel version and the scan settings behind the keyframes."""
    from importlib.metadata import version

    from pipelines.params import scan_config_subset

    data = {"safety": cfg.safety.model_dump(mode="json"), "nudenet": version("nudenet"), "scan": scan_config_subset(cfg),
            "layout": "one safety part per scan part"}
    return "safety-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
