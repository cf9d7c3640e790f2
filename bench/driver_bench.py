"""Driver memory of the table stages: filter -> dedup -> balance -> curate -> write over 100k / 1M / 10M clips.

Run: python -m bench.driver_bench [--sizes 100000,1000000] [--variants baseline,ours] [--data DIR]

Synthesises committed scan parts (through RunStore.write_part and the schemas,
as the scan writes them: 64 videos per part, 20 clips per video, realistic
scores, durations, content hashes and 3 keyframe phashes per clip, 0.5 % of
videos byte copies of another, 2 % of clips near-copies by phash, 0.5 % of
inputs broken = error rows only, 3 tiny keyframe JPEGs per clip; no
embeddings: CLIP not configured; exact + perceptual dedup without the 8
symmetries, balance on in select mode), then runs the table stages in a child
process per (size, variant) and reports wall time and the child's peak RSS
(ru_maxrss: the driver alone; Ray workers are other processes). Variants:
"baseline" is the old code path (bench/driver_baseline.py: every column of
every clip assembled on the driver), "ours" is pipelines/run.py's one path
(pipelines/table_shards.py: partitions as Ray tasks, no per-clip state on the driver). After each phase the child records ru_maxrss and
pyarrow's allocated bytes: where the memory goes. Generated data is kept under
--data (default: a temp folder, removed) and reused when present.
Writes bench/results/driver.json and prints a table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "driver.json"
REPO = Path(__file__).resolve().parents[1]
SCAN_KEY = "scan-bench"
CLIPS_PER_VIDEO = 20
VIDEOS_PER_PART = 64
BROKEN_SHARE = 0.005  # inputs that are only an error row
COPY_SHARE = 0.005  # videos that are byte copies of the one before
NEAR_SHARE = 0.02  # clips whose phashes are 2 bits off another clip's
CONFIG = """
stages:
  embed: {enabled: false}
  text: {enabled: false}
  caption: {enabled: false}
  balance: {enabled: true}
