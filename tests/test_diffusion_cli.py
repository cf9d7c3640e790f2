"""CLI wiring end to end on toy video latents: train-diffusion → sample (decoded to mp4 + contact sheet through a
tiny autoencoder saved to a folder, spatial and temporal spectra) through argparse, then the two-arm `ablate`
library entry point (the verb is `vidcurate ablation-study`, tests/test_ablation_study.py)."""
import json

import av
import matplotlib.image
import pytest
import torch
from safetensors.torch import load_file

from training.diffusion.ablate import ablate
from training.diffusion.cli import main
from training.diffusion.toy import write_gmm_latents

torch.set_num_threads(1)


def test_train_sample_ablate(tmp_path, capsys, autoencoder):
    curated = write_gmm_latents(tmp_path / "curated", n_clips=16, frames=6)
    uncurated = write_gmm_latents(tmp_path / "uncurated", n_clips=16, frames=6, junk_fraction=1.0, null_fraction=0.5)
    assert main(["train-diffusion", "--latents", str(curated), "--out", str(tmp_path / "run"), "--steps", "3",
                 "--batch-size", "8", "--no-progress", "--temporal-patch", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 3 and summary["tokens_per_s"] > 0 and (tmp_path / "run" / "metrics.jsonl").exists()

    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", summary["checkpoint"], "--out", str(out), "--n", "3", "--steps", "4",
                 "--cond", "aesthetic=0.5", "--guidance", "2", "--autoencoder", str(autoencoder), "--fps", "4",
                 "--spectral-reference", str(curated)]) == 0
    latents = load_file(str(out / "samples.safetensors"))["latents"]
    assert latents.shape == (3, 2, 6, 4, 4) and torch.isfinite(latents).all()  # the training bucket by default
    record = json.loads((out / "samples.json").read_text())
    assert len(record["videos"]) == 3
    for v in record["videos"]:  # decoded clips, read back with PyAV: 6 frames of 8×8 (f2 autoencoder)
        with av.open(str(out / v["path"])) as f:
            frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
        assert len(frames) == 6 == v["frames"] and frames[0].shape == (8, 8, 3)
    sheet = matplotlib.image.imread(out / "contact_sheet.png")
    assert sheet.shape[:2] == (3 * 9 + 1, 6 * 9 + 1)  # one row per sample, one column per frame
    assert (out / "latents_sheet.png").exists() and (out / "rapsd.png").exists()
    temporal = json.loads((out / "temporal_psd.json").read_text())
    assert "samples" in temporal and len(temporal["noised"]) == 6 and temporal["frames"] == 6

    assert main(["sample", "--checkpoint", summary["checkpoint"], "--out", str(tmp_path / "img"), "--n", "2",
                 "--steps", "2", "--shape", "1,4,6"]) == 0  # an image (T' = 1) in another aspect, same model
    assert load_file(str(tmp_path / "img" / "samples.safetensors"))["latents"].shape == (2, 2, 1, 4, 6)
    with pytest.raises(SystemExit, match="without a text encoder"):
        main(["sample", "--checkpoint", summary["checkpoint"], "--out", str(tmp_path / "p"), "--prompt", "a cat"])

    ablate(str(curated), str(uncurated), {"out_dir": str(tmp_path / "ab"), "steps": 4, "batch_size": 8,
                                          "progress": False}, n_samples=16, sample_steps=4)
    result = json.loads((tmp_path / "ab" / "ablation.json").read_text())
    for arm in ("curated", "uncurated"):
        assert result[arm]["n_samples"] == 16 and len(result[arm]["loss_per_sigma"]) == 6
        assert result[arm]["window_shape"] == [2, 6, 4, 4]
        assert result[arm]["nearest_neighbour"]["train_to_train"] > 0
        assert result[arm]["temporal_alpha_reference"] is not None  # 6 frames: 3 temporal bins
    assert result["budget"]["steps"] == 4
    assert set(result["side_by_side"]["kid"]) == {"curated", "uncurated"}
