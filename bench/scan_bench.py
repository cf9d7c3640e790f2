"""Scan throughput: decode ceiling vs ours (2-process pool and Ray) vs the multi-pass baseline.

Run: python -m bench.scan_bench [--minutes 10] [--rounds 3] [--workers 2]

All variants run in this one benchmark run, on the same files, in the same
order, with the same number of worker processes, interleaved round by round
(a, b-pool, b-ray, c, a, b-pool, ...) so that load from other processes on a
shared machine hits them alike; we report the median per variant. Each
measurement runs in a fresh child process, so memory and imports of one
variant never count towards another.

The real test videos (VIDCURATE_TEST_VIDEOS, default ../shared/data/videos)
are listed several times over until at least --minutes of video, so fixed
costs amortise. No copies are written; Ray's run gets symlinks in a temp dir.

  a  decode ceiling: PyAV, thread_type AUTO, every frame decoded and dropped
  b  ours: curation.scan.scan_video with the default config's parameters (decode
     once: split + motion + quality + keyframes + pHash, no CLIP), via a plain process pool and via the real
     pipelines.run.run_pipeline on Ray (Ray start-up reported separately)
  c  baseline in the style of video2dataset / Open-Sora: PySceneDetect's own
     CLI per file (subprocess, detect-adaptive), then a separate optical-flow
     pass (OpenCV VideoCapture decode, Farneback at the same 2 fps sampling
     and 256 px short side)

  profile  where ours spends its CPU: one process scans the files one by one
     (OpenCV on one thread, so every component's work is on the thread that
     times it), commits them in parts as the pipeline does, and measures the
     parts' on-screen text with the text stage's worker; CPU seconds per
     component from ScanResult.cpu_s (curation.scan.CPU_COMPONENTS) plus the
     commit and the text stage, per video-second. Beside it, the CPU of a plain
     PyAV decode of the same files (the ceiling's work, in this process).

Rates are video-seconds per wall-second; CPU s/video s (all processes of the
variant, user + system) is reported beside them, as it is less disturbed by
other jobs on a shared machine: over the work's own window (start-up excluded,
as the rates are; the "start s" column) and over the whole child process. Peak memory: the largest sum of RSS
over the measuring child process and all its descendants (sampled every
0.2 s from /proc; for Ray: driver, GCS, raylet, agents and workers), and the
largest single process. Writes bench/results/scan.json.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "scan.json"
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SAMPLE_FPS = 2.0  # the pipeline's default decode.sample_fps
SHORT_SIDE = 256  # the pipeline's default analysis size / motion max_short_side
# Farneback parameters: curation.motion.MotionParams' fb_* defaults
FB = dict(pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def videos_dir() -> Path:
    return Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO.parent / "shared" / "data" / "videos"))


# ---------------------------------------------------------------- inputs

def probe_duration(path: str) -> float:
    """Seconds of video by the container's metadata (no decode)."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        if s.duration and s.time_base:
            return float(s.duration * s.time_base)
        if c.duration:
            return c.duration / 1e6
        rate = float(s.average_rate or 25)
        return (s.frames or 0) / rate


def list_inputs(folder: Path) -> list[tuple[str, float]]:
    """(path, seconds) of every decodable video in `folder`, sorted by name."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in VIDEO_EXTS:
            try:
                out.append((str(p), probe_duration(str(p))))
            except Exception as e:  # a file the bench cannot use is reported, not fatal
                print(f"skipping {p.name}: {e}", file=sys.stderr)
    return out


def repeated(files: list[tuple[str, float]], min_seconds: float) -> list[tuple[str, float]]:
    """The list repeated whole until it holds at least `min_seconds` of video."""
    total = sum(d for _, d in files)
    if total <= 0:
        raise ValueError("no video to benchmark")
    times = max(1, -int(-min_seconds // total))
    return files * times


# ---------------------------------------------------------------- per-file work (run in workers)

def decode_file(path: str) -> int:
    """(a) Plain decode of every frame with the pipeline's library and settings; returns frames."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = 0
        for _ in c.decode(s):
            n += 1
    return n


@functools.lru_cache(maxsize=1)
def pipeline_scan_params():
    """The scan parameters `vidcurate run` uses (the default config), so pool and Ray do the same work.

    (Until 2026-11 the pool used ScanParams(), whose DIS preset is 1 (fast) where the config's is 2
    (medium): the pool did cheaper motion work than the Ray run it was compared with.)
    """
    from pipelines.config import load_config
    from pipelines.params import scan_params

    return scan_params(load_config())


