"""Read cost vs clip position: a 2 s clip at the start vs at the end of a long video, seeking reader vs sequential.

    python -m bench.read_bench [--minutes 3] [--keyint-s 2] [--clip-s 2] [--repeats 5]

Generates one long H.264 video (320x180, 25 fps, B-frames, a keyframe every
--keyint-s seconds as a real encoder would place them), then times reading a
clip near its start and one near its end with training.video_frames.read_clip
(seeks to the keyframe at or before the clip) and with a copy of the old
reader (decodes from the file's start), in CPU seconds (decoder threads
included), median of --repeats with the four cases interleaved. Both clips
start at the same offset into their GOP, so the only difference between them
is their position in the file. The frame table (one demux of the whole file,
cached per process) is timed separately as the cold first read. Writes
bench/results/read.json.
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

from training.video_frames import clear_frame_tables, read_clip

RESULTS = Path(__file__).resolve().parent / "results" / "read.json"
W, H, FPS = 320, 180, 25


def write_long_video(path: Path, seconds: float, keyint: int) -> int:
    """A pan over a random texture with a slow colour drift (every frame differs); returns the frame count."""
    n = int(seconds * FPS)
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (H, W + 256, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"preset": "veryfast", "g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0", "bf": "3"}
        for i in range(n):
            x = (i * 3) % 256
            img = np.ascontiguousarray(tex[:, x:x + W]) // 2 + np.uint8(i % 128)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return n


def read_sequential(uri: str, indices: list[int]) -> np.ndarray:
    """The old reader (before seeking): decode from the file's start, stop after the last wanted frame."""
    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with open(uri, "rb") as f, av.open(f) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    return np.stack([got[i] for i in indices])


def _cpu(fn) -> tuple[float, float, object]:
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c, time.perf_counter() - t, out


def run(minutes: float, keyint_s: float, clip_s: float, repeats: int) -> dict:
    keyint, clip = int(round(keyint_s * FPS)), int(round(clip_s * FPS))
    with tempfile.TemporaryDirectory(prefix="vidcurate-read-") as tmp:
        path = Path(tmp) / "long.mp4"
        t = time.perf_counter()
        n = write_long_video(path, minutes * 60, keyint)
        gen_s = time.perf_counter() - t
        uri = str(path)
        phase = keyint // 2  # both clips start mid-GOP, at the same offset
        starts = {"start": phase, "end": ((n - clip - phase) // keyint) * keyint + phase}
        clear_frame_tables()
        cold_cpu, cold_wall, _ = _cpu(lambda: read_clip(uri, starts["end"], starts["end"] + clip))
        result: dict = {"frames": n, "keyint_frames": keyint, "clip_frames": clip, "clip_starts": starts,
                        "file_mb": path.stat().st_size / 1e6, "generate_s": gen_s,
                        "cold_first_read_cpu_s": cold_cpu, "cold_first_read_wall_s": cold_wall}
        ours: dict[str, list] = {w: [] for w in starts}
        old: dict[str, list] = {w: [] for w in starts}
        for _ in range(repeats):  # interleaved, so a change in the shared box's load hits both positions alike
            for where, a in starts.items():
                ours[where].append(_cpu(lambda: read_clip(uri, a, a + clip)))
                old[where].append(_cpu(lambda: read_sequential(uri, list(range(a, a + clip)))))
        for where in starts:
            r = ours[where][-1][2]
            result[where] = {
                "ours_cpu_s": statistics.median(x[0] for x in ours[where]),
                "ours_wall_s": statistics.median(x[1] for x in ours[where]),
                "sequential_cpu_s": statistics.median(x[0] for x in old[where]),
                "sequential_wall_s": statistics.median(x[1] for x in old[where]),
                "ours_decoded_frames": r.decoded_frames, "ours_seeked": r.seeked,
                "identical_frames": bool(np.array_equal(r.frames, old[where][-1][2])),
            }
    s, e = result["start"], result["end"]
    result["ours_end_over_start"] = e["ours_cpu_s"] / s["ours_cpu_s"]
    result["sequential_end_over_start"] = e["sequential_cpu_s"] / s["sequential_cpu_s"]
    result["speedup_at_end"] = e["sequential_cpu_s"] / e["ours_cpu_s"]
    result["cold_over_warm_end"] = cold_cpu / e["ours_cpu_s"]
    result["summary"] = [
        {"metric": "seeking reader: end / start (goal <= 1.5)", "value": result["ours_end_over_start"], "unit": "x"},
        {"metric": "sequential reader: end / start", "value": result["sequential_end_over_start"], "unit": "x"},
        {"metric": "speedup at the end (sequential / seeking)", "value": result["speedup_at_end"], "unit": "x"},
        {"metric": f"seeking, clip at the end ({minutes:g} min video)", "value": e["ours_cpu_s"], "unit": "CPU s"},
        {"metric": "seeking, cold first read (builds the frame table)", "value": cold_cpu, "unit": "CPU s"},
        {"metric": "same frames as the sequential reader", "value": s["identical_frames"] and e["identical_frames"], "unit": ""},
    ]
    return result


def _table(r: dict) -> str:
    rows = [("", "seeking (ours)", "sequential (old)")]
    for where in ("start", "end"):
        x = r[where]
        rows.append((f"2 s clip at the {where} (frame {r['clip_starts'][where]})",
                     f"{x['ours_cpu_s']:.3f} CPU s ({x['ours_decoded_frames']} decoded)", f"{x['sequential_cpu_s']:.3f} CPU s"))
    rows.append(("end / start", f"{r['ours_end_over_start']:.2f}x", f"{r['sequential_end_over_start']:.2f}x"))
    rows.append(("speedup at the end", f"{r['speedup_at_end']:.1f}x", ""))
    rows.append(("cold first read (frame table + read)", f"{r['cold_first_read_cpu_s']:.3f} CPU s", ""))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="length of the generated video")
    ap.add_argument("--keyint-s", type=float, default=2.0, help="seconds between keyframes")
    ap.add_argument("--clip-s", type=float, default=2.0, help="clip length, seconds")
    ap.add_argument("--repeats", type=int, default=5, help="timed reads per case (median)")
    args = ap.parse_args(argv)
    result = run(args.minutes, args.keyint_s, args.clip_s, args.repeats)
    result["params"] = vars(args)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "pyav": av.__version__, "load_average": os.getloadavg()[0],
                         "note": "shared machine: other jobs ran at the same time; CPU seconds include decoder threads"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    print(_table(result))
    print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    main()
