"""Evaluate an autoencoder on held-out clips: per-frame PSNR/SSIM, flicker, compression, equivariance, spectra.

Clips are (N, 3, T, H, W) in [-1, 1]; PSNR/SSIM are computed per frame on [0, 1] (data range 1),
as TokenBench does. The bar to clear: `bicubic_psnr_db`, the same frames area-downsampled to the
latent's spatial size and upsampled back with bicubic interpolation (no learning, 3 values per cell). Flicker (temporal consistency): mean |Δ reconstruction − Δ original| between
consecutive frames, on [0, 1]; 0 = the reconstruction changes exactly as the clip does.
Compression: RGB values per latent value, and latent floats per pixel (C·T'·H'·W' / (T·H·W)).
Equivariance error (EQ-VAE, arXiv 2502.09509): PSNR of decode(tau(z)) against tau(x) for
tau = ×0.5 downscale and rot90 on every frame; higher = more equivariant.
Spectra: the RAPSD power-law slope α (P ∝ f^-α, training/spectral.py) of the latents (each channel
standardised) vs of the RGB frames; latents flatter than RGB carry excess high-frequency energy,
which the diffusability term is meant to remove (Skorokhodov et al. 2025).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from training.autoencoder.data import load_clips
from training.autoencoder.losses import eq_transform
from training.autoencoder.model import compression, decode_video, encode_video, frames_of, load_autoencoder
from training.spectral import fit_power_law, rapsd
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


def flicker(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-clip mean |Δrec − Δx| over consecutive frames of clips (N, 3, T, H, W) in [-1, 1], on [0, 1]: (N,)."""
    d_rec = rec.clamp(-1, 1).diff(dim=2)  # (N, 3, T-1, H, W)
    d_x = x.clamp(-1, 1).diff(dim=2)
    return ((d_rec - d_x).abs() / 2).flatten(1).mean(1)


def spectral_slope(x: torch.Tensor, standardise: bool = False) -> dict:
    """RAPSD power-law fit of (N, C, T, H, W) over its frames: {"alpha", "freqs", "power"}."""
    x = x.double()
    if standardise:  # each latent channel counts alike, whatever its scale
        x = (x - x.mean(dim=(0, 2, 3, 4), keepdim=True)) / x.std(dim=(0, 2, 3, 4), keepdim=True).clamp_min(1e-12)
    f, p = rapsd(x.cpu().numpy())
    return {"alpha": fit_power_law(f, p)["alpha"], "freqs": f.tolist(), "power": p.tolist()}


@torch.no_grad()
def equivariance_psnr(ae, x: torch.Tensor, scale: bool, rot_k: int) -> torch.Tensor:
    """PSNR of decode(tau(E(x).mean)) vs tau(x), per frame of clips (N, 3, T, H, W)."""
    z, _ = encode_video(ae, x)
    rec = decode_video(ae, eq_transform(z, scale, rot_k))
    return psnr(frames_of(rec), frames_of(eq_transform(x, scale, rot_k)))


