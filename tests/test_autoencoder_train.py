"""Autoencoder training: overfits real frames, EQ-VAE makes the latent more equivariant, resume is exact."""
import json

import torch

from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.evaluate import equivariance_psnr, psnr
from training.autoencoder.losses import perceptual_loss
from training.autoencoder.model import load_autoencoder
from training.autoencoder.train import make_trainer, train_autoencoder, train_step
from training.video_frames import read_frames, resize_center_crop, to_tensor

quiet_torch()
CPU = torch.device("cpu")


def _frames(test_videos, indices, size=32):
    f = read_frames(str(test_videos / "carphone_pristine.mp4"), indices)
    return resize_center_crop(to_tensor(f), size).clamp(-1, 1)  # (N, 3, size, size)


def test_tiny_autoencoder_overfits_real_frames_to_30db(test_videos):
    # Calibrated on this box with 4 frames: ~27 dB after 100 steps, ~30.5 after 150, ~33 after 200.
    x = _frames(test_videos, [0, 80])
    cfg = tiny_config(lr=2e-3, grad_clip=0.0)  # f4, c4, (16, 32, 64)
    trainer = make_trainer(cfg, CPU)
    perc = perceptual_loss(None)
    best = 0.0
    for step in range(1, 301):
        train_step(trainer, x, cfg, perc, CPU)
        if step % 25 == 0:
            with torch.no_grad():
                rec = trainer.ae.decode(trainer.ae.encode(x).latent_dist.mean).sample
            best = max(best, float(psnr(rec, x).mean()))
            if best >= 30.0:
                break
    assert best >= 30.0, f"PSNR {best:.2f} dB after {step} steps"


def _equivariance(trainer, x):
    with torch.no_grad():
        s = equivariance_psnr(trainer.ae, x, scale=True, rot_k=0).mean()
        r = equivariance_psnr(trainer.ae, x, scale=False, rot_k=1).mean()
    return float((s + r) / 2)


def test_eq_vae_term_lowers_equivariance_error(test_videos):
    x = _frames(test_videos, [10, 70])
    results = {}
    for eq_prob in (0.0, 0.75):
        cfg = tiny_config(lr=2e-3, seed=0)
        cfg.loss.eq_prob = eq_prob
        trainer = make_trainer(cfg, CPU)
        perc = perceptual_loss(None)
        for _ in range(40):
            train_step(trainer, x, cfg, perc, CPU)
        results[eq_prob] = _equivariance(trainer, x)
    # same seed, same data, same steps: only the EQ-VAE term differs
    assert results[0.75] > results[0.0] + 0.5, results


def _cfg(manifest, out, steps):
    cfg = tiny_config(steps=steps, out_dir=str(out), ckpt_every=3, log_every=1, seed=5)
    cfg.data.manifest, cfg.data.size, cfg.data.batch_size = manifest, 32, 3
    cfg.data.fps, cfg.data.frames_per_clip, cfg.data.holdout_fraction = 6.0, 2, 0.0
    cfg.loss.eq_prob, cfg.loss.gan_weight, cfg.loss.gan_start, cfg.loss.disc_layers = 0.5, 0.1, 2, 1  # exercise every RNG and state
    return cfg


def _curve(out):
    return [(d["step"], d["loss"]) for d in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def test_kill_and_resume_gives_identical_loss_curve(tmp_path, test_videos):
    video = test_videos / "carphone_pristine.mp4"
    manifest = make_manifest(tmp_path, [(video, 30 * i, 30 * i + 30, 29.97) for i in range(4)])
    straight = train_autoencoder(_cfg(manifest, tmp_path / "straight", 6))
    # "killed" after step 3: the run ends with its checkpoint; new objects pick it up
    train_autoencoder(_cfg(manifest, tmp_path / "resumed", 3))
    resumed = train_autoencoder(_cfg(manifest, tmp_path / "resumed", 6))
    a, b = _curve(tmp_path / "straight"), _curve(tmp_path / "resumed")
    assert [s for s, _ in a] == [1, 2, 3, 4, 5, 6]
    assert a == b  # bit-identical losses, steps 4-6 included
    sa = torch.load(straight, weights_only=False)
    sb = torch.load(resumed, weights_only=False)
    assert sa["step"] == sb["step"] == 6
    assert sa["data_position"] == sb["data_position"]
    for k in sa["ema"]:
        assert torch.equal(sa["ema"][k], sb["ema"][k]), k
    # the checkpoint loads as an autoencoder (EMA weights) for encoding
    ae = load_autoencoder(resumed)
    assert ae.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean.shape == (1, 4, 8, 8)
