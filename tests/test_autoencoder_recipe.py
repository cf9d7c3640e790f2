"""The autoencoder's bar and its training recipe: the bicubic baseline by hand, a posterior that starts nearly
deterministic, extra terms that wait for the reconstruction, the LR/EMA schedules, and a few steps that learn."""
import math

import numpy as np
import pytest
import torch

from test_autoencoder_utils import quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.evaluate import bicubic_psnr, psnr
from training.autoencoder.losses import perceptual_loss
from training.autoencoder.model import build_autoencoder, decode_video, encode_posterior, encode_video
from training.autoencoder.train import aux_weight, ema_decay_at, learning_rate, make_trainer, train_step

quiet_torch()
CPU = torch.device("cpu")


def _keys_cubic(t: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (a = -0.75, as PyTorch's bicubic)."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _upsample_1d(v: np.ndarray, out: int) -> np.ndarray:
    """Bicubic along the last axis by hand: half-pixel centres, edge samples repeated."""
    n = v.shape[-1]
    res = np.zeros(v.shape[:-1] + (out,))
    for i in range(out):
        src = (i + 0.5) * n / out - 0.5
        f = math.floor(src)
        for k in range(-1, 3):
            res[..., i] += _keys_cubic(src - (f + k)) * v[..., min(max(f + k, 0), n - 1)]
    return res


def test_bicubic_baseline_equals_a_hand_computation():
    # A ±0.5 checkerboard: every 2x2 cell averages to 0, bicubic from zeros is 0, so the error is 0.25 on [0, 1]
    # everywhere: PSNR = -20 log10(0.25) = 12.04 dB, whatever the upsampling kernel.
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = (((i + j) % 2) * 1.0 - 0.5).expand(1, 3, 16, 16)
    assert float(bicubic_psnr(board, (4, 4))[0]) == pytest.approx(20 * math.log10(4), abs=1e-4)
    # A random image: area means of 4x4 cells, then Keys' cubic along rows and columns, computed here by hand.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    cells = x.numpy().astype(np.float64).reshape(2, 3, 4, 4, 4, 4).mean(axis=(3, 5))  # (2, 3, 4, 4)
    up = _upsample_1d(_upsample_1d(cells, 16).swapaxes(-1, -2), 16).swapaxes(-1, -2)
    mse = ((np.clip(up, -1, 1) - x.numpy()) / 2) ** 2
    hand = 10 * np.log10(1.0 / mse.reshape(2, -1).mean(1))
    assert np.allclose(bicubic_psnr(x, (4, 4)).numpy(), hand, atol=1e-3)
    assert (bicubic_psnr(x, (8, 8)) > bicubic_psnr(x, (4, 4))).all()  # more cells, less lost


def test_posterior_starts_nearly_deterministic():
    cfg = tiny_config("video")
    cfg.model.init_logvar = -10.0
    ae = build_autoencoder(cfg.model)
    with torch.no_grad():
        post = encode_posterior(ae, torch.rand(1, 3, 5, 32, 32) * 2 - 1)
    assert torch.allclose(post.logvar, torch.full_like(post.logvar, -10.0))
    assert post.std.max() < 0.01 < post.mean.std()  # the latent's noise far below its signal
    cfg.model.init_logvar = None  # the diffusers init: std ~ 1
    with torch.no_grad():
        assert encode_posterior(build_autoencoder(cfg.model), torch.zeros(1, 3, 5, 32, 32)).std.mean() > 0.5


def test_schedules():
    cfg = tiny_config("video", lr=1e-3, warmup_steps=4, steps=20, lr_schedule="cosine", min_lr_ratio=0.1)
    t = cfg.train
    assert learning_rate(t, 0) == pytest.approx(2.5e-4) and learning_rate(t, 4) == pytest.approx(1e-3)
    assert learning_rate(t, 12) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # halfway down the cosine
    assert learning_rate(t, 20) == pytest.approx(1e-4)
    t.lr_schedule = "constant"
    assert learning_rate(t, 19) == pytest.approx(1e-3)
    cfg.loss.aux_start, cfg.loss.aux_ramp = 10, 4
    assert [aux_weight(cfg.loss, s) for s in (0, 9, 10, 11, 13, 50)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert ema_decay_at(0, 0.99) == pytest.approx(0.1) and ema_decay_at(10_000, 0.99) == 0.99


def test_extra_terms_wait_for_the_reconstruction():
    cfg = tiny_config("video", steps=3)
    cfg.loss.eq_prob, cfg.loss.diff_weight, cfg.loss.diff_prob, cfg.loss.diff_temporal = 1.0, 0.5, 1.0, True
    cfg.loss.aux_start, cfg.loss.aux_ramp = 1, 1
    trainer = make_trainer(cfg, CPU)
    x = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    before = train_step(trainer, x, cfg, perceptual_loss(None), CPU)
    after = train_step(trainer, x, cfg, perceptual_loss(None), CPU)
    assert before["aux"] == 0 and before["eq"] == 0 and before["perceptual"] == 0 and "diffusability" not in before
    assert after["aux"] == 1 and after["eq"] == 1 and after["perceptual"] > 0 and "diffusability" in after


def _moving_blobs(n: int, t: int, size: int, seed: int) -> torch.Tensor:
    """Smooth synthetic clips (N, 3, T, size, size) in [-1, 1]: coloured Gaussian blobs drifting over a gradient."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    clips = []
    for _ in range(n):
        base = torch.rand(3, 1, 1, generator=g) * (xx + yy) - 0.5  # (3, H, W)
        c0, v, col = torch.rand(2, generator=g), (torch.rand(2, generator=g) - 0.5) * 0.1, torch.rand(3, 1, 1, generator=g)
        frames = []
        for k in range(t):
            cy, cx = c0 + k * v
            blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
            frames.append((base + col * 1.5 * blob).clamp(-1, 1))
        clips.append(torch.stack(frames, dim=1))  # (3, T, H, W)
    return torch.stack(clips)


def test_a_few_steps_improve_psnr_on_synthetic_clips():
    x = _moving_blobs(4, 5, 32, seed=0)
    cfg = tiny_config("video", lr=2e-3, warmup_steps=2, steps=12, lr_schedule="cosine", min_lr_ratio=0.05)
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)

    def held_psnr() -> float:
        with torch.no_grad():
            rec = decode_video(trainer.ae, encode_video(trainer.ae, x)[0])
        return float(psnr(rec.transpose(1, 2).flatten(0, 1), x.transpose(1, 2).flatten(0, 1)).mean())

    start = held_psnr()
    for step in range(cfg.train.steps):
        train_step(trainer, x[(step % 2) * 2 : (step % 2) * 2 + 2], cfg, perc, CPU)
    end = held_psnr()
    assert end > start + 2.0, (start, end)
