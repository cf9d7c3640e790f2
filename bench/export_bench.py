"""Export throughput: ours (seek to each clip, WebDataset shards) vs a naive exporter that decodes from the file's start per clip.

Run: python -m bench.export_bench [--videos 2] [--seconds 60] [--size 640x360] [--preset fast] [--rounds 1]

Inputs are generated with PyAV (textured pans with a cut every 2 s and a stereo
tone, keyframes every 2 s), letterboxed: a 2.35:1 picture between black bars,
whose box the curated rows carry (content_x/y/w/h, as the scan records it). A
curated table keeps every third 2 s window, so clips are spread over each file
as a filter leaves them. The variants run in this one process on the same files
with the same encoder settings (libx264 at the given preset and crf, yuv420p,
1 thread per clip, AAC audio):

  ours      curation.export.export_run, full frame (--full-frame): each video
            opened once, a seek to the keyframe at or before each clip, frames
            matched by pts, audio trimmed to the span, samples packed into tar shards
  cropped   the same, cropped to the content box (the export's default)
  baseline  per clip: open the file, decode from frame 0 up to the clip, encode
            the clip's full frames and its audio into an mp4 (the same clip
            writer, reading sequentially): the cost a naive exporter pays

The speedup compares ours with the baseline, both full frame; the crop is
reported as cropped / ours (wall time and bytes).

Also reported: the read alone (no encode) for the last clip of a file vs its
first clip, seeking and from the start, to show how the read cost grows with
the clip's position. Writes bench/results/export.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "export.json"
WINDOW_S = 2.0  # curated clip length (s)
PICTURE_ASPECT = 2.35  # the letterboxed picture inside each generated frame (w / h)


def letterbox_bar(width: int, height: int) -> int:
    """Px of black above and below a PICTURE_ASPECT picture in a width x height frame (even, so the box is exact)."""
    return max(0, int(round((height - width / PICTURE_ASPECT) / 4)) * 2)


def write_input(path: Path, seed: int, seconds: float, width: int, height: int, fps: int = 25) -> Path:
    """Textured pan, a new texture every WINDOW_S, letterboxed, a stereo tone; keyframes every WINDOW_S."""
    rng = np.random.default_rng(seed)
    bar = letterbox_bar(width, height)
    n = int(seconds * fps)
    rate = 48000
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "g": str(int(WINDOW_S * fps)), "threads": "2"}
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        tex = None
        for i in range(n):
            if i % int(WINDOW_S * fps) == 0:
                tex = rng.integers(0, 256, size=(height // 8, (width + n) // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
            img = np.ascontiguousarray(tex[:height, i % 8 * 4:i % 8 * 4 + width])
            img[:bar], img[height - bar:] = 0, 0
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        total = int(seconds * rate)
        for i in range(0, total, 1024):
            t = np.arange(i, min(total, i + 1024)) / rate
            a = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 550 * t)]).astype(np.float32) * 0.3
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(a), format="fltp", layout="stereo")
            f.sample_rate, f.pts = rate, i
            for p in aus.encode(f):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode():
                out.mux(p)
    return path


def make_run(root: Path, videos: list[Path]) -> tuple[Path, list[dict]]:
    """A run folder whose curated table keeps every third WINDOW_S window of each video."""
    from curation import ids
    from schemas import TABLES, curated_schema, table_from_rows, write_table
    from curation.sources import content_hash

    vrows, crows = [], []
    for v in videos:
        with av.open(str(v)) as c:
            s = c.streams.video[0]
            pts = [f.time for f in c.decode(s)]
            w, h, fps = s.codec_context.width, s.codec_context.height, float(s.average_rate)
        bar = letterbox_bar(w, h)
        box = {"content_x": 0, "content_y": bar, "content_w": w, "content_h": h - 2 * bar,
               "content_aspect": w / (h - 2 * bar), "content_frac": (h - 2 * bar) / h}
        digest = content_hash(str(v))
        vid = ids.video_id(digest, v.name)
        vrows.append({"video_id": vid, "uri": str(v), "relpath": v.name, "content_hash": digest,
                      "file_size": v.stat().st_size, "width": w, "height": h, "rotation": 0, "fps": fps,
                      "num_frames": len(pts), "duration_s": pts[-1] + 1 / fps, "num_clips": 0, "decoder_opens": 1})
        win = int(WINDOW_S * fps)
        for k, start in enumerate(range(0, len(pts) - win + 1, win)):
            if k % 3 != 1:
                continue
            end = start + win
            crows.append({"clip_id": ids.clip_id(vid, start, end), "video_id": vid, "uri": str(v), "clip_index": k,
                          "start_frame": start, "end_frame": end, "num_frames": win, "start_s": pts[start],
                          "end_s": pts[end - 1] + 1 / fps, "duration_s": win / fps, "fps": fps, "width": w,
                          "height": h, "split_reason": "window", "drop_reasons": [], "kept": True, **box})
    out = root / "out"
    write_table(table_from_rows(vrows, TABLES["videos"], "videos"), "videos", str(out / "videos" / "part-00000.parquet"))
    write_table(table_from_rows(crows, curated_schema, "curated"), "curated", str(out / "curated" / "part-00000.parquet"))
    return out, crows


def run_ours(out: Path, dest: Path, params) -> tuple[float, int]:
    from curation.export import export_run

    t = time.perf_counter()
    s = export_run(str(out), params, str(dest))
    wall = time.perf_counter() - t
    assert s["counts"]["errors"] == 0, s["errors_by_type"]
    return wall, s["bytes_exported"]


def run_baseline(clips: list[dict], work: Path, params) -> tuple[float, int]:
    """Per clip: a fresh open, sequential decode from frame 0, the same encoder."""
    from curation.export.clip_reader import ClipReader
    from curation.export.clip_writer import ClipSpan, write_clip

    total = 0
    t = time.perf_counter()
    for c in clips:
        reader = ClipReader(c["uri"], None)
        reader.fall_back_to_sequential("baseline: always from the start")
        with reader:
            path = work / f"{c['clip_id']}.mp4"
            write_clip(reader, ClipSpan(c["start_frame"], c["end_frame"], c["start_s"], c["end_s"]), str(path),
                       params, c["uri"] if params.audio else None)
        total += path.stat().st_size
        path.unlink()
    return time.perf_counter() - t, total


def read_cost(uri: str, start: int, end: int, seek: bool) -> float:
    """Seconds to get frames [start, end) of a file (no encode), seeking or from the start."""
    from curation.export.clip_reader import ClipReader

    t = time.perf_counter()
    with ClipReader(uri, None) as r:
        if not seek:
            r.fall_back_to_sequential("from the start")
        n = sum(1 for _ in r.frames(start, end))
    assert n == end - start
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.export_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each generated video (s)")
    ap.add_argument("--size", default="640x360", help="WxH of the generated videos")
    ap.add_argument("--preset", default="fast", help="libx264 preset for both variants (default: the export's)")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds; the median is reported")
    args = ap.parse_args(argv)
    from curation.export import ExportParams

    width, height = (int(x) for x in args.size.lower().split("x"))
    params = ExportParams(preset=args.preset, crf=args.crf, crop_to_content=False)
    crop_params = ExportParams(preset=args.preset, crf=args.crf)
    with tempfile.TemporaryDirectory(prefix="vidcurate-export-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        t = time.perf_counter()
        videos = [write_input(tmp / "in" / f"v{i}.mp4", i, args.seconds, width, height) for i in range(args.videos)]
        out, clips = make_run(tmp, videos)
        gen_s = time.perf_counter() - t
        ours, cropped, base = [], [], []
        for r in range(args.rounds):
            ours.append(run_ours(out, tmp / f"wds{r}", params))
            cropped.append(run_ours(out, tmp / f"crop{r}", crop_params))
            base.append(run_baseline(clips, tmp, params))
        ours_s = statistics.median(w for w, _ in ours)
        crop_s = statistics.median(w for w, _ in cropped)
        base_s = statistics.median(w for w, _ in base)
        ours_bytes, crop_bytes, base_bytes = ours[0][1], cropped[0][1], base[0][1]
        shards = sorted((tmp / "wds0").glob("shard-*.tar"))
        # read cost by position: the first and the last curated clip of the first video
        first = min((c for c in clips if c["uri"] == str(videos[0])), key=lambda c: c["start_frame"])
        last = max((c for c in clips if c["uri"] == str(videos[0])), key=lambda c: c["start_frame"])
        reads = {(name, seek): statistics.median(read_cost(c["uri"], c["start_frame"], c["end_frame"], seek) for _ in range(3))
                 for name, c in (("first", first), ("last", last)) for seek in (True, False)}
    n = len(clips)
    frames = sum(c["end_frame"] - c["start_frame"] for c in clips)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), load {os.getloadavg()[0]:.1f}",
        "inputs": {"videos": args.videos, "seconds_each": args.seconds, "size": [width, height], "clips": n,
                   "frames": frames, "clip_s": WINDOW_S, "generate_s": round(gen_s, 2)},
        "inputs_box": {"picture_aspect": PICTURE_ASPECT, "bar_px": letterbox_bar(width, height)},
        "settings": {"preset": args.preset, "crf": args.crf, "encoder_threads": 1, "audio": True},
        "ours": {"wall_s": ours_s, "clips_per_s": n / ours_s, "mb_per_s": ours_bytes / 1e6 / ours_s,
                 "bytes": ours_bytes, "shards": len(shards)},
        "cropped": {"wall_s": crop_s, "clips_per_s": n / crop_s, "mb_per_s": crop_bytes / 1e6 / crop_s, "bytes": crop_bytes},
        "crop_vs_full_wall": crop_s / ours_s,
        "crop_vs_full_bytes": crop_bytes / ours_bytes,
        "baseline": {"wall_s": base_s, "clips_per_s": n / base_s, "mb_per_s": base_bytes / 1e6 / base_s, "bytes": base_bytes},
        "speedup": base_s / ours_s,
        "read_s": {f"{k[0]}_clip_{'seek' if k[1] else 'from_start'}": v for k, v in reads.items()},
        "read_last_vs_first_seek": reads[("last", True)] / reads[("first", True)],
        "read_last_vs_first_from_start": reads[("last", False)] / reads[("first", False)],
    }
    result["summary"] = [
        {"metric": "ours: clips/s", "value": result["ours"]["clips_per_s"], "unit": "clips/s"},
        {"metric": "ours: MB/s of mp4 written", "value": result["ours"]["mb_per_s"], "unit": "MB/s"},
        {"metric": "baseline (decode from start per clip): clips/s", "value": result["baseline"]["clips_per_s"], "unit": "clips/s"},
        {"metric": "speedup ours / baseline", "value": result["speedup"], "unit": "x"},
        {"metric": "cropped to the content box / full frame: wall", "value": result["crop_vs_full_wall"], "unit": "x"},
        {"metric": "cropped to the content box / full frame: bytes", "value": result["crop_vs_full_bytes"], "unit": "x"},
        {"metric": "read cost last clip / first clip (seek)", "value": result["read_last_vs_first_seek"], "unit": "x"},
        {"metric": "read cost last clip / first clip (from start)", "value": result["read_last_vs_first_from_start"], "unit": "x"},
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"{n} clips of {WINDOW_S:g} s ({frames} frames, {width}x{height}) from {args.videos} x {args.seconds:g} s videos, "
          f"letterboxed {PICTURE_ASPECT}:1, libx264 {args.preset} crf {args.crf}, AAC; machine: {result['machine']}")
    print(f"  ours      {ours_s:7.2f} s  {n / ours_s:6.2f} clips/s  {result['ours']['mb_per_s']:6.2f} MB/s  ({len(shards)} shard(s))")
    print(f"  cropped   {crop_s:7.2f} s  {n / crop_s:6.2f} clips/s  {result['cropped']['mb_per_s']:6.2f} MB/s  "
          f"(crop/full: wall {result['crop_vs_full_wall']:.2f}x, bytes {result['crop_vs_full_bytes']:.2f}x)")
    print(f"  baseline  {base_s:7.2f} s  {n / base_s:6.2f} clips/s  {result['baseline']['mb_per_s']:6.2f} MB/s")
    print(f"  speedup   {result['speedup']:.2f}x")
    print("  read only (no encode), s:  " + ", ".join(f"{k} {v:.3f}" for k, v in result["read_s"].items()))
    return result


if __name__ == "__main__":
    main()
