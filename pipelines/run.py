"""`vidcurate run`: a small executor over the stages the config declares, in `depends_on` order.

Every stage is declared once in pipelines/stages.py (its runner `(run, name)`, what it reads
and writes, whether it is a table stage). The executor runs them in the DAG's order and then
`WRITE`, the final tables. The scan and model stages hand their output on as committed parts
under the store; before the first table stage the executor assembles the inputs (one committed
copy per input file, the error rows) and opens the working clips table in partitions
(pipelines/table_shards.py). The table stages, built in or custom, work on those partitions as
Ray tasks: the driver never holds a row per clip, whatever the run's size.
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.scan import error_row
from curation.sources import VideoFile, list_videos
from pipelines import table_shards
from pipelines.caption_stage import caption_cache_key, run_caption_stage
from pipelines.config import BUILTIN_STAGES, PipelineConfig, balance_params, dedup_params, stage_order
from pipelines.embed_stage import run_embed_stage
from pipelines.params import describe_filters, embed_config_subset, filter_rules, scan_config_subset, scan_params
from pipelines.ray_runtime import init_ray
from pipelines.run_records import RunTracker, redact_uri, tracked, unique_run_id
from pipelines.safety_stage import run_safety_stage, safety_cache_key
from pipelines.scan_stage import done_uris, run_scan_stage
from pipelines.stages import CUSTOM, STAGES, WRITE, StageSpec
from pipelines.store import OutputError, RunStore
from pipelines.table_parts import PartsSource, first_per_key, groups
from pipelines.text_stage import run_text_stage, text_cache_key
from schemas import FINAL_TABLES, TABLES, RunRecord, table_from_rows  # noqa: F401 (FINAL_TABLES: re-exported)

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
class Inputs:
    """The committed scan results the table stages start from: one copy per current input file."""

    videos: int  # kept video copies
    kept_by_part: dict[str, pa.Array]  # part -> the "part/video_id" keys of its kept copies
    groups: list[list[str]]  # committed scan parts, one list per table task
    source: PartsSource
    errors: pa.Table

    def kept_in(self, parts: list[str]) -> pa.Array:
        """The kept "part/video_id" keys of these parts (what a table task keeps of its parts' clips)."""
        keys = [self.kept_by_part[p] for p in parts if p in self.kept_by_part]
        return pa.concat_arrays(keys) if keys else pa.array([], pa.string())


@dataclass
class Run:
    """What the stages of one run share: the config, the store, the inputs, the record being filled, and once
    the table stages begin, the committed inputs and the partitioned clips table."""

    cfg: PipelineConfig
    store: RunStore
    files: list[VideoFile]
    skipped: list[tuple[str, str]]
    record: RunRecord
    scan_key: str
    embed_key: str
    text_key: str | None = None  # on-screen text parts (None: the text stage is off)
    safety_key: str | None = None  # nsfw score parts (None: the safety stage is off)
    log: Callable = print
    work_keys: list[str] = field(default_factory=list)  # stage keys whose committed parts decide the final tables
    inputs: Inputs | None = None  # set by `open_tables`
    shards: table_shards.Shards | None = None  # set by `open_tables`

    @property
    def embed_on(self) -> bool:
        return "embed" in stage_order(self.cfg) and self.cfg.aesthetic.clip_checkpoint is not None

    def fingerprint(self) -> dict:
        """What the final tables were assembled from: equal fingerprints mean equal tables."""
        return {"config_hash": tables_config_hash(self.cfg), "inputs": sorted(f.uri for f in self.files),
                **{key: self.store.committed_parts(key) for key in self.work_keys}}

    @property
    def window(self) -> int:
        """Table tasks in flight: two per CPU of the cluster."""
        return max(2, 2 * int(self.record.cluster.get("cpus", 1)))


def open_tables(run: Run) -> None:
    """The inputs and the partitioned clips table: what every table stage works on (before the first one)."""
    t = time.perf_counter()
    run.inputs = _assemble_inputs(run)
    inp = run.inputs
    run.shards = table_shards.shard(inp.source, run.store, inp.groups, [inp.kept_in(g) for g in inp.groups], run.window)
    run.record.timings["assemble_s"] = time.perf_counter() - t


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


def _safety(run: Run, name: str) -> None:
    """nsfw_score of every clip from its keyframes (NudeNet's bundled ONNX detector), in parts under safety_key."""
    if run.safety_key:
        run.record.counts["safety"] = run_safety_stage(run.store, run.scan_key, run.safety_key, run.cfg.safety,
                                                       run.cfg.stages[name])


def _caption(run: Run, name: str) -> None:
    """VLM captions for the clips kept so far (cached by clip and caption config), then the caption hygiene rules."""
    if not run.cfg.caption.model:
        return
    errors, run.record.counts["caption"] = run_caption_stage(
        run.shards, run.store, caption_cache_key(run.cfg), run.cfg.caption, run.cfg.stages[name], run.cfg.input.storage_options,
        filter_rules(run.cfg), run.record.run_id)
    if errors:
        run.inputs.errors = pa.concat_tables([run.inputs.errors, table_from_rows(errors, TABLES["errors"], "errors")])


def _filter(run: Run, name: str) -> None:
    """Row-local: a step that the next task reading each partition applies."""
    run.shards.add(table_shards.filter_step(filter_rules(run.cfg)))


def _dedup(run: Run, name: str) -> None:
    stats, notes = table_shards.dedup(run.shards, dedup_params(run.cfg.dedup))
    run.record.notes.extend(notes)
    run.record.counts["dedup"] = stats


def _balance(run: Run, name: str) -> None:
    report, notes = table_shards.balance(run.shards, balance_params(run.cfg.balance), run.cfg.tables.sample_rows)
    run.record.notes.extend(notes)
    run.record.counts["balance"] = report


def _curate(run: Run, name: str) -> None:
    """Nothing to compute here: the write stage writes curated/ from the clips no stage dropped."""


def _custom_stage(run: Run, name: str) -> None:
    """A user stage "module:function" taking (clips, stage_config_dict) and returning clips, per partition."""
    st = run.cfg.stages[name]
    run.shards.add(table_shards.custom_step(st.entrypoint, name, st.model_dump()))


def spec_of(cfg: PipelineConfig, name: str) -> StageSpec:
    """The registry's spec of a configured stage (a stage with an entrypoint: CUSTOM)."""
    return CUSTOM if cfg.stages[name].entrypoint else STAGES[name]


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


def table_stage_run(cfg: PipelineConfig, store: RunStore, files: list[VideoFile], scan_key: str) -> Run:
    """A Run over scan parts already committed under `scan_key` (benchmarks: the table stages alone)."""
    import ray

    record = RunRecord(run_id="table-stages", input_uri="", output_uri=store.output_uri, started_at="", versions={},
                       config=cfg.public_dict(), config_hash=cfg.hash())
    if ray.is_initialized():
        record.cluster = {"cpus": ray.cluster_resources().get("CPU", 1)}
    return Run(cfg, store, files, [], record, scan_key=scan_key, embed_key="embed-none", log=lambda *_: None)


def run_table_stages(run: Run, mark: Callable[[str], None] = lambda name: None) -> None:
    """The table stages of the config's DAG, then the final tables; `mark(name)` after each."""
    names = [n for n in stage_order(run.cfg) if spec_of(run.cfg, n).table]
    _run_stages(run, [*names, WRITE.name], lambda name, when: when == "end" and mark(name))


def _run_stages(run: Run, names: list[str], on_stage: Callable[[str, str], None] | None) -> None:
    """Each stage's runner in order (the tables opened before the first table stage), timed into the record."""
    for name in names:
        spec = WRITE if name == WRITE.name else spec_of(run.cfg, name)
        if spec.table and run.shards is None:
            open_tables(run)
        if on_stage:
            on_stage(name, "start")
        t = time.perf_counter()
        spec.run_function()(run, name)
        run.record.timings[f"{name}_s"] = time.perf_counter() - t
        if on_stage:
            on_stage(name, "end")


def run_pipeline(input_uri: str, output_uri: str, cfg: PipelineConfig, log=print,
                 on_stage: Callable[[str, str], None] | None = None) -> RunRecord:
    """Run (or resume) the pipeline; raises InputError/OutputError/ClusterError for unusable locations.

    `on_stage(name, "start" | "end")` is called around every stage (progress, benchmarks).
    Once the output is known writable, runs/<run_id>.json says `running`, then how the run ended
    (pipelines/run_records.py); a run with nothing to do leaves no record.
    """
    t_start = time.perf_counter()
    store = RunStore(output_uri, cfg.output.storage_options)
    if store.process_local:
        raise OutputError(f"output {output_uri!r} lives in this process only; Ray workers write the run's tables: "
                          "use a folder or an object store")
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
        _run_stages(run, [*stage_order(cfg), WRITE.name], on_stage)
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
    if "safety" in stage_order(cfg):
        try:
            run.safety_key = safety_cache_key(cfg)  # names the nudenet version: its wheel holds the weights
            run.work_keys.append(run.safety_key)
        except importlib.metadata.PackageNotFoundError:
            record.not_configured.append("safety: not configured (the nudenet package is not installed: pip install nudenet)")

    def why(setting: str) -> str:  # an `auto` model not in the cache says how to get it
        return cfg.unresolved.get(setting, f"{setting} is null")

    if "caption" in stage_order(cfg) and not cfg.caption.model:
        record.not_configured.append(f"caption: not configured ({why('caption.model')})")
    if "embed" in stage_order(cfg) and not cfg.aesthetic.clip_checkpoint:
        record.not_configured += [f"embedding: not configured ({why('aesthetic.clip_checkpoint')})",
                                  f"aesthetic: not configured ({why('aesthetic.clip_checkpoint')})"]
    elif run.embed_on and not cfg.aesthetic.head_checkpoint:
        record.not_configured.append(f"aesthetic: not configured ({why('aesthetic.head_checkpoint')})")
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
    """Table `name` (or its `columns`) of every part, with a `_part` column; parts are read concurrently
    (object stores: one GET each) and the result is one chunk per column."""
    def one(part: str) -> pa.Table:
        t = store.read_part_columns(key, part, name, columns) if columns else store.read_part(key, part, name)
        return t.append_column("_part", pa.repeat(pa.scalar(part), t.num_rows).cast(pa.string()))

    with ThreadPoolExecutor(16) as pool:
        tables = list(pool.map(one, parts))
    if tables:
        return pa.concat_tables(tables).combine_chunks()  # thousands of parts: one buffer per column, not per part
    empty = TABLES[name].empty_table()
    return (empty.select(columns) if columns else empty).append_column("_part", pa.array([], pa.string()))


def _part_video(t: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(t.column("_part"), t.column("video_id"), "/")


def _kept_by_part(parts: pa.ChunkedArray, keys: pa.ChunkedArray) -> dict[str, pa.Array]:
    """part -> its kept "part/video_id" keys, in one sort (not one scan of every key per part)."""
    t = pa.table({"part": parts, "key": keys}).sort_by("part").combine_chunks()
    if not t.num_rows:
        return {}
    enc = pc.dictionary_encode(t.column("part").chunk(0))
    codes = enc.indices.to_numpy(zero_copy_only=False)
    bounds = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(codes)]
    names = enc.dictionary.to_pylist()
    return {names[codes[a]]: t.column("key").chunk(0).slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])}


