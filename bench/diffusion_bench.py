"""Diffusion trainer benchmark: video DiT throughput (training tokens/s and samples/s, generation samples/s) on
this machine, full vs factorised attention; the samplers on known truth; progressive distillation; the temporal
spectrum demo; the motion-condition toy; a toy curation ablation on video latents. Writes
bench/results/diffusion.json and prints a table.

Usage: .venv/bin/python bench/diffusion_bench.py [--threads 2] [--skip-ablation] [--skip-motion]
Throughput is hardware-specific: the JSON names the CPU/GPU it ran on. GPU rows (bf16, SDPA) appear only if CUDA
exists; without one the output says so.
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

LATENT = (4, 5, 16, 16)  # a 17-frame 128² clip through a 4×8×8 causal video autoencoder with 4 channels


def throughput(size: str, device: str, batch: int, steps: int, bf16: bool = False, attention: str = "full",
               gen_steps: int = 2) -> dict:
    """Training tokens/s and samples/s of one DiT on random video latents (model + optimiser only, no data
    loading), and generation samples/s of a 32-step Heun sampler (63 denoiser evaluations per sample)."""
    torch.manual_seed(0)
    cfg = DiTConfig.named(size, in_channels=LATENT[0], patch_size=2, attention=attention)
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
    net.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        sig = torch.full((batch,), 1.0, device=device)
        net(x, sig)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        for _ in range(gen_steps):
            net(x, sig)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        nfe_s = (time.perf_counter() - t1) / gen_steps  # seconds per denoiser evaluation of the batch
    tokens = LATENT[1] * (LATENT[2] // 2) * (LATENT[3] // 2)
    return {"size": size, "attention": attention, "device": device, "bf16": bf16, "batch": batch, "steps": steps,
            "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2), "latent": list(LATENT),
            "tokens_per_sample": tokens, "train_tokens_per_s": round(batch * tokens * steps / dt, 1),
            "train_samples_per_s": round(batch * steps / dt, 3), "s_per_step": round(dt / steps, 4),
            "generate_samples_per_s_heun32": round(batch / (63 * nfe_s), 4)}


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
    """Curated (4-mode mixture of still 4-frame windows) vs uncurated (the same + as many pure-noise clips), same
    budget, on video latents."""
    from training.diffusion.ablate import ablate
    from training.diffusion.toy import write_gmm_latents
    from training.diffusion.train import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        cur = write_gmm_latents(Path(tmp) / "cur", n_clips=64, frames=4)
        unc = write_gmm_latents(Path(tmp) / "unc", n_clips=64, frames=4, junk_fraction=1.0, null_fraction=0.3)
        cfg = TrainConfig(out_dir=str(Path(tmp) / "ab"), model="tiny", steps=steps, batch_size=64, lr=2e-3,
                          warmup=20, ema_decay=0.95, progress=False)
        r = ablate(str(cur), str(unc), cfg, n_samples=256, sample_steps=16)
    return {"budget": r["budget"], "side_by_side": r["side_by_side"],
            "nearest_neighbour": {a: r[a]["nearest_neighbour"] for a in ("curated", "uncurated")},
            "loss_per_sigma": {a: r[a]["loss_per_sigma"] for a in ("curated", "uncurated")}}


def toy_distillation(teacher_iters: int = 500, iters_per_round: int = 200) -> dict:
    """Progressive distillation 32 → 4 steps on a 4-mode 2-D mixture (shape-agnostic: see test_diffusion_shapes): RMSE to the teacher's ODE solution
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


def temporal_spectral_demo(out_dir: Path) -> dict:
    """Temporal power spectrum of clips smooth in time (power ∝ f_t^-2): the crossover f*_t(σ) per σ and which
    temporal frequencies noise has drowned at each σ (the highest first)."""
    from training.spectral import power_law_clips, temporal_report

    clips = power_law_clips(16, 32, 16, 2.0)[:, None]
    clips = clips / clips.std()
    rep = temporal_report(clips, out_dir, sigmas=(0.3, 0.5, 1.0, 2.0), name="diffusion_temporal_demo")
    return {"data_alpha_t": rep["data"]["fit"]["alpha"],
            "crossover_freq_by_sigma": {n["sigma"]: n["crossover_freq"] for n in rep["noised"]},
            "lowest_drowned_freq_by_sigma": {n["sigma"]: min(n["drowned_first"], default=None) for n in rep["noised"]},
            "png": str(out_dir / "diffusion_temporal_demo.png")}


