"""Evaluation report (per-frame PSNR/SSIM, flicker, compression, spectra), and loading published-format
(diffusers folder) weights through --pretrained, for 2-D and causal video autoencoders."""
import json

import pytest
import torch
from diffusers import AutoencoderKLWan

from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import ModelConfig, tiny_config
from training.autoencoder.evaluate import evaluate_autoencoder, flicker, middle_window, psnr, spectral_slope
from training.autoencoder.model import (
    build_autoencoder,
    checkpoint_hash,
    compression,
    decode_video,
    encode_video,
    export_diffusers,
    is_video_autoencoder,
    load_autoencoder,
)
from training.autoencoder.train import make_trainer, save_checkpoint
from training.spectral import power_law_noise

quiet_torch()


def test_psnr_of_known_error():
    x = torch.zeros(1, 3, 8, 8)
    assert abs(float(psnr(x + 0.2, x)) - 20.0) < 1e-4  # error 0.1 on [0, 1] -> 20 dB


def test_flicker_is_zero_for_a_constant_offset_and_counts_changes():
    x = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    assert float(flicker((x + 0.1).clamp(-1, 1), x).max()) < 0.06  # clamping only
    frozen = x[:, :, :1].expand_as(x)  # a reconstruction that does not move
    expected = (x.diff(dim=2).abs() / 2).flatten(1).mean(1)
    assert torch.allclose(flicker(frozen, x), expected)
    assert middle_window(list(range(10)), 4) == [3, 4, 5, 6] and middle_window([1, 2], 3) is None


def test_spectral_slope_recovers_a_power_law():
    x = torch.from_numpy(power_law_noise(8, 32, alpha=2.0, seed=1)).view(1, 1, 8, 32, 32)
    assert abs(spectral_slope(x)["alpha"] - 2.0) < 0.3


def test_diffusers_folder_round_trip_and_hash(tmp_path):
    cfg = tiny_config()
    ckpt = save_checkpoint(tmp_path / "ck.pt", make_trainer(cfg, torch.device("cpu")), cfg)
    folder = export_diffusers(ckpt, tmp_path / "vae")
    a, b = load_autoencoder(ckpt), build_autoencoder(ModelConfig(kind="image", pretrained=str(folder))).eval()
    x = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(encode_video(a, x)[0], encode_video(b, x)[0], atol=1e-6)
    h = checkpoint_hash(folder)
    assert len(h) == 64 and h == checkpoint_hash(folder) and h != checkpoint_hash(ckpt)


def test_published_video_vae_folder_loads_through_pretrained(tmp_path):
    # A stand-in for Wan 2.1's VAE: the same class and file layout, random weights, tiny width.
    torch.manual_seed(0)
    published = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True]).eval()
    published.save_pretrained(str(tmp_path / "wan"))
    ae = build_autoencoder(ModelConfig(pretrained=str(tmp_path / "wan"))).eval()
    assert type(ae) is AutoencoderKLWan and is_video_autoencoder(ae) and compression(ae) == (4, 8)
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        z, std = encode_video(ae, x)
        assert z.shape == std.shape == (1, 4, 3, 4, 4)
        assert torch.allclose(z, encode_video(published, x)[0], atol=1e-5)
        assert decode_video(ae, z).shape == x.shape
    assert load_autoencoder(tmp_path / "wan").__class__ is AutoencoderKLWan  # `encode --checkpoint FOLDER` path
    # training starts from it, and its checkpoint reloads as the same class
    cfg = tiny_config("video")
    cfg.model = ModelConfig(pretrained=str(tmp_path / "wan"))
    cfg.data.clip_frames = 9
    trainer = make_trainer(cfg, torch.device("cpu"))
    ckpt = save_checkpoint(tmp_path / "ft.pt", trainer, cfg)
    with torch.no_grad():
        assert torch.allclose(encode_video(load_autoencoder(ckpt), x)[0], z, atol=1e-5)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_evaluate_report(tmp_path, test_videos, kind):
    car = test_videos / "carphone_pristine.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (car, 60, 120, 29.97), (car, 0, 6, 29.97)])
    cfg = tiny_config(kind)
    ckpt = save_checkpoint(tmp_path / "ck.pt", make_trainer(cfg, torch.device("cpu")), cfg)
    out = tmp_path / "report.json"
    r = evaluate_autoencoder(str(ckpt), manifest, str(out), size=32, fps=8.0, frames=5,
                             holdout_fraction=1.0)  # every clip held out; the 6-frame one is too short
    assert json.loads(out.read_text())["num_frames"] == r["num_frames"] == 10 and r["num_clips"] == 2
    assert 0 < r["psnr_db"]["mean"] < 60 and -1 <= r["ssim"]["mean"] <= 1 and r["psnr_db"]["n"] == 10
    # the bar: bicubic from the latent's 8x8 on the same 10 frames; an untrained model is far below it
    assert r["bicubic_psnr_db"]["n"] == 10 and r["psnr_db"]["mean"] + 3 < r["bicubic_psnr_db"]["mean"] < 60
    assert r["flicker"]["n"] == 2 and 0 <= r["flicker"]["mean"] < 1
    c = r["compression"]
    t, latent = (4, [8, 2, 8, 8]) if kind == "video" else (1, [4, 5, 8, 8])
    assert c["temporal_factor"] == t and c["spatial_factor"] == 4 and c["latent_shape"] == latent
    n_latent = latent[0] * latent[1] * latent[2] * latent[3]
    assert c["factor"] == pytest.approx(3 * 5 * 32 * 32 / n_latent)
    assert c["floats_per_pixel"] == pytest.approx(n_latent / (5 * 32 * 32))
    assert set(r["equivariance_psnr_db"]) == {"scale_0.5", "rot90"}
    assert len(r["latent_channels"]["mean"]) == latent[0]
    assert r["spectrum"]["rgb_alpha"] > 0 and r["spectrum"]["latent_alpha"] is not None
