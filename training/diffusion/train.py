"""Train the spatiotemporal DiT denoiser on video latents: one readable page (nanoGPT style), config as plain data.

AdamW + EMA, EDM (or rectified-flow) loss, bf16 autocast on CUDA, optional gradient checkpointing, tqdm with
loss and throughput, JSONL metrics, and checkpoints that resume exactly: every step re-seeds the RNG from
(seed, step, rank), so a resumed run draws the same batches, σ's, noise and dropout as an uninterrupted one.
Each step's batch comes from one shape bucket (C, T', H', W'), so clips of several lengths and aspect ratios,
and images (T' = 1), train in one model. With a text encoder configured, every distinct caption is encoded
once at start; the DiT cross-attends to the caption tokens.
Multi-GPU: launch with `torchrun --nproc_per_node=G`; WORLD_SIZE in the environment switches DDP on.
"""
import copy
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from training.diffusion.data import CONDITIONS, CondStats, LatentDataset, LatentStats
from training.diffusion.dit import DiT, DiTConfig
from training.diffusion.edm import EDMLoss, EDMPrecond, RFLoss, RFPrecond
from training.text_encoders import TextEncoder, TextEncoderConfig, encode_captions, lookup


@dataclass
class TrainConfig:
    latents_dir: str = ""
    out_dir: str = "runs/diffusion"
    model: str = "tiny"  # a key of dit.SIZES
    patch_size: int = 2  # spatial patch side, latent cells
    temporal_patch: int = 1  # latent frames per patch
    attention: str = "full"  # "full" over all tokens, or "factorised" spatial/temporal blocks (long clips)
    grad_checkpointing: bool = False  # trade compute for activation memory
    text_encoder: dict | None = None  # TextEncoderConfig fields (kind, path, ...); None = no caption conditioning
    objective: str = "edm"  # "edm" (Karras et al. 2022) or "rf" (rectified flow, logit-normal t)
    sigma_data: float = 1.0  # latents are normalised to unit variance per channel
    p_mean: float = -1.2
    p_std: float = 1.2
    p_uncond: float = 0.1
    conditions: tuple[str, ...] = CONDITIONS
    steps: int = 1000
    batch_size: int = 64  # global, split across ranks
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 500
    device: str = "auto"
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown train-diffusion config key(s): {sorted(unknown)}")
        d = dict(d)
        if "conditions" in d:
            d["conditions"] = tuple(d["conditions"])
        if d.get("text_encoder"):
            TextEncoderConfig.from_dict(d["text_encoder"])  # fail fast on a bad kind or path
        return cls(**d)


def build_denoiser(dit_cfg: DiTConfig, objective: str = "edm", sigma_data: float = 1.0) -> EDMPrecond:
    """DiT wrapped in the objective's preconditioning."""
    precond = {"edm": EDMPrecond, "rf": RFPrecond}[objective]
    return precond(DiT(dit_cfg), sigma_data=sigma_data)


def load_checkpoint(path: str | Path, ema: bool = True, device="cpu"):
    """(denoiser in eval mode, checkpoint dict) from a train() checkpoint; EMA weights by default."""
    ck = torch.load(path, map_location=device, weights_only=True)
    if "latent_shapes" not in ck:
        raise ValueError(f"{path}: a checkpoint of the per-frame DiT (before video latents); retrain on video latents")
    net = build_denoiser(DiTConfig(**{**ck["dit"], "grad_checkpointing": False}), ck["config"]["objective"],
                         ck["config"]["sigma_data"]).to(device)
    net.load_state_dict(ck["ema" if ema else "model"])
    return net.eval().requires_grad_(False), ck


def _save_atomic(obj, path: Path):
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint


