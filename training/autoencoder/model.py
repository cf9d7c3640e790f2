"""The autoencoder: a causal video VAE (diffusers AutoencoderKLWan) or a per-frame 2-D AutoencoderKL.

Built from our geometry (ModelConfig), or loaded from a local path. A checkpoint
is either a diffusers folder (a published VAE — Wan 2.1, LTX-Video,
CogVideoX, Cosmos, SD — or one we exported; the class is the one named in its
config.json) or one of our training checkpoints (`*.pt`: the model class,
config and weights, EMA included). `load_autoencoder` reads both;
`checkpoint_hash` names the exact bytes so latents can say which autoencoder
made them. `encode_video` / `decode_video` hide the 2-D vs 3-D difference:
clips are always (N, 3, T, H, W), latents always (N, C, T', H', W').
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, AutoModel
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from training.autoencoder.config import ModelConfig
from training.autoencoder.shortcut import ShortcutKL, ShortcutWanVAE

OUR_CLASSES = {"ShortcutWanVAE": ShortcutWanVAE, "ShortcutKL": ShortcutKL}  # autoencoder classes of ours (not in diffusers' namespace)


def build_autoencoder(cfg: ModelConfig) -> torch.nn.Module:
    """A fresh autoencoder with this geometry (posterior log-variance set to cfg.init_logvar), or the published
    weights at cfg.pretrained."""
    if cfg.pretrained:
        return load_pretrained(cfg.pretrained)
    ae = _fresh_autoencoder(cfg)
    if cfg.init_logvar is not None:
        init_posterior_logvar(ae, cfg.init_logvar)
    if isinstance(ae, (ShortcutWanVAE, ShortcutKL)):
        ae.zero_init_outputs()
    return ae


@torch.no_grad()
def init_posterior_logvar(ae: torch.nn.Module, logvar: float) -> None:
    """Make the posterior's log-variance the constant `logvar` at init: zero the logvar rows of quant_conv (the
    1x1 conv whose output channels are [mean, logvar]) and set their bias. Training moves them from there."""
    conv = ae.quant_conv
    c = conv.out_channels // 2
    conv.weight[c:].zero_()
    conv.bias[c:].fill_(logvar)


def _fresh_autoencoder(cfg: ModelConfig) -> torch.nn.Module:
    levels = len(cfg.block_out_channels)
    if cfg.kind == "video":
        base = cfg.block_out_channels[0]
        n_time = cfg.temporal_factor.bit_length() - 1  # halvings of time: the last n_time levels
        if cfg.shortcut and cfg.latent_channels < 12:
            raise ValueError("model.shortcut needs latent_channels >= 12 (a quarter-resolution RGB in 2x2 x 3 channels)")
        return (ShortcutWanVAE if cfg.shortcut else AutoencoderKLWan)(
            base_dim=base,
            z_dim=cfg.latent_channels,
            dim_mult=[c // base for c in cfg.block_out_channels],
            num_res_blocks=cfg.layers_per_block,
            temperal_downsample=[i >= levels - 1 - n_time for i in range(levels - 1)],
            # the defaults are Wan 2.1's 16-channel statistics; ours are measured at encode time (stats.json)
            latents_mean=[0.0] * cfg.latent_channels,
            latents_std=[1.0] * cfg.latent_channels,
            scale_factor_temporal=cfg.temporal_factor,
            scale_factor_spatial=2 ** (levels - 1),
        )
    if cfg.shortcut and cfg.latent_channels < 3:
        raise ValueError("model.shortcut needs latent_channels >= 3 (each frame's RGB means)")
    return (ShortcutKL if cfg.shortcut else AutoencoderKL)(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
    )


def load_pretrained(folder: str | Path) -> torch.nn.Module:
    """A diffusers-format autoencoder folder, by the class its config.json names (`_class_name`; ours too)."""
    import json

    name = json.loads((Path(folder) / "config.json").read_text()).get("_class_name")
    if name in OUR_CLASSES:
        return OUR_CLASSES[name].from_pretrained(str(folder))
    return AutoModel.from_pretrained(str(folder))


def is_video_autoencoder(ae: torch.nn.Module) -> bool:
    """True for causal 3-D autoencoders (inputs (N, 3, T, H, W)); False for per-frame 2-D ones (N, 3, H, W)."""
    return not isinstance(ae, AutoencoderKL)


def compression(ae: torch.nn.Module) -> tuple[int, int]:
    """(temporal, spatial) factor: T = 1 + temporal * (T' - 1) frames and spatial x spatial pixels per latent cell."""
    if not is_video_autoencoder(ae):
        return 1, 2 ** (len(ae.config.block_out_channels) - 1)
    c = ae.config
    t = getattr(ae, "temporal_compression_ratio", None) or c.get("temporal_compression_ratio") or c.get("scale_factor_temporal")
    s = getattr(ae, "spatial_compression_ratio", None) or c.get("spatial_compression_ratio") or c.get("scale_factor_spatial")
    if not t or not s:
        raise ValueError(f"{type(ae).__name__}: cannot tell its compression factors from its config")
    return int(t), int(s)


def encode_video(ae: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior (mean, std) of clips x (N, 3, T, H, W) in [-1, 1], each (N, C, T', H', W').

    A 2-D autoencoder encodes every frame on its own (T' = T); a video autoencoder
    compresses time as well (T' = 1 + (T - 1) / temporal factor).
    """
    post = encode_posterior(ae, x)
    return post.mean, post.std


def encode_posterior(ae: torch.nn.Module, x: torch.Tensor):
    """The posterior distribution (diffusers DiagonalGaussianDistribution) of clips x, latents (N, C, T', H', W')."""
    if is_video_autoencoder(ae):
        return ae.encode(x).latent_dist
    n = x.shape[0]
    post = ae.encode(frames_of(x)).latent_dist  # over (N·T, C, h, w)
    return DiagonalGaussianDistribution(fold_time(post.parameters, n))  # over (N, C, T, h, w)


def fold_time(z: torch.Tensor, n: int) -> torch.Tensor:
    """(N·T, C, H, W) -> (N, C, T, H, W)."""
    return z.reshape(n, z.shape[0] // n, *z.shape[1:]).transpose(1, 2)


def frames_of(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N·T, C, H, W): every frame as an image, for per-frame losses and metrics."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def decode_video(ae: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Clips (N, 3, T, H, W) from latents z (N, C, T', H', W'); the inverse of `encode_video`."""
    if is_video_autoencoder(ae):
        return ae.decode(z).sample
    return fold_time(ae.decode(frames_of(z)).sample, z.shape[0])  # (N, 3, T, H, W)


def load_autoencoder(checkpoint: str | Path, use_ema: bool = True) -> torch.nn.Module:
    """Load a diffusers folder or one of our training checkpoints (EMA weights by default), in eval mode."""
    path = Path(checkpoint)
    if path.is_dir():
        ae = load_pretrained(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        name = state.get("ae_class", "AutoencoderKL")  # checkpoints before video: 2-D
        cls = OUR_CLASSES.get(name) or getattr(diffusers, name)
        ae = cls.from_config(state["ae_config"])
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
    """Write a training checkpoint's (EMA) weights as a diffusers folder (loads with `--pretrained`)."""
    ae = load_autoencoder(checkpoint, use_ema=use_ema)
    ae.save_pretrained(str(out_dir))
    return Path(out_dir)
