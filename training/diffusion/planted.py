"""The ablation's positive control in latent space: a fixed, transparent codec and a latents folder in which a
known share of clips carry a planted defect (pipelines/ablation_study.py builds the clips and scores them).

Why a codec of its own: the control must test the *instrument* (DiT training, sampling, decoding, scoring,
intervals), so the latent space has to keep the planted defect. `ThumbnailCodec` is an average-pool encoder and
a bilinear decoder: RGB means of s x s pixel cells, (N, 3, T, H, W) -> (N, 3, T, H/s, W/s). It keeps what a
cell mean keeps (brightness and colour, so black frames and dark clips survive) and loses texture (every
decoded clip is soft). Whether the study's own autoencoder keeps the defect is a separate measurement
(`run_planted`'s autoencoder check).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.diffusion.toy import write_latents

DEFECTS = ("black", "dim")  # what plant_defect can do to a clip


class ThumbnailCodec:
    """Encoder: s x s average pool per frame; decoder: bilinear upsampling by s. Latents (N, 3, T, H/s, W/s)."""

    def __init__(self, factor: int = 8):
        self.factor = factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [-1, 1] -> (N, 3, T, H/s, W/s)."""
        return F.avg_pool3d(x, (1, self.factor, self.factor))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, 3, T', H', W') -> (N, 3, T', s·H', s·W'), clamped to [-1, 1]."""
        n, c, t, h, w = z.shape
        frames = z.transpose(1, 2).reshape(n * t, c, h, w)  # (N·T, 3, H', W')
        up = F.interpolate(frames, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return up.reshape(n, t, c, h * self.factor, w * self.factor).transpose(1, 2).clamp(-1, 1)

    def to_dict(self) -> dict:
        return {"kind": "thumbnail", "factor": self.factor}


def plant_defect(clip: np.ndarray, kind: str) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same clip with the defect: "black" every frame black, "dim" gain 0.1."""
    if kind == "black":
        return np.zeros_like(clip)
    if kind == "dim":
        return (clip.astype(np.float32) * 0.1).round().astype(np.uint8)
    raise ValueError(f"unknown planted defect {kind!r}; known: {', '.join(DEFECTS)}")


def planted_mask(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """(n,) bool: exactly round(fraction·n) clips, chosen at random (numpy seed), carry the defect."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"planted fraction must be in [0, 1], got {fraction}")
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[:int(round(fraction * n))]] = True
    return mask


def to_unit_range(clips: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, 3) uint8 -> (N, 3, T, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def write_planted_latents(out_dir: str | Path, clips: np.ndarray, planted: np.ndarray, codec: ThumbnailCodec,
                          fps: float, defect: str, posterior_std: float = 0.02) -> Path:
    """Encode clips (N, T, H, W, 3) uint8 with the codec into a latents folder (the real contract) and write
    planted.json there: the codec, the defect, and which clip ids carry it (the truth)."""
    z = codec.encode(to_unit_range(clips))  # (N, 3, T, H/s, W/s)
    h, w = clips.shape[2:4]
    windows = [{"mean": z[i], "std": posterior_std, "clip_id": f"planted{i:05d}", "video_id": f"planted{i:05d}",
                "fps": fps, "height": h, "width": w} for i in range(len(z))]
    out = write_latents(out_dir, windows, ae_hash=f"thumbnail{codec.factor}")
    truth = {"codec": codec.to_dict(), "defect": defect, "fps": fps, "clips": len(clips),
             "planted": [w["clip_id"] for w, p in zip(windows, planted) if p]}
    (Path(out) / "planted.json").write_text(json.dumps(truth, indent=1))
    return out
