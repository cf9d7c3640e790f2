"""Autoencoder training: overfits real frames, EQ-VAE makes the latent more equivariant, resume is exact;
the causal video autoencoder trains on clips (and on images as 1-frame clips), with the diffusability term."""
import json

import torch

from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import tiny_config
from training.autoencoder.evaluate import equivariance_psnr, psnr
from training.autoencoder.losses import can_halve_time, causal_time_halve, diffusability_transform, perceptual_loss
from training.autoencoder.model import decode_video, encode_video, load_autoencoder
from training.autoencoder.train import make_trainer, train_autoencoder, train_step
from training.video_frames import read_frames, resize_center_crop, to_tensor

quiet_torch()
CPU = torch.device("cpu")


def _frames(test_videos, indices, size=32):
    f = read_frames(str(test_videos / "carphone_pristine.mp4"), indices)
    return resize_center_crop(to_tensor(f), size).clamp(-1, 1).unsqueeze(2)  # (N, 3, 1, size, size): 1-frame clips


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
                rec = decode_video(trainer.ae, encode_video(trainer.ae, x)[0])
            best = max(best, float(psnr(rec[:, :, 0], x[:, :, 0]).mean()))
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
        for _ in range(80):  # at 40 steps neither model has learned enough for the term to show (~16 dB)
            train_step(trainer, x, cfg, perc, CPU)
        results[eq_prob] = _equivariance(trainer, x)
    # same seed, same data, same steps: only the EQ-VAE term differs
    assert results[0.75] > results[0.0] + 0.5, results


def _cfg(manifest, out, steps):
    cfg = tiny_config(steps=steps, out_dir=str(out), ckpt_every=3, log_every=1, seed=5)
    cfg.data.manifest, cfg.data.size, cfg.data.batch_size = manifest, 32, 3
    cfg.data.fps, cfg.data.windows_per_clip, cfg.data.holdout_fraction = 6.0, 2, 0.0
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
    assert encode_video(ae, torch.zeros(1, 3, 2, 32, 32))[0].shape == (1, 4, 2, 8, 8)


def _clip(test_videos, start=0, frames=5, size=32):
    x = _frames(test_videos, list(range(start, start + 3 * frames, 3)), size)  # (T, 3, 1, s, s)
    return x.squeeze(2).transpose(0, 1).unsqueeze(0)  # (1, 3, T, s, s)


def test_video_autoencoder_trains_on_clips_and_images(tmp_path, test_videos):
    x = torch.cat([_clip(test_videos, 0), _clip(test_videos, 60)])  # (2, 3, 5, 32, 32)
    cfg = tiny_config("video", lr=2e-3)
    cfg.data.image_prob = 0.3
    cfg.loss.eq_prob, cfg.loss.diff_weight, cfg.loss.diff_temporal = 0.3, 0.5, True
    cfg.loss.gan_weight, cfg.loss.gan_start, cfg.loss.disc_layers = 0.1, 0, 1
    trainer = make_trainer(cfg, CPU)
    z, std = encode_video(trainer.ae, x)
    assert z.shape == std.shape == (2, 8, 2, 8, 8)  # T' = 1 + (5 - 1) / 4, f4, c8
    perc = perceptual_loss(None)
    with torch.no_grad():
        before = float(psnr(decode_video(trainer.ae, z)[:, :, 2], x[:, :, 2]).mean())
    logs = [train_step(trainer, x, cfg, perc, CPU) for _ in range(40)]
    assert any("diffusability" in lg for lg in logs) and any("d" in lg for lg in logs)
    with torch.no_grad():
        rec = decode_video(trainer.ae, encode_video(trainer.ae, x)[0])
        image = decode_video(trainer.ae, encode_video(trainer.ae, x[:, :, :1])[0])  # an image: a 1-frame clip
    assert rec.shape == x.shape and image.shape == (2, 3, 1, 32, 32)
    after = float(psnr(rec[:, :, 2], x[:, :, 2]).mean())
    assert after > before + 3, (before, after)


def test_diffusability_transform_halves_latent_and_clip_alike(test_videos):
    cfg = tiny_config("video")
    ae = make_trainer(cfg, CPU).ae
    x = torch.cat([_clip(test_videos, 0, frames=9)])  # (1, 3, 9, 32, 32)
    z, _ = encode_video(ae, x)  # (1, 8, 3, 8, 8)
    for temporal in (False, True):
        with torch.no_grad():
            rec = decode_video(ae, diffusability_transform(z, temporal))
        assert rec.shape == diffusability_transform(x, temporal).shape == ((1, 3, 5 if temporal else 9, 16, 16))
    assert not can_halve_time(z[:, :, :2]) and can_halve_time(z)
    # causal halving keeps the first frame and averages the rest in pairs
    t = torch.arange(5.0).view(1, 1, 5, 1, 1)
    assert causal_time_halve(t).flatten().tolist() == [0.0, 1.5, 3.5]
