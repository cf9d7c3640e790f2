"""Samplers for D(x; σ) denoisers, k-diffusion style: small pure functions, one per algorithm.

All integrate the probability-flow ODE dx/dσ = (x - D(x; σ)) / σ (Karras et al. 2022, eq. 3 with
s(t)=1, σ(t)=t) down a decreasing σ schedule that ends at 0. A denoiser here is `model(x, sigma)` with
sigma of shape (N,); wrap conditions in with `guided` (classifier-free guidance).
"""
import math

import torch


def get_sigmas_karras(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                      device="cpu") -> torch.Tensor:
    """σ_i = (σ_max^{1/ρ} + i/(n-1)·(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ, then σ_n = 0   (Karras et al. 2022, eq. 5)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """ODE derivative dx/dσ = (x - D(x; σ)) / σ   (Karras et al. 2022, eq. 3 / Alg. 1 line 4)."""
    return (x - denoised) / sigma


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def _churn(x, sigma, n_steps, s_churn, s_tmin, s_tmax, s_noise, generator):
    """Raise the noise level σ → σ̂ = (1+γ)σ by adding fresh noise   (Karras et al. 2022, Alg. 2 lines 4-6)."""
    gamma = min(s_churn / n_steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + _randn_like(x, generator) * s_noise * (sigma_hat**2 - sigma**2).sqrt()
    return x, sigma_hat


@torch.no_grad()
def sample_euler(model, x, sigmas, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0, generator=None):
    """Euler steps with optional churn (Karras et al. 2022, Alg. 2 without the 2nd-order correction)."""
    s_in = x.new_ones(x.shape[0])
    n_steps = len(sigmas) - 1
    for i in range(n_steps):
        x, sigma_hat = _churn(x, sigmas[i], n_steps, s_churn, s_tmin, s_tmax, s_noise, generator)
        d = to_d(x, sigma_hat, model(x, sigma_hat * s_in))
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0, generator=None):
    """Heun's 2nd-order method with churn (Karras et al. 2022, Alg. 2); the last step to σ=0 is Euler."""
    s_in = x.new_ones(x.shape[0])
    n_steps = len(sigmas) - 1
    for i in range(n_steps):
        x, sigma_hat = _churn(x, sigmas[i], n_steps, s_churn, s_tmin, s_tmax, s_noise, generator)
        d = to_d(x, sigma_hat, model(x, sigma_hat * s_in))
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt  # Euler step (Alg. 2 line 8)
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in))
            x = x + (d + d_2) / 2 * dt  # trapezoidal correction (Alg. 2 lines 9-11)
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun}


def guided(denoiser, cond: torch.Tensor | None, cond_mask: torch.Tensor | None, scale: float = 1.0,
           text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None):
    """Classifier-free guidance: D_u + w·(D_c - D_u)   (Ho & Salimans 2022, eq. 6); D_u drops every condition,
    the caption included.

    w=1 is plain conditional sampling, w=0 unconditional; both halves run as one batch.
    """
    if (cond is None and text is None) or scale == 0.0:
        return lambda x, sigma: denoiser(x, sigma, None, None)
    if cond is not None and cond_mask is None:
        cond_mask = torch.ones_like(cond, dtype=torch.bool)
    if text is not None and text_mask is None:
        text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
    kw = {} if text is None else {"text": text, "text_mask": text_mask}
    if scale == 1.0:
        return lambda x, sigma: denoiser(x, sigma, cond, cond_mask, **kw)

    def model(x, sigma):
        x2, s2 = torch.cat([x, x]), torch.cat([sigma, sigma])
        c2 = m2 = None
        if cond is not None:
            c2 = torch.cat([cond, cond])
            m2 = torch.cat([cond_mask, torch.zeros_like(cond_mask)])  # second half: all conditions "missing"
        kw2 = {} if text is None else {"text": torch.cat([text, text]),
                                       "text_mask": torch.cat([text_mask, torch.zeros_like(text_mask)])}
        d_c, d_u = denoiser(x2, s2, c2, m2, **kw2).chunk(2)
        return d_u + scale * (d_c - d_u)

    return model


def _per_sample(t: torch.Tensor | None, n: int, ndim: int, device) -> torch.Tensor | None:
    """Broadcast one condition (ndim dims) to n samples, or pass a batch of them through."""
    if t is None:
        return None
    t = t.to(device)
    return t.unsqueeze(0).expand(n, *t.shape) if t.ndim == ndim else t


@torch.no_grad()
def sample(denoiser, shape: tuple[int, ...], n: int, cond: torch.Tensor | None = None,
           cond_mask: torch.Tensor | None = None, guidance: float = 1.0, steps: int = 32, sampler: str = "heun",
           sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, s_churn: float = 0.0,
           s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
           generator: torch.Generator | None = None, device="cpu", text: torch.Tensor | None = None,
           text_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Draw n latents of `shape` ((C, T', H', W') clips, or any shape) in the denoiser's normalised space,
    from x_0 ~ N(0, σ_max² I). cond (K,) / text (S, D_text) apply to all samples, or give one per sample."""
    sigmas = get_sigmas_karras(steps, sigma_min, sigma_max, rho, device=device).float()
    x = _randn_like(torch.empty((n, *shape), device=device), generator) * sigma_max
    cond, cond_mask = _per_sample(cond, n, 1, device), _per_sample(cond_mask, n, 1, device)
    text, text_mask = _per_sample(text, n, 2, device), _per_sample(text_mask, n, 1, device)
    model = guided(denoiser, cond, cond_mask, guidance, text, text_mask)
    return SAMPLERS[sampler](model, x, sigmas, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
                             s_noise=s_noise, generator=generator)
