"""`vidcurate run`: a small executor over the stages the config declares, in `depends_on` order.

Every stage is declared once in pipelines/stages.py (STAGES: its runner `(run, name)`, what it reads and
writes, whether it is a table stage and runs partitioned), run by
`run_pipeline` (the executor) in the DAG's order; a stage hands its output to
the next through the store (scan and embed: committed parts) or through
`run.working()` (the table stages). A stage with an `entrypoint` is a custom table
stage and can go anywhere after the scan.

The built-in table stages never hold every column of every clip on the driver:
table tasks read the parts per group and hand the driver a narrow projection
(ids, spans, phashes, the scores dedup and balance read, the decision columns);
filter runs in those tasks, dedup and balance map the narrow table, and the
write tasks join the decisions back per group and write clips/ and curated/
(pipelines/table_parts.py). A custom or caption stage needs the whole table:
`run.table_clips()` materialises it, and the later stages map that instead.
With `tables.mode: sharded` (what `auto` picks at scale) the driver holds no
row per clip at all: pipelines/table_shards.py runs the same stages as tasks
over shard files.
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
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.balance import balance
from curation.filters import apply_filters, rule_counts
from curation.scan import error_row
from curation.sources import VideoFile, list_videos
from pipelines import table_shards
from pipelines.config import BUILTIN_STAGES, PipelineConfig, balance_params, dedup_params, sharded_blocker, stage_order
from pipelines.dedup_stage import run_dedup_on_ray
from pipelines.embed_stage import run_embed_stage
from pipelines.params import describe_filters, embed_config_subset, filter_rules, scan_config_subset, scan_params
from pipelines.ray_runtime import init_ray
from pipelines.run_records import RunTracker, redact_uri, tracked, unique_run_id
from pipelines.scan_stage import done_uris, run_scan_stage
from pipelines.stages import STAGES
from pipelines.store import RunStore
from pipelines.table_parts import (DECISION_COLUMNS, NARROW_COLUMNS, PartsSource, decided_group, first_per_key, groups,
                                   map_groups, narrow_group, write_group)
from pipelines.caption_stage import caption_cache_key, run_caption_stage
from pipelines.text_stage import run_text_stage, text_cache_key
from schemas import FINAL_TABLES, TABLES, RunRecord, table_from_rows, validate_table  # noqa: F401 (FINAL_TABLES: re-exported)

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
    clips: pa.Table | None = None  # every column of every clip: only once a stage needs them all (custom, caption)
    narrow: pa.Table | None = None  # the built-in table stages' working table, see `working`
    videos: pa.Table | None = None
    errors: pa.Table | None = None
    kept_videos: pa.Array | None = None  # "part/video_id" of each video's one committed copy
    kept_by_part: dict[str, pa.Array] = field(default_factory=dict)  # the same, by part
    groups: list[list[str]] = field(default_factory=list)  # committed scan parts, one list per table task
    group_rows: list[int] = field(default_factory=list)  # clips of each group in the narrow table
    source: PartsSource | None = None
    dup_segments: pa.Table | None = None  # matched segments between videos (dedup, kind segment); None: not run
    shards: table_shards.Shards | None = None  # the sharded path's state (no per-clip state on the driver)
    sharded: bool | None = None  # which path the table stages take; decided at the first table stage

    @property
    def embed_on(self) -> bool:
        return "embed" in stage_order(self.cfg) and self.cfg.aesthetic.clip_checkpoint is not None

    def fingerprint(self) -> dict:
        """What the final tables were assembled from: equal fingerprints mean equal tables."""
        return {"config_hash": tables_config_hash(self.cfg), "inputs": sorted(f.uri for f in self.files),
                **{key: self.store.committed_parts(key) for key in self.work_keys}}

    def working(self, rules=None) -> pa.Table:
        """What the built-in table stages map: the whole clips table once a stage materialised it, else the
        narrow projection (NARROW_COLUMNS, sorted by (video_id, clip_index); `_pos` = row in part order),
        assembled on first use and filtered by `rules` in the same pass over the parts."""
        if self.clips is not None:
            return self.clips
        if self.narrow is None:
            t = time.perf_counter()
            _assemble(self, rules)
            self.record.timings["assemble_s"] = time.perf_counter() - t
        return self.narrow

    def use_shards(self) -> bool:
        """Whether the table stages run sharded (tables.mode; auto: from tables.sharded_min_videos kept videos
        when the DAG allows it); decided once, after the inputs are assembled."""
        if self.sharded is None:
            if self.kept_videos is None:
                _assemble_inputs(self)
            mode, why = self.cfg.tables.mode, sharded_blocker(self.cfg)
            if mode == "auto":
                mode = "sharded" if (why is None and not self.store.process_local
                                     and len(self.kept_videos) >= self.cfg.tables.sharded_min_videos) else "driver"
            self.sharded = mode == "sharded"
            if self.sharded and self.store.process_local:
                raise ValueError("tables.mode sharded: the output is process-local (memory://); Ray tasks cannot write it")
            self.record.counts["tables_mode"] = mode
            if not self.sharded:  # the sharded path's write tasks write the videos table group by group
                self.videos = _kept_videos_table(self)
        return self.sharded

    def sharded_state(self, rules=None) -> "table_shards.Shards":
        """The sharded path's shard files, written on first use (filtered by `rules` in the same pass)."""
        if self.shards is None:
            t = time.perf_counter()
            self.shards = table_shards.shard(self.source, self.store, self.groups, [_kept_in(self, g) for g in self.groups],
                                             rules, _narrow_columns(self, filtered=True), self.window)
            self.record.timings["assemble_s"] = time.perf_counter() - t
        return self.shards

    def set_working(self, table: pa.Table) -> None:
        if self.clips is not None:
            self.clips = table
        else:
            self.narrow = table

    def table_clips(self) -> pa.Table:
        """Every column of the clips after the stages so far, on the driver (custom and caption stages need them):
        from then on the table stages map this table instead of the narrow one."""
        if self.clips is None:
            self.working()
            self.clips = _materialise(self)
            self.narrow = None
        return self.clips

    @property
    def window(self) -> int:
        """Table tasks in flight: two per CPU of the cluster."""
        return max(2, 2 * int(self.record.cluster.get("cpus", 1)))


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
    """Row-local: applied per part by the tasks that assemble the working table, or to it when it exists already."""
    rules = filter_rules(run.cfg)
    if run.use_shards():
        run.sharded_state(rules)
    elif run.clips is None and run.narrow is None:
        run.working(rules)
    else:
        run.set_working(apply_filters(run.working(), rules))


