"""Load: the whole pipeline over a few hundred small videos on a local two-node Ray cluster.

Run: python -m bench.load_bench [--videos 300] [--seconds 2] [--bad 3]
Generates N small H.264 videos (160x90, 25 fps, a pan with one hard cut each,
seeded) plus a few undecodable files, starts ray.cluster_utils.Cluster (a head
without CPUs, two worker nodes sharing this machine's cores), runs
`run_pipeline` and reports throughput (videos/s and video-seconds/s, whole
run and scan stage) and loss: every input must be a video row or an error
row, with no duplicate video or clip ids. Writes bench/results/load.json and
prints a table. Absolute figures belong to the machine named in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
W, H, FPS = 160, 90, 25


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    return (img * rng.uniform(0.3, 1.0, 3)).astype(np.uint8)


def write_video(path: Path, seed: int, seconds: float) -> None:
    """A 1 px/frame pan over a seeded texture, cut to a second texture half-way."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    shots = [_texture(rng, H, W + n) for _ in range(2)]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"preset": "ultrafast", "threads": "1"}
        for i in range(n):
            img = np.ascontiguousarray(shots[i >= n // 2][:, i:i + W])
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def make_inputs(folder: Path, videos: int, seconds: float, bad: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    uris = []
    for i in range(videos):
        p = folder / f"{i // 100:02d}" / f"v{i:04d}.mp4"
        p.parent.mkdir(exist_ok=True)
        write_video(p, seed=10_000 + i, seconds=seconds)
        uris.append(str(p))
    for i in range(bad):
        p = folder / f"bad{i}.mp4"
        p.write_bytes(np.random.default_rng(i).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        uris.append(str(p))
    return uris


def run(videos: int, seconds: float, bad: int, cpus_per_node: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from pipelines.config import load_config
    from pipelines.run import run_pipeline
    from schemas import read_table

    with tempfile.TemporaryDirectory(prefix="vidcurate-load-") as tmp:
        t = time.perf_counter()
        inputs = make_inputs(Path(tmp) / "in", videos, seconds, bad)
        gen_s = time.perf_counter() - t

        t = time.perf_counter()
        mem = 200 << 20
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": mem})
        for _ in range(2):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=mem)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        cluster_s = time.perf_counter() - t
        try:
            cfg = load_config()
            t = time.perf_counter()
            record = run_pipeline(str(Path(tmp) / "in"), str(Path(tmp) / "out"), cfg, log=lambda *_: None)
            run_s = time.perf_counter() - t
            nodes = sum(1 for n in ray.nodes() if n["Alive"])
        finally:
            ray.shutdown()
            cluster.shutdown()
        out = Path(tmp) / "out"
        v = read_table(str(out / "videos"), "videos")
        c = read_table(str(out / "clips"), "clips")
        e = read_table(str(out / "errors"), "errors")
    seen = set(v.column("uri").to_pylist()) | set(e.column("uri").to_pylist())
    video_seconds = float(sum(v.column("duration_s").to_pylist()))
    scan_s = record.timings.get("probe_split_score_s") or float("nan")
    return {
        "inputs": len(inputs),
        "videos": v.num_rows,
        "clips": c.num_rows,
        "error_rows": e.num_rows,
        "lost_inputs": len(set(inputs) - seen),
        "duplicate_video_ids": v.num_rows - len(set(v.column("video_id").to_pylist())),
        "duplicate_clip_ids": c.num_rows - len(set(c.column("clip_id").to_pylist())),
        "video_seconds": video_seconds,
        "run_s": run_s,
        "scan_s": scan_s,
        "videos_per_s": v.num_rows / run_s,
        "video_seconds_per_s": video_seconds / run_s,
        "scan_videos_per_s": v.num_rows / scan_s,
        "scan_video_seconds_per_s": video_seconds / scan_s,
        "generate_s": gen_s,
        "cluster_start_s": cluster_s,
        "ray_nodes": nodes,
        "timings": record.timings,
    }


def _table(r: dict) -> str:
    rows = [
        ("inputs (videos + undecodable)", f"{r['inputs']}"),
        ("video rows / clip rows / error rows", f"{r['videos']} / {r['clips']} / {r['error_rows']}"),
        ("lost inputs, duplicate ids", f"{r['lost_inputs']}, {r['duplicate_video_ids'] + r['duplicate_clip_ids']}"),
        ("whole run", f"{r['run_s']:.1f} s: {r['videos_per_s']:.2f} videos/s, {r['video_seconds_per_s']:.2f} video-s/s"),
        ("scan stage", f"{r['scan_s']:.1f} s: {r['scan_videos_per_s']:.2f} videos/s, {r['scan_video_seconds_per_s']:.2f} video-s/s"),
        ("Ray nodes alive (head + workers)", f"{r['ray_nodes']}"),
    ]
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--bad", type=int, default=3, help="undecodable files mixed in (must become error rows)")
    ap.add_argument("--cpus-per-node", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = ap.parse_args(argv)
    result = run(args.videos, args.seconds, args.bad, args.cpus_per_node)
    result["params"] = vars(args)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "note": "shared machine: other jobs ran at the same time"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(_table(result))
    print(f"wrote {RESULTS}")
    if result["lost_inputs"] or result["duplicate_video_ids"] or result["duplicate_clip_ids"]:
        raise SystemExit("load bench: inputs lost or duplicated")
    return result


if __name__ == "__main__":
    main()
