"""EDM preconditioning and training loss (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"), written as the paper's equations.

Convention everywhere in this package: x_σ = y + σ·n with y the (normalised) data and n ~ N(0, I);
a *denoiser* is a callable D(x, σ, cond, cond_mask) -> estimate of y. Samplers only need that.
"""

import torch
from torch import nn


def _bcast(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample σ of shape (N,) to broadcast against x of shape (N, ...)."""
    return sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


class EDMPrecond(nn.Module):
    """D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))   (eq. 7 with Table 1, "EDM" column)."""

    def __init__(self, net: nn.Module, sigma_data: float = 1.0):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def c_skip(self, sigma: torch.Tensor) -> torch.Tensor:
        """c_skip = σ_d² / (σ² + σ_d²)   (Table 1)."""
        return self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def c_out(self, sigma: torch.Tensor) -> torch.Tensor:
        """c_out = σ·σ_d / sqrt(σ² + σ_d²)   (Table 1)."""
        return sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        """c_in = 1 / sqrt(σ² + σ_d²)   (Table 1)."""
        return 1 / (sigma**2 + self.sigma_data**2).sqrt()

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        """c_noise = ¼·ln σ   (Table 1)."""
        return sigma.log() / 4

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) = (σ² + σ_d²) / (σ·σ_d)² = 1 / c_out²   (Table 1; makes the effective target unit-variance, eq. 8)."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def forward(self, x, sigma, cond=None, cond_mask=None, **text):
        """x of any shape (N, ...): (N, C, H, W) frames or (N, C, T', H', W') clips; `text` goes to the net as is."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(x.shape[0])
        s = _bcast(sigma, x)
        f = self.net(self.c_in(s) * x, self.c_noise(sigma), cond, cond_mask, **text)  # F_θ: the raw network
        return self.c_skip(s) * x + self.c_out(s) * f.to(x.dtype)  # eq. 7


class RFPrecond(EDMPrecond):
    """Rectified flow (Liu et al. 2022; Esser et al. 2024) expressed as an EDM denoiser.

    RF interpolates x_t = (1-t)·y + t·n and regresses the velocity v = n - y. Dividing by (1-t) gives
    x_σ = y + σ·n with σ = t/(1-t), so the same samplers apply. With F ≈ v:
    D = x_t - t·F = x_σ/(1+σ) - σ/(1+σ)·F, i.e. c_in = c_skip = 1/(1+σ), c_out = -σ/(1+σ), c_noise = t.
    """

    def c_skip(self, sigma):
        return 1 / (1 + sigma)

    def c_out(self, sigma):
        return -sigma / (1 + sigma)

    def c_in(self, sigma):
        return 1 / (1 + sigma)

    def c_noise(self, sigma):
        return sigma / (1 + sigma)  # t ∈ (0, 1)

    def weight(self, sigma):
        """1/c_out²: the loss becomes ‖F - v‖², the plain RF velocity loss."""
        return ((1 + sigma) / sigma) ** 2


class LogNormalSigma:
    """ln σ ~ N(P_mean, P_std²)   (Table 1, "EDM" training noise distribution; P_mean=-1.2, P_std=1.2)."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2):
        self.p_mean, self.p_std = p_mean, p_std

    def __call__(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, generator=generator, device="cpu" if generator is not None else device)
        return (self.p_mean + self.p_std * z).exp().to(device)


class DenoisingLoss:
    """E_{σ,y,n} λ(σ)·‖D(y + σn; σ) - y‖²   (eq. 8); λ comes from the preconditioning, σ from `sigma_sampler`.

    EDM: LogNormalSigma(-1.2, 1.2) with EDMPrecond. Rectified flow with logit-normal t: ln σ = logit t, so
    LogNormalSigma(0, 1) with RFPrecond is exactly logit-normal(0, 1) t (Esser et al. 2024).
    """

    def __init__(self, sigma_sampler: LogNormalSigma):
        self.sigma_sampler = sigma_sampler

    def __call__(self, denoiser, y, cond=None, cond_mask=None, generator=None, **text) -> torch.Tensor:
        """Per-sample loss, shape (N,), for y of any shape (N, ...); `text` (text, text_mask) goes to the denoiser."""
        sigma = self.sigma_sampler(y.shape[0], device=y.device, generator=generator)
        n = torch.randn(y.shape, generator=generator, device="cpu" if generator is not None else y.device)
        n = n.to(device=y.device, dtype=y.dtype)
        s = _bcast(sigma, y)
        d = denoiser(y + s * n, sigma, cond, cond_mask, **text)
        w = _bcast(_precond(denoiser).weight(sigma), y)
        return (w * (d.float() - y) ** 2).flatten(1).mean(1)


def EDMLoss(p_mean: float = -1.2, p_std: float = 1.2) -> DenoisingLoss:
    """The EDM training loss: log-normal σ and λ(σ) from EDMPrecond (Karras et al. 2022, Table 1, eq. 8)."""
    return DenoisingLoss(LogNormalSigma(p_mean, p_std))


def RFLoss(loc: float = 0.0, scale: float = 1.0) -> DenoisingLoss:
    """Rectified-flow loss with logit-normal t (Esser et al. 2024, sec. 3.1), via ln σ = logit t."""
    return DenoisingLoss(LogNormalSigma(loc, scale))


def _precond(denoiser) -> EDMPrecond:
    """The EDMPrecond inside a (possibly DDP-wrapped) denoiser."""
    return denoiser.module if hasattr(denoiser, "module") else denoiser


__all__ = ["EDMPrecond", "RFPrecond", "LogNormalSigma", "DenoisingLoss", "EDMLoss", "RFLoss"]
