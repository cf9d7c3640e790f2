"""`vidcurate run`: a small executor over the stages the config declares, in `depends_on` order.

Every stage is a function `(run, name)` in STAGE_RUNNERS (steps), run by
`run_pipeline` (the executor) in the DAG's order; a stage hands its output to
the next through the store (scan and embed: committed parts) or through
`run.clips` (the table stages). A stage with an `entrypoint` is a custom table
stage and can go anywhere after the scan.
"""
import datetime as dt
import hashlib
import importlib
import importlib.metadata
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from curation.balance import balance
from curation.filters import apply_filters, rule_counts
from curation.scan import error_row
from curation.sources import VideoFile, list_videos
from pipelines.config import BUILTIN_STAGES, PipelineConfig, balance_params, dedup_params, stage_order
from pipelines.dedup_stage import run_dedup_on_ray
from pipelines.embed_stage import join_embeddings, run_embed_stage
from pipelines.params import describe_filters, embed_config_subset, filter_rules, scan_config_subset, scan_params
from pipelines.ray_runtime import init_ray
from pipelines.run_records import RunTracker, redact_uri, tracked, unique_run_id
from pipelines.scan_stage import done_uris, run_scan_stage
from pipelines.store import RunStore
from pipelines.caption_stage import caption_cache_key, run_caption_stage
from pipelines.text_stage import join_text_areas, run_text_stage, text_cache_key
from schemas import TABLES, RunRecord, table_from_rows, validate_table

FINAL_TABLES = ("videos", "clips", "curated", "errors", "keyframes", "dup_segments")
_PACKAGES = ("vidcurate", "ray", "pyarrow", "duckdb", "av", "opencv-python-headless", "scenedetect", "torch", "open_clip_torch", "numpy",
             "transformers", "rapidocr", "onnxruntime")


