"""Does the DiT learn a distribution you can check? Toy pixel videos (training/diffusion/toy_video.py: 1-3
coloured squares/discs moving at known speeds), the real training loop (training/diffusion/train.py) and the real
sampler (training/diffusion/samplers.py); then four statistics of the samples against held-out data:

- motion: our own motion score (curation.motion, DIS optical flow) per clip; distance = 1-D Wasserstein-1, in
  frame diagonals per second (it also reads residual noise of a grey level or two as motion: notes/dit_toy.md);
- shape flicker: per clip, the mean 1 - IoU of consecutive frames' foreground masks (the mask below); distance =
  Wasserstein-1. Shapes that persist and move 1 px/frame give at most 0.4; shapes that come and go give up to 1;
- colour: per-channel 16-bin histograms of all pixels; distance = total variation, mean over R, G, B;
- shape count: 8-connected components (area >= 3 px) of the foreground mask (any channel more than 48/255 from the
  background), median over a clip's frames; distance = total variation between the count distributions.

Each distance is reported for trained samples, for an untrained model (same config and sampler, the trainer's own
random init) and for data vs data (two disjoint held-out halves of the same size): the floor the sample size allows.
Writes OUT/dit_toy.json, a contact sheet (OUT/dit_toy_samples.png: training clips, trained samples, untrained samples)
and an mp4 (OUT/dit_toy_samples.mp4: training clips next to trained samples); OUT is bench/results unless --out.

Usage: .venv/bin/python -m bench.dit_toy_bench [--steps 1500] [--samples 128] [--threads 1] [--out DIR]
(defaults: tiny DiT, patch 2x2x2, full attention: ~5 CPU-minutes of training at 1 thread)
"""
import argparse
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curation.motion import MotionParams, aggregate_motion, pair_flow  # noqa: E402
from training.diffusion.dit import DiTConfig  # noqa: E402
from training.diffusion.media import save_contact_sheet, write_mp4  # noqa: E402
from training.diffusion.samplers import sample  # noqa: E402
from training.diffusion.toy_video import BACKGROUND, toy_clips, write_toy_video_latents  # noqa: E402
from training.diffusion.train import TrainConfig, build_denoiser, latent_stats_of, load_checkpoint, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FPS, UPSCALE, BINS, FG_THRESHOLD, MIN_AREA = 8.0, 4, 16, 48, 3


def to_uint8(clips: torch.Tensor) -> np.ndarray:
    """(N, 3, T, H, W) in [-1, 1] → (N, T, H, W, 3) uint8."""
    return ((clips.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def motion_scores(clips: torch.Tensor, fps: float = FPS, upscale: int = UPSCALE) -> np.ndarray:
    """curation.motion's clip score (diagonals/s) of each clip, frames shown upscaled ×`upscale` (bilinear)."""
    p, out = MotionParams(), []
    for frames in to_uint8(clips):
        h, w = frames.shape[1:3]
        grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (w * upscale, h * upscale),
                           interpolation=cv2.INTER_LINEAR) for f in frames]
        out.append(aggregate_motion([pair_flow(a, b, 1 / fps, p) for a, b in zip(grey[:-1], grey[1:])], p)["motion"])
    return np.array(out)


