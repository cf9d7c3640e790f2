"""Dashboard build time and peak memory on synthetic run folders of 100k / 1M (/ 10M) clips.

The rows are synthetic but schema-valid: every table is written through
schemas.write_table (validated against schemas/tables.py). Each size is built in
its own child process, so its peak RSS is the build's alone (the child's VmHWM).
The report must stay fast at scale: histograms and quantiles are SQL aggregates
(approx_quantile), sample clips come from a fixed-size reservoir sample, and
thumbnails are read for the ~200 clips shown, never for all rows.

    python -m bench.dashboard_bench --sizes 100000,1000000
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CLIPS_PER_VIDEO = 8
ROWS_PER_FILE = 500_000
RULES = [  # the default rules' shape: the funnel has a step per rule
    {"column": "duration_s", "min": 1.0, "max": None, "reason": "too_short"},
    {"column": "motion", "min": 0.002, "max": None, "reason": "static"},
    {"column": "motion", "min": None, "max": 0.25, "reason": "too_much_motion"},
    {"column": "sharpness", "min": 2.5, "max": None, "reason": "blurry"},
    {"column": "luma_mean", "min": 30.0, "max": None, "reason": "dark"},
    {"column": "black_frac", "min": None, "max": 0.5, "reason": "black_frames"},
]


def _jpegs(k: int = 50) -> list[bytes]:
    import cv2
    import numpy as np

    out = []
    for i in range(k):
        img = np.full((90, 160, 3), (i * 5 % 255, 80, 160), np.uint8)
        cv2.putText(img, str(i), (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 2)
        out.append(cv2.imencode(".jpg", img)[1].tobytes())
    return out


def _hex_ids(rng, n: int, salt: int) -> "pa.Array":
    import numpy as np
    import pyarrow as pa

    x = rng.integers(0, 2**63 - 1, n, dtype=np.int64) ^ salt
    return pa.array(np.char.mod("%016x", x).astype(object), pa.string())


def write_synthetic_run(out: Path, n_clips: int, seed: int = 0) -> dict:
    """A run folder with n_clips schema-valid clips (videos, clips, curated, errors, keyframes, a run record)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from schemas import RunRecord, write_table

    rng = np.random.default_rng(seed)
    n_videos = max(1, n_clips // CLIPS_PER_VIDEO)
    relpaths = pa.array([f"src{v % 40:02d}/video_{v:08d}.mp4" for v in range(n_videos)], pa.string())
    uris = pc.binary_join_element_wise("/nonexistent/bench/in", relpaths, "/")
    video_ids = _hex_ids(rng, n_videos, 1)
    jpegs = pa.array(_jpegs(), pa.binary())
    videos = {
        "video_id": video_ids, "uri": uris, "relpath": relpaths, "content_hash": _hex_ids(rng, n_videos, 2),
        "file_size": pa.array(rng.integers(10**6, 10**9, n_videos), pa.int64()),
        "width": pa.array(np.full(n_videos, 1280), pa.int32()), "height": pa.array(np.full(n_videos, 720), pa.int32()),
        "fps": pa.array(np.full(n_videos, 25.0)), "duration_s": pa.array(rng.uniform(5, 120, n_videos)),
        "num_clips": pa.array(np.full(n_videos, CLIPS_PER_VIDEO), pa.int32()),
    }
    _write(out / "videos", "videos", videos, n_videos)
    errors = {"uri": uris.take(pa.array(np.arange(0, n_videos, 100))), "stage": pa.array(["decode"] * len(range(0, n_videos, 100))),
              "error_type": pa.array(["InvalidDataError"] * len(range(0, n_videos, 100))),
              "message": pa.array(["Invalid data found when processing input"] * len(range(0, n_videos, 100))),
              "run_id": pa.array(["bench"] * len(range(0, n_videos, 100)))}
    _write(out / "errors", "errors", errors, len(errors["uri"]))
    kept_total = 0
    for start in range(0, n_clips, ROWS_PER_FILE):
        n = min(ROWS_PER_FILE, n_clips - start)
        idx = np.arange(start, start + n)
        video = pa.array(idx // CLIPS_PER_VIDEO % n_videos)
        dur = rng.gamma(2.0, 2.5, n)
        scores = {
            "motion": rng.lognormal(-4, 1.2, n), "camera_motion": rng.lognormal(-5, 1, n), "local_motion": rng.lognormal(-5, 1, n),
            "sharpness": rng.lognormal(3, 1, n), "luma_mean": rng.normal(110, 40, n).clip(0, 255),
            "contrast": rng.uniform(5, 80, n), "black_frac": rng.choice([0.0, 0.0, 0.0, 0.2, 0.9], n),
            "quality": rng.uniform(0, 1, n), "colorfulness": rng.uniform(0, 120, n),
        }
        values = {"duration_s": dur, **scores}
        fails = np.stack([((values[r["column"]] < r["min"]) if r["min"] is not None else (values[r["column"]] > r["max"]))
                          for r in RULES], axis=1)
        dup = rng.random(n) < 0.01  # 1 % of clips duplicate their neighbour
        fails = np.concatenate([fails, dup[:, None]], axis=1)
        rows, cols = np.nonzero(fails)
        names = np.array([r["reason"] for r in RULES] + ["duplicate"], dtype=object)
        offsets = np.concatenate([[0], np.cumsum(fails.sum(axis=1))]).astype(np.int32)
        reasons = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names[cols], pa.string()))
        kept = ~fails.any(axis=1)
        clip_ids = _hex_ids(rng, n, 3 + start)
        group = pa.array(np.where(dup, np.char.mod("g%012d", idx).astype(object), None), pa.string())
        dup_of = pc.if_else(pa.array(dup), clip_ids, pa.nulls(n, pa.string()))
        clips = {
            "clip_id": clip_ids, "video_id": video_ids.take(video), "uri": uris.take(video),
            "clip_index": pa.array(idx % CLIPS_PER_VIDEO, pa.int32()),
            "start_frame": pa.array(idx % CLIPS_PER_VIDEO * 250, pa.int64()), "end_frame": pa.array(idx % CLIPS_PER_VIDEO * 250 + (dur * 25).astype(int), pa.int64()),
            "num_frames": pa.array((dur * 25).astype(int), pa.int64()), "start_s": pa.array(idx % CLIPS_PER_VIDEO * 10.0),
            "end_s": pa.array(idx % CLIPS_PER_VIDEO * 10.0 + dur), "duration_s": pa.array(dur), "fps": pa.array(np.full(n, 25.0)),
            "width": pa.array(np.full(n, 1280), pa.int32()), "height": pa.array(np.full(n, 720), pa.int32()),
            "split_reason": pa.array(np.where(idx % 3 == 0, "cut", "window").astype(object), pa.string()),
            **{k: pa.array(v, pa.float32()) for k, v in scores.items()},
            "static": pa.array(scores["motion"] < 0.002),
            "dup_group_id": group, "dup_kind": pc.if_else(pa.array(dup), "perceptual", pa.nulls(n, pa.string())),
            "dup_of": dup_of, "dup_similarity": pc.if_else(pa.array(dup), pa.scalar(0.95, pa.float32()), pa.nulls(n, pa.float32())),
            "drop_reasons": reasons, "kept": pa.array(kept),
        }
        part = f"part-{start // ROWS_PER_FILE:05d}.parquet"
        table = _write(out / "clips", "clips", clips, n, part)
        curated = table.filter(pa.array(kept))
        kept_total += curated.num_rows
        write_table(curated, "curated", str(out / "curated" / part))
        keyframes = {"clip_id": clip_ids, "video_id": clips["video_id"], "position": pa.array(np.full(n, 0.5), pa.float32()),
                     "frame_index": clips["start_frame"], "t": clips["start_s"], "width": pa.array(np.full(n, 160), pa.int32()),
                     "height": pa.array(np.full(n, 90), pa.int32()), "jpeg": jpegs.take(pa.array(idx % len(jpegs)))}
        _write(out / "keyframes", "keyframes", keyframes, n, part)
        del clips, table, curated, keyframes
    record = RunRecord(run_id="bench", input_uri="/nonexistent/bench/in", output_uri=str(out), started_at="2026-01-01T00:00:00+00:00",
                       finished_at="2026-01-01T01:00:00+00:00", config={"filters": RULES}, config_hash="bench",
                       versions={}, status="succeeded", counts={"clips": n_clips, "curated": kept_total})
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / "bench.json").write_text(record.to_json())
    return {"videos": n_videos, "clips": n_clips, "curated": kept_total}


