"""`export`: the curated clips of a run folder as WebDataset shards or an Open-Sora CSV with clip files.

Clips are exported in a fixed order (source uri, then start frame), each video
opened once for all its clips. Re-running skips what is finished (whole shards;
for csv, single clips) and writes the rest, so an interrupted export resumes and
a finished one has nothing to do. A clip that cannot be exported (its source
vanished or changed since the run, a decode error) becomes an error row of the
report and the export goes on.
"""
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from dataclasses import dataclass

import av

from curation.decode import DecodeError
from curation.export.clip_reader import ClipReader
from curation.export.clip_writer import VIDEO_CODEC, ClipSpan, EncodedClip, write_clip
from curation.export.crop import content_box
from curation.export.destination import Destination, DestinationError, dumps
from curation.export.opensora_csv import csv_row, to_csv
from curation.export.params import ExportParams
from curation.export.report import error_row, ok_row, summarize, write_report
from curation.export.webdataset_writer import ShardWriter, finished_shards
from curation.scan import local_copy
from schemas import SCHEMA_VERSION, open_table_set

SETTINGS_FILE = "_export.json"
CSV_FILE = "meta.csv"
CLIPS_DIR = "clips"


class ExportError(RuntimeError):
    """The export cannot start: not a run folder, or a destination holding another export."""


@dataclass
class VideoTask:
    uri: str
    content_hash: str | None  # from the run's videos table: the source must still have these bytes
    num_frames: int | None  # frames the scan decoded
    clips: list[dict]  # manifest rows, ascending start_frame
    params: ExportParams
    source_options: dict
    workdir: str  # local folder for the clips' mp4 files


@dataclass
class ClipOutcome:
    clip: dict
    file: str | None = None  # local mp4
    encoded: EncodedClip | None = None
    error_type: str | None = None
    message: str | None = None


def export_video(task: VideoTask) -> list[ClipOutcome]:
    """Encode every clip of one source file; failures are outcomes, not exceptions."""
    def all_failed(kind: str, message: str) -> list[ClipOutcome]:
        return [ClipOutcome(c, error_type=kind, message=message) for c in task.clips]

    try:
        ctx = local_copy(task.uri, task.source_options)
        path, digest, _ = ctx.__enter__()
    except FileNotFoundError:
        return all_failed("SourceMissing", f"source file {task.uri} no longer exists")
    except OSError as e:
        return all_failed("SourceUnreadable", f"cannot read source {task.uri}: {e}")
    try:
        if task.content_hash and digest != task.content_hash:
            return all_failed("SourceChanged", f"source {task.uri} has other bytes than when the run scanned it "
                                               f"(sha256 {digest[:12]}..., run saw {task.content_hash[:12]}...)")
        try:
            reader = ClipReader(path, task.num_frames)
        except (DecodeError, av.FFmpegError) as e:
            return all_failed("DecodeError", f"cannot open {task.uri}: {' '.join(str(e).split())}")
        out = []
        with reader:
            for clip in task.clips:
                span = ClipSpan(int(clip["start_frame"]), int(clip["end_frame"]), float(clip["start_s"]), float(clip["end_s"]))
                file = os.path.join(task.workdir, f"{clip['clip_id']}.mp4")
                box = content_box(clip) if task.params.crop_to_content else None  # None: the full frame
                try:
                    enc = write_clip(reader, span, file, task.params, path if task.params.audio else None, box)
                    out.append(ClipOutcome(clip, file=file, encoded=enc))
                except (DecodeError, av.FFmpegError, ValueError, MemoryError) as e:
                    out.append(ClipOutcome(clip, error_type=type(e).__name__, message=" ".join(str(e).split())))
        return out
    finally:
        ctx.__exit__(None, None, None)