balance: {mode: select, target_fraction: 0.5}
dedup: {kinds: [exact, perceptual], phash_symmetric: false}
"""
# phash_symmetric off: the 8 rotation/mirror passes multiply the perceptual step's time by 8 (not its memory
# much); on this shared 2-core box that alone took > 20 min at 1M clips.


def _uri(i: int) -> str:
    return f"s3://bench-in/{i // 1000:05d}/video_{i:08d}.mp4"


def _hex(rng: np.random.Generator, n: int, chars: int = 16) -> list[str]:
    return [f"{x:016x}"[:chars] for x in rng.integers(0, 2**63, n, dtype=np.int64).tolist()]


def _jpeg() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))
    return buf.tobytes()


def part_tables(part: int, first_input: int, n_inputs: int, jpeg: bytes) -> dict:
    """The videos, clips, keyframes and errors tables of one synthetic scan part (seeded by the part index)."""
    import pyarrow as pa

    from schemas import TABLES

    rng = np.random.default_rng(1000 + part)
    idx = np.arange(first_input, first_input + n_inputs)
    broken = rng.random(n_inputs) < BROKEN_SHARE
    vidx = idx[~broken]
    nv, nc = len(vidx), len(vidx) * CLIPS_PER_VIDEO
    video_id = [hashlib.sha256(f"v{i}".encode()).hexdigest()[:16] for i in vidx.tolist()]
    content = [hashlib.sha256(f"c{i}".encode()).hexdigest() for i in vidx.tolist()]
    copy = np.r_[False, rng.random(max(nv - 1, 0)) < COPY_SHARE][:nv]
    for j in np.flatnonzero(copy):
        content[j] = content[j - 1]
    fps = np.where(rng.random(nv) < 0.7, 30.0, 25.0)
    wh = np.array([(1280, 720), (1920, 1080), (720, 1280), (640, 360)])[rng.choice(4, nv, p=[0.5, 0.25, 0.15, 0.1])]
    dur = np.clip(rng.lognormal(np.log(4.0), 0.7, (nv, CLIPS_PER_VIDEO)), 0.4, 60.0)
    frames = np.maximum(1, np.round(dur * fps[:, None])).astype(np.int64)
    ph = rng.integers(0, 2**63, (nv, CLIPS_PER_VIDEO, 3), dtype=np.int64).view(np.uint64) * np.uint64(2) + np.uint64(1)
    for j in np.flatnonzero(copy):  # a byte copy: same spans, same phashes
        frames[j], dur[j], fps[j], wh[j], ph[j] = frames[j - 1], dur[j - 1], fps[j - 1], wh[j - 1], ph[j - 1]
    dur = frames / fps[:, None]
    starts = np.cumsum(frames, axis=1) - frames
    ph = ph.reshape(nc, 3)
    near = np.flatnonzero(rng.random(nc) < NEAR_SHARE)
    src = rng.integers(0, nc, len(near))
    flips = (np.uint64(1) << rng.integers(0, 64, (len(near), 3)).astype(np.uint64)) | (np.uint64(1) << rng.integers(0, 64, (len(near), 3)).astype(np.uint64))
    ph[near] = ph[src] ^ flips
    rep = np.repeat(np.arange(nv), CLIPS_PER_VIDEO)
    uris = [_uri(i) for i in vidx.tolist()]
    motion = rng.lognormal(np.log(0.02), 1.2, nc).astype(np.float32)
    n = nc

    def f32(x):
        return pa.array(np.asarray(x, np.float32))

    clips = {
        "clip_id": _hex(rng, n), "video_id": pa.array(video_id).take(pa.array(rep)), "uri": pa.array(uris).take(pa.array(rep)),
        "clip_index": pa.array(np.tile(np.arange(CLIPS_PER_VIDEO, dtype=np.int32), nv)),
        "start_frame": pa.array(starts.ravel()), "end_frame": pa.array((starts + frames).ravel()),
        "num_frames": pa.array(frames.ravel()), "start_s": pa.array((starts / fps[:, None]).ravel()),
        "end_s": pa.array(((starts + frames) / fps[:, None]).ravel()), "duration_s": pa.array(dur.ravel()),
        "fps": pa.array(fps[rep]), "width": pa.array(wh[rep, 0].astype(np.int32)), "height": pa.array(wh[rep, 1].astype(np.int32)),
        "split_reason": pa.array(np.where(np.tile(np.arange(CLIPS_PER_VIDEO), nv) == 0, "whole", "cut")),
        "motion": f32(motion), "camera_motion": f32(motion * 0.6), "local_motion": f32(motion * 0.4), "static": pa.array(motion < 0.002),
        "sharpness": f32(rng.lognormal(np.log(20), 0.8, n)), "luma_mean": f32(np.clip(rng.normal(110, 40, n), 0, 255)),
        "clipped_dark_frac": f32(rng.beta(0.5, 20, n)), "clipped_bright_frac": f32(rng.beta(0.5, 30, n)),
        "contrast": f32(rng.normal(50, 15, n)), "colorfulness": f32(rng.lognormal(np.log(30), 0.5, n)),
        "black_frac": f32(np.where(rng.random(n) < 0.02, 1.0, 0.0)), "content_frac": f32(np.where(rng.random(n) < 0.1, 0.75, 1.0)),
        "quality": f32(rng.uniform(0.2, 0.95, n)),
        "phash": pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)), pa.array(ph.ravel())),
        "audio_channels": pa.array(np.full(n, 2, np.int32)), "audio_coverage": f32(np.where(rng.random(n) < 0.03, 0.2, 1.0)),
        "loudness_lufs": f32(rng.normal(-20, 5, n)), "silence_frac": f32(rng.beta(1, 5, n)),
        "audio_clipping_frac": f32(rng.beta(0.3, 60, n)), "speech_frac": f32(rng.beta(1, 2, n)),
        "drop_reasons": pa.array([[]] * n, pa.list_(pa.string())), "kept": pa.array(np.ones(n, bool)),
    }
    schema = TABLES["clips"]
    clips = pa.table({f.name: clips[f.name] if f.name in clips else pa.nulls(n, f.type) for f in schema}, schema=schema)
    size = rng.integers(5_000_000, 200_000_000, nv)
    vids = {
        "video_id": video_id, "uri": uris, "relpath": [u.split("bench-in/", 1)[1] for u in uris], "content_hash": content,
        "file_size": pa.array(size), "container": ["mov,mp4,m4a,3gp,3g2,mj2"] * nv, "codec": ["h264"] * nv,
        "width": pa.array(wh[:, 0].astype(np.int32)), "height": pa.array(wh[:, 1].astype(np.int32)), "rotation": pa.array(np.zeros(nv, np.int32)),
        "fps": pa.array(fps), "num_frames": pa.array(frames.sum(1)), "num_frames_meta": pa.array(frames.sum(1)),
        "duration_s": pa.array(dur.sum(1)), "num_clips": pa.array(np.full(nv, CLIPS_PER_VIDEO, np.int32)),
        "decode_s": pa.array(dur.sum(1) / 40), "decoder_opens": pa.array(np.ones(nv, np.int32)), "sar": pa.array(np.ones(nv)),
        "display_width": pa.array(wh[:, 0].astype(np.int32)), "display_height": pa.array(wh[:, 1].astype(np.int32)),
        "display_aspect": pa.array(wh[:, 0] / wh[:, 1]), "has_audio": pa.array(np.ones(nv, bool)), "audio_codec": ["aac"] * nv,
        "audio_sample_rate": pa.array(np.full(nv, 48000, np.int32)), "audio_channels": pa.array(np.full(nv, 2, np.int32)),
        "audio_start_s": pa.array(np.zeros(nv)), "audio_duration_s": pa.array(dur.sum(1)), "av_duration_gap_s": pa.array(np.zeros(nv)),
    }
    videos = pa.table(vids, schema=TABLES["videos"])
    kpos = np.tile(np.array([0.1, 0.5, 0.9], np.float32), n)
    krow = np.repeat(np.arange(n), 3)
    kf_frame = starts.ravel()[krow] + (frames.ravel()[krow] * kpos).astype(np.int64)
    keyframes = pa.table({
        "clip_id": clips.column("clip_id").take(pa.array(krow)), "video_id": clips.column("video_id").take(pa.array(krow)),
        "position": pa.array(kpos), "frame_index": pa.array(kf_frame), "t": pa.array(kf_frame / fps[rep][krow]),
        "width": pa.array(np.full(3 * n, 160, np.int32)), "height": pa.array(np.full(3 * n, 90, np.int32)),
        "jpeg": pa.array([jpeg] * (3 * n), pa.binary()),
    }, schema=TABLES["keyframes"])
    bad = [_uri(i) for i in idx[broken].tolist()]
    errors = pa.table({"uri": bad, "video_id": pa.nulls(len(bad), pa.string()), "stage": ["probe"] * len(bad),
                       "error_type": ["InvalidDataError"] * len(bad), "message": ["moov atom not found"] * len(bad),
                       "run_id": ["bench"] * len(bad)}, schema=TABLES["errors"])
    return {"videos": videos, "clips": clips, "keyframes": keyframes, "errors": errors}


def _write_parts(folder: str, parts: list[int], n_inputs: int) -> int:
    from pipelines.store import RunStore

    store, jpeg = RunStore(folder), _jpeg()
    for p in parts:
        first = p * VIDEOS_PER_PART
        store.write_part(SCAN_KEY, part_tables(p, first, min(VIDEOS_PER_PART, n_inputs - first), jpeg), part=f"part-{p:06d}")
    return len(parts)


def generate(folder: str, n_clips: int, workers: int = 2) -> dict:
    """Committed scan parts for about n_clips clips under `folder` (reused when complete)."""
    n_inputs = int(np.ceil(n_clips / CLIPS_PER_VIDEO / (1 - BROKEN_SHARE)))
    n_parts = -(-n_inputs // VIDEOS_PER_PART)
    stamp = Path(folder) / "_bench_inputs.json"
    if stamp.exists():
        return json.loads(stamp.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    t = time.perf_counter()
    chunks = [list(range(i, n_parts, workers * 8)) for i in range(workers * 8)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_parts, [folder] * len(chunks), chunks, [n_inputs] * len(chunks)))
    info = {"inputs": n_inputs, "parts": n_parts, "generate_s": round(time.perf_counter() - t, 1),
            "bytes": sum(f.stat().st_size for f in Path(folder).rglob("*.parquet"))}
    stamp.write_text(json.dumps(info))
    return info


# ------------------------------------------------------------------ one variant, in a child process

class Marks:
    """Wall time, peak RSS and Arrow-allocated bytes after each phase."""

    def __init__(self):
        import pyarrow as pa

        self.pa, self.t0, self.rows = pa, time.perf_counter(), []

    def __call__(self, phase: str) -> None:
        self.rows.append({"phase": phase, "t_s": round(time.perf_counter() - self.t0, 2),
                          "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          "arrow_mib": round(self.pa.total_allocated_bytes() / 2**20)})


def run_variant(folder: str, n_inputs: int, variant: str, dedup: str) -> dict:
    from pipelines.config import load_config
    from pipelines.store import RunStore

    cfg_path = Path(folder) / f"_bench_config_{variant}.yaml"
    cfg_path.write_text(CONFIG.replace("kinds: [exact, perceptual]", f"kinds: [{dedup}]"))
    cfg = load_config(cfg_path)
    store = RunStore(folder)
    uris = [_uri(i) for i in range(n_inputs)]
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = {}
    if variant == "baseline":
        from bench.driver_baseline import run_table_stages

        marks = Marks()
        counts = run_table_stages(store, SCAN_KEY, cfg, uris, marks)
    else:
        from curation.sources import VideoFile
        from pipelines.ray_runtime import init_ray
        from pipelines.run import table_stage_run, run_table_stages as ours

        t = time.perf_counter()
        init_ray(None, 2, cfg.ray.connect_timeout_s, cfg.ray.worker_niceness, cfg.ray.observability)
        extra["ray_start_s"] = round(time.perf_counter() - t, 1)
        run = table_stage_run(cfg, store, [VideoFile(u, u.split("bench-in/", 1)[1], 1) for u in uris], SCAN_KEY)
        marks = Marks()
        ours(run, marks)
        counts = {k: run.record.counts[k] for k in ("videos", "clips", "curated", "errors")}
    wall = marks.rows[-1]["t_s"]
    return {"variant": variant, "wall_s": wall, "peak_rss_mib": marks.rows[-1]["peak_rss_mib"],
            "rss_before_mib": round(rss_start), "phases": marks.rows, "counts": counts, **extra}


def _child(args: list[str]) -> dict:
    """Run `python -m bench.driver_bench --child ...` and return its JSON (last stdout line)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "bench.driver_bench", *args], cwd=REPO, env=env,
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return {"error": f"child exit code {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.driver_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="clips per size, comma-separated")
    ap.add_argument("--variants", default="baseline,ours")
    ap.add_argument("--data", default=None, help="keep generated parts here (reused when present)")
    ap.add_argument("--dedup", default="exact,perceptual", help="dedup kinds (perceptual dominates the time: "
                    "about 15 min per million clips on a loaded 2-core box)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, folder, n = args.child[0], args.child[1], int(args.child[2])
        out = generate(folder, n) if kind == "gen" else run_variant(folder, n, kind, args.dedup)
        print(json.dumps(out))
        return out
    base = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="vidcurate-driver-bench-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = []
    try:
        for n in sizes:
            folder = base / f"clips-{n}"
            info = _child(["--child", "gen", str(folder), str(n)])
            print(f"{n} clips: {info}", flush=True)
            for variant in args.variants.split(","):
                # a fresh copy of the run folder's final tables: each variant starts from the same state
                for name in ("videos", "clips", "curated", "errors", "keyframes", "_work/final.json"):
                    p = folder / name
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                r = _child(["--dedup", args.dedup, "--child", variant, str(folder), str(info["inputs"])])
                r.update(n=n, data=info, dedup=args.dedup)
                runs.append(r)
                print(json.dumps({k: r.get(k) for k in ("n", "variant", "wall_s", "peak_rss_mib", "error")}), flush=True)
    finally:
        if not args.data:
            shutil.rmtree(base, ignore_errors=True)
    if args.data:  # runs of other --dedup settings or sizes stay in the results file
        old = json.loads(RESULTS.read_text()).get("runs", []) if RESULTS.exists() else []
        keep = [r for r in old if (r.get("n"), r.get("variant"), r.get("dedup")) not in {(x["n"], x["variant"], x.get("dedup")) for x in runs}]
        runs = keep + runs
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), load {os.getloadavg()[0]:.1f}",
              "runs": runs, "summary": _summary(runs)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"\n{'clips':>9} {'variant':>9} {'wall s':>8} {'peak RSS MiB':>13}   phases (t s / peak RSS MiB / Arrow MiB)")
    for r in runs:
        if "error" in r:
            print(f"{r['n']:>9} {r.get('variant', '?'):>9} error: {r['error']}")
            continue
        phases = "  ".join(f"{p['phase']} {p['t_s']}/{p['peak_rss_mib']}/{p['arrow_mib']}" for p in r.get("phases", []))
        print(f"{r['n']:>9} {r['variant']:>9} {r.get('wall_s', float('nan')):>8} {r.get('peak_rss_mib', '-'):>13}   {phases}")
    return result


