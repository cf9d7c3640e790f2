"""Cost of the defect signals (curation/defects.py) in the scan: scan_video with them vs without, side by side.

Run: python -m bench.defects_bench [--rounds 3]

Both variants scan the real test videos (VIDCURATE_TEST_VIDEOS, default
../shared/data/videos) in one process with the default config's scan
parameters, interleaved file by file (on, off, on, off, ...) so load from other
processes hits them alike. Reported: CPU seconds (this process, user + system,
decoder threads included) per second of video, the per-file minimum over
rounds, and the ratio on/off. Writes bench/results/defects.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "defects.json"
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def main(argv: list[str] | None = None) -> dict:
    from curation.defects import DefectParams
    from curation.scan import scan_video
    from pipelines.config import load_config
    from pipelines.params import scan_params

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    folder = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO.parent / "shared" / "data" / "videos"))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTS)
    on = scan_params(load_config())
    variants = {"with defects": on, "without": dataclasses.replace(on, defects=DefectParams(enabled=False))}
    cpu = {name: {f.name: [] for f in files} for name in variants}
    seconds = {}
    for _ in range(args.rounds):
        for f in files:
            for name, params in variants.items():
                c0 = time.process_time()
                res = scan_video(str(f), f.name, params, "bench")
                cpu[name][f.name].append(time.process_time() - c0)
                seconds[f.name] = res.video["duration_s"]
    total_s = sum(seconds.values())
    rows = {}
    for name in variants:
        per_file = {k: min(v) / seconds[k] for k, v in cpu[name].items()}
        rows[name] = {"cpu_s_per_video_s": sum(min(v) for v in cpu[name].values()) / total_s, "per_file": per_file}
    ratio = rows["with defects"]["cpu_s_per_video_s"] / rows["without"]["cpu_s_per_video_s"]
    out = {"video_s": total_s, "files": len(files), "rounds": args.rounds, "machine": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "variants": rows, "ratio_with_over_without": ratio}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'file':26s} {'with':>8s} {'without':>8s}  CPU s per video s (min over {args.rounds} rounds)")
    for f in files:
        print(f"{f.name:26s} {rows['with defects']['per_file'][f.name]:8.4f} {rows['without']['per_file'][f.name]:8.4f}")
    print(f"{'all (' + format(total_s, '.0f') + ' video s)':26s} {rows['with defects']['cpu_s_per_video_s']:8.4f} "
          f"{rows['without']['cpu_s_per_video_s']:8.4f}  ratio {ratio:.3f}")
    return out


if __name__ == "__main__":
    main()
