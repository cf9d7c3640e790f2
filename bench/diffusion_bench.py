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


def toy_distillation(teacher_iters: int = 500, iters_per_round: int = 200) -> dict:
    """Progressive distillation 32 → 4 steps on a 4-mode 2-D mixture: RMSE to the teacher's ODE solution
    (Heun, 256 steps, same noise) and median distance to the nearest mode, teacher at 4/8/32 vs student at 4."""
    from training.diffusion.distill import nested_sigmas, progressive_distill, sample_ddim
    from training.diffusion.edm import EDMPrecond, LogNormalSigma
    from training.diffusion.toy import ToyMLP, gmm_denoiser

    means, std = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]), 0.1
    data = lambda b: {"x": means[torch.randint(4, (b,))] + std * torch.randn(b, 2)}  # noqa: E731
    torch.manual_seed(0)
    exact, teacher = gmm_denoiser(means, std), EDMPrecond(ToyMLP(2, 128), 1.0)
    opt, sig_fn = torch.optim.Adam(teacher.parameters(), 2e-3), LogNormalSigma()
    for _ in range(teacher_iters):  # teacher: a network fitted to the exact mixture denoiser
        y, sig = data(256)["x"], sig_fn(256)
        x = y + sig[:, None] * torch.randn_like(y)
        loss = (teacher.weight(sig)[:, None] * (teacher(x, sig) - exact(x, sig)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    teacher.eval().requires_grad_(False)
    t0 = time.perf_counter()
    student, _ = progressive_distill(teacher, data, 32, 4, iters_per_round=iters_per_round)
    seconds = time.perf_counter() - t0
    x0 = 80 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ode = sample_heun(lambda x, s: teacher(x, s), x0, get_sigmas_karras(256))
        runs = {f"teacher_ddim@{n}": sample_ddim(teacher, x0, nested_sigmas(n)) for n in (4, 8, 32)}
        runs["student@4"] = sample_ddim(student, x0, nested_sigmas(4))
    return {"distill_seconds": round(seconds, 1), "iters_per_round": iters_per_round, **{
        k: {"rmse_to_teacher_ode": round(((x - ode) ** 2).sum(1).mean().sqrt().item(), 4),
            "median_dist_to_mode": round(((x[:, None] - means[None]) ** 2).sum(2).min(1).values.sqrt()
                                         .median().item(), 4)} for k, x in runs.items()}}


def spectral_demo(out_dir: Path) -> dict:
    """RAPSD report on 1/f² images (natural-image statistics): where noise overtakes signal per σ."""
    from training.spectral import power_law_noise, spectral_report

    data = power_law_noise(16, 64, 2.0)
    data = data / data.std()
    rep = spectral_report(data, out_dir, sigmas=(0.3, 0.5, 1.0, 2.0, 4.0), name="diffusion_spectral_demo")
    return {"data_alpha": rep["data"]["fit"]["alpha"],
            "crossover_freq_by_sigma": {n["sigma"]: n["crossover_freq"] for n in rep["noised"]},
            "png": str(out_dir / "diffusion_spectral_demo.png")}


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
    res["toy_distillation"] = toy_distillation()
    res["spectral_demo"] = spectral_demo(Path(args.out).parent)
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
    print("toy progressive distillation (rmse to teacher ODE, median distance to mode):")
    for k, v in res["toy_distillation"].items():
        if isinstance(v, dict):
            print(f"  {k:18} {v['rmse_to_teacher_ode']:8} {v['median_dist_to_mode']:8}")
    print("spectral demo (1/f² images): noise/signal crossover frequency by σ:",
          res["spectral_demo"]["crossover_freq_by_sigma"])
    if "toy_ablation" in res:
        print("toy ablation (reference = curated):")
        for k, v in res["toy_ablation"]["side_by_side"].items():
            print(f"  {k:22} curated={v['curated']!s:24} uncurated={v['uncurated']!s}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