def scan_file(path: str) -> int:
    """(b) Our per-video unit of work with the pipeline's default config; returns clips."""
    from curation.scan import scan_video

    r = scan_video(path, os.path.basename(path), pipeline_scan_params(), "bench")
    if r.errors and r.video is None:
        raise RuntimeError(f"{path}: {r.errors[0]['message']}")
    return len(r.clips)


def scenedetect_cli(path: str) -> None:
    """PySceneDetect's CLI, as video2dataset / Open-Sora's scene-cut step runs it."""
    exe = Path(sys.executable).with_name("scenedetect")
    cmd = [str(exe) if exe.exists() else "scenedetect", "-q", "-i", path, "detect-adaptive", "list-scenes", "-n"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def farneback_pass(path: str, sample_fps: float = SAMPLE_FPS, short_side: int = SHORT_SIDE) -> float:
    """A second decode with OpenCV and Farneback flow between samples; returns mean flow (px)."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise RuntimeError(f"OpenCV cannot open {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    step = (fps if 0 < fps < 1000 else 25.0) / sample_fps  # frames between samples
    prev, mags, i, next_i = None, [], 0, 0.0
    while cap.grab():  # every frame is decoded; only samples are converted
        if i >= next_i:
            ok, bgr = cap.retrieve()
            if not ok:
                break
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            h, w = gray.shape
            if min(h, w) > short_side:
                k = short_side / min(h, w)
                gray = cv2.resize(gray, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
            if prev is not None:
                flow = cv2.calcOpticalFlowFarneback(prev, gray, None, **FB)
                mags.append(float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean()))
            prev = gray
            next_i += step
        i += 1
    cap.release()
    return sum(mags) / len(mags) if mags else 0.0


def baseline_file(path: str) -> float:
    """(c) Multi-pass baseline for one file: scene detection CLI, then the flow pass."""
    scenedetect_cli(path)
    return farneback_pass(path)


def _warm(_=None) -> int:
    """Import what the workers need before the clock starts (pool start-up is reported apart)."""
    import av  # noqa: F401
    import cv2  # noqa: F401

    import curation.scan  # noqa: F401

    pipeline_scan_params()
    time.sleep(0.3)  # keep this worker busy so the other one takes the other warm-up task
    return os.getpid()


# ---------------------------------------------------------------- memory

class TreeRSS:
    """Peak RSS of this process plus its descendants, sampled from /proc in a thread."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._tick = os.sysconf("SC_CLK_TCK")
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (what it is, CPU seconds last seen)
        self.timeline: list[tuple[float, float]] = []  # (time.monotonic(), CPU seconds of every process seen so far)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        parent: dict[int, int] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        tree, frontier = {os.getpid()}, [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for c in children.get(frontier.pop(), []):
                if c not in tree:
                    tree.add(c)
                    frontier.append(c)
        total = 0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * self._page
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu_s = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
                if pid not in self.cpu or self.cpu[pid][0] in _RENAMES:  # a Ray worker names itself by its first task
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        self.cpu[pid] = (_process_kind(f.read()), cpu_s)
                self.cpu[pid] = (self.cpu[pid][0], cpu_s)
            except (OSError, IndexError, ValueError):
                continue
            total += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_total = max(self.peak_total, total)
        self.timeline.append((time.monotonic(), sum(c for _, c in self.cpu.values())))

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds the tree used between two time.monotonic() moments (linear between samples)."""
        def at(t: float) -> float:
            pts = self.timeline
            for (ta, ca), (tb, cb) in zip(pts, pts[1:]):
                if ta <= t <= tb:
                    return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 1.0)
            return pts[0][1] if t < pts[0][0] else pts[-1][1]

        return at(t1) - at(t0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def as_dict(self) -> dict:
        by_kind: dict[str, list] = {}
        for kind, cpu_s in self.cpu.values():
            k = by_kind.setdefault(kind, [0.0, 0])
            k[0] += cpu_s
            k[1] += 1
        top = {f"{k} x{n}": round(v, 1) for k, (v, n) in sorted(by_kind.items(), key=lambda kv: -kv[1][0])[:8]}
        return {"peak_rss_tree_mb": round(self.peak_total / 2**20, 1), "peak_rss_process_mb": round(self.peak_single / 2**20, 1),
                "cpu_s_by_process": top}  # CPU seconds (as last sampled) of the tree's processes, by kind


_STARTING_WORKER = "ray worker (starting)"
_RENAMES = ("ray::IDLE", _STARTING_WORKER)  # names a process drops once it runs a task


def _process_kind(cmdline: bytes) -> str:
    """A short name for a process from its command line (Ray workers and daemons by role)."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    if not args:
        return "?"
    if args[0].startswith("ray::"):
        return args[0].split()[0]  # ray::_scan_task, ray::IDLE
    joined = " ".join(args)
    if "default_worker.py" in joined:  # a Ray worker before it sets its title (its arguments name the raylet)
        return _STARTING_WORKER
    for key in ("gcs_server", "raylet", "dashboard/agent", "runtime_env/agent", "log_monitor", "monitor.py",
                "dashboard.py", "multiprocessing", "scenedetect", "bench.scan_bench"):
        if key in joined:
            return key
    return os.path.basename(args[0])


# ---------------------------------------------------------------- measurements

def _over_files(fn, paths: list[str], workers: int, window: list | None = None) -> tuple[float, float, list]:
    """(pool start-up s, wall s of the work, results) running fn over paths with `workers` processes.

    workers=0 runs in this process (for the smoke test). `window` receives the work's
    time.monotonic() start and end (start-up excluded), for the CPU measurement.
    """
    window = [] if window is None else window
    if workers <= 0:
        t = time.perf_counter()
        window.append(time.monotonic())
        out = [fn(p) for p in paths]
        window.append(time.monotonic())
        return 0.0, time.perf_counter() - t, out
    import multiprocessing as mp

    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_warm, range(workers), chunksize=1)
        t1 = time.perf_counter()
        window.append(time.monotonic())
        out = list(pool.imap(fn, paths, chunksize=1))
        window.append(time.monotonic())
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, out


