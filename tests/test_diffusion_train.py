"""Training loop: exact resume, metrics log, checkpoint contents; and the latent dataset contract."""
import json
import pickle

import pytest
import torch

from training.diffusion.data import LatentDataset
from training.diffusion.toy import write_gmm_latents
from training.diffusion.train import TrainConfig, load_checkpoint, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    return write_gmm_latents(tmp_path_factory.mktemp("lat") / "latents", n_clips=16, null_fraction=0.5)


def _cfg(latents, out, steps, objective="edm"):
    return TrainConfig(latents_dir=str(latents), out_dir=str(out), steps=steps, batch_size=16, warmup=2,
                       log_every=1, ckpt_every=1000, progress=False, objective=objective)


@pytest.mark.parametrize("objective", ["edm", "rf"])
def test_resume_equals_straight_training(latents, tmp_path, objective):
    straight = train(_cfg(latents, tmp_path / "a", 6, objective))
    first = train(_cfg(latents, tmp_path / "b", 3, objective))  # checkpoints at its last step
    resumed = train(_cfg(latents, tmp_path / "b", 6, objective))
    assert len(straight["losses"]) == 6 and len(first["losses"]) == 3 and len(resumed["losses"]) == 3
    assert first["losses"] + resumed["losses"] == straight["losses"]  # bit-identical loss curve
    a = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
    for k in ("model", "ema"):
        for name, t in a[k].items():
            assert torch.equal(t, b[k][name]), name
    logged = [json.loads(x)["loss"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert logged == straight["losses"]


def test_checkpoint_loads_as_denoiser(latents, tmp_path):
    result = train(_cfg(latents, tmp_path / "c", 2))
    net, ck = load_checkpoint(result["checkpoint"])
    assert ck["step"] == 2 and ck["dit"]["in_channels"] == 2
    x = torch.randn(3, 2, 4, 4)
    assert net(x, torch.ones(3)).shape == x.shape


def test_dataset_items(latents):
    torch.manual_seed(0)
    ds = LatentDataset(str(latents))
    assert len(ds) == 16 and ds.latent_shape == (2, 4, 4)
    item = ds[0]
    assert item["x"].shape == (2, 4, 4) and item["cond"].shape == (3,) and item["cond_mask"].dtype == torch.bool
    # nulls in the table are masked, present scores are not
    assert 0 < (~ds.cond_mask[:, 1]).sum() < 16 and ds.cond_mask[:, [0, 2]].all()
    assert (ds.cond[~ds.cond_mask] == 0).all()
    # a draw is mean + std·ε of one frame, normalised: close to some frame's normalised mean
    mean, std = ds.posterior(0)
    frames = ds.stats.normalize(mean)
    d = (frames - item["x"]).flatten(1).abs().max(1).values.min()
    assert d < 6 * std.max() / ds.stats.std.min()
    assert not torch.equal(ds[0]["x"], ds[0]["x"])  # fresh posterior noise each time
    batch = ds.batch([0, 1, 2])
    assert batch["x"].shape == (3, 2, 4, 4)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a copy without open shard handles
    torch.testing.assert_close(clone.posterior(3)[0], ds.posterior(3)[0])
