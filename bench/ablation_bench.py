"""The full curation ablation, end to end through the CLI verbs: the defect-labelled corpus → `vidcurate run` →
a small autoencoder on the curated clips → latents of the curated clips, of all clips and of a clean held-out set
→ `vidcurate ablation-study` (curated / random-same-size / all, several seeds, bootstrap CIs). Writes
bench/results/ablation.json (the study's ablation.json plus timings) and bench/results/ablation.png, prints the table.

Usage: .venv/bin/python -m bench.ablation_bench [--count 240] [--heldout 48] [--seeds 0,1,2] [--dit-steps 200]
Defaults aim at about 30 CPU minutes on the large corpus; the JSON records what ran and how long each step took.

`--planted`: only the positive control (pipelines/ablation_study.run_planted), at each planted fraction of
--fractions (default 0.3, 0.15, 0.1, 0.05), every one with the same seeds and budget: the sample defect rate of
"all" and "curated" with 95% intervals and the verdict per fraction, the smallest fraction detected, and the
Wilson-derived resolution at the first fraction. Writes bench/results/ablation_planted.json; aims at under
20 CPU minutes on 2 cores (192 clips, 5 seeds x 64 samples, 600 DiT steps: about 90 CPU-s per fraction).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"


def _vidcurate(*argv: str) -> None:
    from pipelines.cli import main

    code = main([str(a) for a in argv])
    if code:
        raise SystemExit(f"vidcurate {argv[0]} exited {code}")


def summary_rows(result: dict) -> list[dict]:
    """The bench table's rows: mean [95% CI] per metric and arm, curated - random with its verdict, total time."""
    summary = []
    for m in ("frechet", "kid", "defect_rate", "defect_rate_informative"):
        arms = result["metrics"][m]["arms"]
        summary += [{"metric": f"{m} {a}", "value": f"{arms[a]['mean']:.4g} [{arms[a]['lo']:.4g}, {arms[a]['hi']:.4g}]"}
                    for a in ("curated", "random", "all")]
        d = result["metrics"][m]["differences"]["curated - random"]
        summary.append({"metric": f"{m} curated - random",
                        "value": f"{d['mean']:.4g} [{d['lo']:.4g}, {d['hi']:.4g}] {d['verdict']}"})
    summary.append({"metric": "total", "value": result.get("bench", {}).get("total_s"), "unit": "s"})
    return summary