def _rate(name: str, video_s: float, wall_s: float, **extra) -> dict:
    return {"variant": name, "video_s": round(video_s, 2), "wall_s": round(wall_s, 3),
            "rate": round(video_s / wall_s, 3) if wall_s > 0 else None, **extra}


def measure_decode(files: list[tuple[str, float]], workers: int = 2) -> dict:
    """(a) Decode ceiling: video-seconds per wall-second of plain PyAV decode."""
    window: list = []
    with TreeRSS() as mem:
        start, wall, frames = _over_files(decode_file, [p for p, _ in files], workers, window)
    return _rate("a_decode", sum(d for _, d in files), wall, startup_s=round(start, 3), frames=sum(frames),
                 cpu_s_window=round(mem.cpu_between(*window), 2), **mem.as_dict())


def measure_ours_pool(files: list[tuple[str, float]], workers: int = 2) -> dict:
    """(b) scan_video over the files with a plain process pool."""
    window: list = []
    with TreeRSS() as mem:
        start, wall, clips = _over_files(scan_file, [p for p, _ in files], workers, window)
    return _rate("b_ours_pool", sum(d for _, d in files), wall, startup_s=round(start, 3), clips=sum(clips),
                 cpu_s_window=round(mem.cpu_between(*window), 2), **mem.as_dict())


def measure_baseline(files: list[tuple[str, float]], workers: int = 2) -> dict:
    """(c) PySceneDetect CLI + separate Farneback pass per file, `workers` files in parallel."""
    window: list = []
    with TreeRSS() as mem:
        start, wall, _ = _over_files(baseline_file, [p for p, _ in files], workers, window)
    return _rate("c_baseline", sum(d for _, d in files), wall, startup_s=round(start, 3),
                 cpu_s_window=round(mem.cpu_between(*window), 2), **mem.as_dict())


