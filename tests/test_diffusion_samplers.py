"""Samplers against known truth: Gaussian data N(0, s²) has the exact denoiser D(x; σ) = x·s²/(s²+σ²)."""
import json

import pytest
import torch

from training.diffusion.media import save_contact_sheet
from training.diffusion.samplers import get_sigmas_karras, guided, sample, sample_euler, sample_heun

torch.set_num_threads(1)
S = 0.5
N = 100_000
CASES = {  # name: (sampler, S_churn)
    "euler": (sample_euler, 0.0),
    "euler_churn": (sample_euler, 40.0),
    "heun": (sample_heun, 0.0),
    "heun_churn": (sample_heun, 40.0),
}


def ideal(x, sigma):
    return x * S**2 / (S**2 + sigma.reshape(-1, 1) ** 2)


def test_karras_schedule_eq_5():
    sig = get_sigmas_karras(10, 0.002, 80.0, 7.0)
    assert sig.shape == (11,)
    assert sig[0].item() == pytest.approx(80.0) and sig[-2].item() == pytest.approx(0.002) and sig[-1] == 0
    assert (sig[:-1].diff() < 0).all()
    i = 4  # an interior point, by the formula
    expect = (80 ** (1 / 7) + i / 9 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sig[i].item() == pytest.approx(expect, rel=1e-12)


@pytest.fixture(scope="module")
def std_ratios():
    """Sample std / s for every sampler and step count, from the same 100k initial draws."""
    x0 = torch.randn(N, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80
    out = {}
    for name, (fn, churn) in CASES.items():
        for steps in (8, 32, 256):
            x = fn(ideal, x0.clone(), get_sigmas_karras(steps), s_churn=churn,
                   generator=torch.Generator().manual_seed(1))
            out[name, steps] = x.std().item() / S
    print(json.dumps({f"{k[0]}@{k[1]}": round(v, 4) for k, v in out.items()}))  # the measured numbers (-s)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_std_converges_with_steps(std_ratios, name):
    errs = [abs(std_ratios[name, n] - 1) for n in (8, 32, 256)]
    assert errs[0] > errs[1] > errs[2], errs


@pytest.mark.parametrize("name", ["heun", "heun_churn", "euler"])
def test_256_steps_within_2_percent(std_ratios, name):
    assert std_ratios[name, 256] == pytest.approx(1.0, abs=0.02)


def test_euler_with_churn_is_further_off(std_ratios):
    """Measured, not a target: stochastic Euler at 256 steps is biased low (≈0.95 s), more than the others."""
    err = abs(std_ratios["euler_churn", 256] - 1)
    assert err > max(abs(std_ratios[n, 256] - 1) for n in ("heun", "heun_churn", "euler"))
    assert err < 0.1


def test_guidance_extrapolates_conditional_from_unconditional():
    def den(x, sigma, cond, mask):  # D_c = x + cond where the condition is present, D_u = x
        return x + (cond * mask).sum(1, keepdim=True) if cond is not None else x

    x, s = torch.zeros(2, 1), torch.ones(2)
    cond, mask = torch.tensor([[1.0], [2.0]]), torch.ones(2, 1, dtype=torch.bool)
    torch.testing.assert_close(guided(den, cond, mask, 3.0)(x, s), torch.tensor([[3.0], [6.0]]))
    torch.testing.assert_close(guided(den, cond, mask, 0.0)(x, s), torch.zeros(2, 1))


def test_guidance_drops_the_caption_too():
    def den(x, sigma, cond, mask, text=None, text_mask=None):  # D = x + (number of visible caption tokens)
        return x + (text_mask.sum(1, keepdim=True).float() if text is not None else 0.0)

    x, s = torch.zeros(2, 1), torch.ones(2)
    text, tmask = torch.randn(2, 4, 3), torch.tensor([[True, True, False, False], [True, True, True, True]])
    torch.testing.assert_close(guided(den, None, None, 2.0, text, tmask)(x, s), torch.tensor([[4.0], [8.0]]))
    torch.testing.assert_close(guided(den, None, None, 1.0, text, tmask)(x, s), torch.tensor([[2.0], [4.0]]))


def test_sample_video_shape_and_contact_sheet(tmp_path):
    den = lambda x, sigma, cond, mask: x * S**2 / (S**2 + sigma.view(-1, 1, 1, 1, 1) ** 2)  # noqa: E731
    z = sample(den, (3, 5, 8, 6), 4, steps=8, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 3, 5, 8, 6) and torch.isfinite(z).all()
    p = save_contact_sheet(z, tmp_path / "sheet.png", max_frames=3)
    import matplotlib.image

    img = matplotlib.image.imread(p)
    assert img.shape[:2] == (4 * 9 + 1, 3 * 7 + 1)  # 4 rows (samples) × 3 frames (evenly spaced of 5)
