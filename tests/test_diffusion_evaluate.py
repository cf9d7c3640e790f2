"""Evaluation metrics behave on inputs with known answers."""
import pytest
import torch

from training.diffusion.edm import EDMPrecond
from training.diffusion.evaluate import RandomConvFeatures, distribution_metrics, frechet_distance, kid, \
    loss_per_sigma, nearest_neighbour

torch.set_num_threads(1)


def test_frechet_of_gaussians_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 4, generator=g)
    b = 2 * torch.randn(20_000, 4, generator=g) + 1
    # ‖μ‖² = 4, tr(Σa + Σb - 2(ΣaΣb)^½) = 4·(1 + 4 - 2·2) = 4
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_separates_distributions():
    g = torch.Generator().manual_seed(0)
    a, a2 = torch.randn(1000, 8, generator=g), torch.randn(1000, 8, generator=g)
    b = torch.randn(1000, 8, generator=g) + 0.5
    same, diff = kid(a, a2)["kid"], kid(a, b)["kid"]
    assert abs(same) < 0.01 and diff > 0.05


def test_nearest_neighbour_flags_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(200, 2, 3, 4, 4, generator=g)
    copies = nearest_neighbour(train[:50] + 1e-3, train)
    fresh = nearest_neighbour(torch.randn(50, 2, 3, 4, 4, generator=g), train)
    assert copies["ratio"] < 0.01 and 0.5 < fresh["ratio"] < 2


def test_features_fixed_and_metrics_run():
    x = torch.randn(64, 2, 6, 8, 8)  # windows (N, C, T', H', W')
    torch.testing.assert_close(RandomConvFeatures(2)(x), RandomConvFeatures(2)(x))  # same seed, same features
    assert RandomConvFeatures(2)(torch.randn(3, 2, 1, 8, 6)).shape == (3, 128)  # images and other aspects too
    m = distribution_metrics(x, torch.randn(64, 2, 6, 8, 8))
    assert m["features"].startswith("RandomConvFeatures") and m["rapsd_alpha_samples"] is not None
    assert m["temporal_alpha_samples"] is not None


def test_features_see_time():
    """Flickering clips (every other frame negated) have the same per-frame statistics as still clips of the same
    frames, but other video features: 3-D convolutions see time."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.randn(256, 2, 1, 8, 8, generator=g).expand(-1, -1, 6, -1, -1).clone()  # still clips
    flicker = smooth.clone()
    flicker[:, :, 1::2] *= -1  # same frames up to sign, alternating in time
    f = RandomConvFeatures(2)
    same, diff = kid(f(smooth[:128]), f(smooth[128:])), kid(f(smooth), f(flicker))
    assert diff["kid"] > 5 * diff["kid_std"] and diff["kid"] > 20 * abs(same["kid"])


def test_loss_per_sigma_bins():
    class Zero(torch.nn.Module):
        def forward(self, x, c_noise, cond=None, cond_mask=None):
            return torch.zeros_like(x)

    bins = loss_per_sigma(EDMPrecond(Zero(), 1.0), torch.randn(4000, 1, 2, 2, 2))
    assert len(bins) == 6
    for b in bins:  # F ≡ 0 on unit-variance data: the EDM loss is 1 at every σ
        assert b["loss"] == pytest.approx(1.0, rel=0.1)