def measure_ours_ray(files: list[tuple[str, float]], workers: int = 2) -> dict:
    """(b) The real run_pipeline on a local Ray cluster of `workers` CPUs (symlinked inputs).

    The rate uses the scan stage's own time (counts.scan.scan_s: from the first task to
    the last committed part); Ray start-up, the scan workers' start-up (imports) and the
    whole run (filters, dedup, tables) are reported beside it. CPU is measured over the
    same window, every process of the cluster included.
    """
    from pipelines.config import load_config
    from pipelines.ray_runtime import shutdown_ray
    from pipelines.run import run_pipeline

    tmp = Path(tempfile.mkdtemp(prefix="vidcurate-scanbench-"))
    try:
        (tmp / "in").mkdir()
        for i, (p, _) in enumerate(files):  # names keep the listing in the same order as the other variants
            os.symlink(p, tmp / "in" / f"{i:04d}_{os.path.basename(p)}")
        cfg = load_config(overrides={"ray": {"num_cpus": workers}})
        scan_end: list = []
        with TreeRSS() as mem:
            t = time.perf_counter()
            record = run_pipeline(str(tmp / "in"), str(tmp / "out"), cfg, log=lambda *a: None,
                                  on_stage=lambda name, what: scan_end.append(time.monotonic()) if (name, what) == ("probe_split_score", "end") else None)
            total = time.perf_counter() - t
            shutdown_ray()
        tm = record.timings
        scan_s = record.counts["scan"]["scan_s"]
        n_videos = record.counts.get("videos")
        if n_videos != len(files):
            raise RuntimeError(f"Ray run scanned {n_videos} of {len(files)} files: {record.counts}")
        return _rate("b_ours_ray", sum(d for _, d in files), scan_s,
                     ray_start_s=round(tm.get("ray_start_s", 0.0) + tm.get("scan_workers_start_s", 0.0), 3),
                     ray_init_s=round(tm.get("ray_start_s", 0.0), 3), scan_workers_start_s=round(tm.get("scan_workers_start_s", 0.0), 3),
                     run_total_s=round(total, 3), cpu_s_window=round(mem.cpu_between(scan_end[0] - scan_s, scan_end[0]), 2),
                     clips=record.counts.get("clips"), **mem.as_dict())
    finally:
        shutdown_ray()
        shutil.rmtree(tmp, ignore_errors=True)


def measure_profile(files: list[tuple[str, float]], workers: int = 0) -> dict:
    """CPU seconds per component of our scan + commit + text stage, one process, files in order (see the docstring)."""
    import cv2

    from curation.scan import CPU_COMPONENTS, scan_video
    from pipelines.config import load_config
    from pipelines.scan_task import commit_results
    from pipelines.store import RunStore
    from pipelines.text_stage import _TextWorker

    cv2.setNumThreads(1)  # OpenCV's own threads would land in the "decode" remainder
    cfg = load_config()
    params, per_part = pipeline_scan_params(), cfg.output.videos_per_part
    text = _TextWorker(cfg.text.model_dump(), 1)  # loaded before the clock, as an actor's is
    scan_video(files[0][0], "warm", params, "bench")  # imports and first-call set-up outside the totals
    cpu = dict.fromkeys((*CPU_COMPONENTS, "commit", "text"), 0.0)
    scan_cpu, clips, ocr_s, buffer = 0.0, 0, [], []
    tmp = Path(tempfile.mkdtemp(prefix="vidcurate-scanprofile-"))
    try:
        store = RunStore(str(tmp))
        t_wall = time.perf_counter()
        for i, (path, _) in enumerate(files):
            c = time.process_time()
            r = scan_video(path, os.path.basename(path), params, "bench")
            scan_cpu += time.process_time() - c
            for k, v in r.cpu_s.items():
                cpu[k] += v
            clips += len(r.clips)
            buffer.append(r)
            if len(buffer) >= per_part or i == len(files) - 1:
                c = time.process_time()
                part = commit_results(store, "scan", buffer)
                cpu["commit"] += time.process_time() - c
                c = time.process_time()
                rows = text.measure_part(str(tmp), {}, "scan", "text", part)
                cpu["text"] += time.process_time() - c
                ocr_s += [r["ocr_s"] for r in rows if "ocr_s" in r]
                buffer = []
        wall = time.perf_counter() - t_wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c = time.process_time()
    for path, _ in files:
        decode_file(path)
    decode_alone = time.process_time() - c
    video_s = sum(d for _, d in files)
    return {"variant": "profile", "video_s": round(video_s, 2), "wall_s": round(wall, 3), "clips": clips,
            "cpu_s": {k: round(v, 3) for k, v in cpu.items()}, "scan_cpu_s": round(scan_cpu, 3),
            "decode_alone_cpu_s": round(decode_alone, 3),
            "ocr_s_per_clip_median": statistics.median(ocr_s) if ocr_s else None}


