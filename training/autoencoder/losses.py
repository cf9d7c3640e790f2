"""Autoencoder losses: reconstruction, perceptual, KL, PatchGAN, and the EQ-VAE and diffusability transforms.

Small callables, each one equation. Images are in [-1, 1], (N, 3, H, W); clips (N, 3, T, H, W)
and latents (N, C, T', H', W'). The transforms act on every frame of a clip alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.autoencoder.model import fold_time, frames_of


def kl_per_pixel(mean: torch.Tensor, logvar: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent elements, averaged over the batch, divided by pixel count.

    LDM sums both the reconstruction NLL and the KL over elements; we average the
    reconstruction over pixels, so the KL is divided by the same count to keep
    LDM's kl_weight (1e-6) meaning the same thing.
    """
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)  # (N,)
    return kl.mean() / num_pixels


_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0


def _gradients(x: torch.Tensor) -> torch.Tensor:
    """Sobel x/y derivatives per channel: (N, C, H, W) -> (N, 2C, H, W)."""
    c = x.shape[1]
    k = torch.stack([_SOBEL, _SOBEL.t()]).to(x)  # (2, 3, 3)
    k = k.repeat(c, 1, 1).unsqueeze(1)  # (2C, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)


class MultiScaleGradientLoss(nn.Module):
    """Weight-free perceptual stand-in: L1 between image gradients at scales 1, 1/2, 1/4.

    Penalises blur and lost edges, which plain L1 tolerates; used when no LPIPS
    weights are configured (none can be downloaded at run time).
    """

    def __init__(self, scales: int = 3):
        super().__init__()
        self.scales = scales

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros(())
        for s in range(self.scales):
            if s:
                if min(x.shape[-2:]) < 4:
                    break
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            loss = loss + (_gradients(x) - _gradients(y)).abs().mean()
        return loss


class ScriptedLPIPS(nn.Module):
    """LPIPS from a local TorchScript file: f(x, y) -> (N,) or (N,1,1,1) distances, inputs in [-1, 1].

    Make one where the weights are available, e.g.
    `torch.jit.trace(lpips.LPIPS(net="vgg"), (x, y)).save(path)`.
    """

    def __init__(self, path: str):
        super().__init__()
        self.net = torch.jit.load(path, map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x, y).mean()


def perceptual_loss(lpips_path: str | None) -> nn.Module:
    """LPIPS when its weights are given, else the weight-free multi-scale gradient loss."""
    return ScriptedLPIPS(lpips_path) if lpips_path else MultiScaleGradientLoss()


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix, Isola et al. 2017) as in taming/LDM: a logit per ~70 px patch."""

    def __init__(self, channels: int = 64, layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, layers + 1):
            nxt = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            seq += [nn.Conv2d(ch, nxt, 4, stride, 1, bias=False), nn.GroupNorm(min(32, nxt // 4), nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        seq.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, 1, h, w) patch logits


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017)."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def half_scale(x: torch.Tensor) -> torch.Tensor:
    """×0.5 spatial downscale (antialiased bilinear) of images (N, C, H, W) or of every frame of (N, C, T, H, W)."""
    if x.dim() == 5:
        return fold_time(half_scale(frames_of(x)), x.shape[0])
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)


# EQ-VAE (Kouzelis et al. 2025, arXiv 2502.09509): decode a transformed latent
# against the identically transformed image, so the latent space is equivariant
# to scaling and rotation. On clips the same transform applies to every frame.
def eq_transform(x: torch.Tensor, scale: bool, rot_k: int) -> torch.Tensor:
    """Apply ×0.5 downscale (if `scale`) then rot90 by `rot_k` quarter turns; images, clips and latents alike."""
    if scale:
        x = half_scale(x)
    if rot_k:
        x = torch.rot90(x, rot_k, dims=(-2, -1))
    return x


def causal_time_halve(x: torch.Tensor) -> torch.Tensor:
    """Halve time of (N, C, T, H, W) the causal way: frame 0 alone, then pairs averaged; T = 1 + 2k -> 1 + k.

    Applied to a causal latent (1 + k frames) and to its clip (1 + 4k frames) it
    keeps them aligned: latent frame j >= 1 covers clip frames 4j-3 .. 4j.
    """
    first, rest = x[:, :, :1], x[:, :, 1:]
    n, c, t, h, w = rest.shape
    return torch.cat([first, rest.reshape(n, c, t // 2, 2, h, w).mean(3)], dim=2)


def can_halve_time(z: torch.Tensor) -> bool:
    """True when the latent (N, C, T', H', W') has 1 + 2k frames, k >= 1."""
    return z.shape[2] > 1 and (z.shape[2] - 1) % 2 == 0


# Diffusability (Skorokhodov et al. 2025, "Improving the Diffusability of Autoencoders",
# arXiv 2502.14831, scale equivariance): the decoder must turn the downsampled latent into
# the equally downsampled clip, so the latent carries no high-frequency content the RGB
# does not have at that scale. Loss: d(D(down(z)), down(x)).
def diffusability_transform(x: torch.Tensor, temporal: bool) -> torch.Tensor:
    """×0.5 in space on every frame, and (if `temporal`) ×0.5 in time, causally; latents and clips alike."""
    x = half_scale(x)
    return causal_time_halve(x) if temporal else x


def sample_eq_transform(generator: torch.Generator) -> tuple[bool, int]:
    """A random non-identity transform: scale in {no, ×0.5}, rotation in {0, 90, 180, 270} degrees."""
    while True:
        scale = bool(torch.randint(0, 2, (), generator=generator))
        rot_k = int(torch.randint(0, 4, (), generator=generator))
        if scale or rot_k:
            return scale, rot_k
