"""The autoencoder: diffusers AutoencoderKL, built from our geometry or loaded from a local path.

A checkpoint is either a diffusers folder (published SD/SDXL VAE, or one we
exported) or one of our training checkpoints (`*.pt`: the model config and
weights, EMA included). `load_autoencoder` reads both; `checkpoint_hash` names
the exact bytes so latents can say which autoencoder made them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from training.autoencoder.config import ModelConfig


def build_autoencoder(cfg: ModelConfig) -> AutoencoderKL:
    """A fresh AutoencoderKL with this geometry, or the published weights at cfg.pretrained."""
    if cfg.pretrained:
        return AutoencoderKL.from_pretrained(cfg.pretrained)
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
    )


def is_video_autoencoder(ae: torch.nn.Module) -> bool:
    """True for causal 3-D autoencoders (inputs (N, 3, T, H, W)); False for per-frame 2-D ones (N, 3, H, W)."""
    return not isinstance(ae, AutoencoderKL)


def encode_video(ae: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior (mean, std) of clips x (N, 3, T, H, W) in [-1, 1], each (N, C, T', H', W').

    A 2-D autoencoder encodes every frame on its own (T' = T); a video autoencoder
    compresses time as well (T' = 1 + (T - 1) / temporal factor).
    """
    if is_video_autoencoder(ae):
        post = ae.encode(x).latent_dist
        return post.mean, post.std
    n, c, t, h, w = x.shape
    post = ae.encode(x.transpose(1, 2).reshape(n * t, c, h, w)).latent_dist  # (N·T, C, h, w)
    fold = lambda z: z.reshape(n, t, *z.shape[1:]).transpose(1, 2)  # noqa: E731 - (N, C, T, h, w)
    return fold(post.mean), fold(post.std)


def decode_video(ae: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Clips (N, 3, T, H, W) from latents z (N, C, T', H', W'); the inverse of `encode_video`."""
    if is_video_autoencoder(ae):
        return ae.decode(z).sample
    n, c, t, h, w = z.shape
    x = ae.decode(z.transpose(1, 2).reshape(n * t, c, h, w)).sample  # (N·T, 3, H, W)
    return x.reshape(n, t, *x.shape[1:]).transpose(1, 2)


def downsampling_factor(ae: AutoencoderKL) -> int:
    """Pixels per latent cell along one side: 2 ** (levels - 1)."""
    return 2 ** (len(ae.config.block_out_channels) - 1)


def load_autoencoder(checkpoint: str | Path, use_ema: bool = True) -> AutoencoderKL:
    """Load a diffusers folder or one of our training checkpoints (EMA weights by default), in eval mode."""
    path = Path(checkpoint)
    if path.is_dir():
        ae = AutoencoderKL.from_pretrained(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        ae = AutoencoderKL.from_config(state["ae_config"])
        key = "ema" if use_ema and state.get("ema") is not None else "model"
        ae.load_state_dict(state[key])
    return ae.eval().requires_grad_(False)


def checkpoint_hash(checkpoint: str | Path) -> str:
    """sha256 (hex) of the checkpoint's bytes; for a folder, of its files' names and bytes in sorted order."""
    path = Path(checkpoint)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def export_diffusers(checkpoint: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """Write a training checkpoint's (EMA) weights as a diffusers folder (`AutoencoderKL.from_pretrained`)."""
    ae = load_autoencoder(checkpoint, use_ema=use_ema)
    ae.save_pretrained(str(out_dir))
    return Path(out_dir)
