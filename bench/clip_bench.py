"""CLIP image-embedding throughput on this CPU, and the aesthetic head's cost beside it.

Run: python -m bench.clip_bench [--models ViT-B-32] [--batches 4] [--threads 2]

Weights are randomly initialised (open_clip.create_model(name, pretrained=None)):
no download, and the FLOPs, hence the speed, are those of the trained model.
Measured side by side in one process, interleaved batch by batch:
  encode   model.encode_image on a (32, 3, 224, 224) tensor (the model alone)
  embed    curation.aesthetics.ClipScorer.embed_frames on 32 RGB frames of
           256x456 (the pipeline's analysis size): PIL preprocessing + encode
  head     the LAION aesthetic head (AestheticHead) on 32 embeddings
Images/s are absolute numbers, so the CPU is named in the output; the machine
was shared with other jobs. Writes bench/results/clip.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "clip.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(fn) -> tuple[float, float]:
    """(wall s, CPU s of this process, all threads) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def bench_model(name: str, batch: int, batches: int, warmup: int = 1) -> dict:
    """Per-batch seconds of encode / embed / head for one open_clip architecture (random weights)."""
    import numpy as np
    import open_clip
    import torch

    from curation.aesthetics import AestheticHead, ClipScorer

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    model.eval()
    dim = int(model.visual.output_dim)
    head = AestheticHead(dim).eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    x = torch.randn(batch, 3, size, size)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (256, 456, 3), dtype=np.uint8) for _ in range(batch)]
    scorer = types.SimpleNamespace(model=model, preprocess=preprocess, batch_size=batch, device="cpu")
    emb = torch.nn.functional.normalize(torch.randn(batch, dim), dim=-1)

    def encode():
        with torch.inference_mode():
            model.encode_image(x)

    def embed():
        ClipScorer.embed_frames(scorer, frames)  # the pipeline's own code path, unbound

    def run_head():
        with torch.inference_mode():
            for _ in range(100):  # too fast to time once
                head(emb)

    for _ in range(warmup):
        encode(), embed(), run_head()
    times = {"encode": [], "embed": [], "head": []}
    cpu = {"encode": [], "embed": [], "head": []}
    for _ in range(batches):  # interleaved: the same load for all three
        for k, fn, reps in (("encode", encode, 1), ("embed", embed, 1), ("head", run_head, 100)):
            wall, c = _timed(fn)
            times[k].append(wall / reps)
            cpu[k].append(c / reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    n_params = sum(p.numel() for p in model.visual.parameters())
    return {
        "model": name, "embed_dim": dim, "image_size": size, "batch": batch, "batches": batches,
        "visual_params_m": round(n_params / 1e6, 1),
        "encode_images_per_s": round(batch / med["encode"], 2),
        # CPU time is less sensitive than wall time to other jobs on a shared machine
        "encode_images_per_cpu_s": round(batch / med_cpu["encode"], 2),
        "cpu_utilisation_encode": round(med_cpu["encode"] / med["encode"], 2),
        "embed_frames_images_per_s": round(batch / med["embed"], 2),
        "preprocess_share": round(1 - med["encode"] / med["embed"], 3),
        "head_us_per_image": round(med["head"] / batch * 1e6, 2),
        "head_share_of_encode": med["head"] / med["encode"],
        "seconds_per_batch": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "cpu_seconds_per_batch": {k: [round(t, 4) for t in v] for k, v in cpu.items()},
    }


def table(rows: list[dict], threads: int) -> str:
    lines = [f"CLIP on {cpu_name()}, torch threads {threads}, random weights (same FLOPs), machine shared",
             f"{'model':<10}{'encode img/s':>14}{'img/CPU-s':>11}{'CPU used':>10}{'embed_frames img/s':>20}{'preprocess %':>14}{'head us/img':>13}{'head/encode':>13}"]
    for r in rows:
        lines.append(f"{r['model']:<10}{r['encode_images_per_s']:>14.1f}{r['encode_images_per_cpu_s']:>11.1f}{r['cpu_utilisation_encode']:>10.2f}"
                     f"{r['embed_frames_images_per_s']:>20.1f}"
                     f"{100 * r['preprocess_share']:>13.1f}%{r['head_us_per_image']:>13.1f}{r['head_share_of_encode']:>13.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Heavy: --models ViT-B-32,ViT-L-14 (ViT-L-14 is the default config's model; ~10x slower)")
    ap.add_argument("--models", default="ViT-B-32", help="comma-separated open_clip architectures (default ViT-B-32)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4, help="timed batches per model (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        rows.append(bench_model(name, args.batch, args.batches))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "seconds_per_batch"}), flush=True)
    result = {
        "benchmark": "clip", "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": args.threads,
        "torch": torch.__version__, "weights": "random (open_clip pretrained=None): same FLOPs as trained weights",
        "note": "machine shared with other jobs: absolute rates are noisy", "models": rows,
        "summary": [s for r in rows for s in (
            {"metric": f"clip {r['model']} encode_image, batch {r['batch']}", "value": r["encode_images_per_s"], "unit": "img/s"},
            {"metric": f"clip {r['model']} encode_image per CPU-second", "value": r["encode_images_per_cpu_s"], "unit": "img/CPU-s"},
            {"metric": f"clip {r['model']} embed_frames (with preprocessing)", "value": r["embed_frames_images_per_s"], "unit": "img/s"},
            {"metric": f"aesthetic head on {r['embed_dim']}-d", "value": r["head_us_per_image"], "unit": "us/img"},
        )],
    }
    print(table(rows, args.threads), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
