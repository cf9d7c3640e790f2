"""Progressive distillation on a toy problem with a known answer: a 4-mode 2-D Gaussian mixture.

The teacher is a small network fitted to the mixture's exact denoiser; distilled 32 → 16 → 8 → 4 steps,
the 4-step student is compared with the teacher at 4, 8 and 32 steps, all against the teacher's own
probability-flow ODE solution (Heun, 256 steps) from the same initial noise.
"""
import pytest
import torch

from training.diffusion.distill import nested_sigmas, progressive_distill, sample_ddim
from training.diffusion.edm import EDMPrecond, LogNormalSigma
from training.diffusion.samplers import get_sigmas_karras, sample_heun
from training.diffusion.toy import ToyMLP, gmm_denoiser

torch.set_num_threads(1)
MEANS = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
STD = 0.1


def data(b):
    return {"x": MEANS[torch.randint(4, (b,))] + STD * torch.randn(b, 2)}


def test_nested_grids():
    s4, s8 = nested_sigmas(4), nested_sigmas(8)
    assert s4.shape == (5,) and s4[0] == pytest.approx(80.0) and s4[-1] == 0
    torch.testing.assert_close(s8[::2], s4)  # the 2K grid contains the K grid: what distillation needs


@pytest.fixture(scope="module")
def distilled():
    torch.manual_seed(0)
    exact = gmm_denoiser(MEANS, STD)
    teacher = EDMPrecond(ToyMLP(2, 128), sigma_data=1.0)
    opt = torch.optim.Adam(teacher.parameters(), 2e-3)
    sigmas = LogNormalSigma()
    for _ in range(500):  # fit the network to the exact denoiser (a stand-in for a trained teacher)
        y = data(256)["x"]
        sig = sigmas(256)
        x = y + sig[:, None] * torch.randn_like(y)
        loss = (teacher.weight(sig)[:, None] * (teacher(x, sig) - exact(x, sig)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    teacher.eval().requires_grad_(False)
    student, log = progressive_distill(teacher, data, start_steps=32, end_steps=4, iters_per_round=200)
    return teacher, student, log


def test_distilled_student_matches_teacher(distilled):
    teacher, student, log = distilled
    assert sorted(log) == [4, 8, 16]
    x0 = 80 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ode = sample_heun(lambda x, s: teacher(x, s), x0, get_sigmas_karras(256))

        def rmse(x):
            return ((x - ode) ** 2).sum(1).mean().sqrt().item()

        def to_mode(x):
            return ((x[:, None] - MEANS[None]) ** 2).sum(2).min(1).values.sqrt().median().item()

        teacher_at = {n: sample_ddim(teacher, x0, nested_sigmas(n)) for n in (4, 8, 32)}
        student_4 = sample_ddim(student, x0, nested_sigmas(4))
    report = {f"teacher@{n}": (round(rmse(x), 3), round(to_mode(x), 3)) for n, x in teacher_at.items()}
    report["student@4"] = (round(rmse(student_4), 3), round(to_mode(student_4), 3))
    print("(rmse to teacher ODE, median distance to nearest mode):", report)
    assert rmse(student_4) < 0.5 * rmse(teacher_at[4])
    assert rmse(student_4) < rmse(teacher_at[8])
    assert to_mode(student_4) < 0.2  # lands on the modes (data std 0.1); teacher@4 does not
    assert to_mode(teacher_at[4]) > to_mode(student_4)