def _dedup(run: Run, name: str) -> None:
    params = dedup_params(run.cfg.dedup)
    if run.use_shards():
        stats, notes = table_shards.dedup(run.sharded_state(), params)
        run.dup_segments = run.shards.dup_segments
        run.record.notes.extend(notes)
        run.record.counts["dedup"] = stats
        return
    clips = run.working()
    samples = _samples(run) if {"segment", "edited"} & set(params.kinds) else None
    keyframes = partial(table_shards.read_keyframes, run.store, run.scan_key) if "edited" in params.kinds else None
    result = run_dedup_on_ray(clips, run.videos, params, samples=samples, keyframes=keyframes)
    run.set_working(result.table)
    run.dup_segments = result.segments
    run.record.notes.extend(result.notes)
    run.record.counts["dedup"] = result.stats


def _balance(run: Run, name: str) -> None:
    if run.use_shards():
        report, notes = table_shards.balance(run.sharded_state(), balance_params(run.cfg.balance), run.cfg.tables.sample_rows)
        run.record.notes.extend(notes)
        run.record.counts["balance"] = report
        return
    result = balance(run.working(), balance_params(run.cfg.balance))
    run.set_working(result.table)
    run.record.notes.extend(result.notes)
    run.record.counts["balance"] = result.report


def _curate(run: Run, name: str) -> None:
    """Nothing to compute here: curated/ is written per part from the final clips, the ones no stage dropped."""
    if run.use_shards():
        run.sharded_state()
    else:
        run.working()


def _custom_stage(run: Run, name: str) -> None:
    """A user stage "module:function" taking (clips, stage_config_dict) and returning clips."""
    module, _, func = run.cfg.stages[name].entrypoint.partition(":")
    fn = getattr(importlib.import_module(module), func)
    out = fn(run.table_clips(), run.cfg.stages[name].model_dump())
    run.clips = validate_table(out, TABLES["clips"], f"clips after stage {name}")


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
    """The built-in table stages of the config's DAG, then the final tables; `mark(name)` after each."""
    for name in stage_order(run.cfg):
        if name in STAGES and STAGES[name].table:
            STAGES[name].run_function()(run, name)
            mark(name)
    _write_tables(run)
    mark("write")


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
            (_custom_stage if cfg.stages[name].entrypoint else STAGES[name].run_function())(run, name)
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


def _kept_videos_table(run: Run) -> pa.Table:
    """Every column of the kept copy of each input video, sorted by relpath (the driver path's videos table)."""
    store, key = run.store, run.scan_key
    videos = _read_with_part(store, key, "videos", store.committed_parts(key))
    videos = videos.filter(pc.is_in(_part_video(videos), value_set=run.kept_videos))
    return videos.drop_columns(["_part"]).sort_by([("relpath", "ascending")])


