"""Autoencoder benchmark (CPU): the per-frame 2-D autoencoder vs the causal 3-D one, side by side.

    python -m bench.ae_bench [--budget-s 120] [--threads 1]

Both at the same latent size (48x fewer values than RGB: 2-D f8c4 = 3·8·8/4, 3-D 4x8x8 c16 =
3·4·8·8/16) and the same training budget (CPU seconds, process time), on the same windows of
9 frames at 8 fps (64 px) of some test videos; evaluated on windows of other videos: per-frame
PSNR/SSIM, flicker, floats per pixel, and encode/decode/train clips per second. Then the
diffusability term (Skorokhodov et al. 2025): the 3-D model trained with and without it, the
RAPSD slope α of its latents vs of the RGB clips (at 128 px, so the latents have 16x16 cells).
Writes bench/results/ae.json and prints ratios 3-D / 2-D.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.autoencoder.config import AEConfig, DataConfig, LossConfig, ModelConfig, TrainConfig
from training.autoencoder.evaluate import bicubic_baseline_psnr, evaluate_clips
from training.autoencoder.losses import perceptual_loss
from training.autoencoder.model import decode_video, encode_video, frames_of
from training.autoencoder.train import make_trainer, train_step
from training.video_frames import read_frames, resize_center_crop, sample_indices, to_tensor

VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "videos"
TRAIN_VIDEOS = [("bikes.mp4", 25.0), ("cockatoo.mp4", 20.0), ("pedestrians.avi", 10.0), ("fades.mp4", 25.0)]
HELDOUT_VIDEOS = [("bigbuckbunny.mp4", 25.0), ("carphone_pristine.mp4", 29.97)]
CPU = torch.device("cpu")
T, FPS = 9, 8.0  # frames per window, frames/s


def windows(videos: list[tuple[str, float]], size: int, per_video: int, span_s: float = 10.0) -> torch.Tensor:
    """Consecutive non-overlapping windows of T frames at FPS from the first `span_s` seconds: (N, 3, T, s, s)."""
    out = []
    for name, fps in videos:
        idx = sample_indices(0, int(span_s * fps), fps, FPS)
        for w in range(per_video):
            pick = idx[w * T : (w + 1) * T]
            if len(pick) == T:
                try:
                    out.append(resize_center_crop(to_tensor(read_frames(str(VIDEOS / name), pick)), size).transpose(0, 1))
                except ValueError:  # the video is shorter than span_s
                    break
    return torch.stack(out).clamp(-1, 1)


def config(kind: str, diff_weight: float = 0.0) -> AEConfig:
    """The two geometries: same levels and widths; latent channels chosen for 48x compression each."""
    video = kind == "video"
    return AEConfig(
        model=ModelConfig(kind=kind, block_out_channels=(16, 32, 64, 64), latent_channels=16 if video else 4,
                          layers_per_block=1, norm_num_groups=8),
        data=DataConfig(clip_frames=T, num_workers=0),
        loss=LossConfig(perceptual_weight=0.5, diff_weight=diff_weight, diff_prob=1.0, diff_temporal=True),
        train=TrainConfig(lr=2e-3, warmup_steps=0, ema_decay=0.95, progress=False),
    )


def train_for(cfg: AEConfig, x: torch.Tensor, budget_s: float, batch: int = 4) -> tuple:
    """Train on random clips of x (h-flipped half the time) for budget_s CPU seconds; (trainer, steps, clips/s)."""
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)
    g = torch.Generator().manual_seed(0)
    t0, w0, steps = time.process_time(), time.perf_counter(), 0  # CPU time: the budget means the same on a busy box
    while time.process_time() - t0 < budget_s:
        b = x[torch.randint(0, len(x), (batch,), generator=g)]
        b = torch.where(torch.rand(batch, 1, 1, 1, 1, generator=g) < 0.5, b, b.flip(-1))
        train_step(trainer, b, cfg, perc, CPU)
        steps += 1
    return trainer, steps, steps * batch / (time.process_time() - t0)


@torch.no_grad()
def codec_speed(ae, x: torch.Tensor, repeats: int = 2) -> dict:
    """Encode and decode clips per CPU second (process time), batch of 2 clips."""
    b = x[:2]
    z, _ = encode_video(ae, b)
    t = time.process_time()
    for _ in range(repeats):
        encode_video(ae, b)
    enc = repeats * len(b) / (time.process_time() - t)
    t = time.process_time()
    for _ in range(repeats):
        decode_video(ae, z)
    dec = repeats * len(b) / (time.process_time() - t)
    return {"encode_clips_per_cpu_s": enc, "decode_clips_per_cpu_s": dec}


def summarise(ev: dict) -> dict:
    keep = ("psnr_db", "ssim", "flicker", "compression", "equivariance_psnr_db")
    return {k: ev[k] for k in keep} | {"latent_alpha": ev["spectrum"]["latent_alpha"], "rgb_alpha": ev["spectrum"]["rgb_alpha"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=120.0, help="CPU seconds (process time) of training per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-diffusability", action="store_true", help="skip the with/without-diffusability runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ae.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_x, test_x = windows(TRAIN_VIDEOS, 64, per_video=6), windows(HELDOUT_VIDEOS, 64, per_video=3)
    models = {}
    for kind, name in (("image", "2-D f8c4"), ("video", "3-D 4x8x8 c16")):
        trainer, steps, train_cps = train_for(config(kind), train_x, args.budget_s)
        ae = trainer.ema.eval()
        models[name] = {"kind": kind, "steps": steps, "train_clips_per_cpu_s": train_cps,
                        "params": sum(p.numel() for p in ae.parameters()),
                        **codec_speed(ae, test_x), **summarise(evaluate_clips(ae, test_x))}
    result = {
        "hardware": f"{platform.machine()} CPU, {args.threads} torch threads ({platform.processor() or 'unknown'}); "
                    "figures per CPU second (process time), which survive a shared, busy box",
        "budget_cpu_s": args.budget_s, "clip": {"frames": T, "fps": FPS, "size": 64},
        "train_clips": len(train_x), "heldout_clips": len(test_x),
        "bicubic_from_1_8_psnr_db": bicubic_baseline_psnr(frames_of(test_x), 8),
        "models": models,
    }
    if not args.skip_diffusability:
        big = windows(HELDOUT_VIDEOS, 128, per_video=3)  # 16x16 latent cells: enough rings for a slope
        result["diffusability"] = {}
        for w in (0.0, 0.5):
            trainer, steps, _ = train_for(config("video", diff_weight=w), train_x, args.budget_s)
            ev = evaluate_clips(trainer.ema.eval(), big)
            result["diffusability"][f"diff_weight={w}"] = {
                "steps": steps, "psnr_db_128px": ev["psnr_db"]["mean"],
                "latent_alpha": ev["spectrum"]["latent_alpha"], "rgb_alpha": ev["spectrum"]["rgb_alpha"],
                "equivariance_psnr_db_scale_0.5": ev["equivariance_psnr_db"]["scale_0.5"]["mean"],
            }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))

    a, b = models["2-D f8c4"], models["3-D 4x8x8 c16"]
    rows = [
        ("PSNR per frame (dB)", a["psnr_db"]["mean"], b["psnr_db"]["mean"]),
        ("SSIM per frame", a["ssim"]["mean"], b["ssim"]["mean"]),
        ("flicker (lower = steadier)", a["flicker"]["mean"], b["flicker"]["mean"]),
        ("compression (RGB values / latent value)", a["compression"]["factor"], b["compression"]["factor"]),
        ("latent floats per pixel", a["compression"]["floats_per_pixel"], b["compression"]["floats_per_pixel"]),
        ("train clips / CPU-s", a["train_clips_per_cpu_s"], b["train_clips_per_cpu_s"]),
        ("encode clips / CPU-s", a["encode_clips_per_cpu_s"], b["encode_clips_per_cpu_s"]),
        ("decode clips / CPU-s", a["decode_clips_per_cpu_s"], b["decode_clips_per_cpu_s"]),
        ("params", a["params"], b["params"]),
        ("train steps in budget", a["steps"], b["steps"]),
    ]
    print(f"{'held-out, ' + str(len(test_x)) + ' clips of 9 frames, 64 px':<42}{'2-D':>12}{'3-D':>12}{'3-D / 2-D':>11}")
    for label, x, y in rows:
        print(f"{label:<42}{x:>12.4g}{y:>12.4g}{y / x if x else float('nan'):>11.3f}")
    print(f"bicubic from 1/8 (no learning): {result['bicubic_from_1_8_psnr_db']['mean']:.2f} dB")
    for k, v in result.get("diffusability", {}).items():
        print(f"3-D {k}: latent RAPSD α {v['latent_alpha']:.2f} vs RGB α {v['rgb_alpha']:.2f}, "
              f"PSNR {v['psnr_db_128px']:.2f} dB at 128 px ({v['steps']} steps)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
