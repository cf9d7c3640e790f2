"""Evaluation report, spectral helper, and loading published-format (diffusers folder) weights."""
import json

import torch

from test_autoencoder_utils import make_manifest, quiet_torch
from training.autoencoder.config import ModelConfig, tiny_config
from training.autoencoder.evaluate import evaluate_autoencoder, psnr, rapsd
from training.autoencoder.model import build_autoencoder, checkpoint_hash, export_diffusers, load_autoencoder
from training.autoencoder.train import make_trainer, save_checkpoint

quiet_torch()


def test_rapsd_tells_noise_from_smooth():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 1, 32, 32, generator=g)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, 1, 2)
    pn, ps = rapsd(noise), rapsd(smooth)
    assert abs(pn.sum() - 1) < 1e-5 and abs(ps.sum() - 1) < 1e-5
    assert ps[-4:].sum() < pn[-4:].sum() / 5  # blurred: far less power near Nyquist


def test_psnr_of_known_error():
    x = torch.zeros(1, 3, 8, 8)
    assert abs(float(psnr(x + 0.2, x)) - 20.0) < 1e-4  # error 0.1 on [0, 1] -> 20 dB


def test_diffusers_folder_round_trip_and_hash(tmp_path):
    cfg = tiny_config()
    ckpt = save_checkpoint(tmp_path / "ck.pt", make_trainer(cfg, torch.device("cpu")), cfg)
    folder = export_diffusers(ckpt, tmp_path / "vae")
    a, b = load_autoencoder(ckpt), build_autoencoder(ModelConfig(pretrained=str(folder))).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(a.encode(x).latent_dist.mean, b.encode(x).latent_dist.mean, atol=1e-6)
    h = checkpoint_hash(folder)
    assert len(h) == 64 and h == checkpoint_hash(folder) and h != checkpoint_hash(ckpt)


def test_evaluate_report(tmp_path, test_videos):
    car = test_videos / "carphone_pristine.mp4"
    manifest = make_manifest(tmp_path, [(car, 0, 60, 29.97), (car, 60, 120, 29.97)])
    cfg = tiny_config()
    ckpt = save_checkpoint(tmp_path / "ck.pt", make_trainer(cfg, torch.device("cpu")), cfg)
    out = tmp_path / "report.json"
    r = evaluate_autoencoder(str(ckpt), manifest, str(out), size=32, fps=2.0, frames_per_clip=2,
                             holdout_fraction=1.0)  # every clip held out
    assert json.loads(out.read_text())["num_images"] == r["num_images"] == 4
    assert 0 < r["psnr_db"]["mean"] < 60 and -1 <= r["ssim"]["mean"] <= 1
    assert set(r["equivariance_psnr_db"]) == {"scale_0.5", "rot90"}
    assert len(r["latent_channels"]["mean"]) == 4 and len(r["rapsd"]["latent"]) == 16