def _short_hash(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tables_config_hash(cfg: PipelineConfig) -> str:
    """Hash of the config that decides the final tables: where Ray runs or how parts are sized does not."""
    d = cfg.public_dict()
    d.pop("ray", None)
    for key in ("videos_per_part", "heartbeat_s", "stale_after_s"):
        d["output"].pop(key, None)
    for st in d["stages"].values():  # how long a task may run does not change what a finished one wrote
        st.pop("timeout_floor_s", None)
        st.pop("timeout_s_per_gb", None)
    return _short_hash(d)


def versions() -> dict:
    out = {}
    for p in _PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


@dataclass
class Run:
    """What the stages of one run share: the store, the inputs, the record being filled, the clips table."""

    cfg: PipelineConfig
    store: RunStore
    files: list[VideoFile]
    skipped: list[tuple[str, str]]
    record: RunRecord
    scan_key: str
    embed_key: str
    text_key: str | None = None  # on-screen text parts (None: the text stage is off)
    log: Callable = print
    work_keys: list[str] = field(default_factory=list)  # stage keys whose committed parts decide the final tables
    clips: pa.Table | None = None  # the table stages' working table, assembled from the parts when first needed
    videos: pa.Table | None = None
    errors: pa.Table | None = None
    kept_videos: pa.Array | None = None  # "part/video_id" of each video's one committed copy
    dup_segments: pa.Table | None = None  # matched segments between videos (dedup, kind segment); None: not run

    @property
    def embed_on(self) -> bool:
        return "embed" in stage_order(self.cfg) and self.cfg.aesthetic.clip_checkpoint is not None

    def fingerprint(self) -> dict:
        """What the final tables were assembled from: equal fingerprints mean equal tables."""
        return {"config_hash": tables_config_hash(self.cfg), "inputs": sorted(f.uri for f in self.files),
                **{key: self.store.committed_parts(key) for key in self.work_keys}}

    def table_clips(self) -> pa.Table:
        """The clips table for the table stages, assembled from the committed parts on first use."""
        if self.clips is None:
            t = time.perf_counter()
            _assemble(self)
            self.record.timings["assemble_s"] = time.perf_counter() - t
        return self.clips


# ------------------------------------------------------------------ the stages (steps)

def _scan(run: Run, name: str) -> None:
    cfg, stage = run.cfg, run.cfg.stages[name]
    slots = max(1, int(run.record.cluster.get("cpus", 1) / max(stage.num_cpus, 1e-3)))
    stats = run_scan_stage(run.files, run.store, run.scan_key, scan_params(cfg), stage, run.record.run_id,
                           cfg.input.storage_options, cfg.output.videos_per_part, slots)
    run.record.counts["scan"] = stats
    if "workers_start_s" in stats:
        run.record.timings["scan_workers_start_s"] = stats["workers_start_s"]
    if stats["already_done"]:
        run.log(f"resuming: {stats['already_done']} of {stats['files']} files already scanned")


def _embed(run: Run, name: str) -> None:
    if run.embed_on:
        run.record.counts["embed"] = run_embed_stage(run.store, run.scan_key, run.embed_key, run.cfg.aesthetic,
                                                     run.cfg.stages[name], run.cfg.input.storage_options, run.record.run_id)


def _text(run: Run, name: str) -> None:
    """On-screen text area of every clip from its keyframes (rapidocr's bundled detector), in parts under text_key."""
    run.record.counts["text"] = run_text_stage(run.store, run.scan_key, run.text_key, run.cfg.text, run.cfg.stages[name])


def _caption(run: Run, name: str) -> None:
    """VLM captions for the clips kept so far (cached by clip and caption config), then the caption hygiene rules."""
    if not run.cfg.caption.model:
        return
    clips = run.table_clips()
    kept = pc.filter(clips.column("clip_id"), clips.column("kept"))
    keyframes = [t.filter(pc.is_in(t.column("clip_id"), value_set=kept)) for t in _keyframes(run)]
    keyframes = pa.concat_tables(keyframes) if keyframes else TABLES["keyframes"].empty_table()
    run.clips, errors, run.record.counts["caption"] = run_caption_stage(
        clips, keyframes, run.store, caption_cache_key(run.cfg), run.cfg.caption, run.cfg.stages[name],
        run.cfg.input.storage_options, filter_rules(run.cfg), run.record.run_id)
    if errors:
        run.errors = pa.concat_tables([run.errors, table_from_rows(errors, TABLES["errors"], "errors")])


def _filter(run: Run, name: str) -> None:
    run.clips = apply_filters(run.table_clips(), filter_rules(run.cfg))


def _dedup(run: Run, name: str) -> None:
    params = dedup_params(run.cfg.dedup)
    clips = run.table_clips()
    samples = _samples(run) if "segment" in params.kinds else None
    result = run_dedup_on_ray(clips, run.videos, params, samples=samples)
    run.clips = result.table
    run.dup_segments = result.segments
    run.record.notes.extend(result.notes)
    run.record.counts["dedup"] = result.stats


def _balance(run: Run, name: str) -> None:
    result = balance(run.table_clips(), balance_params(run.cfg.balance))
    run.clips = result.table
    run.record.notes.extend(result.notes)
    run.record.counts["balance"] = result.report


def _curate(run: Run, name: str) -> None:
    """Nothing to compute here: curated/ is written from the final clips, the ones no stage dropped."""
    run.table_clips()


def _custom_stage(run: Run, name: str) -> None:
    """A user stage "module:function" taking (clips, stage_config_dict) and returning clips."""
    module, _, func = run.cfg.stages[name].entrypoint.partition(":")
    fn = getattr(importlib.import_module(module), func)
    out = fn(run.table_clips(), run.cfg.stages[name].model_dump())
    run.clips = validate_table(out, TABLES["clips"], f"clips after stage {name}")


# A stage plugs in here by name (and in config.BUILTIN_STAGES); per-clip model stages read
# run.table_clips() and keep their results in parts under their own work key (see embed).
STAGE_RUNNERS: dict[str, Callable[[Run, str], None]] = {
    "probe_split_score": _scan, "embed": _embed, "text": _text, "caption": _caption, "filter": _filter, "dedup": _dedup, "balance": _balance, "curate": _curate,
}


# ------------------------------------------------------------------ the executor

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
        if name == "caption":
            res += f" actors={st.concurrency} batch={cfg.caption.batch_size} device={cfg.caption.device}"
            if not cfg.caption.model:
                res += " (skipped: caption.model not configured)"
        lines.append(f"{name:<20} after: {deps:<28} {kind:<10} {res}")
    off = [n for n, s in cfg.stages.items() if not s.enabled]
    if off:
        lines.append(f"(switched off: {', '.join(off)})")
    return "\n".join(lines)


def run_pipeline(input_uri: str, output_uri: str, cfg: PipelineConfig, log=print,
                 on_stage: Callable[[str, str], None] | None = None) -> RunRecord:
    """Run (or resume) the pipeline; raises InputError/OutputError/ClusterError for unusable locations.

    `on_stage(name, "start" | "end")` is called around every stage (progress, benchmarks).
    Once the output is known writable, runs/<run_id>.json says `running`, then how the run ended
    (pipelines/run_records.py); a run with nothing to do leaves no record.
    """
    t_start = time.perf_counter()
    store = RunStore(output_uri, cfg.output.storage_options)
    store.check_writable()
    record = _new_record(store, input_uri, output_uri, cfg)
    with tracked(store, record, cfg.output.heartbeat_s, cfg.output.stale_after_s, log) as tracker:
        run = _prepare(store, record, input_uri, cfg, log)
        log(describe_filters(cfg))  # once, after the inputs are known to be readable
        if _already_done(run):
            log(f"nothing to do: all {len(run.files)} input files are already processed with this config ({output_uri})")
            tracker.discard()
            return _finish(run, "nothing_to_do")
        t = time.perf_counter()
        record.cluster = init_ray(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.connect_timeout_s,
                                  cfg.ray.worker_niceness, cfg.ray.observability)
        tracker.catch_sigterm()  # ray.init replaced it with sys.exit; SIGTERM must still end the record as interrupted
        record.timings["ray_start_s"] = time.perf_counter() - t
        record.notes.append(f"ray: {record.cluster['how']}, {record.cluster.get('address')}, {record.cluster['nodes']} nodes, "
                            f"{int(record.cluster['cpus'])} CPUs, {int(record.cluster['gpus'])} GPUs")
        for name in stage_order(cfg):
            if on_stage:
                on_stage(name, "start")
            t = time.perf_counter()
            (_custom_stage if cfg.stages[name].entrypoint else STAGE_RUNNERS[name])(run, name)
            record.timings[f"{name}_s"] = time.perf_counter() - t
            if on_stage:
                on_stage(name, "end")
        t = time.perf_counter()
        _write_tables(run)
        record.timings["write_s"] = time.perf_counter() - t
        record.timings["total_s"] = time.perf_counter() - t_start
        return _finish(run, "succeeded", tracker)


def _new_record(store: RunStore, input_uri: str, output_uri: str, cfg: PipelineConfig) -> RunRecord:
    """The record of a run starting now (credentials in the URIs redacted)."""
    now = dt.datetime.now(dt.timezone.utc)
    run_id = unique_run_id(store, f"{now:%Y%m%dT%H%M%SZ}-{cfg.hash()[:8]}")
    return RunRecord(run_id=run_id, input_uri=redact_uri(input_uri), output_uri=redact_uri(output_uri),
                     started_at=now.isoformat(), config=cfg.public_dict(), config_hash=cfg.hash(), versions=versions())


def _prepare(store: RunStore, record: RunRecord, input_uri: str, cfg: PipelineConfig, log) -> Run:
    files, skipped = list_videos(input_uri, cfg.input.extensions, cfg.input.storage_options)
    run = Run(cfg, store, files, skipped, record, scan_key=f"scan-{_short_hash(scan_config_subset(cfg))}",
              embed_key=f"embed-{_short_hash(embed_config_subset(cfg))}", log=log)
    run.text_key = text_cache_key(cfg) if "text" in stage_order(cfg) else None
    run.work_keys = [run.scan_key] + ([run.embed_key] if run.embed_on else []) + ([run.text_key] if run.text_key else [])
    if "caption" in stage_order(cfg) and not cfg.caption.model:
        record.not_configured.append("caption: not configured (caption.model is null)")
    if "embed" in stage_order(cfg) and not cfg.aesthetic.clip_checkpoint:
        record.not_configured += ["embedding: not configured (aesthetic.clip_checkpoint is null)",
                                  "aesthetic: not configured (aesthetic.clip_checkpoint is null)"]
    elif run.embed_on and not cfg.aesthetic.head_checkpoint:
        record.not_configured.append("aesthetic: not configured (aesthetic.head_checkpoint is null)")
    return run


def _already_done(run: Run) -> bool:
    """Same inputs, config and parts as the last assembly, and every input has a result: before Ray starts."""
    if run.store.read_json("_work/final.json") != run.fingerprint() or not run.store.fs.exists(run.store.path("curated")):
        return False
    uris = pa.array([f.uri for f in run.files], pa.string())
    return pc.all(pc.is_in(uris, value_set=done_uris(run.store, run.scan_key))).as_py() in (True, None)  # a crashed task's file is retried


def _finish(run: Run, status: str, tracker: RunTracker | None = None) -> RunRecord:
    if tracker is not None:
        tracker.end(status)  # stops the heartbeat, writes runs/<run_id>.json
    else:
        run.record.status = status
        run.record.finished_at = dt.datetime.now(dt.timezone.utc).isoformat()
    if status == "succeeded":
        # written last: a kill before this point means the next run assembles again (and records it)
        run.store.write_json("_work/final.json", run.fingerprint())
    return run.record


# ------------------------------------------------------------------ assembly over the committed parts

def _read_with_part(store: RunStore, key: str, name: str, parts: list[str], columns: list[str] | None = None) -> pa.Table:
    """Table `name` of every part, with a `_part` column; parts are read concurrently (object stores: one GET each)."""
    def one(part: str) -> pa.Table:
        t = store.read_parts(key, name, [part], columns=columns)
        return t.append_column("_part", pa.repeat(pa.scalar(part), t.num_rows).cast(pa.string()))

    with ThreadPoolExecutor(16) as pool:
        tables = list(pool.map(one, parts))
    if tables:
        return pa.concat_tables(tables)
    empty = TABLES[name].empty_table() if columns is None else store.read_parts(key, name, [], columns=columns)
    return empty.append_column("_part", pa.array([], pa.string()))


def _part_video(t: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(t.column("_part"), t.column("video_id"), "/")


def _first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the first row per key (vectorised): a file rescanned after an interrupted commit must not appear twice."""
    if table.num_rows == 0:
        return table
    first = table.append_column("_row", pa.array(range(table.num_rows), pa.int64())).group_by(keys, use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == table.num_rows:
        return table
    return table.take(pc.sort_indices(first.column("_row_min")))


def _assemble(run: Run) -> None:
    """Videos, clips and errors of the current inputs from the committed parts, one committed copy per video."""
    store, key = run.store, run.scan_key
    parts = store.committed_parts(key)
    wanted = pa.array(sorted(f.uri for f in run.files), pa.string())
    videos = _read_with_part(store, key, "videos", parts)
    videos = _first_per_key(videos.filter(pc.is_in(videos.column("uri"), value_set=wanted)), ["uri"])
    run.kept_videos = _part_video(videos)
    run.videos = videos.drop_columns(["_part"]).sort_by([("relpath", "ascending")])
    clips = _read_with_part(store, key, "clips", parts)
    clips = clips.filter(pc.is_in(_part_video(clips), value_set=run.kept_videos)).drop_columns(["_part"])
    clips = clips.sort_by([("uri", "ascending"), ("clip_index", "ascending")]) if clips.num_rows else clips
    if run.embed_on:
        clips = join_embeddings(clips, _first_per_key(store.read_parts(run.embed_key, "embeddings"), ["clip_id"]))
    if run.text_key:
        clips = join_text_areas(clips, _first_per_key(store.read_parts(run.text_key, "text_areas"), ["clip_id"]))
    run.clips = clips
    errors = [store.read_parts(key, "errors", parts)]
    if run.embed_on:
        errors.append(store.read_parts(run.embed_key, "errors"))
    listing = [error_row(uri, None, "list", "Unreadable", reason, run.record.run_id) for uri, reason in run.skipped]
    errors.append(table_from_rows(listing, TABLES["errors"], "errors"))
    errors = pa.concat_tables(errors)
    errors = errors.filter(pc.or_(pc.is_in(errors.column("uri"), value_set=wanted), pc.equal(errors.column("stage"), "list")))
    errors = errors.sort_by([("uri", "ascending"), ("stage", "ascending")]) if errors.num_rows else errors
    run.errors = _first_per_key(errors, ["uri", "stage", "error_type"])


def _keyframes(run: Run):
    """The keyframes of the kept video copies, part by part: JPEGs are never all in memory at once."""
    for part in run.store.committed_parts(run.scan_key):
        t = _read_with_part(run.store, run.scan_key, "keyframes", [part])
        if t.num_rows:
            t = t.filter(pc.is_in(_part_video(t), value_set=run.kept_videos)).drop_columns(["_part"])
            yield t.sort_by([("clip_id", "ascending"), ("position", "ascending")])


def _samples(run: Run) -> pa.Table:
    """Per-sample pHashes (segment dedup's input) of the kept video copies, as for keyframes."""
    t = _read_with_part(run.store, run.scan_key, "samples", run.store.committed_parts(run.scan_key))
    return t.filter(pc.is_in(_part_video(t), value_set=run.kept_videos)).drop_columns(["_part"])


def _write_tables(run: Run) -> None:
    clips = run.table_clips()
    curated = clips.filter(pc.equal(clips.column("kept"), True)) if "curate" in stage_order(run.cfg) else TABLES["curated"].empty_table()
    store = run.store
    store.replace_table("videos", run.videos)
    store.replace_table("clips", clips)
    store.replace_table("curated", curated)
    store.replace_table("errors", run.errors)
    store.replace_table_stream("keyframes", _keyframes(run), rows_per_file=50_000)
    store.replace_table("dup_segments", TABLES["dup_segments"].empty_table() if run.dup_segments is None else run.dup_segments)
    run.record.counts.update(
        inputs=len(run.files) + len(run.skipped),
        videos=run.videos.num_rows,
        clips=clips.num_rows,
        curated=curated.num_rows,
        errors=run.errors.num_rows,
        inputs_with_errors=len(pc.unique(run.errors.column("uri"))),
        drop_reasons=rule_counts(clips),
        hours_in=float(pc.sum(clips.column("duration_s")).as_py() or 0) / 3600,
        hours_curated=float(pc.sum(curated.column("duration_s")).as_py() or 0) / 3600,
    )
