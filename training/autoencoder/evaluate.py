"""Evaluate an autoencoder on held-out clips: PSNR, SSIM, equivariance, latent statistics, RAPSD.

Images are [-1, 1]; PSNR/SSIM are computed on [0, 1] (data range 1).
Equivariance error (EQ-VAE, arXiv 2502.09509): PSNR of decode(tau(z)) against
tau(x) for tau = ×0.5 downscale and rot90; higher = more equivariant.
RAPSD (radially averaged power spectral density) of latents vs RGB shows how
much high-frequency content the latent carries relative to the pixels.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from training.autoencoder.data import load_clips
from training.autoencoder.losses import eq_transform
from training.autoencoder.model import load_autoencoder
from training.video_frames import read_frames, resize_center_crop, sample_indices, to_tensor


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1]: (N, C, H, W) x2 -> (N,)."""
    mse = ((x.clamp(-1, 1) - y.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image SSIM (skimage, Gaussian window as in Wang et al. 2004) of images in [-1, 1]."""
    a = ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    b = ((y.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    win = min(7, *a.shape[1:3]) // 2 * 2 + 1 if min(a.shape[1:3]) >= 7 else 3
    return np.array([
        structural_similarity(p, q, channel_axis=-1, data_range=1.0, win_size=win) for p, q in zip(a, b)
    ])


def rapsd(x: torch.Tensor, bins: int = 16) -> np.ndarray:
    """Radially averaged power spectrum of (N, C, H, W), averaged over N and C, normalised to sum 1.

    Bin k covers radial frequencies [k, k+1) * 0.5 / bins cycles/sample (0 .. Nyquist).
    """
    x = x.float() - x.float().mean(dim=(-2, -1), keepdim=True)
    p = torch.fft.fftshift(torch.fft.fft2(x).abs().pow(2), dim=(-2, -1)).mean(dim=(0, 1))  # (H, W)
    h, w = p.shape
    fy = torch.fft.fftshift(torch.fft.fftfreq(h))[:, None]
    fx = torch.fft.fftshift(torch.fft.fftfreq(w))[None, :]
    r = (fx.pow(2) + fy.pow(2)).sqrt()  # cycles/sample
    idx = (r / 0.5 * bins).long()
    out = torch.zeros(bins)
    for k in range(bins):
        m = idx == k
        out[k] = p[m].mean() if m.any() else 0.0
    return (out / out.sum().clamp_min(1e-20)).numpy()


@torch.no_grad()
def equivariance_psnr(ae, x: torch.Tensor, scale: bool, rot_k: int) -> torch.Tensor:
    """PSNR of decode(tau(E(x).mean)) vs tau(x), per image."""
    z = ae.encode(x).latent_dist.mean
    rec = ae.decode(eq_transform(z, scale, rot_k)).sample
    return psnr(rec, eq_transform(x, scale, rot_k))


def _ms(v) -> dict:
    v = np.asarray(v, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


@torch.no_grad()
def evaluate_images(ae, x: torch.Tensor, batch_size: int = 16) -> dict:
    """All metrics for a stack of images (N, 3, H, W) in [-1, 1]."""
    p, s, eq_s, eq_r, zs = [], [], [], [], []
    for chunk in x.split(batch_size):
        z = ae.encode(chunk).latent_dist.mean
        rec = ae.decode(z).sample
        p.append(psnr(rec, chunk))
        s.append(ssim(rec, chunk))
        eq_s.append(equivariance_psnr(ae, chunk, scale=True, rot_k=0))
        eq_r.append(equivariance_psnr(ae, chunk, scale=False, rot_k=1))
        zs.append(z)
    z = torch.cat(zs)  # (N, C, h, w)
    return {
        "num_images": int(x.shape[0]),
        "psnr_db": _ms(torch.cat(p).numpy()),
        "ssim": _ms(np.concatenate(s)),
        "equivariance_psnr_db": {"scale_0.5": _ms(torch.cat(eq_s).numpy()), "rot90": _ms(torch.cat(eq_r).numpy())},
        "latent_channels": {
            "mean": z.mean(dim=(0, 2, 3)).tolist(),
            "std": z.std(dim=(0, 2, 3)).tolist(),
        },
        "rapsd": {"latent": rapsd(z).tolist(), "rgb": rapsd(x).tolist(), "bins": "k/16*0.5 cycles/sample"},
    }


def heldout_frames(
    manifest: str, size: int, fps: float | None, frames_per_clip: int, max_clips: int,
    holdout_fraction: float, table: str = "curated", heldout: bool = True,
) -> torch.Tensor:
    """Center crops of evenly spaced frames from held-out clips: (N, 3, size, size)."""
    clips = load_clips(manifest, table, holdout_fraction, heldout=heldout)[:max_clips]
    out = []
    for c in clips:
        idx = sample_indices(c.start_frame, c.end_frame, c.fps, fps)
        pick = [idx[round(i * (len(idx) - 1) / max(1, frames_per_clip - 1))] for i in range(min(frames_per_clip, len(idx)))]
        try:
            out.append(resize_center_crop(to_tensor(read_frames(c.uri, sorted(set(pick)))), size))
        except Exception:  # noqa: BLE001 - an undecodable clip is left out of evaluation
            continue
    if not out:
        raise ValueError(f"no held-out frames could be read from {manifest}")
    return torch.cat(out).clamp(-1, 1)


def evaluate_autoencoder(
    checkpoint: str,
    manifest: str,
    out_json: str | None = None,
    *,
    size: int = 256,
    fps: float | None = 1.0,
    frames_per_clip: int = 4,
    max_clips: int = 64,
    holdout_fraction: float = 0.02,
    table: str = "curated",
    use_ema: bool = True,
) -> dict:
    """Held-out report as a dict (also written to out_json when given)."""
    ae = load_autoencoder(checkpoint, use_ema=use_ema)
    x = heldout_frames(manifest, size, fps, frames_per_clip, max_clips, holdout_fraction, table)
    report = {"checkpoint": str(checkpoint), "manifest": manifest, "size": size, **evaluate_images(ae, x)}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report, indent=2))
    return report


def bicubic_baseline_psnr(x: torch.Tensor, factor: int = 8) -> dict:
    """PSNR of bicubic upsampling from 1/factor resolution: the no-learning reference."""
    h, w = x.shape[-2:]
    small = torch.nn.functional.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True)
    up = torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic").clamp(-1, 1)
    return _ms(psnr(up, x).numpy())

