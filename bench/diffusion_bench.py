"""Diffusion trainer benchmark: training throughput of DiT sizes on this machine, the samplers on known truth,
and a toy curation ablation. Writes bench/results/diffusion.json and prints a table.

Usage: .venv/bin/python bench/diffusion_bench.py [--threads 2] [--skip-ablation]
Throughput is hardware-specific: the JSON names the CPU/GPU it ran on. GPU rows appear only if CUDA exists.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.diffusion.dit import DiTConfig  # noqa: E402
from training.diffusion.edm import EDMLoss  # noqa: E402
from training.diffusion.samplers import get_sigmas_karras, sample_euler, sample_heun  # noqa: E402
from training.diffusion.train import build_denoiser  # noqa: E402

LATENT = (4, 16, 16)  # a 128² frame through an f8, 4-channel autoencoder


def throughput(size: str, device: str, batch: int, steps: int, bf16: bool = False) -> dict:
    """Training samples/s of one DiT size on random latents (model + optimiser only, no data loading)."""
    torch.manual_seed(0)
    cfg = DiTConfig.named(size, in_channels=LATENT[0], input_size=LATENT[1], patch_size=2)
    net = build_denoiser(cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = EDMLoss()
    x = torch.randn(batch, *LATENT, device=device)
    cond, mask = torch.randn(batch, 3, device=device), torch.ones(batch, 3, dtype=torch.bool, device=device)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(net, x, cond, mask).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"size": size, "device": device, "bf16": bf16, "batch": batch, "steps": steps,
            "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
            "tokens": (LATENT[1] // 2) ** 2, "samples_per_s": round(batch * steps / dt, 2),
            "s_per_step": round(dt / steps, 4)}


def sampler_truth(s: float = 0.5, n: int = 100_000) -> dict:
    """Sample std / s with the exact denoiser of N(0, s²) data (1.0 is perfect)."""
    ideal = lambda x, sig: x * s**2 / (s**2 + sig.reshape(-1, 1) ** 2)  # noqa: E731
    x0 = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80
    out = {}
    for name, fn, churn in [("euler", sample_euler, 0.0), ("euler_churn40", sample_euler, 40.0),
                            ("heun", sample_heun, 0.0), ("heun_churn40", sample_heun, 40.0)]:
        out[name] = {steps: round(fn(ideal, x0.clone(), get_sigmas_karras(steps), s_churn=churn,
                                     generator=torch.Generator().manual_seed(1)).std().item() / s, 4)
                     for steps in (4, 8, 16, 32, 64, 256)}
    return out


def toy_ablation(steps: int) -> dict:
    """Curated (4-mode mixture) vs uncurated (the same + as many pure-noise clips), same budget."""
    from training.diffusion.ablate import ablate
    from training.diffusion.toy import write_gmm_latents
    from training.diffusion.train import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        cur = write_gmm_latents(Path(tmp) / "cur", n_clips=64)
        unc = write_gmm_latents(Path(tmp) / "unc", n_clips=64, junk_fraction=1.0, null_fraction=0.3)
        cfg = TrainConfig(out_dir=str(Path(tmp) / "ab"), model="tiny", steps=steps, batch_size=64, lr=2e-3,
                          warmup=20, ema_decay=0.95, progress=False)
        r = ablate(str(cur), str(unc), cfg, n_samples=256, sample_steps=16)
    return {"budget": r["budget"], "side_by_side": r["side_by_side"],
            "nearest_neighbour": {a: r[a]["nearest_neighbour"] for a in ("curated", "uncurated")},
            "loss_per_sigma": {a: r[a]["loss_per_sigma"] for a in ("curated", "uncurated")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--ablation-steps", type=int, default=400)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "diffusion.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                       "torch_threads": args.threads, "torch": torch.__version__,
                       "load_avg_at_start": os.getloadavg()},
           "latent_shape": LATENT, "throughput": []}
    res["throughput"].append(throughput("tiny", "cpu", batch=64, steps=10))
    res["throughput"].append(throughput("S", "cpu", batch=8, steps=3))
    if torch.cuda.is_available():
        res["machine"]["gpu"] = torch.cuda.get_device_name()
        for size in ("S", "B", "XL"):
            for bf16 in (False, True):
                res["throughput"].append(throughput(size, "cuda", batch=64, steps=20, bf16=bf16))
    else:
        res["machine"]["gpu"] = None
        res["gpu_note"] = "no CUDA device on this machine: GPU throughput not measured"
    res["sampler_std_over_s"] = sampler_truth()
    if not args.skip_ablation:
        res["toy_ablation"] = toy_ablation(args.ablation_steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))

    print(f"{'size':6} {'device':6} {'bf16':5} {'params(M)':>9} {'batch':>5} {'samples/s':>10}")
    for r in res["throughput"]:
        print(f"{r['size']:6} {r['device']:6} {str(r['bf16']):5} {r['params_M']:9} {r['batch']:5} {r['samples_per_s']:10}")
    if res["machine"]["gpu"] is None:
        print(res["gpu_note"])
    print("sample std / s (exact denoiser, 100k samples):")
    for name, row in res["sampler_std_over_s"].items():
        print(f"  {name:14} " + " ".join(f"{k}:{v}" for k, v in row.items()))
    if "toy_ablation" in res:
        print("toy ablation (reference = curated):")
        for k, v in res["toy_ablation"]["side_by_side"].items():
            print(f"  {k:22} curated={v['curated']!s:24} uncurated={v['uncurated']!s}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