def profile_table(p: dict) -> str:
    """The per-component CPU table: CPU s, CPU s per video-s, share of the total."""
    total = sum(p["cpu_s"].values())
    lines = [f"where the CPU goes (one process, OpenCV on 1 thread, {p['video_s'] / 60:.1f} min of video, {p['clips']} clips)",
             f"{'component':<16}{'CPU s':>9}{'CPU s/video s':>15}{'share':>8}"]
    for k, v in sorted(p["cpu_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{k:<16}{v:>9.2f}{v / p['video_s']:>15.4f}{v / total:>8.1%}")
    lines.append(f"{'total':<16}{total:>9.2f}{total / p['video_s']:>15.4f}{1:>8.0%}")
    lines.append(f"{'(plain decode)':<16}{p['decode_alone_cpu_s']:>9.2f}{p['decode_alone_cpu_s'] / p['video_s']:>15.4f}"
                 f"   PyAV alone, same files; scan_video's own total {p['scan_cpu_s']:.2f} CPU s")
    if p.get("ocr_s_per_clip_median") is not None:
        lines.append(f"text stage: median ocr_s {p['ocr_s_per_clip_median']:.4f} s per clip; text / (scan + commit) CPU "
                     f"{p['cpu_s']['text'] / (total - p['cpu_s']['text']):.2f}")
    return "\n".join(lines)


VARIANTS = {
    "a_decode": measure_decode,
    "b_ours_pool": measure_ours_pool,
    "b_ours_ray": measure_ours_ray,
    "c_baseline": measure_baseline,
}


# ---------------------------------------------------------------- report

def summarise(runs: list[dict]) -> dict:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["variant"], []).append(r)
    med = {}
    for name, rs in by.items():
        m = {"rate_median": statistics.median(r["rate"] for r in rs), "rates": [r["rate"] for r in rs],
             "wall_s_median": statistics.median(r["wall_s"] for r in rs),
             "peak_rss_tree_mb": max(r["peak_rss_tree_mb"] for r in rs),
             "peak_rss_process_mb": max(r["peak_rss_process_mb"] for r in rs),
             # CPU seconds of the whole process tree per second of video: less sensitive to other jobs than wall time
             "cpu_s_per_video_s_median": statistics.median(sum(r.get("cpu_s_by_process", {}).values()) / r["video_s"] for r in rs),
             # the same over the work's own window only (start-up excluded, reported as start s)
             "cpu_s_per_video_s_window_median": statistics.median(r.get("cpu_s_window", float("nan")) / r["video_s"] for r in rs)}
        for k in ("startup_s", "ray_start_s", "run_total_s"):
            if k in rs[0]:
                m[k + "_median"] = statistics.median(r[k] for r in rs)
        med[name] = m
    ratios = {}
    a, c = med.get("a_decode", {}).get("rate_median"), med.get("c_baseline", {}).get("rate_median")
    for b in ("b_ours_pool", "b_ours_ray"):
        rb = med.get(b, {}).get("rate_median")
        if rb and a:
            ratios[f"{b}/a_decode"] = {"ratio": round(rb / a, 3), "target": ">= 0.5", "met": rb / a >= 0.5}
        if rb and c:
            ratios[f"{b}/c_baseline"] = {"ratio": round(rb / c, 3), "target": ">= 2", "met": rb / c >= 2}
    pool, ray_ = med.get("b_ours_pool"), med.get("b_ours_ray")
    if pool and ray_:
        r = ray_["rate_median"] / pool["rate_median"]
        ratios["b_ours_ray/b_ours_pool rate"] = {"ratio": round(r, 3), "target": ">= 0.9", "met": r >= 0.9}
        c = ray_["cpu_s_per_video_s_window_median"] / pool["cpu_s_per_video_s_window_median"]
        ratios["b_ours_ray/b_ours_pool CPU"] = {"ratio": round(c, 3), "target": "<= 1.1", "met": c <= 1.1}
    # per-round ratios (same round = same load) show how stable the medians are
    rounds: dict[int, dict] = {}
    for r in runs:
        rounds.setdefault(r["round"], {})[r["variant"]] = r["rate"]
    per_round = []
    for i, rr in sorted(rounds.items()):
        row = {"round": i}
        if "b_ours_pool" in rr and "b_ours_ray" in rr:
            row["b_ours_ray/b_ours_pool"] = round(rr["b_ours_ray"] / rr["b_ours_pool"], 3)
        for b in ("b_ours_pool", "b_ours_ray"):
            if b in rr and "a_decode" in rr:
                row[f"{b}/a_decode"] = round(rr[b] / rr["a_decode"], 3)
            if b in rr and "c_baseline" in rr:
                row[f"{b}/c_baseline"] = round(rr[b] / rr["c_baseline"], 3)
        per_round.append(row)
    return {"variants": med, "ratios": ratios, "per_round_ratios": per_round}