def _part_video(t: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(t.column("_part"), t.column("video_id"), "/")


def _kept_in(run: Run, parts: list[str]) -> pa.Array:
    """The kept "part/video_id" keys of these parts (what a table task keeps of its parts' clips)."""
    keys = [run.kept_by_part[p] for p in parts if p in run.kept_by_part]
    return pa.concat_arrays(keys) if keys else pa.array([], pa.string())


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


def _narrow_columns(run: Run, filtered: bool) -> list[str]:
    """NARROW_COLUMNS plus what the configured stages read besides: keep-policy and rank columns, and the
    filter rules' columns when the filter has not run yet."""
    cfg = run.cfg
    extra = [c for c, _ in dedup_params(cfg.dedup).keep_policy] + [balance_params(cfg.balance).rank_by]
    if not filtered and "filter" in stage_order(cfg):
        extra += [r.column for r in filter_rules(cfg)]
    names = set(TABLES["clips"].names)
    return list(dict.fromkeys([*NARROW_COLUMNS, *(c for c in extra if c in names)]))


def _assemble(run: Run, rules=None) -> None:
    """The narrow clips table (after the inputs): read (and filtered by `rules`) per group of parts by table
    tasks; see pipelines/table_parts.py."""
    run.use_shards()  # the inputs, and the videos table of the driver path
    local = run.store.process_local
    columns = _narrow_columns(run, filtered=rules is not None)
    pieces = list(map_groups(local, narrow_group, ((run.source, g, _kept_in(run, g), columns, rules) for g in run.groups), run.window))
    run.group_rows = [p.num_rows for p in pieces]
    narrow = pa.concat_tables(pieces) if pieces else pa.schema([TABLES["clips"].field(c) for c in columns]).empty_table()
    del pieces
    narrow = narrow.append_column("_pos", pa.array(np.arange(narrow.num_rows, dtype=np.int64)))
    # an order that does not depend on how the files fell into parts (a resumed run's parts differ)
    order = pc.sort_indices(narrow, [("video_id", "ascending"), ("clip_index", "ascending")])
    sorted_columns = {}
    for name in narrow.column_names:  # one column at a time, each source column dropped once taken: no second table
        sorted_columns[name] = narrow.column(name).take(order)
        narrow = narrow.drop_columns([name])
    run.narrow = pa.table(sorted_columns)


def _assemble_inputs(run: Run) -> None:
    """One committed copy per current input (its "part/video_id" key), errors, and the groups of parts.
    Only the uri and video_id of the videos are read here (the driver holds no full video rows on the
    sharded path)."""
    store, key = run.store, run.scan_key
    parts = store.committed_parts(key)
    wanted = pa.array(sorted(f.uri for f in run.files), pa.string())
    videos = _read_with_part(store, key, "videos", parts, columns=["uri", "video_id"])
    videos = first_per_key(videos.filter(pc.is_in(videos.column("uri"), value_set=wanted)), ["uri"])
    run.kept_videos = _part_video(videos).combine_chunks()
    run.kept_by_part = _kept_by_part(videos.column("_part"), run.kept_videos)
    del videos
    pa.default_memory_pool().release_unused()  # thousands of part reads: give the allocator's freed pages back
    run.source = PartsSource(store.output_uri, store.storage_options, key, run.embed_key if run.embed_on else None, run.text_key)
    run.groups = groups(parts)
    errors = [_read_with_part(store, key, "errors", parts).drop_columns(["_part"])]
    if run.embed_on:
        errors.append(store.read_parts(run.embed_key, "errors"))
    listing = [error_row(uri, None, "list", "Unreadable", reason, run.record.run_id) for uri, reason in run.skipped]
    errors.append(table_from_rows(listing, TABLES["errors"], "errors"))
    errors = pa.concat_tables(errors)
    errors = errors.filter(pc.or_(pc.is_in(errors.column("uri"), value_set=wanted), pc.equal(errors.column("stage"), "list")))
    errors = errors.sort_by([("uri", "ascending"), ("stage", "ascending")]) if errors.num_rows else errors
    run.errors = first_per_key(errors, ["uri", "stage", "error_type"])


def _decisions(run: Run):
    """(group parts, kept keys, that group's decision columns) per group, in part order, made one at a time."""
    decisions = run.narrow.select(["clip_id", *DECISION_COLUMNS])
    narrow_row = np.empty(decisions.num_rows, np.int64)  # narrow row of each position in part order
    narrow_row[run.narrow.column("_pos").to_numpy()] = np.arange(decisions.num_rows)
    offset = 0
    for g, n in zip(run.groups, run.group_rows):
        # take(): the group's own buffers, shipped to its task
        yield g, _kept_in(run, g), decisions.take(pa.array(narrow_row[offset:offset + n])).combine_chunks()
        offset += n


def _materialise(run: Run) -> pa.Table:
    """Every column of every clip with the decisions so far, sorted as the narrow table is."""
    args = ((run.source, g, kept, d) for g, kept, d in _decisions(run))
    tables = list(map_groups(run.store.process_local, decided_group, args, run.window))
    clips = pa.concat_tables(tables) if tables else TABLES["clips"].empty_table()
    return clips.sort_by([("video_id", "ascending"), ("clip_index", "ascending")]) if clips.num_rows else clips


def _keyframes(run: Run):
    """The keyframes of the kept video copies, part by part: JPEGs are never all in memory at once."""
    for part in run.store.committed_parts(run.scan_key):
        t = _read_with_part(run.store, run.scan_key, "keyframes", [part])
        if t.num_rows:
            t = t.filter(pc.is_in(_part_video(t), value_set=_kept_in(run, [part]))).drop_columns(["_part"])
            yield t.sort_by([("clip_id", "ascending"), ("position", "ascending")])


def _samples(run: Run) -> pa.Table:
    """Per-sample pHashes (segment dedup's input) of the kept video copies, as for keyframes."""
    parts = run.store.committed_parts(run.scan_key)
    return table_shards.read_samples(run.store, run.scan_key, parts, _kept_in(run, parts))


def _write_clips(run: Run, curate: bool, rows_per_file: int = 200_000) -> dict | None:
    """clips/ and curated/ as new table sets: written per group by table tasks (or from the whole table once a
    stage materialised it), committed by their manifests. The sharded path returns its counts."""
    store = run.store
    writers = {"clips": store.table_writer("clips", rows_per_file)}
    if run.shards is not None:  # the sharded path writes the videos table with the clips, group by group
        writers["videos"] = store.table_writer("videos", rows_per_file)
    if curate:
        writers["curated"] = store.table_writer("curated", rows_per_file)
    totals = None
    if run.shards is not None:
        totals = table_shards.write(run.shards, writers, rows_per_file)
    elif run.clips is not None:
        writers["clips"].add(run.clips)
        if curate:
            writers["curated"].add(run.clips.filter(pc.equal(run.clips.column("kept"), True)))
    else:
        versions = {name: w.version for name, w in writers.items()}
        args = ((run.source, g, kept, d, i, versions, rows_per_file) for i, (g, kept, d) in enumerate(_decisions(run)))
        for files in map_groups(store.process_local, write_group, args, run.window):
            for name, fs in files.items():
                writers[name].add_files(fs)
    if not curate:
        store.replace_table("curated", TABLES["curated"].empty_table())
    for w in writers.values():
        w.commit()
    return totals


def _write_tables(run: Run) -> None:
    if run.use_shards():
        run.sharded_state()  # a DAG without table stages still writes the tables through the shards
    else:
        clips = run.working()
    curate = "curate" in stage_order(run.cfg)
    store = run.store
    store.begin_table_set()  # readers see none of the new tables until all of them are written
    if run.shards is None:
        store.replace_table("videos", run.videos)
    totals = _write_clips(run, curate)
    store.replace_table("errors", run.errors)
    store.replace_table_stream("keyframes", _keyframes(run), rows_per_file=50_000)
    store.replace_table("dup_segments", TABLES["dup_segments"].empty_table() if run.dup_segments is None else run.dup_segments)
    store.commit_table_set()
    if totals is None:  # the driver path: the counts from its table
        kept = clips.filter(pc.equal(clips.column("kept"), True)) if curate else clips.slice(0, 0)
        totals = {"clips": clips.num_rows, "curated": kept.num_rows, "drop_reasons": rule_counts(clips),
                  "seconds_in": float(pc.sum(clips.column("duration_s")).as_py() or 0),
                  "seconds_curated": float(pc.sum(kept.column("duration_s")).as_py() or 0)}
    else:
        table_shards.cleanup(store)
    run.record.counts.update(
        inputs=len(run.files) + len(run.skipped),
        videos=len(run.kept_videos),
        clips=totals["clips"],
        curated=totals["curated"] if curate else 0,
        errors=run.errors.num_rows,
        inputs_with_errors=len(pc.unique(run.errors.column("uri"))),
        drop_reasons=totals["drop_reasons"],
        hours_in=totals["seconds_in"] / 3600,
        hours_curated=(totals["seconds_curated"] if curate else 0.0) / 3600,
    )
