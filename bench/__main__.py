"""`python -m bench [NAME ...]`: run the benchmarks, print one summary table, write bench/results/summary.json.

Each benchmark is the module bench/<NAME>_bench.py with `main(argv) -> dict`
(or `-> int`, its JSON then read from bench/results/<NAME>.json). Each runs
in its own Python process, so one benchmark's crash, memory or threads do not
touch the others; a missing or failing benchmark is reported, not fatal.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
NAMES = ("scan", "clip", "dedup", "ae", "diffusion", "load", "read", "export", "audio", "text", "ablation", "defects",
         "dashboard", "driver", "rules", "safety", "shots", "camera",
         "caption", "gpu", "dit_toy")
# Default arguments keep `python -m bench` near 30 minutes on a shared 2-core machine; --heavy uses these instead.
QUICK_ARGS = {"dedup": ["--sizes", "10000,100000"], "dashboard": ["--sizes", "100000,1000000"],
              "driver": ["--sizes", "100000,1000000"], "load": ["--videos", "500"],
              "ae": ["--budget-s", "120"]}  # --heavy: the 15 CPU-minutes per model
HEAVY_ARGS = {
    "scan": ["--minutes", "30", "--rounds", "5"],
    "ae": ["--budget-s", "900"],
    "clip": ["--models", "ViT-B-32,ViT-L-14"],
    "dedup": ["--sizes", "10000,100000,1000000"],
    "dashboard": ["--sizes", "100000,1000000,10000000"],
    "driver": ["--sizes", "100000,1000000,10000000"],
    "load": ["--videos", "2000"],
}

_CHILD = r"""
import importlib, inspect, json, sys
name, out, argv = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mod = importlib.import_module(f"bench.{name}_bench")
params = inspect.signature(mod.main).parameters
if params:
    r = mod.main(argv)
else:
    sys.argv = [f"bench.{name}_bench", *argv]
    r = mod.main()
if not isinstance(r, dict):
    if r not in (None, 0):
        sys.exit(f"main() returned {r!r}")
    r = {"from_file": f"bench/results/{name}.json"}
with open(out, "w") as f:
    json.dump(r, f, default=str)
"""


def available() -> list[str]:
    return [n for n in NAMES if (REPO / "bench" / f"{n}_bench.py").exists()]


def run_one(name: str, argv: list[str], timeout: float | None) -> dict:
    """Run bench.<name>_bench.main(argv) in a child process; its result dict, or an error entry."""
    if not (REPO / "bench" / f"{name}_bench.py").exists():
        return {"status": "missing", "error": f"bench/{name}_bench.py does not exist"}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="vidcurate-bench-") as tmp:
        out = Path(tmp) / "result.json"
        t = time.perf_counter()
        try:  # the child's output streams straight to ours: tables and progress stay visible
            proc = subprocess.run([sys.executable, "-c", _CHILD, name, str(out), json.dumps(argv)],
                                  cwd=REPO, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "error": f"did not finish within {timeout:.0f} s", "wall_s": round(time.perf_counter() - t, 1)}
        wall = round(time.perf_counter() - t, 1)
        if proc.returncode != 0 or not out.exists():
            return {"status": "failed", "error": f"exit code {proc.returncode} (see its output above)", "wall_s": wall}
        result = json.loads(out.read_text())
    if "from_file" in result:
        path = REPO / result["from_file"]
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            return {"status": "failed", "error": f"no readable {result['from_file']}: {e}", "wall_s": wall}
    return {"status": "ok", "wall_s": wall, "args": argv, "result": result}


def headline(result: dict, limit: int = 12) -> list[tuple[str, str]]:
    """(metric, value) rows: the benchmark's own `summary` list, else its scalar leaves."""
    if isinstance(result.get("summary"), list):
        rows = []
        for s in result["summary"]:
            v = s.get("value")
            v = f"{v:.4g}" if isinstance(v, float) else str(v)
            rows.append((str(s.get("metric")), f"{v} {s.get('unit', '')}".strip()))
        return rows[:limit]
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, x) -> None:
        if len(rows) >= limit:
            return
        if isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(x, list):
            for i, v in enumerate(x[:4]):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            rows.append((prefix, f"{x:.4g}" if isinstance(x, float) else str(x)))

    walk("", result)
    return rows


def summary_table(entries: dict[str, dict]) -> str:
    lines = ["", "=" * 78, "benchmark summary (ratios are side by side in one run; machine: "
             f"{platform.machine()}, {os.cpu_count()} cores, possibly shared)", "=" * 78]
    for name, e in entries.items():
        if e["status"] != "ok":
            lines.append(f"{name:<10} {e['status'].upper()}: {e['error']}")
            continue
        lines.append(f"{name:<10} ok in {e['wall_s']:.0f} s  (bench/results/{name}.json)")
        for metric, value in headline(e["result"]):
            lines.append(f"    {metric:<58} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks (default: every bench/<name>_bench.py that exists), print one summary, "
                    "write bench/results/summary.json.",
        epilog="Names: " + ", ".join(NAMES) + ". The default sizes keep a full run near 30 minutes on 2 cores; "
               "--heavy runs the large sizes: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in HEAVY_ARGS.items())
               + ". Each benchmark also runs alone: python -m bench.<name>_bench --help.")
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all that exist)")
    ap.add_argument("--heavy", action="store_true", help="large sizes (hours on 2 cores)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark before it is stopped (default 3600)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    names = args.names or available()
    started = dt.datetime.now(dt.timezone.utc).isoformat()
    entries = {}
    for name in names:
        bench_args = (HEAVY_ARGS if args.heavy else QUICK_ARGS).get(name, [])
        print(f"\n--- {name} {' '.join(bench_args)}", flush=True)
        entries[name] = run_one(name, bench_args, args.timeout)
    missing = [n for n in NAMES if n not in available()]
    print(summary_table(entries), flush=True)
    if missing and not args.names:
        print(f"not present (not run): {', '.join(missing)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"started_at": started, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, load average "
                          f"{os.getloadavg()[0]:.1f} at the end (shared)",
               "python": platform.python_version(), "heavy": args.heavy,
               "benchmarks": {n: {k: v for k, v in e.items() if k != "result"}
                              | ({"summary": headline(e["result"])} if e["status"] == "ok" else {})
                              for n, e in entries.items()},
               "not_present": missing}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if all(e["status"] == "ok" for e in entries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