def table(summary: dict, video_s: float, workers: int) -> str:
    lines = [f"scan throughput, {video_s / 60:.1f} min of video per variant, {workers} worker processes "
             f"(video-s per wall-s, median; machine shared with other jobs)",
             f"{'variant':<14}{'rate':>8}{'wall s':>9}{'start s':>9}{'CPU s/video s':>15}{'(whole run)':>12}{'peak RSS tree MB':>18}{'max proc MB':>13}   rates"]
    for name, m in summary["variants"].items():
        start = m.get("ray_start_s_median", m.get("startup_s_median", 0.0))
        lines.append(f"{name:<14}{m['rate_median']:>8.2f}{m['wall_s_median']:>9.1f}{start:>9.2f}"
                     f"{m['cpu_s_per_video_s_window_median']:>15.3f}{m['cpu_s_per_video_s_median']:>12.3f}"
                     f"{m['peak_rss_tree_mb']:>18.0f}{m['peak_rss_process_mb']:>13.0f}   {m['rates']}")
    for k, r in summary["ratios"].items():
        lines.append(f"{k:<30}{r['ratio']:>7.2f}  target {r['target']:<6} {'met' if r['met'] else 'NOT met'}")
    return "\n".join(lines)


def run_variant_in_child(name: str, minutes: float, workers: int) -> dict:
    """One measurement in a fresh Python process: its memory is its own (not this driver's, nor an
    earlier variant's imports), and every Ray run starts from a cold import, as a real run does."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "bench.scan_bench", "--one", name, "--minutes", str(minutes),
                           "--workers", str(workers)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"variant {name} failed with exit code {proc.returncode} (its errors are above)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, shared with other jobs "
            f"(load average at start {os.getloadavg()[0]:.1f})")


def run(minutes: float, rounds: int, workers: int, variants: list[str], out: Path | None = RESULTS,
        profile: bool = True) -> dict:
    folder = videos_dir()
    base = list_inputs(folder)
    files = repeated(base, minutes * 60)
    video_s = sum(d for _, d in files)
    print(f"{len(base)} videos ({sum(d for _, d in base):.0f} s) from {folder}, listed {len(files) // max(1, len(base))}x: "
          f"{len(files)} files, {video_s / 60:.1f} min per variant; {rounds} rounds of {', '.join(variants)}", flush=True)
    runs = []
    for i in range(rounds):
        for name in variants:
            r = run_variant_in_child(name, minutes, workers)
            r["round"] = i
            runs.append(r)
            print(json.dumps(r), flush=True)
    summary = summarise(runs)
    prof = run_variant_in_child("profile", minutes, 0) if profile else None
    if prof is not None:
        summary["cpu_by_component"] = prof
    result = {"benchmark": "scan", "machine": machine(), "python": platform.python_version(),
              "videos_dir": str(folder), "inputs": [os.path.basename(p) for p, _ in base],
              "repeats": len(files) // max(1, len(base)), "video_s_per_variant": round(video_s, 2),
              "workers": workers, "rounds": rounds, **summary, "runs": runs}
    result["summary"] = [
        {"metric": f"scan {k} (median {v['rate_median']:.2f} video-s/s)", "value": v["rate_median"], "unit": "video-s/s"}
        for k, v in summary["variants"].items()
    ] + [{"metric": f"scan {k} (target {r['target']}: {'met' if r['met'] else 'NOT met'})", "value": r["ratio"], "unit": "ratio"}
         for k, r in summary["ratios"].items()]
    print(table(summary, video_s, workers), flush=True)
    if prof is not None:
        print(profile_table(prof), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Heavy: --minutes 30 --rounds 5. Variants: " + ", ".join(VARIANTS))
    ap.add_argument("--minutes", type=float, default=10.0, help="video per variant (the folder listed repeatedly), default 10")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs (default 2)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--no-profile", action="store_true", help="skip the per-component CPU profile")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one variant, its JSON on stdout's last line
    args = ap.parse_args(argv)
    if args.one:
        sys.path.insert(0, str(REPO))
        r = {**VARIANTS, "profile": measure_profile}[args.one](repeated(list_inputs(videos_dir()), args.minutes * 60), args.workers)
        print(json.dumps(r), flush=True)
        return r
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(REPO))
    return run(args.minutes, args.rounds, args.workers, variants, Path(args.out), profile=not args.no_profile)


if __name__ == "__main__":
    main()