def sample_metadata(clip: dict, enc: EncodedClip, params: ExportParams) -> dict:
    """The sample's json: every manifest column as the run wrote it, plus what the export wrote."""
    return {
        **clip,
        "export": {
            "num_frames": enc.num_frames,
            "width": enc.width,
            "height": enc.height,
            "crop": enc.crop.as_dict() if enc.crop else None,  # the content box applied (px of the display frame)
            "frame_width": enc.frame_width,  # the display frame the crop was taken from
            "frame_height": enc.frame_height,
            "fps": enc.fps,
            "audio": enc.audio,
            "audio_error": enc.audio_error,
            "video_codec": f"h264 ({VIDEO_CODEC} crf {params.crf}, preset {params.preset}, yuv420p)",
            "audio_codec": "aac" if enc.audio else None,
            "read_method": enc.read_method,
            "schema_version": SCHEMA_VERSION,
        },
    }


def sample_members(clip: dict, enc: EncodedClip, params: ExportParams, mp4_path: str) -> tuple[dict, list]:
    """(metadata, WebDataset members): `<key>.mp4`, `<key>.json`, and `<key>.txt` when the clip has a caption."""
    meta = sample_metadata(clip, enc, params)
    members: list[tuple[str, bytes | str]] = [("mp4", mp4_path), ("json", dumps(meta).encode())]
    if isinstance(clip.get("caption"), str) and clip["caption"]:
        members.append(("txt", clip["caption"].encode()))
    return meta, members


def _report_fields(enc: EncodedClip, nbytes: int) -> dict:
    return {"bytes": nbytes, "num_frames": enc.num_frames, "width": enc.width, "height": enc.height, "fps": enc.fps,
            "audio": enc.audio, "audio_error": enc.audio_error, "read_method": enc.read_method, "encode_s": enc.encode_s}


def read_manifest(out_uri: str, storage_options: dict | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Curated rows in export order, and the run's video rows by video_id."""
    tables = open_table_set(out_uri, storage_options)  # curated and videos of one run version
    if not tables.has("curated"):
        raise ExportError(f"{out_uri!r} is not a run folder (no curated table): run `vidcurate run` first")
    curated = tables.read("curated").to_pylist()
    videos = {v["video_id"]: v for v in tables.read("videos").to_pylist()}
    curated.sort(key=lambda r: (r["uri"], r["start_frame"], r["clip_id"]))
    return curated, videos


def export_run(out_uri: str, params: ExportParams, dest_uri: str | None = None, *, out_options: dict | None = None,
               source_options: dict | None = None, dest_options: dict | None = None,
               on_clip: Callable[[dict], None] | None = None) -> dict:
    """Export the run folder's curated clips; returns the report's summary (also written to the destination)."""
    t0 = time.perf_counter()
    dest_uri = dest_uri or f"{out_uri.rstrip('/')}/export/{params.format}"
    clips, videos = read_manifest(out_uri, out_options)
    dest = Destination(dest_uri, dest_options)
    dest.check_writable()  # before any work: a destination we cannot write fails at once
    _claim(dest, params, out_uri)
    dest.remove_temporaries()
    rows: dict[str, dict] = {}
    if params.format == "webdataset":
        shards = finished_shards(dest)
        for sidecar in shards.values():
            rows.update({r["clip_id"]: r for r in sidecar["rows"]})
        writer = ShardWriter(dest, params.shard_size, max(shards, default=-1) + 1)
    else:
        dest.remove_temporaries(CLIPS_DIR)
        names = set(dest.listdir(CLIPS_DIR))
        done = [c for c in clips if f"{c['clip_id']}.mp4" in names and f"{c['clip_id']}.json" in names]
        for c in done:
            meta = dest.read_json(f"{CLIPS_DIR}/{c['clip_id']}.json")
            rows[c["clip_id"]] = ok_row(c, path=dest.uri(f"{CLIPS_DIR}/{c['clip_id']}.mp4"),
                                        **{k: meta["export"][k] for k in ("num_frames", "width", "height", "fps", "audio",
                                                                          "audio_error", "read_method")},
                                        bytes=dest.fs.size(dest.path(f"{CLIPS_DIR}/{c['clip_id']}.mp4")))
        writer = None
    todo = [c for c in clips if c["clip_id"] not in rows]
    new_ids: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="vidcurate-export-") as work:
        tasks = _tasks(todo, videos, params, source_options or {}, work)
        try:
            for outcomes in _run_tasks(tasks, params.workers):
                for o in outcomes:
                    row = _deliver(o, params, dest, writer)
                    rows[o.clip["clip_id"]] = row
                    if row["status"] == "ok":
                        new_ids.add(o.clip["clip_id"])
                    if on_clip:
                        on_clip(row)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()  # the unfinished shard is redone by the next run
            raise
    ordered = [rows[c["clip_id"]] for c in clips if c["clip_id"] in rows]
    if params.format == "csv":
        metas = [(c, dest.read_json(f"{CLIPS_DIR}/{c['clip_id']}.json")) for c in clips
                 if rows.get(c["clip_id"], {}).get("status") == "ok"]
        dest.write_bytes(CSV_FILE, to_csv([csv_row(dest.uri(f"{CLIPS_DIR}/{c['clip_id']}.mp4"), m) for c, m in metas]))
    summary = summarize(ordered, new_ids, writer.committed if writer else [], time.perf_counter() - t0,
                        params.output_settings(), _public(out_uri), _public(dest_uri))
    write_report(dest, ordered, summary, dest_options)
    return summary