def bicubic_psnr(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The no-learning reference: per-image PSNR of images (N, C, H, W) in [-1, 1] area-downsampled to `size`
    (the latent's h, w) and upsampled back with bicubic interpolation (clamped to [-1, 1]): (N,)."""
    small = F.interpolate(x, size=size, mode="area")  # (N, C, h, w): each value the mean of its cell
    up = F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False)  # (N, C, H, W)
    return psnr(up, x)


def _ms(v) -> dict:
    v = np.asarray(v, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def compression_report(ae, x: torch.Tensor, z: torch.Tensor) -> dict:
    """Latent vs pixel sizes of clips x (N, 3, T, H, W) encoded to z (N, C, T', H', W')."""
    t, s = compression(ae)
    n, _, frames, h, w = x.shape
    latent = z[0].numel()  # C·T'·H'·W'
    return {
        "temporal_factor": t, "spatial_factor": s, "clip_shape": list(x.shape[1:]), "latent_shape": list(z.shape[1:]),
        "factor": x[0].numel() / latent,  # RGB values per latent value
        "floats_per_pixel": latent / (frames * h * w),
    }


@torch.no_grad()
def evaluate_clips(ae, x: torch.Tensor, batch_size: int = 4) -> dict:
    """All metrics for clips (N, 3, T, H, W) in [-1, 1]."""
    p, bic, s, fl, eq_s, eq_r, zs = [], [], [], [], [], [], []
    for chunk in x.split(batch_size):
        z, _ = encode_video(ae, chunk)  # (n, C, T', H', W')
        rec = decode_video(ae, z)  # (n, 3, T, H, W)
        p.append(psnr(frames_of(rec), frames_of(chunk)))
        bic.append(bicubic_psnr(frames_of(chunk), tuple(z.shape[-2:])))  # from the latent's spatial size
        s.append(ssim(frames_of(rec), frames_of(chunk)))
        if chunk.shape[2] > 1:
            fl.append(flicker(rec, chunk))
        eq_s.append(equivariance_psnr(ae, chunk, scale=True, rot_k=0))
        eq_r.append(equivariance_psnr(ae, chunk, scale=False, rot_k=1))
        zs.append(z)
    z = torch.cat(zs)
    latent, rgb = spectral_slope(z, standardise=True), spectral_slope(x)
    return {
        "num_clips": int(x.shape[0]),
        "num_frames": int(x.shape[0] * x.shape[2]),
        "psnr_db": _ms(torch.cat(p).numpy()),  # per frame
        "bicubic_psnr_db": _ms(torch.cat(bic).numpy()),  # per frame: area down to the latent's h x w, bicubic up
        "ssim": _ms(np.concatenate(s)),  # per frame
        "flicker": _ms(torch.cat(fl).numpy()) if fl else None,  # per clip; None for single frames
        "compression": compression_report(ae, x, z),
        "equivariance_psnr_db": {"scale_0.5": _ms(torch.cat(eq_s).numpy()), "rot90": _ms(torch.cat(eq_r).numpy())},
        "latent_channels": {"mean": z.mean(dim=(0, 2, 3, 4)).tolist(), "std": z.std(dim=(0, 2, 3, 4)).tolist()},
        "spectrum": {"latent_alpha": latent["alpha"], "rgb_alpha": rgb["alpha"], "latent": latent, "rgb": rgb},
    }


def middle_window(indices: list[int], frames: int) -> list[int] | None:
    """The `frames` consecutive entries in the middle of `indices`; None if there are fewer."""
    if len(indices) < frames:
        return None
    start = (len(indices) - frames) // 2
    return indices[start : start + frames]


def heldout_clips(
    manifest: str, size: int, fps: float | None, frames: int, max_clips: int,
    holdout_fraction: float, table: str = "curated", heldout: bool = True,
) -> torch.Tensor:
    """Center crops of the middle window (T = `frames` at `fps`) of held-out clips, inside their content boxes:
    (N, 3, T, size, size).

    Clips shorter than a window, or that cannot be decoded, are left out.
    """
    clips = load_clips(manifest, table, holdout_fraction, heldout=heldout)
    out = []
    for c in clips:
        idx = middle_window(sample_indices(c.start_frame, c.end_frame, c.fps, fps), frames)
        if idx is None:
            continue
        try:
            out.append(resize_center_crop(to_tensor(read_frames(c.uri, idx, box=c.box)), size).transpose(0, 1))
        except Exception:  # noqa: BLE001 - an undecodable clip is left out of evaluation
            continue
        if len(out) == max_clips:
            break
    if not out:
        raise ValueError(f"no held-out clip of {frames} frames at {fps} fps could be read from {manifest}")
    return torch.stack(out).clamp(-1, 1)  # (N, 3, T, size, size)


def evaluate_autoencoder(
    checkpoint: str,
    manifest: str,
    out_json: str | None = None,
    *,
    size: int = 256,
    fps: float | None = 8.0,
    frames: int = 17,
    max_clips: int = 64,
    holdout_fraction: float = 0.02,
    table: str = "curated",
    use_ema: bool = True,
) -> dict:
    """Held-out report as a dict (also written to out_json when given)."""
    ae = load_autoencoder(checkpoint, use_ema=use_ema)
    x = heldout_clips(manifest, size, fps, frames, max_clips, holdout_fraction, table)
    report = {"checkpoint": str(checkpoint), "autoencoder": type(ae).__name__, "manifest": manifest,
              "size": size, "fps": fps, "frames": frames, **evaluate_clips(ae, x)}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report, indent=2))
    return report