def _write(folder: Path, name: str, columns: dict, n: int, part: str = "part-00000.parquet"):
    import pyarrow as pa

    from schemas import TABLES, write_table

    schema = TABLES[name]
    table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema})
    write_table(table, name, str(folder / part))  # validated against the schema on the way
    return table


_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from curation.dashboard import build_dashboard
db, html = build_dashboard(sys.argv[1])
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)  # CPU seconds of all threads: less sensitive to a shared machine's load
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so it would report the forking parent's peak
hwm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
open(sys.argv[2], "w").write(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": hwm_kb / 1024,
                  "html_mb": html.stat().st_size / 2**20, "db_mb": db.stat().st_size / 2**20}))  # stdout may hold progress bars
"""


def bench_size(n: int, workdir: Path) -> dict:
    out = workdir / f"run_{n}"
    t = time.perf_counter()
    counts = write_synthetic_run(out, n)
    gen_s = time.perf_counter() - t
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result_file = workdir / f"result_{n}.json"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(result_file)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dashboard build failed at {n} clips: {done.stderr[-2000:]}")
    result = json.loads(result_file.read_text())
    parquet_mb = sum(f.stat().st_size for f in out.rglob("*.parquet")) / 2**20
    shutil.rmtree(out, ignore_errors=True)
    return {"clips": n, **counts, "generate_s": round(gen_s, 1), "parquet_mb": round(parquet_mb, 1),
            **{k: round(v, 2) for k, v in result.items()}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.dashboard_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="clips per synthetic run, comma-separated")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidcurate-dashbench-") as tmp:
        for n in sizes:
            r = bench_size(n, Path(tmp))
            rows.append(r)
            print(f"{n:>10,} clips: build {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB, html {r['html_mb']:.1f} MB, "
                  f"db {r['db_mb']:.0f} MB (parquet {r['parquet_mb']:.0f} MB, generated in {r['generate_s']:.0f} s)", flush=True)
    summary = [{"metric": f"dashboard build, {r['clips']:,} clips", "value": r["wall_s"], "unit": "s"} for r in rows]
    summary += [{"metric": f"dashboard build CPU, {r['clips']:,} clips", "value": r["cpu_s"], "unit": "s"} for r in rows]
    summary += [{"metric": f"peak RSS, {r['clips']:,} clips", "value": r["peak_rss_mb"], "unit": "MB"} for r in rows]
    if len(rows) > 1:
        summary.append({"metric": f"time ratio {rows[-1]['clips']:,} / {rows[0]['clips']:,} clips",
                        "value": rows[-1]["wall_s"] / rows[0]["wall_s"], "unit": "x"})
    result = {"machine": f"{os.cpu_count()} cores (shared), load average {os.getloadavg()[0]:.1f} at the end",
              "sizes": rows, "summary": summary}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
