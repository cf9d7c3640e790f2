"""RAPSD and the temporal power spectrum recover known power-law exponents; the noise crossover matches its
definition, and noise drowns high temporal frequencies first."""
import json

import numpy as np
import pytest

from training.spectral import crossover_frequency, fit_power_law, power_law_clips, power_law_noise, rapsd, \
    spectral_report, temporal_psd, temporal_report


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_rapsd_recovers_power_law_exponent(alpha):
    images = power_law_noise(8, 128, alpha, seed=int(alpha * 10))
    f, p = rapsd(images)
    fit = fit_power_law(f, p)
    assert fit["alpha"] == pytest.approx(alpha, abs=0.1)


def test_white_noise_power_is_variance():
    rng = np.random.default_rng(0)
    f, p = rapsd(0.3 * rng.standard_normal((16, 64, 64)))
    assert f.min() > 0 and f.max() <= 0.5 + 1e-9 and (np.diff(f) > 0).all()
    assert p.mean() == pytest.approx(0.09, rel=0.03)
    assert abs(fit_power_law(f, p)["alpha"]) < 0.1


def test_crossover_is_where_noise_power_equals_data_power():
    f = np.array([0.1, 0.2, 0.4])
    p = 0.01 * f**-2.0  # power 1.0, 0.25, 0.0625
    assert crossover_frequency(f, p, 0.001) is None  # data above noise everywhere
    assert crossover_frequency(f, p, 10.0) == pytest.approx(0.1)  # noise above data everywhere
    # σ² = 0.5 lies between bins 0 and 1; on the exact power law the log-log interpolation is exact
    assert crossover_frequency(f, p, 0.5**0.5) == pytest.approx((0.01 / 0.5) ** 0.5)


def test_spectral_report_files(tmp_path):
    data = power_law_noise(4, 32, 2.0)
    rep = spectral_report(data, tmp_path, samples=power_law_noise(4, 32, 1.0, seed=1), sigmas=(3.0, 10.0, 30.0))
    assert (tmp_path / "rapsd.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "rapsd.json").read_text())
    crossings = [n["crossover_freq"] for n in saved["noised"]]
    assert crossings[0] > crossings[1] > crossings[2]  # more noise → hinge at lower frequency
    assert rep["samples"]["fit"]["alpha"] < rep["data"]["fit"]["alpha"]
    # independent noise adds σ² to the data's power (averaged over the upper half of the band)
    p_data = np.array(saved["data"]["power"])
    hi = slice(len(p_data) // 2, None)
    for n in saved["noised"]:
        added = (np.array(n["power"])[hi] - p_data[hi]).mean()
        assert added == pytest.approx(n["sigma"] ** 2, rel=0.15)


@pytest.mark.parametrize("alpha_t", [1.0, 2.0])
def test_temporal_psd_recovers_exponent(alpha_t):
    clips = power_law_clips(16, 64, 8, alpha_t, seed=3)
    f, p = temporal_psd(clips)
    assert f[0] == pytest.approx(1 / 64) and f[-1] == pytest.approx(0.5) and len(f) == 32
    assert fit_power_law(f, p)["alpha"] == pytest.approx(alpha_t, abs=0.15)


def test_temporal_psd_of_white_noise_is_its_variance():
    rng = np.random.default_rng(0)
    f, p = temporal_psd(0.5 * rng.standard_normal((8, 2, 16, 8, 8)))  # (N, C, T, H, W)
    assert p.mean() == pytest.approx(0.25, rel=0.05) and len(f) == 8


def test_noise_drowns_high_temporal_frequencies_first(tmp_path):
    """Clips smooth in time (temporal power ∝ f^-2): as σ grows, the crossover moves to lower temporal
    frequencies, and the frequencies already drowned at each σ are always the highest ones."""
    clips = power_law_clips(8, 32, 8, 2.0, seed=1)[:, None]  # (N, 1, T, H, W)
    clips = clips / clips.std()
    rep = temporal_report(clips, tmp_path, samples=clips[:4], sigmas=(0.3, 0.5, 1.0, 2.0))
    assert (tmp_path / "temporal_psd.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "temporal_psd.json").read_text())
    cross = [n["crossover_freq"] for n in saved["noised"]]
    assert all(c is not None for c in cross) and cross == sorted(cross, reverse=True) and cross[0] > cross[-1]
    f = np.array(saved["data"]["freqs"])
    for n in saved["noised"]:
        drowned = n["drowned_first"]
        assert drowned and drowned[0] == pytest.approx(f[-1])  # Nyquist goes first
        assert sorted(drowned) == pytest.approx(f[-len(drowned):])  # a contiguous high-frequency band
    assert rep["spatial"]["fit"]["alpha"] == pytest.approx(0.0, abs=0.2)  # white in space, as made


def test_temporal_psd_needs_frames():
    with pytest.raises(ValueError, match="at least 3 frames"):
        temporal_psd(np.zeros((2, 2, 4, 4)))
