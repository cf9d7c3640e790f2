"""Train the latent autoencoder: one readable loop (nanoGPT style) over library pieces.

Inputs are clips x (N, 3, T, H, W), T = 1 + 4k frames for the causal video VAE (T = 1: images);
the 2-D autoencoder sees every frame on its own. Per-frame terms (perceptual, GAN) see frames.

    loss = l1 * |x - D(z)| + mse * (x - D(z))^2 + a * perceptual(x, D(z)) + kl_weight * KL
         + gan_weight * G(D(z))   (after gan_start)
         + a * diff_weight * (|down(x) - D(down(z))| + perceptual)   (diffusability, with probability diff_prob)
    with probability a * eq_prob (EQ-VAE): z -> tau(z), x -> tau(x), tau = ×0.5 scale and/or rot90 on every frame
    with probability image_prob: x -> x[:, :, :1] (the first frame: an image is a 1-frame video)
    a = aux_weight(step): 0 before loss.aux_start, then a linear ramp to 1 over loss.aux_ramp steps
    lr = learning_rate(step): linear warmup, then constant or cosine; EMA decay min(ema_decay, (1+t)/(10+t))

Checkpoints resume exactly: model, EMA, discriminator, both optimisers, step,
the trainer's RNG, torch's global RNG and the data position (per-role stream
positions, see data.py). Metrics go to OUT/metrics.jsonl, one line per
`log_every` steps.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.autoencoder.config import AEConfig, LossConfig, TrainConfig, check_config
from training.autoencoder.data import ClipWindows, DataPosition, advance, load_clips
from training.autoencoder.losses import (
    PatchDiscriminator,
    can_halve_time,
    diffusability_transform,
    eq_transform,
    hinge_d_loss,
    hinge_g_loss,
    kl_per_pixel,
    perceptual_loss,
    sample_eq_transform,
)
from training.autoencoder.model import build_autoencoder, decode_video, encode_posterior, frames_of

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA warm-up (as in timm/LDM): min(decay, (1 + step) / (10 + step)), so a short run's EMA is not its init."""
    return min(decay, (1 + step) / (10 + step))


def learning_rate(t: TrainConfig, step: int) -> float:
    """Linear warmup over warmup_steps, then constant or cosine from lr down to min_lr_ratio * lr at t.steps."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.lr_schedule == "constant":
        return t.lr
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def aux_weight(cfg: LossConfig, step: int) -> float:
    """Weight of the perceptual, EQ-VAE and diffusability terms: 0 before aux_start, then a ramp to 1."""
    if step < cfg.aux_start:
        return 0.0
    return min(1.0, (step - cfg.aux_start + 1) / max(1, cfg.aux_ramp))


def encode_sample(ae: torch.nn.Module, x: torch.Tensor, generator: torch.Generator):
    """Posterior of clips x and a reparameterised sample z = mean + std * eps (eps from `generator`, CPU)."""
    post = encode_posterior(ae, x)
    eps = torch.randn(post.mean.shape, generator=generator).to(post.mean)
    return post, post.mean + post.std * eps  # z: (N, C, T', h, w)


def reconstruction_terms(
    rec: torch.Tensor, target: torch.Tensor, cfg: LossConfig, perceptual: torch.nn.Module, aux: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L1, squared error over all values, perceptual over frames) of clips (N, 3, T, H, W)."""
    err = rec.float() - target.float()
    l1, mse = err.abs().mean(), err.pow(2).mean()
    perc = (perceptual(frames_of(rec.float()), frames_of(target.float()))
            if cfg.perceptual_weight and aux > 0 else l1.new_zeros(()))
    return l1, mse, perc