def planted_main(args) -> dict:
    """The positive control at each planted fraction; bench/results/ablation_planted.json and its table rows."""
    import torch

    from pipelines.ablation_study import PlantedConfig, _pipeline_scorers, format_planted, run_planted

    torch.set_num_threads(args.threads)
    rules, qp, mp, dp = _pipeline_scorers(None)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vidcurate-planted-"))
    runs, summary = [], []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for fraction in (float(f) for f in args.fractions.split(",")):
            cfg = PlantedConfig(fraction=fraction, clips=args.planted_clips, seeds=seeds, n_samples=args.n_samples,
                                sample_steps=args.sample_steps, steps=args.dit_steps, batch_size=args.batch_size)
            w, c = time.perf_counter(), time.process_time()
            r = run_planted(work / f"fraction{fraction}", cfg, rules, qp, mp, dp, n_boot=args.bootstrap,
                            log=lambda *_: None)
            r["wall_s"], r["cpu_s"] = round(time.perf_counter() - w, 1), round(time.process_time() - c, 1)
            print(format_planted(r) + f"\n  [{r['wall_s']} s wall, {r['cpu_s']} CPU-s]\n", flush=True)
            runs.append(r)
            rate = r["defect_rate"]
            summary.append({"metric": f"planted {fraction:.0%}: all / curated defect rate, verdict",
                            "value": f"{rate['all']['mean']:.3f} [{rate['all']['lo']:.3f}, {rate['all']['hi']:.3f}] / "
                                     f"{rate['curated']['mean']:.3f} [{rate['curated']['lo']:.3f}, "
                                     f"{rate['curated']['hi']:.3f}] {r['verdict']}"})
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    detected = [r["config"]["fraction"] for r in runs if r["verdict"] == "detected"]
    result = {"runs": runs, "smallest_fraction_detected": min(detected) if detected else None,
              "fractions": [r["config"]["fraction"] for r in runs],
              "verdicts": [r["verdict"] for r in runs],
              "bench": {"args": vars(args), "wall_s": round(time.perf_counter() - wall0, 1),
                        "cpu_s": round(time.process_time() - cpu0, 1), "threads": args.threads,
                        "cpu_count": os.cpu_count()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ablation_planted.json").write_text(json.dumps(result, indent=1, default=float))
    summary.append({"metric": "smallest planted fraction detected", "value": result["smallest_fraction_detected"]})
    summary.append({"metric": "Wilson resolution at the first fraction (sample rate rise)",
                    "value": runs[0]["resolution"]["smallest_detectable_rate_rise"] if runs else None})
    summary.append({"metric": "total", "value": result["bench"]["cpu_s"], "unit": "CPU-s"})
    return {"status": "ok", "summary": summary}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench.ablation_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--planted", action="store_true", help="only the positive control, at each of --fractions")
    ap.add_argument("--fractions", default="0.3,0.15,0.1,0.05", help="planted fractions (with --planted)")
    ap.add_argument("--planted-clips", type=int, default=192, help="clips of each planted set (with --planted)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws (with --planted)")
    ap.add_argument("--count", type=int, default=240, help="base videos of the defect corpus (default 240: large)")
    ap.add_argument("--heldout", type=int, default=48, help="clean held-out videos (the reference)")
    ap.add_argument("--seeds", help="default 0,1,2; with --planted 0,1,2,3,4")
    ap.add_argument("--ae-steps", type=int, default=150)
    ap.add_argument("--dit-steps", type=int, help="DiT steps per arm and seed (default 200; with --planted 600)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-samples", type=int, help="samples per arm and seed (default 32; with --planted 64)")
    ap.add_argument("--sample-steps", type=int, help="Heun steps (default 12; with --planted 16)")
    ap.add_argument("--fps", type=float, default=4.0, help="encode frame rate (frames/s)")
    ap.add_argument("--frames", type=int, default=5, help="frames per window (1 + 4k for the video autoencoder)")
    ap.add_argument("--size", type=int, default=64, help="encode crop side (px)")
    ap.add_argument("--work", help="keep the work folder here (default: a temporary folder, removed)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for name, default, planted in (("seeds", "0,1,2", "0,1,2,3,4"), ("n_samples", 32, 64), ("sample_steps", 12, 16),
                                   ("dit_steps", 200, 600)):
        if getattr(args, name) is None:
            setattr(args, name, planted if args.planted else default)
    if args.planted:
        return planted_main(args)

    import torch

    import schemas
    from training.diffusion.ablate import subset_latents

    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vidcurate-ablation-"))
    work.mkdir(parents=True, exist_ok=True)
    timings, t0 = {}, time.perf_counter()

    def step(name, fn, *a):
        t = time.perf_counter()
        fn(*a)
        timings[name] = round(time.perf_counter() - t, 1)
        print(f"[ablation bench] {name}: {timings[name]} s", flush=True)

    corpus, run, ae = work / "corpus", work / "run", work / "ae"
    config = work / "pipeline.yaml"
    config.write_text(f"ray: {{num_cpus: {args.threads}}}\n")
    enc = ["--fps", args.fps, "--frames", args.frames, "--size", args.size]
    ckpt = ae / "checkpoint.pt"
    try:
        if not (corpus / "ground_truth.json").exists():
            step("corpus", _vidcurate, "sample-data", corpus, "--size", "large", "--count", args.count)
        if not (run / "curated").exists():
            step("curation run", _vidcurate, "run", corpus, run, "--config", config)
        if not ckpt.exists():
            step("autoencoder", _vidcurate, "train-ae", "--config", REPO / "training/configs/ae_demo.yaml",
                 "--manifest", run / "curated", "--out", ae, "--steps", args.ae_steps)
        step("heldout videos", _vidcurate, "heldout-data", work / "heldout", "--count", args.heldout)
        for name, manifest in (("all", run / "clips"), ("reference", work / "heldout" / "clips.parquet")):
            step(f"encode {name}", _vidcurate, "encode", "--manifest", manifest, "--table", "clips", "--checkpoint",
                 ckpt, "--out", work / f"latents_{name}", *enc)
        # the curated clips are a subset of all clips, encoded identically: select their windows, do not re-encode
        curated_ids = set(schemas.read_table(str(run / "curated"), "curated").column("clip_id").to_pylist())
        subset_latents(work / "latents_all", work / "latents_curated", clip_ids=curated_ids)
        study = work / "study"
        step("study", _vidcurate, "ablation-study", "--curated", work / "latents_curated", "--all",
             work / "latents_all", "--reference", work / "latents_reference", "--autoencoder", ckpt, "--out", study,
             "--seeds", args.seeds, "--n-samples", args.n_samples, "--sample-steps", args.sample_steps,
             "--model", "tiny", "--steps", args.dit_steps, "--batch-size",
             args.batch_size, "--no-progress", "--pipeline-config", config)
        result = json.loads((study / "ablation.json").read_text())
        result["bench"] = {"args": vars(args), "timings_s": timings, "total_s": round(time.perf_counter() - t0, 1),
                           "threads": args.threads, "cpu_count": os.cpu_count()}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "ablation.json").write_text(json.dumps(result, indent=1))
        shutil.copy(study / "ablation.png", RESULTS / "ablation.png")
        return {"status": "ok", "summary": summary_rows(result)}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
