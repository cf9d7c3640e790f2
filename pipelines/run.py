"""`vidcurate run`: config → Ray stages → tables on storage, resumable and incremental."""
import datetime as dt
import hashlib
import importlib
import importlib.metadata
import json
import time

import pyarrow as pa
import pyarrow.compute as pc

from curation.balance import balance
from curation.filters import apply_filters, rule_counts
from curation.scan import error_row
from curation.sources import list_videos
from pipelines.config import BUILTIN_STAGES, PipelineConfig, balance_params, dedup_params, stage_order
from pipelines.dedup_stage import run_dedup_on_ray
from pipelines.embed_stage import join_embeddings, run_embed_stage
from pipelines.params import embed_config_subset, filter_rules, scan_config_subset, scan_params
from pipelines.ray_runtime import init_ray
from pipelines.scan_stage import done_uris, run_scan_stage
from pipelines.store import RunStore
from pipelines.caption_stage import caption_cache_key, run_caption_stage  # text and captions
from pipelines.text_stage import join_text_areas, run_text_stage, text_cache_key  # text and captions
from schemas import TABLES, RunRecord, table_from_rows, validate_table

FINAL_TABLES = ("videos", "clips", "curated", "errors", "keyframes")
_PACKAGES = ("vidcurate", "ray", "pyarrow", "duckdb", "av", "opencv-python-headless", "scenedetect", "torch", "open_clip_torch", "numpy",
             "transformers", "rapidocr", "onnxruntime")


