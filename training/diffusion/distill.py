"""Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion
Models", Alg. 2) in EDM's σ-parametrisation: each round, a student learns to take in ONE deterministic step
what its teacher takes in TWO, halving the sampling steps (e.g. 32 → 16 → 8 → 4).

In σ-space the DDIM step is the Euler step of the probability-flow ODE: x' = D + (σ'/σ)(x - D). The
student's target x̃ is the D that makes its single step land on the teacher's two-step result (Alg. 2:
x̃ = (x'' - (σ''/σ)·x) / (1 - σ''/σ)).
"""
import copy
from collections.abc import Callable

import torch

from training.diffusion.edm import _bcast, _precond


def nested_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  device="cpu") -> torch.Tensor:
    """Karras' ρ-curve at u = i/steps (i < steps), then σ = 0: the 2K-step grid contains the K-step grid."""
    u = torch.arange(steps, dtype=torch.float64) / steps
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + u * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float().to(device)


def ddim_step(x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, denoised: torch.Tensor):
    """Deterministic DDIM = Euler step on dx/dσ = (x - D)/σ: x' = D + (σ'/σ)·(x - D)   (Song et al. 2021)."""
    return denoised + _bcast(sigma_next / sigma, x) * (x - denoised)


@torch.no_grad()
def sample_ddim(denoiser, x: torch.Tensor, sigmas: torch.Tensor, cond=None, cond_mask=None) -> torch.Tensor:
    """Run DDIM steps down `sigmas` (ending at 0) from x at σ = sigmas[0]."""
    for i in range(len(sigmas) - 1):
        s = sigmas[i].expand(x.shape[0])
        x = ddim_step(x, s, sigmas[i + 1].expand(x.shape[0]), denoiser(x, s, cond, cond_mask))
    return x


def distill_round(teacher, student: torch.nn.Module, data_sampler: Callable[[int], dict], student_steps: int,
                  iters: int = 1000, batch_size: int = 256, lr: float = 1e-3, **sigma_kw) -> list[float]:
    """Train `student` so one DDIM step on the K-step grid matches two teacher steps on the 2K grid (Alg. 2)."""
    grid_s, grid_t = nested_sigmas(student_steps, **sigma_kw), nested_sigmas(2 * student_steps, **sigma_kw)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    losses = []
    for _ in range(iters):
        b = data_sampler(batch_size)
        y, cond, mask = b["x"], b.get("cond"), b.get("cond_mask")
        i = torch.randint(student_steps, (y.shape[0],))
        s_t, s_mid, s_next = grid_s[i], grid_t[2 * i + 1], grid_s[i + 1]  # σ_t > σ_t' > σ_t''
        x_t = y + _bcast(s_t, y) * torch.randn_like(y)
        with torch.no_grad():  # two teacher DDIM steps
            x_mid = ddim_step(x_t, s_t, s_mid, teacher(x_t, s_t, cond, mask))
            x_next = ddim_step(x_mid, s_mid, s_next, teacher(x_mid, s_mid, cond, mask))
            r = _bcast(s_next / s_t, y)
            target = (x_next - r * x_t) / (1 - r)  # x̃: what D must be for one step to land on x_next
        d = student(x_t, s_t, cond, mask)
        w = _bcast(_precond(student).weight(s_t), y)  # EDM λ(σ): unit-variance regression target
        loss = (w * (d - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def progressive_distill(teacher, data_sampler: Callable[[int], dict], start_steps: int = 32, end_steps: int = 4,
                        make_student: Callable[[], torch.nn.Module] | None = None, iters_per_round: int = 1000,
                        batch_size: int = 256, lr: float = 1e-3, **sigma_kw):
    """Halve the steps round by round from `start_steps` (the teacher's) to `end_steps`: (student, {steps: losses}).

    Each student starts from its teacher's weights (Alg. 2); a non-module teacher (e.g. an analytic
    denoiser) needs `make_student` for the first round.
    """
    log, steps = {}, start_steps // 2
    while steps >= end_steps:
        student = copy.deepcopy(teacher) if isinstance(teacher, torch.nn.Module) else make_student()
        student.requires_grad_(True)
        log[steps] = distill_round(teacher, student, data_sampler, steps, iters_per_round, batch_size, lr, **sigma_kw)
        teacher = student.eval().requires_grad_(False)
        steps //= 2
    return teacher, log