def train(cfg: TrainConfig) -> dict:
    """Train (or resume, if out_dir/ckpt.pt exists) to cfg.steps; returns {"losses": this run's per-step losses, ...}."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp:  # standard torchrun init path
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    if cfg.device == "auto":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    else:
        device = cfg.device
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = LatentDataset(cfg.latents_dir, cfg.conditions)
    sampler = data.batch_sampler(cfg.batch_size // world, cfg.seed)
    text_tokens = text_mask = None
    if cfg.text_encoder:  # every distinct caption once; rows look theirs up by index
        encoder = TextEncoder(TextEncoderConfig.from_dict(cfg.text_encoder))
        text_tokens, text_mask = encode_captions(encoder, data.captions)
        text_tokens, text_mask = text_tokens.to(device), text_mask.to(device)
        text_dim = encoder.dim
        del encoder
    dit_cfg = DiTConfig.named(cfg.model, in_channels=data.channels, patch_size=cfg.patch_size,
                              temporal_patch=cfg.temporal_patch, num_conds=len(cfg.conditions), p_uncond=cfg.p_uncond,
                              attention=cfg.attention, text_dim=text_dim if cfg.text_encoder else 0,
                              grad_checkpointing=cfg.grad_checkpointing)
    torch.manual_seed(cfg.seed)  # identical init on every rank
    model = build_denoiser(dit_cfg, cfg.objective, cfg.sigma_data).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    loss_fn = EDMLoss(cfg.p_mean, cfg.p_std) if cfg.objective == "edm" else RFLoss()

    step, ckpt_path, metrics_path = 0, out / "ckpt.pt", out / "metrics.jsonl"
    if ckpt_path.exists():  # resume exactly where the checkpoint left off
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"]), ema.load_state_dict(ck["ema"]), opt.load_state_dict(ck["opt"])
        step = ck["step"]
        if rank == 0 and metrics_path.exists():  # drop metrics logged after the checkpoint
            lines = [ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= step]
            metrics_path.write_text("".join(ln + "\n" for ln in lines))
    train_model = torch.nn.parallel.DistributedDataParallel(model) if ddp else model
    local_batch = cfg.batch_size // world

    def checkpoint():
        if rank == 0:
            _save_atomic({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                          "step": step, "config": asdict(cfg), "dit": asdict(dit_cfg),
                          "latent_stats": data.stats.to_dict(), "cond_stats": data.cond_stats.to_dict(),
                          "latent_shapes": [[list(k), len(v)] for k, v in sampler.buckets.items()],
                          "fps": data.rows[0]["fps"]}, ckpt_path)

    losses = []
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress or rank != 0, desc="train-diffusion")
    t0, seen, tokens_seen = time.perf_counter(), 0, 0
    while step < cfg.steps:
        torch.manual_seed(cfg.seed * 1_000_003 + step * world + rank)  # this step's randomness, resumable
        batch = data.batch(sampler.sample(local_batch))  # one shape bucket per step
        x, cond, mask = (batch[k].to(device, non_blocking=True) for k in ("x", "cond", "cond_mask"))
        text = {}
        if text_tokens is not None:
            tok, tmask = lookup(text_tokens, text_mask, batch["caption"].to(device))
            text = {"text": tok, "text_mask": tmask}
        for g in opt.param_groups:  # linear warmup, then constant (DiT trains at constant lr)
            g["lr"] = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            loss = loss_fn(train_model, x, cond, mask, **text).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():  # EMA of the weights: θ_ema ← β·θ_ema + (1-β)·θ
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - cfg.ema_decay)
        step += 1
        seen += local_batch * world
        tokens_seen += local_batch * world * _tokens(x.shape[2:], dit_cfg)
        losses.append(loss.item())
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
            rate = seen / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", samples_per_s=f"{rate:.1f}")
            with metrics_path.open("a") as f:
                f.write(json.dumps({"step": step, "loss": losses[-1], "grad_norm": float(grad_norm),
                                    "lr": opt.param_groups[0]["lr"], "samples_per_s": rate,
                                    "tokens_per_s": tokens_seen / (time.perf_counter() - t0)}) + "\n")
        bar.update(1)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    bar.close()
    elapsed = time.perf_counter() - t0
    if ddp:
        dist.destroy_process_group()
    return {"losses": losses, "step": step, "checkpoint": str(ckpt_path), "seconds": elapsed,
            "samples_per_s": seen / elapsed if elapsed > 0 else None,
            "tokens_per_s": tokens_seen / elapsed if elapsed > 0 else None}


def _tokens(grid: tuple[int, int, int], cfg: DiTConfig) -> int:
    """Tokens of one (T', H', W') latent after padding to whole patches."""
    t, h, w = (-(-s // p) for s, p in zip(grid, (cfg.temporal_patch, cfg.patch_size, cfg.patch_size)))
    return t * h * w


def latent_stats_of(ck: dict) -> LatentStats:
    """LatentStats stored in a checkpoint (to denormalise samples for the decoder)."""
    d = ck["latent_stats"]
    return LatentStats(torch.tensor(d["mean"]), torch.tensor(d["std"]), d.get("ae_hash"), d.get("count"))


def cond_stats_of(ck: dict) -> CondStats:
    return CondStats.from_dict(ck["cond_stats"])


def latent_shapes_of(ck: dict) -> list[tuple[tuple[int, ...], int]]:
    """The (C, T', H', W') buckets the checkpoint was trained on, with their window counts, most common first."""
    return sorted(((tuple(s), n) for s, n in ck["latent_shapes"]), key=lambda sn: -sn[1])