def _short_hash(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tables_config_hash(cfg: PipelineConfig) -> str:
    """Hash of the config that decides the final tables: where Ray runs or how parts are sized does not."""
    d = cfg.public_dict()
    d.pop("ray", None)
    d["output"].pop("videos_per_part", None)
    return _short_hash(d)


def versions() -> dict:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def describe_dag(cfg: PipelineConfig) -> str:
    """The DAG `run` would execute, one stage per line."""
    lines = []
    for name in stage_order(cfg):
        st = cfg.stages[name]
        deps = ", ".join(st.depends_on) or "-"
        kind = st.entrypoint or ("built-in" if name in BUILTIN_STAGES else "?")
        res = f"cpus={st.num_cpus:g} gpus={st.num_gpus:g}"
        if name == "embed":
            res += f" actors={st.concurrency} batch={cfg.aesthetic.batch_size} device={cfg.aesthetic.device}"
            if not cfg.aesthetic.clip_checkpoint:
                res += " (skipped: aesthetic.clip_checkpoint not configured)"
        if name == "caption":  # text and captions
            res += f" actors={st.concurrency} batch={cfg.caption.batch_size} device={cfg.caption.device}"
            if not cfg.caption.model:
                res += " (skipped: caption.model not configured)"
        lines.append(f"{name:<20} after: {deps:<28} {kind:<10} {res}")
    off = [n for n, s in cfg.stages.items() if not s.enabled]
    if off:
        lines.append(f"(switched off: {', '.join(off)})")
    return "\n".join(lines)


def run_pipeline(input_uri: str, output_uri: str, cfg: PipelineConfig, log=print) -> RunRecord:
    """Run (or resume) the pipeline; raises InputError/OutputError for unusable locations."""
    t_start = time.perf_counter()
    order = stage_order(cfg)
    store = RunStore(output_uri, cfg.output.storage_options)
    store.check_writable()
    files, skipped = list_videos(input_uri, cfg.input.extensions, cfg.input.storage_options)
    now = dt.datetime.now(dt.timezone.utc)
    config_hash = cfg.hash()
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{config_hash[:8]}"
    record = RunRecord(
        run_id=run_id, input_uri=input_uri, output_uri=output_uri, started_at=now.isoformat(),
        config=cfg.public_dict(), config_hash=config_hash, versions=versions(),
    )
    timings = record.timings
    scan_key = f"scan-{_short_hash(scan_config_subset(cfg))}"
    embed_key = f"embed-{_short_hash(embed_config_subset(cfg))}"
    scanned = 0

    embed_on = "embed" in order and cfg.aesthetic.clip_checkpoint is not None
    text_key = text_cache_key(cfg) if "text" in order else None  # text and captions

    def fingerprint() -> dict:
        return {
            "config_hash": tables_config_hash(cfg),
            "inputs": sorted(f.uri for f in files),
            "scan_parts": store.committed_parts(scan_key),
            "embed_parts": store.committed_parts(embed_key) if embed_on else [],
            "text_parts": store.committed_parts(text_key) if text_key else [],
        }

    # a finished job is recognised before Ray starts: same inputs, config and parts as the last assembly
    previous = store.read_json("_work/final.json")
    if (previous == fingerprint() and store.fs.exists(store.path("curated"))
            and {f.uri for f in files} <= done_uris(store, scan_key)):  # a crashed task's file is retried
        record.status = "nothing_to_do"
        record.finished_at = dt.datetime.now(dt.timezone.utc).isoformat()
        log(f"nothing to do: all {len(files)} input files are already processed with this config ({output_uri})")
        return record

    t = time.perf_counter()
    resources = init_ray(cfg.ray.address, cfg.ray.num_cpus)
    timings["ray_start_s"] = time.perf_counter() - t
    record.notes.append(f"ray: {int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs")

    if "probe_split_score" in order:
        t = time.perf_counter()
        max_in_flight = max(2, int(2 * resources.get("CPU", 1)))
        stats = run_scan_stage(files, store, scan_key, scan_params(cfg), cfg.stages["probe_split_score"], run_id,
                               cfg.input.storage_options, cfg.output.videos_per_part, max_in_flight)
        scanned = stats["scanned"]
        record.counts["scan"] = stats
        timings["probe_split_score_s"] = time.perf_counter() - t
        if stats["already_done"]:
            log(f"resuming: {stats['already_done']} of {stats['files']} files already scanned")

    if "embed" in order and not cfg.aesthetic.clip_checkpoint:
        record.not_configured += ["embedding: not configured (aesthetic.clip_checkpoint is null)",
                                  "aesthetic: not configured (aesthetic.clip_checkpoint is null)"]
    elif embed_on and not cfg.aesthetic.head_checkpoint:
        record.not_configured.append("aesthetic: not configured (aesthetic.head_checkpoint is null)")
    embedded = 0
    if embed_on:
        t = time.perf_counter()
        stats = run_embed_stage(store, scan_key, embed_key, cfg.aesthetic, cfg.stages["embed"], cfg.input.storage_options)
        embedded = stats.get("clips_embedded", 0)
        record.counts["embed"] = stats
        timings["embed_s"] = time.perf_counter() - t

    measured = 0
    if text_key:  # --- text and captions: on-screen text area from keyframes ---
        t = time.perf_counter()
        stats = run_text_stage(store, scan_key, text_key, cfg.text, cfg.stages["text"])
        measured = stats.get("clips_measured", 0)
        record.counts["text"] = stats
        timings["text_s"] = time.perf_counter() - t
    if "caption" in order and not cfg.caption.model:
        record.not_configured.append("caption: not configured (caption.model is null)")

    final_fingerprint = fingerprint()
    if scanned == 0 and embedded == 0 and measured == 0 and store.read_json("_work/final.json") == final_fingerprint:
        record.status = "nothing_to_do"
        record.finished_at = dt.datetime.now(dt.timezone.utc).isoformat()
        log(f"nothing to do: all {len(files)} input files are already processed with this config ({output_uri})")
        return record

    t = time.perf_counter()
    tables = _assemble(store, scan_key, embed_key if embed_on else None, files, skipped, cfg, order, run_id, record, text_key)
    timings["assemble_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for name in FINAL_TABLES:
        store.replace_table(name, tables[name], tag=config_hash[:8])
    timings["write_s"] = time.perf_counter() - t

    clips, curated = tables["clips"], tables["curated"]
    record.counts.update(
        inputs=len(files) + len(skipped),
        videos=tables["videos"].num_rows,
        clips=clips.num_rows,
        curated=curated.num_rows,
        errors=tables["errors"].num_rows,
        inputs_with_errors=len(set(tables["errors"].column("uri").to_pylist())),
        drop_reasons=rule_counts(clips),
        hours_in=float(pc.sum(clips.column("duration_s")).as_py() or 0) / 3600,
        hours_curated=float(pc.sum(curated.column("duration_s")).as_py() or 0) / 3600,
    )
    timings["total_s"] = time.perf_counter() - t_start
    record.status = "succeeded"
    record.finished_at = dt.datetime.now(dt.timezone.utc).isoformat()
    store.write_json(f"runs/{run_id}.json", json.loads(record.to_json()))
    # written last: a kill before this point means the next run assembles again (and records it)
    store.write_json("_work/final.json", final_fingerprint)
    return record


def _assemble(store, scan_key, embed_key, files, skipped, cfg, order, run_id, record, text_key=None) -> dict[str, pa.Table]:
    """Global stages over the committed parts: join, filter, dedup, custom stages, curate."""
    wanted = pa.array(sorted(f.uri for f in files), pa.string())
    parts = store.committed_parts(scan_key)

    def current(name: str, key: str, values: pa.Array, sort: list[tuple[str, str]]) -> pa.Table:
        """Rows of the committed parts whose `key` is among `values` (inputs no longer listed drop out)."""
        t = store.read_parts(scan_key, name, parts)
        t = t.filter(pc.is_in(t.column(key), value_set=values))
        return t.sort_by(sort) if t.num_rows else t

    videos = _dedupe_rows(current("videos", "uri", wanted, [("relpath", "ascending")]), "uri")
    video_ids = pa.array(videos.column("video_id").to_pylist(), pa.string())
    clips = _dedupe_rows(current("clips", "uri", wanted, [("uri", "ascending"), ("clip_index", "ascending")]), "clip_id")
    keyframes = _dedupe_rows(current("keyframes", "video_id", video_ids, [("clip_id", "ascending"), ("position", "ascending")]),
                             ("clip_id", "position"))
    errors = current("errors", "uri", wanted, [("uri", "ascending"), ("stage", "ascending")])
    list_errors = [error_row(uri, None, "list", "Unreadable", reason, run_id) for uri, reason in skipped]
    if list_errors:
        errors = pa.concat_tables([errors, table_from_rows(list_errors, TABLES["errors"], "errors")])
    errors = _dedupe_rows(errors, ("uri", "stage", "error_type"))

    if embed_key:
        clips = join_embeddings(clips, store.read_parts(embed_key, "embeddings"))
    if text_key:  # text and captions
        clips = join_text_areas(clips, store.read_parts(text_key, "text_areas"))
    for name in order:  # the table stages, in DAG order
        if cfg.stages[name].entrypoint:
            clips = _custom_stage(name, cfg.stages[name].entrypoint, clips, cfg)
        elif name == "filter":
            clips = apply_filters(clips, filter_rules(cfg))
        elif name == "dedup":
            result = run_dedup_on_ray(clips, videos, dedup_params(cfg.dedup))
            clips = result.table
            record.notes.extend(result.notes)
            record.counts["dedup"] = result.stats
        elif name == "balance":
            result = balance(clips, balance_params(cfg.balance))
            clips = result.table
            record.notes.extend(result.notes)
            record.counts["balance"] = result.report
        elif name == "caption" and cfg.caption.model:  # --- text and captions ---
            clips, caption_errors, record.counts["caption"] = run_caption_stage(
                clips, keyframes, store, caption_cache_key(cfg), cfg.caption, cfg.stages["caption"],
                cfg.input.storage_options, filter_rules(cfg), run_id)
            if caption_errors:
                errors = pa.concat_tables([errors, table_from_rows(caption_errors, TABLES["errors"], "errors")])
    curated = clips.filter(pc.equal(clips.column("kept"), True)) if "curate" in order else TABLES["curated"].empty_table()
    return {"videos": videos, "clips": clips, "curated": curated, "errors": errors, "keyframes": keyframes}


def _dedupe_rows(table: pa.Table, key) -> pa.Table:
    """Keep the first row per key: a file rescanned after an interrupted commit must not appear twice."""
    keys = [key] if isinstance(key, str) else list(key)
    if table.num_rows == 0:
        return table
    seen, keep = set(), []
    for i, k in enumerate(zip(*(table.column(c).to_pylist() for c in keys))):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table


def _custom_stage(name: str, entrypoint: str, clips: pa.Table, cfg: PipelineConfig) -> pa.Table:
    """A user stage "module:function" taking (clips, stage_config_dict) and returning clips."""
    module, _, func = entrypoint.partition(":")
    fn = getattr(importlib.import_module(module), func)
    out = fn(clips, cfg.stages[name].model_dump())
    return validate_table(out, TABLES["clips"], f"clips after stage {name}")