def _assemble_inputs(run: Run) -> Inputs:
    """One committed copy per current input (its "part/video_id" key), errors, and the groups of parts.
    Only the uri and video_id of the videos are read here: the driver holds no full video rows."""
    store, key = run.store, run.scan_key
    parts = store.committed_parts(key)
    wanted = pa.array(sorted(f.uri for f in run.files), pa.string())
    videos = _read_with_part(store, key, "videos", parts, columns=["uri", "video_id"])
    videos = first_per_key(videos.filter(pc.is_in(videos.column("uri"), value_set=wanted)), ["uri"])
    kept = _part_video(videos).combine_chunks()
    kept_by_part = _kept_by_part(videos.column("_part"), kept)
    del videos
    pa.default_memory_pool().release_unused()  # thousands of part reads: give the allocator's freed pages back
    source = PartsSource(store.output_uri, store.storage_options, key, run.embed_key if run.embed_on else None, run.text_key,
                         run.safety_key)
    errors = [_read_with_part(store, key, "errors", parts).drop_columns(["_part"])]
    if run.embed_on:
        errors.append(store.read_parts(run.embed_key, "errors"))
    listing = [error_row(uri, None, "list", "Unreadable", reason, run.record.run_id) for uri, reason in run.skipped]
    errors.append(table_from_rows(listing, TABLES["errors"], "errors"))
    errors = pa.concat_tables(errors)
    errors = errors.filter(pc.or_(pc.is_in(errors.column("uri"), value_set=wanted), pc.equal(errors.column("stage"), "list")))
    errors = errors.sort_by([("uri", "ascending"), ("stage", "ascending")]) if errors.num_rows else errors
    return Inputs(len(kept), kept_by_part, groups(parts), source, first_per_key(errors, ["uri", "stage", "error_type"]))


