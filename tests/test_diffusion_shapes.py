"""Preconditioning, loss, samplers and distillation are shape-agnostic: on video latents (N, C, T', H', W') they
give exactly what they give on the same numbers flattened to (N, P)."""
import torch

from training.diffusion.distill import distill_round, nested_sigmas, sample_ddim
from training.diffusion.edm import EDMLoss, EDMPrecond, RFPrecond
from training.diffusion.samplers import get_sigmas_karras, sample_heun
from training.diffusion.toy import ToyMLP

torch.set_num_threads(1)
VIDEO = (2, 3, 4, 5)  # (C, T', H', W')
P = 2 * 3 * 4 * 5


class Elementwise(torch.nn.Module):
    """F(x, c_noise) = a·x + b·c_noise, elementwise: the same function of every number whatever the layout."""

    def forward(self, x, c_noise, cond=None, cond_mask=None):
        return 0.3 * x + 0.7 * c_noise.reshape(-1, *([1] * (x.ndim - 1)))


def test_precond_and_loss_broadcast_over_5d():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, *VIDEO, generator=g)
    sigma = torch.tensor([0.01, 0.1, 0.5, 1.0, 5.0, 80.0])
    for precond in (EDMPrecond(Elementwise()), RFPrecond(Elementwise())):
        torch.testing.assert_close(precond(y, sigma).flatten(1), precond(y.flatten(1), sigma))
        l5 = EDMLoss()(precond, y, generator=torch.Generator().manual_seed(1))
        l2 = EDMLoss()(precond, y.flatten(1), generator=torch.Generator().manual_seed(1))
        assert l5.shape == (6,)
        torch.testing.assert_close(l5, l2)


def test_samplers_broadcast_over_5d():
    s = 0.5
    ideal = lambda x, sig: x * s**2 / (s**2 + sig.reshape(-1, *([1] * (x.ndim - 1))) ** 2)  # noqa: E731
    x0 = 80 * torch.randn(8, *VIDEO, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = get_sigmas_karras(8, device="cpu")
    torch.testing.assert_close(sample_heun(ideal, x0, sig).flatten(1), sample_heun(ideal, x0.flatten(1), sig))
    den = EDMPrecond(Elementwise())
    torch.testing.assert_close(sample_ddim(den, x0.float(), nested_sigmas(4)).flatten(1),
                               sample_ddim(den, x0.flatten(1).float(), nested_sigmas(4)))


def test_distillation_broadcasts_over_5d():
    data = torch.randn(64, *VIDEO, generator=torch.Generator().manual_seed(0))
    runs = []
    for shape in (VIDEO, (P,)):
        torch.manual_seed(0)
        teacher = EDMPrecond(ToyMLP(P, 32)).eval().requires_grad_(False)
        student = EDMPrecond(ToyMLP(P, 32))
        student.load_state_dict(teacher.state_dict())
        student.requires_grad_(True)
        sampler = lambda b: {"x": data[:b].reshape(b, *shape)}  # noqa: E731
        runs.append(distill_round(teacher, student, sampler, student_steps=2, iters=3, batch_size=16))
    torch.testing.assert_close(torch.tensor(runs[0]), torch.tensor(runs[1]))