def _deliver(o: ClipOutcome, params: ExportParams, dest: Destination, writer: ShardWriter | None) -> dict:
    """Put one encoded clip where it belongs; the clip's report row."""
    if o.error_type:
        return error_row(o.clip, o.error_type, o.message)
    cid = o.clip["clip_id"]
    meta, members = sample_members(o.clip, o.encoded, params, o.file)
    nbytes = os.path.getsize(o.file)
    try:
        if writer is not None:
            row = ok_row(o.clip, path=f"{cid}.mp4", **_report_fields(o.encoded, nbytes))
            return dict(row, shard=writer.add(cid, members, row))
        dest.write_json(f"{CLIPS_DIR}/{cid}.json", meta)
        dest.put_file(o.file, f"{CLIPS_DIR}/{cid}.mp4")  # the mp4 under its final name commits the clip
        return ok_row(o.clip, path=dest.uri(f"{CLIPS_DIR}/{cid}.mp4"), **_report_fields(o.encoded, nbytes))
    finally:
        os.unlink(o.file)


def _tasks(clips: list[dict], videos: dict[str, dict], params: ExportParams, source_options: dict,
           work: str) -> list[VideoTask]:
    tasks: list[VideoTask] = []
    for c in clips:
        if tasks and tasks[-1].uri == c["uri"]:
            tasks[-1].clips.append(c)
            continue
        v = videos.get(c["video_id"]) or {}
        tasks.append(VideoTask(c["uri"], v.get("content_hash"), v.get("num_frames"), [c], params, source_options, work))
    return tasks


def _run_tasks(tasks: list[VideoTask], workers: int) -> Iterator[list[ClipOutcome]]:
    """Outcomes per video, in task order; with workers > 1, up to 2 videos per worker in flight."""
    if workers <= 1:
        for t in tasks:
            yield export_video(t)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding codec threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = []
        it = iter(tasks)
        for t in it:
            pending.append(pool.submit(export_video, t))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(export_video, nxt))
            yield done.result()


def _claim(dest: Destination, params: ExportParams, out_uri: str) -> None:
    """Record the export's settings at the destination; refuse one that holds an export made otherwise."""
    want = {"format": params.format, "settings": params.output_settings(), "schema_version": SCHEMA_VERSION}
    have = dest.read_json(SETTINGS_FILE)
    if have is not None and {k: have.get(k) for k in want} != want:
        diff = sorted(k for k in set(want["settings"]) | set((have.get("settings") or {}))
                      if want["settings"].get(k) != (have.get("settings") or {}).get(k))
        what = ", ".join(diff) or "format or schema version"
        raise ExportError(f"destination {dest.uri_root!r} holds an export made with other settings ({what}); "
                          "choose another --dest or remove it")
    if have is None:
        dest.write_json(SETTINGS_FILE, dict(want, source=_public(out_uri)))


def _public(uri: str) -> str:
    """A URI without user:password@ (credentials never go into files)."""
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        proto, rest = uri.split("://", 1)
        return f"{proto}://{rest.split('@', 1)[1]}"
    return uri


__all__ = ["ExportError", "DestinationError", "export_run", "export_video", "sample_metadata", "read_manifest"]
