"""CLI wiring end to end on toy latents: train-diffusion → sample → ablate, through argparse."""
import json

import torch
from safetensors.torch import load_file

from training.diffusion.cli import main
from training.diffusion.toy import write_gmm_latents

torch.set_num_threads(1)


def test_train_sample_ablate(tmp_path, capsys):
    curated = write_gmm_latents(tmp_path / "curated", n_clips=16)
    uncurated = write_gmm_latents(tmp_path / "uncurated", n_clips=16, junk_fraction=1.0, null_fraction=0.5)
    assert main(["train-diffusion", "--latents", str(curated), "--out", str(tmp_path / "run"), "--steps", "3",
                 "--batch-size", "8", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 3 and (tmp_path / "run" / "metrics.jsonl").exists()

    assert main(["sample", "--checkpoint", summary["checkpoint"], "--out", str(tmp_path / "s"), "--n", "4",
                 "--steps", "4", "--cond", "aesthetic=0.5", "--guidance", "2",
                 "--spectral-reference", str(curated)]) == 0
    latents = load_file(str(tmp_path / "s" / "samples.safetensors"))["latents"]
    assert latents.shape == (4, 2, 4, 4) and torch.isfinite(latents).all()
    assert (tmp_path / "s" / "grid.png").exists() and (tmp_path / "s" / "rapsd.png").exists()
    spectral = json.loads((tmp_path / "s" / "rapsd.json").read_text())
    assert "samples" in spectral and len(spectral["noised"]) == 6

    assert main(["ablate", "--curated", str(curated), "--uncurated", str(uncurated), "--out", str(tmp_path / "ab"),
                 "--steps", "4", "--batch-size", "8", "--n-samples", "32", "--sample-steps", "4",
                 "--no-progress"]) == 0
    result = json.loads((tmp_path / "ab" / "ablation.json").read_text())
    for arm in ("curated", "uncurated"):
        assert result[arm]["n_samples"] == 32 and len(result[arm]["loss_per_sigma"]) == 6
        assert result[arm]["nearest_neighbour"]["train_to_train"] > 0
    assert result["budget"]["steps"] == 4
    assert set(result["side_by_side"]["kid"]) == {"curated", "uncurated"}
