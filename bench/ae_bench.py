"""Autoencoder benchmark (CPU): train/encode throughput, and held-out PSNR vs bicubic-from-1/8.

    python -m bench.ae_bench [--budget-s 60] [--threads 2]

Throughput in images/s for a tiny model (f4, 64 px) and the SD f8c4 geometry
(256 px, a few iterations only). Quality: a tiny f8c4 model trained for a fixed
CPU budget on frames of some test videos, PSNR on frames of other videos,
side by side with bicubic upsampling from 1/8 resolution (the same number of
spatial samples per side as an f8 latent). Writes bench/results/ae.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.autoencoder.config import AEConfig, ModelConfig, tiny_config
from training.autoencoder.evaluate import bicubic_baseline_psnr, evaluate_images
from training.autoencoder.losses import perceptual_loss
from training.autoencoder.train import make_trainer, train_step
from training.video_frames import read_frames, resize_center_crop, to_tensor

VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "videos"
TRAIN_VIDEOS = ["bikes.mp4", "cockatoo.mp4", "pedestrians.avi", "fades.mp4"]
HELDOUT_VIDEOS = ["bigbuckbunny.mp4", "carphone_pristine.mp4"]
CPU = torch.device("cpu")


def frames(names: list[str], size: int, per_video: int, stride: int) -> torch.Tensor:
    out = []
    for n in names:
        idx = [10 + stride * i for i in range(per_video)]
        out.append(resize_center_crop(to_tensor(read_frames(str(VIDEOS / n), idx)), size))
    return torch.cat(out).clamp(-1, 1)


def throughput(cfg: AEConfig, x: torch.Tensor, steps: int) -> dict:
    """images/s of train steps and of encoding (posterior mean), after one warm-up step."""
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)
    train_step(trainer, x, cfg, perc, CPU)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        train_step(trainer, x, cfg, perc, CPU)
    n = steps * x.shape[0]
    train_ips, train_ipc = n / (time.perf_counter() - t), n / (time.process_time() - c)
    with torch.no_grad():
        trainer.ae.encode(x)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer.ae.encode(x).latent_dist.mean
        enc_ips, enc_ipc = n / (time.perf_counter() - t), n / (time.process_time() - c)
    params = sum(p.numel() for p in trainer.ae.parameters())
    # img per CPU-second is the figure that survives a shared, busy box; img/s is wall clock
    return {"train_img_per_s": train_ips, "encode_img_per_s": enc_ips,
            "train_img_per_cpu_s": train_ipc, "encode_img_per_cpu_s": enc_ipc, "params": params,
            "size": x.shape[-1], "batch": x.shape[0], "steps": steps}


def quality(budget_s: float, size: int) -> dict:
    """Train a tiny f8c4 model for budget_s CPU seconds (process time, all threads); held-out PSNR/SSIM vs bicubic."""
    cfg = tiny_config(lr=2e-3, grad_clip=1.0)
    cfg.model = ModelConfig(block_out_channels=(16, 32, 64, 64), latent_channels=4, layers_per_block=1, norm_num_groups=8)
    train_x = frames(TRAIN_VIDEOS, size, per_video=16, stride=12)
    test_x = frames(HELDOUT_VIDEOS, size, per_video=8, stride=12)
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)
    g = torch.Generator().manual_seed(0)
    t0, steps = time.process_time(), 0  # CPU time: the budget means the same on a busy box
    while time.process_time() - t0 < budget_s:
        batch = train_x[torch.randint(0, len(train_x), (8,), generator=g)]
        batch = torch.where(torch.rand(8, 1, 1, 1, generator=g) < 0.5, batch, batch.flip(-1))  # h-flip
        train_step(trainer, batch, cfg, perc, CPU)
        steps += 1
    report = evaluate_images(trainer.ema.eval(), test_x)
    return {
        "budget_s": budget_s, "steps": steps, "size": size, "train_images": len(train_x),
        "heldout_images": len(test_x), "ae_psnr_db": report["psnr_db"], "ae_ssim": report["ssim"],
        "bicubic_from_1_8_psnr_db": bicubic_baseline_psnr(test_x, 8),
        "equivariance_psnr_db": report["equivariance_psnr_db"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=120.0, help="CPU seconds (process time) of training for the PSNR figure")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ae.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x64 = frames(["bikes.mp4"], 64, per_video=4, stride=20)
    x256 = frames(["bikes.mp4"], 256, per_video=1, stride=20)
    tiny = throughput(tiny_config(), x64, steps=5)
    sd = throughput(AEConfig(model=ModelConfig()), x256, steps=2)
    q = quality(args.budget_s, 64)
    result = {
        "hardware": f"{platform.machine()} CPU, {args.threads} torch threads ({platform.processor() or 'unknown'})",
        "throughput": {"tiny_f4_64px": tiny, "sd_f8c4_256px": sd},
        "quality": q,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{'model':<16}{'size':>6}{'params':>12}{'train img/s':>13}{'img/CPU-s':>11}{'encode img/s':>14}{'img/CPU-s':>11}")
    for name, r in result["throughput"].items():
        print(f"{name:<16}{r['size']:>6}{r['params']:>12,}{r['train_img_per_s']:>13.2f}{r['train_img_per_cpu_s']:>11.2f}"
              f"{r['encode_img_per_s']:>14.2f}{r['encode_img_per_cpu_s']:>11.2f}")
    print(f"\nheld-out PSNR after {q['budget_s']:.0f} CPU-s ({q['steps']} steps, {q['size']} px): "
          f"tiny f8c4 AE {q['ae_psnr_db']['mean']:.2f} ± {q['ae_psnr_db']['std']:.2f} dB  vs  "
          f"bicubic from 1/8 {q['bicubic_from_1_8_psnr_db']['mean']:.2f} ± {q['bicubic_from_1_8_psnr_db']['std']:.2f} dB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
