"""Train the latent autoencoder: one readable loop (nanoGPT style) over library pieces.

    loss = l1 * |x - D(z)| + perceptual(x, D(z)) + kl_weight * KL + gan_weight * G(D(z))   (after gan_start)
    with probability eq_prob (EQ-VAE): z -> tau(z), x -> tau(x), tau = ×0.5 scale and/or rot90

Checkpoints resume exactly: model, EMA, discriminator, both optimisers, step,
the trainer's RNG, torch's global RNG and the data position (per-role stream
positions, see data.py). Metrics go to OUT/metrics.jsonl, one line per
`log_every` steps.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.autoencoder.config import AEConfig, LossConfig
from training.autoencoder.data import ClipFrames, DataPosition, advance, load_clips
from training.autoencoder.losses import (
    PatchDiscriminator,
    eq_transform,
    hinge_d_loss,
    hinge_g_loss,
    kl_per_pixel,
    perceptual_loss,
    sample_eq_transform,
)
from training.autoencoder.model import build_autoencoder

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


def encode_sample(ae: AutoencoderKL, x: torch.Tensor, generator: torch.Generator):
    """Posterior of x and a reparameterised sample z = mean + std * eps (eps from `generator`, CPU)."""
    post = ae.encode(x).latent_dist
    eps = torch.randn(post.mean.shape, generator=generator).to(post.mean)
    return post, post.mean + post.std * eps  # z: (N, C, h, w)


def autoencoder_loss(
    ae: AutoencoderKL,
    x: torch.Tensor,
    cfg: LossConfig,
    perceptual: torch.nn.Module,
    generator: torch.Generator,
    disc: torch.nn.Module | None = None,
    use_gan: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """The generator-side loss for images x (N, 3, H, W); returns (loss, reconstruction, target, logs)."""
    post, z = encode_sample(ae, x, generator)
    target, eq = x, 0.0
    if cfg.eq_prob > 0 and torch.rand((), generator=generator).item() < cfg.eq_prob:
        scale, rot_k = sample_eq_transform(generator)
        z, target, eq = eq_transform(z, scale, rot_k), eq_transform(x, scale, rot_k), 1.0
    rec = ae.decode(z).sample  # (N, 3, H', W')
    l1 = (rec.float() - target.float()).abs().mean()
    perc = perceptual(rec.float(), target.float()) if cfg.perceptual_weight else rec.new_zeros(())
    kl = kl_per_pixel(post.mean.float(), post.logvar.float(), x[0].numel())
    loss = cfg.l1_weight * l1 + cfg.perceptual_weight * perc + cfg.kl_weight * kl
    logs = {"l1": l1.item(), "perceptual": float(perc.detach()), "kl": kl.item(), "eq": eq}
    if use_gan and disc is not None:
        g = hinge_g_loss(disc(rec.float()))
        loss = loss + cfg.gan_weight * g
        logs["g"] = g.item()
    logs["loss"] = loss.item()
    return loss, rec, target, logs


@dataclass
class Trainer:
    """Everything a checkpoint holds."""

    ae: AutoencoderKL
    ema: AutoencoderKL
    disc: PatchDiscriminator | None
    opt: torch.optim.Optimizer
    disc_opt: torch.optim.Optimizer | None
    generator: torch.Generator
    step: int = 0
    position: DataPosition = None  # type: ignore[assignment]

    def state_dict(self, cfg: AEConfig) -> dict:
        return {
            "config": cfg.to_dict(),
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
    """One optimiser step of the autoencoder (and of the discriminator once the GAN is on)."""
    t = cfg.train
    lr = t.lr * min(1.0, (trainer.step + 1) / max(1, t.warmup_steps))  # linear warmup, then constant
    for group in trainer.opt.param_groups:
        group["lr"] = lr
    use_gan = trainer.disc is not None and trainer.step >= cfg.loss.gan_start
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=t.bf16 and device.type == "cuda")
    with autocast:
        loss, rec, target, logs = autoencoder_loss(
            trainer.ae, x, cfg.loss, perceptual, trainer.generator, trainer.disc, use_gan
        )
    trainer.opt.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip:
        torch.nn.utils.clip_grad_norm_(trainer.ae.parameters(), t.grad_clip)
    trainer.opt.step()
    if use_gan:
        with autocast:
            d = hinge_d_loss(trainer.disc(target.float()), trainer.disc(rec.detach().float()))
        trainer.disc_opt.zero_grad(set_to_none=True)
        d.backward()
        trainer.disc_opt.step()
        logs["d"] = d.item()
    ema_update(trainer.ema, trainer.ae, t.ema_decay)
    trainer.step += 1
    logs["lr"] = lr
    return logs


def make_dataset(cfg: AEConfig) -> ClipFrames:
    d = cfg.data
    clips = load_clips(d.manifest, d.table, d.holdout_fraction, heldout=False, storage_options=d.storage_options)
    if not clips:
        raise ValueError(f"no training clips in {d.manifest} (table {d.table}, holdout {d.holdout_fraction})")
    return ClipFrames(
        clips, d.size, d.fps, d.frames_per_clip, d.min_crop_scale, seed=cfg.train.seed,
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
            x = batch["image"].to(device, non_blocking=True)
            logs = train_step(trainer, x, cfg, perceptual, device)
            trainer.position = advance(trainer.position, batch, workers)
            window_n += x.shape[0]
            if trainer.step % t.log_every == 0 or trainer.step == t.steps:
                now = time.perf_counter()
                logs.update(step=trainer.step, img_per_s=window_n / max(now - window_t, 1e-9),
                            failed_clips=dataset.num_failed)
                mf.write(json.dumps(logs) + "\n")
                mf.flush()
                bar.set_postfix(loss=f"{logs['loss']:.4f}", img_s=f"{logs['img_per_s']:.1f}")
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