def motion_control(steps: int = 300) -> dict:
    """The motion condition on toy moving-blob latents (as tests/test_diffusion_motion.py): curation.motion's score
    of samples asked for motion 0 vs 1.5 cells/frame, and of the ground-truth clips."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_diffusion_motion import FRAMES, SIZE, SPEEDS, motion_score

    from training.diffusion.data import conditions_tensor
    from training.diffusion.samplers import sample
    from training.diffusion.toy import moving_blob, write_moving_latents
    from training.diffusion.train import TrainConfig, cond_stats_of, latent_stats_of, load_checkpoint, train

    with tempfile.TemporaryDirectory() as tmp:
        lat = write_moving_latents(Path(tmp) / "lat", n_clips=64, speeds=SPEEDS, frames=FRAMES, size=SIZE)
        run = train(TrainConfig(latents_dir=str(lat), out_dir=str(Path(tmp) / "run"), steps=steps, batch_size=32,
                                lr=3e-3, warmup=10, ema_decay=0.9, p_uncond=0.2, progress=False,
                                conditions=("motion",)))
        net, ck = load_checkpoint(run["checkpoint"])
    out = {"train_steps": steps, "train_seconds": round(run["seconds"], 1), "asked": {}}
    for speed in SPEEDS:
        raw, mask = conditions_tensor({"motion": speed}, ("motion",))
        z = sample(net, (1, FRAMES, SIZE, SIZE), 32, cond=cond_stats_of(ck).normalize(raw), cond_mask=mask,
                   guidance=2.0, steps=16, generator=torch.Generator().manual_seed(1))
        sc = np.array([motion_score(c) for c in latent_stats_of(ck).denormalize(z)])
        out["asked"][speed] = {"mean": round(float(sc.mean()), 4), "p10": round(float(np.percentile(sc, 10)), 4),
                               "p90": round(float(np.percentile(sc, 90)), 4),
                               "ground_truth": round(motion_score(moving_blob(speed, FRAMES, SIZE, 2.0)), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--skip-motion", action="store_true")
    ap.add_argument("--ablation-steps", type=int, default=400)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "diffusion.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                       "torch_threads": args.threads, "torch": torch.__version__,
                       "load_avg_at_start": os.getloadavg()},
           "latent_shape": LATENT, "throughput": []}
    for attention in ("full", "factorised"):
        res["throughput"].append(throughput("tiny", "cpu", batch=16, steps=5, attention=attention))
        res["throughput"].append(throughput("S", "cpu", batch=2, steps=2, attention=attention, gen_steps=1))
    if torch.cuda.is_available():
        res["machine"]["gpu"] = torch.cuda.get_device_name()
        for size in ("S", "B", "XL"):
            for bf16 in (False, True):
                res["throughput"].append(throughput(size, "cuda", batch=32, steps=10, bf16=bf16))
    else:
        res["machine"]["gpu"] = None
        res["gpu_note"] = "no CUDA device on this machine: GPU throughput (bf16, SDPA) and MFU not measured"
    res["sampler_std_over_s"] = sampler_truth()
    res["toy_distillation"] = toy_distillation()
    res["spectral_demo"] = spectral_demo(Path(args.out).parent)
    res["temporal_spectral_demo"] = temporal_spectral_demo(Path(args.out).parent)
    if not args.skip_motion:
        res["motion_control"] = motion_control()
    if not args.skip_ablation:
        res["toy_ablation"] = toy_ablation(args.ablation_steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))

    print(f"video latent {LATENT} (C, T', H', W'), patch (1, 2, 2)")
    print(f"{'size':5} {'attention':10} {'device':6} {'bf16':5} {'params(M)':>9} {'tokens':>6} {'train tok/s':>11} "
          f"{'train smp/s':>11} {'gen smp/s (heun32)':>18}")
    for r in res["throughput"]:
        print(f"{r['size']:5} {r['attention']:10} {r['device']:6} {str(r['bf16']):5} {r['params_M']:9} "
              f"{r['tokens_per_sample']:6} {r['train_tokens_per_s']:11} {r['train_samples_per_s']:11} "
              f"{r['generate_samples_per_s_heun32']:18}")
    by = {(r["size"], r["attention"]): r["train_tokens_per_s"] for r in res["throughput"] if r["device"] == "cpu"}
    for size in ("tiny", "S"):
        if (size, "full") in by and (size, "factorised") in by:
            print(f"  {size}: factorised / full training tokens/s = {by[size, 'factorised'] / by[size, 'full']:.2f}")
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
    print("temporal spectrum demo (clips with f_t^-2 power): crossover temporal frequency by σ:",
          res["temporal_spectral_demo"]["crossover_freq_by_sigma"])
    if "motion_control" in res:
        m = res["motion_control"]["asked"]
        print("motion condition (toy moving blobs; curation.motion score of samples, ground truth in brackets):",
              ", ".join(f"asked {k}: {v['mean']} [{v['ground_truth']}]" for k, v in m.items()))
    if "toy_ablation" in res:
        print("toy ablation (reference = curated):")
        for k, v in res["toy_ablation"]["side_by_side"].items():
            print(f"  {k:22} curated={v['curated']!s:24} uncurated={v['uncurated']!s}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
