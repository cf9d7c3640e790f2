"""EDM preconditioning and loss: the paper's formulas (Karras et al. 2022, Table 1, eq. 7-8)."""
import math

import pytest
import torch

from training.diffusion.edm import EDMLoss, EDMPrecond, LogNormalSigma, RFPrecond

torch.set_num_threads(1)


class Zero(torch.nn.Module):
    """F ≡ 0, so D(x; σ) = c_skip·x exposes c_skip; records what the net was given."""

    def forward(self, x, c_noise, cond=None, cond_mask=None):
        self.seen = (x, c_noise)
        return torch.zeros_like(x)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_precond_coefficients_match_table_1(sigma_data):
    p = EDMPrecond(Zero(), sigma_data)
    for s in [0.002, 0.1, 0.5, 1.0, 7.0, 80.0]:
        sig = torch.tensor(s, dtype=torch.float64)
        assert p.c_skip(sig).item() == pytest.approx(sigma_data**2 / (s**2 + sigma_data**2), rel=1e-12)
        assert p.c_out(sig).item() == pytest.approx(s * sigma_data / math.sqrt(sigma_data**2 + s**2), rel=1e-12)
        assert p.c_in(sig).item() == pytest.approx(1 / math.sqrt(s**2 + sigma_data**2), rel=1e-12)
        assert p.c_noise(sig).item() == pytest.approx(math.log(s) / 4, rel=1e-12)
        assert p.weight(sig).item() == pytest.approx((s**2 + sigma_data**2) / (s * sigma_data) ** 2, rel=1e-12)
        assert (p.weight(sig) * p.c_out(sig) ** 2).item() == pytest.approx(1.0, rel=1e-12)  # λ = 1/c_out²


def test_forward_is_eq_7():
    net = Zero()
    p = EDMPrecond(net, 0.5)
    x, sigma = torch.randn(3, 2, 4, 4), torch.tensor([0.1, 1.0, 10.0])
    d = p(x, sigma)
    s = sigma.view(-1, 1, 1, 1)
    torch.testing.assert_close(d, 0.25 / (s**2 + 0.25) * x)  # c_skip·x when F ≡ 0
    torch.testing.assert_close(net.seen[0], x / (s**2 + 0.25).sqrt())  # network input is c_in·x
    torch.testing.assert_close(net.seen[1], sigma.log() / 4)


@pytest.mark.parametrize("precond_cls", [EDMPrecond, RFPrecond])
def test_effective_target_has_unit_variance(precond_cls):
    """With data of std σ_d, the network's regression target (y - c_skip·x)/c_out has variance 1 at every σ
    for EDM (eq. 8 discussion); for RF it is the velocity n - y, variance 1 + σ_d² = 2 at σ_d = 1."""
    g = torch.Generator().manual_seed(0)
    p = precond_cls(Zero(), sigma_data=1.0)
    y = torch.randn(200_000, generator=g, dtype=torch.float64)
    for s in [0.01, 0.3, 1.0, 5.0, 80.0]:
        sig = torch.tensor(s, dtype=torch.float64)
        x = y + s * torch.randn(y.shape, generator=g, dtype=torch.float64)
        target = (y - p.c_skip(sig) * x) / p.c_out(sig)
        expect = 1.0 if precond_cls is EDMPrecond else 2.0
        assert target.var().item() == pytest.approx(expect, rel=0.02)


def test_loss_at_init_is_one():
    """A zero-initialised F (DiT's adaLN-Zero output) gives an EDM loss of exactly E‖target‖² ≈ 1 for unit data."""
    torch.manual_seed(0)
    y = torch.randn(100_000, 1)
    loss = EDMLoss()(EDMPrecond(Zero(), 1.0), y)
    assert loss.shape == (100_000,)
    assert loss.mean().item() == pytest.approx(1.0, rel=0.03)


def test_lognormal_sigma_parameters():
    g = torch.Generator().manual_seed(0)
    s = LogNormalSigma(-1.2, 1.2)(200_000, generator=g)
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.01)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.01)
    assert (s > 0).all()