def _summary(runs: list[dict]) -> list[dict]:
    out = []
    by = {(r["n"], r["variant"], r.get("dedup", "exact,perceptual")): r for r in runs if "error" not in r}
    for n, dedup in sorted({(n, d) for n, _, d in by}):
        tag = f"{n} clips, dedup {dedup}"
        for v in ("baseline", "ours"):
            if (n, v, dedup) in by:
                out.append({"metric": f"driver peak RSS, {v}, {tag}", "value": by[(n, v, dedup)]["peak_rss_mib"], "unit": "MiB"})
        for v, ref in (("ours", "baseline"),):
            if (n, v, dedup) in by and (n, ref, dedup) in by:
                a, b = by[(n, v, dedup)], by[(n, ref, dedup)]
                out.append({"metric": f"driver RSS {v}/{ref}, {tag}", "value": round(a["peak_rss_mib"] / b["peak_rss_mib"], 3), "unit": "x"})
                out.append({"metric": f"wall {v}/{ref}, {tag}", "value": round(a["wall_s"] / max(b["wall_s"], 1e-9), 3), "unit": "x"})
    # flat in N: our driver's peak RSS at the largest size over the smallest
    sizes = sorted({n for n, v, _ in by if v == "ours"})
    if len(sizes) > 1:
        for dedup in sorted({d for n, v, d in by if v == "ours"}):
            lo, hi = by.get((sizes[0], "ours", dedup)), by.get((sizes[-1], "ours", dedup))
            if lo and hi:
                out.append({"metric": f"driver RSS at {sizes[-1]} / at {sizes[0]} clips, dedup {dedup}",
                            "value": round(hi["peak_rss_mib"] / lo["peak_rss_mib"], 3), "unit": "x"})
    return out


if __name__ == "__main__":
    main()
