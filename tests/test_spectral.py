"""RAPSD recovers known power-law exponents; the noise crossover matches its definition."""
import json

import numpy as np
import pytest

from training.spectral import crossover_frequency, fit_power_law, power_law_noise, rapsd, spectral_report


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
