"""Autoencoder benchmark (CPU): held-out PSNR against training CPU-seconds, 2-D vs causal 3-D, with the bicubic bar.

    python -m bench.ae_bench [--budget-s 900] [--threads 1] [--jobs 2] [--size 64]

Both at the same latent size (48x fewer values than RGB: 2-D f8c4 = 3·8·8/4, 3-D 4x8x8 c16 =
3·4·8·8/16), both with DC-AE space-to-channel shortcuts (training/autoencoder/shortcut.py: untrained, the 2-D
model is exactly the bicubic bar and the 3-D one is the bar on every frame but the first, which it keeps at
quarter resolution), the recipe of notes/vae.md (squared error only, LR warmup then cosine over the budget, random
32 px crops, 8 clips per step, EMA with warm-up) and the same training budget (CPU seconds, process time;
evaluation is not counted), on the same windows of 9 frames at 8 fps of the test videos; evaluated at points
along the budget on windows of other videos: per-frame PSNR of the EMA weights against the bicubic bar (each frame
area-downsampled to the latent's size and upsampled back with bicubic, training/autoencoder/evaluate.py). At the
end: SSIM, flicker, floats per pixel, and encode/decode/train clips per CPU-second.
Writes bench/results/ae.json and bench/results/ae_psnr_vs_cpu.png and prints the curve and ratios 3-D / 2-D.
The diffusability comparison (3-D with and without the term, RAPSD slopes) runs with --diffusability.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.autoencoder.config import AEConfig, DataConfig, LossConfig, ModelConfig, TrainConfig
from training.autoencoder.evaluate import bicubic_psnr, evaluate_clips, psnr
from training.autoencoder.losses import perceptual_loss
from training.autoencoder.model import compression, decode_video, encode_video, frames_of
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


def config(kind: str, diff_weight: float = 0.0, steps: int = 100, **recipe) -> AEConfig:
    """The two geometries, same levels and widths, latent channels for 48x compression each, with DC-AE shortcuts
    (the untrained model is the bicubic codec); the demo's recipe (training/configs/ae_demo.yaml) with its
    schedules stretched over `steps`. `recipe` overrides: any ModelConfig/LossConfig/TrainConfig field by name."""
    video = kind == "video"
    model = dict(kind=kind, block_out_channels=(16, 32, 64, 64), latent_channels=16 if video else 4,
                 layers_per_block=1, norm_num_groups=8, shortcut=True, init_logvar=-10.0)
    loss = dict(perceptual_weight=0.5, diff_weight=diff_weight, diff_prob=1.0, diff_temporal=True,
                aux_start=int(0.6 * steps), aux_ramp=max(1, steps // 5))
    train = dict(steps=steps, lr=2e-3, warmup_steps=max(1, steps // 20), lr_schedule="cosine",
                 min_lr_ratio=0.05, ema_decay=0.95, progress=False)
    for k, v in recipe.items():
        part = next((d for d, c in ((model, ModelConfig), (loss, LossConfig), (train, TrainConfig)) if k in c.__dataclass_fields__), None)
        if part is None:
            raise ValueError(f"unknown recipe key {k!r}")
        part[k] = v
    return AEConfig(model=ModelConfig(**model), data=DataConfig(clip_frames=T, num_workers=0),
                    loss=LossConfig(**loss), train=TrainConfig(**train))


def heldout_psnr(ae, x: torch.Tensor, batch: int = 4) -> float:
    """Mean per-frame PSNR of clips x (N, 3, T, H, W) through the autoencoder (posterior means)."""
    with torch.no_grad():
        p = [psnr(frames_of(decode_video(ae, encode_video(ae, c)[0])), frames_of(c)) for c in x.split(batch)]
    return float(torch.cat(p).mean())


def random_crops(b: torch.Tensor, crop: int, g: torch.Generator) -> torch.Tensor:
    """One random crop x crop (a multiple of 8, at the same place in every frame) per clip of b (N, 3, T, H, W)."""
    if crop >= b.shape[-1]:
        return b
    top = torch.randint(0, (b.shape[-2] - crop) // 8 + 1, (len(b),), generator=g) * 8
    left = torch.randint(0, (b.shape[-1] - crop) // 8 + 1, (len(b),), generator=g) * 8
    return torch.stack([c[..., i:i + crop, j:j + crop] for c, i, j in zip(b, top.tolist(), left.tolist())])


def train_for(cfg: AEConfig, x: torch.Tensor, budget_s: float, test_x: torch.Tensor | None = None,
              points: int = 6, batch: int = 4, crop: int = 0, aux_frac: float = 0.6) -> tuple:
    """Train on random clips of x (h-flipped half the time; `crop` > 0: random crops of that side, on the 8 px
    grid) for budget_s CPU seconds.

    The schedules need a step count: it is the budget over the CPU time of the first 3 steps (cosine then ends
    near the budget; training stops at whichever comes first); the extra loss terms start after `aux_frac` of it.
    With test_x, the EMA's held-out PSNR is taken at `points` geometrically spaced CPU times (evaluation time not
    counted). Returns (trainer, steps, train clips per CPU-s, curve [{cpu_s, step, psnr_db}]).
    """
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)
    g = torch.Generator().manual_seed(0)
    marks = [budget_s * 2.0 ** (k - points + 1) for k in range(points)]
    curve, used, steps = [], 0.0, 0
    if test_x is not None:
        curve.append({"cpu_s": 0.0, "step": 0, "psnr_db": heldout_psnr(trainer.ema.eval(), test_x)})
    while used < budget_s and (steps < 3 or steps < cfg.train.steps):
        t0 = time.process_time()  # CPU time: the budget means the same on a busy box
        b = x[torch.randint(0, len(x), (batch,), generator=g)]
        b = torch.where(torch.rand(batch, 1, 1, 1, 1, generator=g) < 0.5, b, b.flip(-1))
        train_step(trainer, random_crops(b, crop, g) if crop else b, cfg, perc, CPU)
        used += time.process_time() - t0
        steps += 1
        if steps == 3:
            cfg.train.steps = max(4, int(budget_s / (used / 3)))
            cfg.loss.aux_start, cfg.loss.aux_ramp = int(aux_frac * cfg.train.steps), max(1, cfg.train.steps // 5)
            cfg.train.warmup_steps = max(3, cfg.train.steps // 20)
        if test_x is not None and marks and used >= marks[0]:
            while marks and used >= marks[0]:
                marks.pop(0)
            curve.append({"cpu_s": round(used, 1), "step": steps, "psnr_db": heldout_psnr(trainer.ema.eval(), test_x)})
            print(f"  {cfg.model.kind}: {curve[-1]}", flush=True)  # progress: a long run's curve so far
    if test_x is not None and (not curve or curve[-1]["step"] != steps):
        curve.append({"cpu_s": round(used, 1), "step": steps, "psnr_db": heldout_psnr(trainer.ema.eval(), test_x)})
    return trainer, steps, steps * batch / used, curve


def plot(models: dict, bicubic: float, path: Path) -> None:
    """PSNR against training CPU-seconds, one line per model, and the bicubic bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in models.items():
        ax.plot([p["cpu_s"] for p in m["curve"]], [p["psnr_db"] for p in m["curve"]], "o-", label=name)
    ax.axhline(bicubic, color="k", ls="--", label=f"bicubic from the latent's size ({bicubic:.1f} dB)")
    ax.axhline(bicubic + 3, color="gray", ls=":", label="bicubic + 3 dB")
    ax.set_xscale("symlog", linthresh=10)  # 0 CPU-s: the untrained shortcut codec
    ax.set_xlim(left=0)
    ax.set_xlabel("training CPU-seconds (process time; 0 = untrained)")
    ax.set_ylabel("held-out PSNR per frame (dB)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


# The recipe of notes/vae.md (issue 23): squared error only (PSNR's own measure; no L1, no perceptual term), random
# 32 px crops of the 64 px windows, 8 clips per step; overrides of config() for both models
RECIPE = {"l1_weight": 0.0, "mse_weight": 1.0, "perceptual_weight": 0.0}
CROP, BATCH, AUX_FRAC = 32, 8, 1.0  # training crop side (0: the whole window), clips per step, extra terms after (1: never)


def train_model(kind: str, budget_s: float, size: int, points: int, threads: int) -> dict:
    """Train one model for the budget on the bench's windows; its curve and held-out measurements (a process of its own
    with --jobs 2: CPU time is per process)."""
    torch.set_num_threads(threads)
    train_x, test_x = windows(TRAIN_VIDEOS, size, per_video=6), windows(HELDOUT_VIDEOS, size, per_video=3)
    trainer, steps, train_cps, curve = train_for(config(kind, **RECIPE), train_x, budget_s, test_x, points,
                                                 batch=BATCH, crop=CROP, aux_frac=AUX_FRAC)
    ae = trainer.ema.eval()
    return {"kind": kind, "steps": steps, "train_clips_per_cpu_s": train_cps, "curve": curve,
            "params": sum(p.numel() for p in ae.parameters()), "spatial_factor": compression(ae)[1],
            **codec_speed(ae, test_x), **summarise(evaluate_clips(ae, test_x))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=900.0, help="CPU seconds (process time) of training per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="2: train the two models in two processes at once")
    ap.add_argument("--size", type=int, default=64, help="clip side in pixels (multiple of 8)")
    ap.add_argument("--points", type=int, default=6, help="evaluations along the budget (geometric in CPU time)")
    ap.add_argument("--diffusability", action="store_true", help="also train the 3-D model with/without that term")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ae.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_x, test_x = windows(TRAIN_VIDEOS, args.size, per_video=6), windows(HELDOUT_VIDEOS, args.size, per_video=3)
    kinds = (("image", "2-D f8c4"), ("video", "3-D 4x8x8 c16"))
    job = (args.budget_s, args.size, args.points, args.threads)
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(2) as pool:
            runs = pool.starmap(train_model, [(kind, *job) for kind, _ in kinds])
    else:
        runs = [train_model(kind, *job) for kind, _ in kinds]
    models = {name: run for (_, name), run in zip(kinds, runs)}
    spatial = runs[-1]["spatial_factor"]
    bicubic = bicubic_psnr(frames_of(test_x), (args.size // spatial, args.size // spatial))
    result = {
        "hardware": f"{platform.machine()} CPU, {args.threads} torch threads ({platform.processor() or 'unknown'}); "
                    "figures per CPU second (process time), which survive a shared, busy box",
        "budget_cpu_s": args.budget_s, "clip": {"frames": T, "fps": FPS, "size": args.size},
        "train_clips": len(train_x), "heldout_clips": len(test_x),
        "bicubic_psnr_db": {"mean": float(bicubic.mean()), "n": int(bicubic.numel())},
        "recipe": {"config": {k: str(v) for k, v in RECIPE.items()}, "crop": CROP, "batch": BATCH, "aux_frac": AUX_FRAC},
        "models": models,
    }
    if args.diffusability:
        big = windows(HELDOUT_VIDEOS, 128, per_video=3)  # 16x16 latent cells: enough rings for a slope
        result["diffusability"] = {}
        for w in (0.0, 0.5):
            trainer, steps, _, _ = train_for(config("video", diff_weight=w, **RECIPE), train_x, args.budget_s,
                                             batch=BATCH, crop=CROP, aux_frac=AUX_FRAC)
            ev = evaluate_clips(trainer.ema.eval(), big)
            result["diffusability"][f"diff_weight={w}"] = {
                "steps": steps, "psnr_db_128px": ev["psnr_db"]["mean"],
                "latent_alpha": ev["spectrum"]["latent_alpha"], "rgb_alpha": ev["spectrum"]["rgb_alpha"],
                "equivariance_psnr_db_scale_0.5": ev["equivariance_psnr_db"]["scale_0.5"]["mean"],
            }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    figure = out.with_name(out.stem + "_psnr_vs_cpu.png")
    plot(models, result["bicubic_psnr_db"]["mean"], figure)

    bar = result["bicubic_psnr_db"]["mean"]
    print(f"held-out PSNR (dB) against training CPU-s; bicubic from the latent's size: {bar:.2f} dB")
    for name, m in models.items():
        pts = "  ".join(f"{p['cpu_s']:.0f}s:{p['psnr_db']:.2f}" for p in m["curve"])
        print(f"  {name:<14} {pts}   (end {m['curve'][-1]['psnr_db'] - bar:+.2f} dB vs bicubic, {m['steps']} steps)")
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
    print(f"{'held-out, ' + str(len(test_x)) + f' clips of 9 frames, {args.size} px':<42}{'2-D':>12}{'3-D':>12}{'3-D / 2-D':>11}")
    for label, x, y in rows:
        print(f"{label:<42}{x:>12.4g}{y:>12.4g}{y / x if x else float('nan'):>11.3f}")
    for k, v in result.get("diffusability", {}).items():
        print(f"3-D {k}: latent RAPSD α {v['latent_alpha']:.2f} vs RGB α {v['rgb_alpha']:.2f}, "
              f"PSNR {v['psnr_db_128px']:.2f} dB at 128 px ({v['steps']} steps)")
    print(f"wrote {out} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