def _keyframes(run: Run):
    """The keyframes of the kept video copies, part by part: JPEGs are never all in memory at once."""
    for part in run.store.committed_parts(run.scan_key):
        t = _read_with_part(run.store, run.scan_key, "keyframes", [part])
        if t.num_rows:
            t = t.filter(pc.is_in(_part_video(t), value_set=run.inputs.kept_in([part]))).drop_columns(["_part"])
            yield t.sort_by([("clip_id", "ascending"), ("position", "ascending")])


def _write_tables(run: Run, name: str = WRITE.name) -> None:
    """The final tables as one new table set: videos/, clips/ and curated/ per partition by tasks, then errors,
    keyframes and dup_segments; readers see none of them until all are written."""
    store, inp = run.store, run.inputs
    curate = "curate" in stage_order(run.cfg)
    rows_per_file = 200_000
    store.begin_table_set()
    writers = {n: store.table_writer(n, rows_per_file) for n in ("videos", "clips", *(["curated"] if curate else []))}
    totals = table_shards.write(run.shards, writers, rows_per_file)
    if not curate:
        store.replace_table("curated", TABLES["curated"].empty_table())
    for w in writers.values():
        w.commit()
    store.replace_table("errors", inp.errors)
    store.replace_table_stream("keyframes", _keyframes(run), rows_per_file=50_000)
    segments = run.shards.dup_segments
    store.replace_table("dup_segments", TABLES["dup_segments"].empty_table() if segments is None else segments)
    store.commit_table_set()
    table_shards.cleanup(store)
    run.record.counts.update(
        inputs=len(run.files) + len(run.skipped),
        videos=inp.videos,
        clips=totals["clips"],
        curated=totals["curated"] if curate else 0,
        errors=inp.errors.num_rows,
        inputs_with_errors=len(pc.unique(inp.errors.column("uri"))),
        drop_reasons=totals["drop_reasons"],
        hours_in=totals["seconds_in"] / 3600,
        hours_curated=(totals["seconds_curated"] if curate else 0.0) / 3600,
    )