def colour_histogram(clips: torch.Tensor, bins: int = BINS) -> np.ndarray:
    """(3, bins): each channel's histogram of every pixel of every clip, summing to 1."""
    a = to_uint8(clips).reshape(-1, 3).astype(np.int64)
    return np.stack([np.bincount(a[:, c] * bins // 256, minlength=bins) / len(a) for c in range(3)])


def foreground(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 → bool mask of pixels more than FG_THRESHOLD from the background on some channel."""
    return np.abs(frames.astype(np.float32) - np.array(BACKGROUND) * 255).max(axis=-1) > FG_THRESHOLD


def shape_counts(clips: torch.Tensor) -> np.ndarray:
    """Per clip: the median over frames of the 8-connected foreground components of at least MIN_AREA pixels."""
    out = []
    for frames in to_uint8(clips):
        per_frame = []
        for fg in foreground(frames).astype(np.uint8):
            n, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
            per_frame.append(int((stats[1:, cv2.CC_STAT_AREA] >= MIN_AREA).sum()))
        out.append(int(np.median(per_frame)))
    return np.array(out)


def shape_flicker(clips: torch.Tensor) -> np.ndarray:
    """Per clip: mean over consecutive frames of 1 - IoU of their foreground masks (0 when both are empty). The
    shapes' own motion gives 0 (still) to 0.4 (a square moving 1 px/frame); shapes that appear, vanish or jump give
    up to 1. Blind to noise under FG_THRESHOLD, which the flow-based motion score is not (see notes/dit_toy.md)."""
    fg = foreground(to_uint8(clips))  # (N, T, H, W)
    inter = (fg[:, 1:] & fg[:, :-1]).sum((2, 3))
    union = (fg[:, 1:] | fg[:, :-1]).sum((2, 3))
    return np.where(union > 0, 1 - inter / np.maximum(union, 1), 0.0).mean(1)


def background_dither(clips: torch.Tensor) -> float:
    """Share of background pixels (within FG_THRESHOLD of the background on every channel) that are not exactly the
    background's 8-bit value: the residual noise the motion scorer sees as flicker (0 for the data)."""
    a = to_uint8(clips).reshape(-1, 3).astype(np.int16)
    bg = np.round(np.array(BACKGROUND) * 255).astype(np.int16)
    diff = np.abs(a - bg).max(axis=1)
    return float((diff[diff <= FG_THRESHOLD] > 0).mean())


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two empirical distributions on the line: the area between their CDFs."""
    xs = np.sort(np.concatenate([a, b]))
    ca = np.searchsorted(np.sort(a), xs[:-1], side="right") / len(a)
    cb = np.searchsorted(np.sort(b), xs[:-1], side="right") / len(b)
    return float(np.sum(np.abs(ca - cb) * np.diff(xs)))


def count_distribution(counts: np.ndarray, top: int = 6) -> np.ndarray:
    """Share of clips with 0, 1, ..., top-1 and >= top shapes."""
    return np.bincount(np.minimum(counts, top), minlength=top + 1) / len(counts)


def statistics(clips: torch.Tensor) -> dict:
    """The statistics of a set of clips, as arrays (and the background's off-grey share)."""
    return {"motion": motion_scores(clips), "colour": colour_histogram(clips), "counts": shape_counts(clips),
            "flicker": shape_flicker(clips), "background_dither": background_dither(clips)}


def distances(a: dict, b: dict) -> dict:
    """Distances between the statistics of two sets (see the module docstring)."""
    return {"motion_w1": wasserstein_1d(a["motion"], b["motion"]),
            "colour_tv": float(0.5 * np.abs(a["colour"] - b["colour"]).sum(1).mean()),
            "count_tv": float(0.5 * np.abs(count_distribution(a["counts"]) - count_distribution(b["counts"])).sum()),
            "flicker_w1": wasserstein_1d(a["flicker"], b["flicker"])}


def summary(s: dict) -> dict:
    return {"motion_mean": float(s["motion"].mean()), "motion_median": float(np.median(s["motion"])),
            "flicker_mean": float(s["flicker"].mean()), "background_dither": round(s["background_dither"], 4),
            "count_distribution_0_to_6plus": [round(float(v), 3) for v in count_distribution(s["counts"])],
            "mean_rgb": [round(float((s["colour"][c] * (np.arange(BINS) + 0.5) * 256 / BINS).sum()), 1)
                         for c in range(3)]}


def draw(denoiser, stats, shape, n: int, steps: int, seed: int) -> torch.Tensor:
    """n clips from the real sampler (Heun, Karras σ's), denormalised to pixels."""
    z = sample(denoiser, shape, n, steps=steps, generator=torch.Generator().manual_seed(seed))
    return stats.denormalize(z).clamp(-1, 1)


def upscale(clips: torch.Tensor, k: int = UPSCALE) -> torch.Tensor:
    return clips.repeat_interleave(k, -1).repeat_interleave(k, -2)


def save_media(data: torch.Tensor, trained: torch.Tensor, untrained: torch.Tensor, out: Path, n: int = 8) -> dict:
    """Contact sheet (rows: n training clips, n trained samples, n untrained) and an mp4: 4×4 training clips | gap |
    4×4 trained samples, frames ×4 upscaled."""
    sheet = save_contact_sheet(upscale(torch.cat([data[:n], trained[:n], untrained[:n]])), out / "dit_toy_samples.png")

    def tile(c):  # (16, 3, T, H, W) → (3, T, 4H, 4W)
        c = upscale(c[:16])
        rows = [torch.cat(list(c[r * 4:(r + 1) * 4]), dim=-1) for r in range(4)]
        return torch.cat(rows, dim=-2)

    left, right = tile(data), tile(trained)
    gap = torch.ones(*left.shape[:-1], 8)
    mp4 = write_mp4(torch.cat([left, gap, right], dim=-1), out / "dit_toy_samples.mp4", fps=FPS / 2)
    return {"contact_sheet": sheet.name, "mp4": mp4.name}


def run(train_clips: int = 1024, held_out: int = 128, samples: int = 128, steps: int = 1500, model: str = "tiny",
        patch_size: int = 2, temporal_patch: int = 2, batch_size: int = 32, lr: float = 2e-3, ema_decay: float = 0.995,
        sampler_steps: int = 32, frames: int = 8, size: int = 16, seed: int = 0, workdir: str | None = None,
        out: Path | None = RESULTS, progress: bool = True, p_mean: float = -1.2, p_std: float = 1.2,
        attention: str = "full") -> dict:
    """Generate, train, sample, measure. Returns the result dict (and writes media when `out` is set)."""
    tmp = tempfile.TemporaryDirectory(prefix="dit-toy-") if workdir is None else None
    work = Path(workdir or tmp.name)
    clips, _ = toy_clips(train_clips + 2 * held_out, frames, size, seed)
    train_set, half_a, half_b = clips[:train_clips], clips[train_clips:train_clips + held_out], clips[-held_out:]
    latents = write_toy_video_latents(work / "latents", train_set, FPS)
    cfg = TrainConfig(latents_dir=str(latents), out_dir=str(work / "run"), model=model, patch_size=patch_size,
                      temporal_patch=temporal_patch, attention=attention, steps=steps, batch_size=batch_size, lr=lr,
                      warmup=50, ema_decay=ema_decay, p_mean=p_mean, p_std=p_std, conditions=(), p_uncond=0.0,
                      seed=seed, progress=progress, ckpt_every=10**9)
    cpu0 = time.process_time()
    result = train(cfg)
    train_cpu = time.process_time() - cpu0
    net, ck = load_checkpoint(result["checkpoint"])
    stats, shape = latent_stats_of(ck), tuple(train_set.shape[1:])
    torch.manual_seed(seed)  # the untrained model: the trainer's own init (train() seeds with cfg.seed too)
    untrained_net = build_denoiser(DiTConfig(**{**ck["dit"], "grad_checkpointing": False})).eval()
    cpu1 = time.process_time()
    trained = draw(net, stats, shape, samples, sampler_steps, seed + 1)
    sample_cpu = time.process_time() - cpu1
    untrained = draw(untrained_net, stats, shape, samples, sampler_steps, seed + 1)
    cpu2 = time.process_time()
    s = {"held_out_a": statistics(half_a), "held_out_b": statistics(half_b), "trained": statistics(trained),
         "untrained": statistics(untrained)}
    measure_cpu = (time.process_time() - cpu2) / 4
    rows = {"data_vs_data": distances(s["held_out_b"], s["held_out_a"]),
            "untrained": distances(s["untrained"], s["held_out_a"]),
            "trained": distances(s["trained"], s["held_out_a"])}
    res = {"setup": {"train_clips": train_clips, "held_out_half": held_out, "samples": samples,
                     "clip": [3, frames, size, size], "model": model, "patch": [temporal_patch, patch_size, patch_size],
                     "attention": attention, "steps": steps, "batch_size": batch_size, "lr": lr, "ema_decay": ema_decay,
                     "p_mean": p_mean, "p_std": p_std, "sampler": f"heun, {sampler_steps} steps",
                     "torch_threads": torch.get_num_threads(), "seed": seed},
           "cpu_s": {"train": round(train_cpu, 1), "sample_trained": round(sample_cpu, 1),
                     "measure_one_set": round(measure_cpu, 1)},
           "final_loss_mean_last100": float(np.mean(result["losses"][-100:])),
           "distances_to_held_out": rows, "sets": {k: summary(v) for k, v in s.items()},
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)"}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        res["media"] = save_media(train_set, trained, untrained, out)
    if tmp is not None:
        tmp.cleanup()
    return res


def table(res: dict) -> str:
    rows = res["distances_to_held_out"]
    lines = [f"{'distance to held-out data':<26}{'motion W1 (diag/s)':>20}{'shape flicker W1':>18}{'colour TV':>11}"
             f"{'count TV':>10}"]
    for name in ("data_vs_data", "untrained", "trained"):
        r = rows[name]
        lines.append(f"{name:<26}{r['motion_w1']:>20.4f}{r['flicker_w1']:>18.4f}{r['colour_tv']:>11.4f}"
                     f"{r['count_tv']:>10.3f}")
    for name, s in res["sets"].items():
        lines.append(f"  {name:<12} motion mean {s['motion_mean']:.3f}  flicker mean {s['flicker_mean']:.3f}  "
                     f"background off-grey {s['background_dither']:.3f}  counts 0..6+ "
                     f"{s['count_distribution_0_to_6plus']}  mean RGB {s['mean_rgb']}")
    lines.append(f"CPU seconds: train {res['cpu_s']['train']}, sample {res['cpu_s']['sample_trained']}, "
                 f"measure one set {res['cpu_s']['measure_one_set']} ({res['setup']['torch_threads']} torch thread(s))")
    return "\n".join(lines)


def one_line(res: dict, out: Path | None = None) -> str:
    """The trained model's four distances, each beside the untrained model's and the data-vs-data floor."""
    rows, setup = res["distances_to_held_out"], res["setup"]
    parts = [f"{label} {rows['trained'][k]:{fmt}} (untrained {rows['untrained'][k]:{fmt}}, data vs data "
             f"{rows['data_vs_data'][k]:{fmt}})" for k, label, fmt in
             (("motion_w1", "motion W1", ".3f"), ("flicker_w1", "shape flicker W1", ".3f"),
              ("colour_tv", "colour TV", ".3f"), ("count_tv", "count TV", ".2f"))]
    where = f"; samples next to training clips: {out / res['media']['mp4']}" if out is not None and "media" in res else ""
    return (f"DiT on toy videos ({setup['model']}, patch {'x'.join(map(str, setup['patch']))}, {setup['steps']} steps, "
            f"{res['cpu_s']['train']:.0f} CPU-s): " + "; ".join(parts) + where)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.dit_toy_bench", description=__doc__.split("\n\n")[0])
    defaults = inspect.signature(run).parameters
    for flag, key, typ, help_ in (
            ("--steps", "steps", int, "training steps"),
            ("--samples", "samples", int, "samples, and clips per held-out half"),
            ("--train-clips", "train_clips", int, "training clips"),
            ("--model", "model", str, "DiT size (training/diffusion/dit.py SIZES)"),
            ("--patch", "patch_size", int, "spatial patch, px"),
            ("--temporal-patch", "temporal_patch", int, "frames per patch"),
            ("--attention", "attention", str, "full, or factorised (spatial and temporal blocks alternate)"),
            ("--lr", "lr", float, "AdamW learning rate"),
            ("--ema-decay", "ema_decay", float, "EMA decay per step"),
            ("--p-mean", "p_mean", float, "EDM training noise: ln σ ~ N(P_mean, P_std²)"),
            ("--p-std", "p_std", float, "EDM training noise: ln σ ~ N(P_mean, P_std²)"),
            ("--sampler-steps", "sampler_steps", int, "Heun steps"),
            ("--seed", "seed", int, "seed of the data, the init and the sampler")):
        ap.add_argument(flag, dest=key, type=typ, default=defaults[key].default,
                        help=f"{help_} (default {defaults[key].default})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU budget is per core)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for dit_toy.json and the media (default "
                                                              "bench/results)")
    ap.add_argument("--no-progress", action="store_true", help="no training progress bar")
    args = vars(ap.parse_args(argv))
    torch.set_num_threads(args.pop("threads"))
    out, progress = args.pop("out"), not args.pop("no_progress")
    res = run(held_out=args["samples"], out=out, progress=progress, **args)
    (out / "dit_toy.json").write_text(json.dumps(res, indent=1))
    print(table(res))
    print(one_line(res, out))
    res["summary"] = [{"metric": f"{k} {name}", "value": v} for name, r in res["distances_to_held_out"].items()
                      for k, v in r.items()]
    return res


if __name__ == "__main__":
    main()