def autoencoder_loss(
    ae: torch.nn.Module,
    x: torch.Tensor,
    cfg: LossConfig,
    perceptual: torch.nn.Module,
    generator: torch.Generator,
    disc: torch.nn.Module | None = None,
    use_gan: bool = False,
    aux: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """The generator-side loss for clips x (N, 3, T, H, W); returns (loss, reconstruction, target, logs).

    `aux` in [0, 1] scales the perceptual and diffusability weights and the EQ-VAE probability (0: all off, not computed).
    """
    post, z = encode_sample(ae, x, generator)
    zt, target, eq = z, x, 0.0
    if aux > 0 and cfg.eq_prob > 0 and torch.rand((), generator=generator).item() < aux * cfg.eq_prob:
        scale, rot_k = sample_eq_transform(generator)
        zt, target, eq = eq_transform(z, scale, rot_k), eq_transform(x, scale, rot_k), 1.0
    rec = decode_video(ae, zt)  # (N, 3, T, H', W')
    l1, mse, perc = reconstruction_terms(rec, target, cfg, perceptual, aux)
    kl = kl_per_pixel(post.mean.float(), post.logvar.float(), x[0].numel())
    loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + aux * cfg.perceptual_weight * perc + cfg.kl_weight * kl
    logs = {"l1": l1.item(), "mse": mse.item(), "perceptual": float(perc.detach()), "kl": kl.item(), "eq": eq,
            "aux": aux}
    if aux > 0 and cfg.diff_weight > 0 and torch.rand((), generator=generator).item() < cfg.diff_prob:
        temporal = cfg.diff_temporal and can_halve_time(z)
        rec_d = decode_video(ae, diffusability_transform(z, temporal))  # (N, 3, T/2 or T, H/2, W/2)
        l1_d, mse_d, perc_d = reconstruction_terms(rec_d, diffusability_transform(x, temporal), cfg, perceptual)
        diff = cfg.l1_weight * l1_d + cfg.mse_weight * mse_d + cfg.perceptual_weight * perc_d
        loss = loss + aux * cfg.diff_weight * diff
        logs["diffusability"] = diff.item()
    if use_gan and disc is not None:
        g = hinge_g_loss(disc(frames_of(rec.float())))
        loss = loss + cfg.gan_weight * g
        logs["g"] = g.item()
    logs["loss"] = loss.item()
    return loss, rec, target, logs


@dataclass
class Trainer:
    """Everything a checkpoint holds."""

    ae: torch.nn.Module
    ema: torch.nn.Module
    disc: PatchDiscriminator | None
    opt: torch.optim.Optimizer
    disc_opt: torch.optim.Optimizer | None
    generator: torch.Generator
    step: int = 0
    position: DataPosition = None  # type: ignore[assignment]

    def state_dict(self, cfg: AEConfig) -> dict:
        return {
            "config": cfg.to_dict(),
            "ae_class": type(self.ae).__name__,
            "ae_config": dict(self.ae.config),
            "model": self.ae.state_dict(),
            "ema": self.ema.state_dict(),
            "disc": self.disc.state_dict() if self.disc else None,
            "opt": self.opt.state_dict(),
            "disc_opt": self.disc_opt.state_dict() if self.disc_opt else None,
            "step": self.step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "data_position": (self.position or DataPosition()).to_dict(),
        }

    def load_state_dict(self, s: dict) -> None:
        self.ae.load_state_dict(s["model"])
        self.ema.load_state_dict(s["ema"])
        if self.disc and s["disc"]:
            self.disc.load_state_dict(s["disc"])
            self.disc_opt.load_state_dict(s["disc_opt"])
        self.opt.load_state_dict(s["opt"])
        self.step = s["step"]
        self.generator.set_state(s["generator"])
        torch.set_rng_state(s["torch_rng"])
        if s["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda_rng"])
        self.position = DataPosition.from_dict(s["data_position"])


def make_trainer(cfg: AEConfig, device: torch.device) -> Trainer:
    check_config(cfg)
    torch.manual_seed(cfg.train.seed)
    ae = build_autoencoder(cfg.model).to(device).train()
    ema = copy.deepcopy(ae).eval().requires_grad_(False)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.train.lr, betas=cfg.train.betas, weight_decay=cfg.train.weight_decay)
    disc = disc_opt = None
    if cfg.loss.gan_weight > 0:
        disc = PatchDiscriminator(layers=cfg.loss.disc_layers).to(device).train()
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.loss.disc_lr, betas=(0.5, 0.9))
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    return Trainer(ae, ema, disc, opt, disc_opt, gen, 0, DataPosition())


def save_checkpoint(path: Path, trainer: Trainer, cfg: AEConfig) -> Path:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save(trainer.state_dict(cfg), tmp)
    os.replace(tmp, path)
    return path


def train_step(trainer: Trainer, x: torch.Tensor, cfg: AEConfig, perceptual: torch.nn.Module, device: torch.device) -> dict:
    """One optimiser step on clips x (N, 3, T, H, W) (and of the discriminator once the GAN is on)."""
    t = cfg.train
    if cfg.data.image_prob > 0 and torch.rand((), generator=trainer.generator).item() < cfg.data.image_prob:
        x = x[:, :, :1]  # (N, 3, 1, H, W): images, the causal model's first-frame path
    lr = learning_rate(t, trainer.step)
    for group in trainer.opt.param_groups:
        group["lr"] = lr
    use_gan = trainer.disc is not None and trainer.step >= cfg.loss.gan_start
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=t.bf16 and device.type == "cuda")
    with autocast:
        loss, rec, target, logs = autoencoder_loss(
            trainer.ae, x, cfg.loss, perceptual, trainer.generator, trainer.disc, use_gan,
            aux_weight(cfg.loss, trainer.step),
        )
    trainer.opt.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip:
        torch.nn.utils.clip_grad_norm_(trainer.ae.parameters(), t.grad_clip)
    trainer.opt.step()
    if use_gan:
        with autocast:
            d = hinge_d_loss(trainer.disc(frames_of(target.float())), trainer.disc(frames_of(rec.detach().float())))
        trainer.disc_opt.zero_grad(set_to_none=True)
        d.backward()
        trainer.disc_opt.step()
        logs["d"] = d.item()
    ema_update(trainer.ema, trainer.ae, ema_decay_at(trainer.step, t.ema_decay))
    trainer.step += 1
    logs["lr"] = lr
    return logs


def make_dataset(cfg: AEConfig) -> ClipWindows:
    d = cfg.data
    clips = load_clips(d.manifest, d.table, d.holdout_fraction, heldout=False, storage_options=d.storage_options)
    if not clips:
        raise ValueError(f"no training clips in {d.manifest} (table {d.table}, holdout {d.holdout_fraction})")
    return ClipWindows(
        clips, d.size, d.fps, d.clip_frames, d.windows_per_clip, d.min_crop_scale, seed=cfg.train.seed,
        storage_options=d.storage_options,
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint we resume from, so the curve has no duplicates."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def train_autoencoder(cfg: AEConfig) -> Path:
    """Train (or resume from OUT/checkpoint.pt) until cfg.train.steps; return the checkpoint path."""
    t = cfg.train
    out = Path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    device = pick_device(t.device)
    trainer = make_trainer(cfg, device)
    ckpt = out / CHECKPOINT_NAME
    metrics = out / "metrics.jsonl"
    if ckpt.exists():
        trainer.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        log.info("resumed from %s at step %d", ckpt, trainer.step)
    _truncate_metrics(metrics, trainer.step)
    if trainer.step >= t.steps:
        return ckpt

    perceptual = perceptual_loss(cfg.loss.lpips_path).to(device)
    dataset = make_dataset(cfg)
    dataset.resume_from(trainer.position)
    workers = cfg.data.num_workers
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    bar = tqdm(total=t.steps, initial=trainer.step, disable=not t.progress, desc="train-ae", unit="step")
    window_t, window_n = time.perf_counter(), 0
    with metrics.open("a") as mf:
        for batch in loader:
            x = batch["video"].to(device, non_blocking=True)  # (N, 3, T, H, W)
            logs = train_step(trainer, x, cfg, perceptual, device)
            trainer.position = advance(trainer.position, batch, workers)
            window_n += x.shape[0]
            if trainer.step % t.log_every == 0 or trainer.step == t.steps:
                now = time.perf_counter()
                logs.update(step=trainer.step, clips_per_s=window_n / max(now - window_t, 1e-9),
                            failed_clips=dataset.num_failed)
                mf.write(json.dumps(logs) + "\n")
                mf.flush()
                bar.set_postfix(loss=f"{logs['loss']:.4f}", clips_s=f"{logs['clips_per_s']:.2f}")
                window_t, window_n = now, 0
            bar.update(1)
            if trainer.step % t.ckpt_every == 0 or trainer.step >= t.steps:
                save_checkpoint(ckpt, trainer, cfg)
            if trainer.step >= t.steps:
                break
    bar.close()
    if trainer.step < t.steps:
        raise RuntimeError(f"data ran out at step {trainer.step} of {t.steps} (all clips failed?)")
    return ckpt
