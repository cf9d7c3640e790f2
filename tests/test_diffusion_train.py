"""Training loop: exact resume, metrics log, checkpoint contents, mixed shape buckets; the latent dataset contract
(windows (C, T', H', W')) and the bucket batch sampler."""
import json
import pickle

import pytest
import torch

from training.diffusion.data import BucketBatchSampler, LatentDataset
from training.diffusion.toy import write_gmm_latents, write_latents
from training.diffusion.train import TrainConfig, latent_shapes_of, load_checkpoint, train

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
    assert latent_shapes_of(ck) == [((2, 2, 4, 4), 16)]
    x = torch.randn(3, 2, 5, 4, 6)  # any (T', H', W'), not only the trained one
    assert net(x, torch.ones(3)).shape == x.shape


def test_dataset_items(latents):
    torch.manual_seed(0)
    ds = LatentDataset(str(latents))
    assert len(ds) == 16 and ds.shapes[0] == (2, 2, 4, 4) and ds.channels == 2
    item = ds[0]
    assert item["x"].shape == (2, 2, 4, 4) and item["cond"].shape == (3,) and item["cond_mask"].dtype == torch.bool
    assert item["caption"] == -1  # no captions in this set
    # nulls in the table are masked, present scores are not
    assert 0 < (~ds.cond_mask[:, 1]).sum() < 16 and ds.cond_mask[:, [0, 2]].all()
    assert (ds.cond[~ds.cond_mask] == 0).all()
    # a draw is mean + std·ε of the whole window, normalised per channel (channel axis first)
    mean, std = ds.posterior(0)
    z = ds.stats.normalize(mean)
    assert (z - item["x"]).abs().max() < 6 * std.max() / ds.stats.std.min()
    assert ds.stats.denormalize(z).sub(mean).abs().max() < 1e-5
    assert not torch.equal(ds[0]["x"], ds[0]["x"])  # fresh posterior noise each time
    batch = ds.batch([0, 1, 2])
    assert batch["x"].shape == (3, 2, 2, 4, 4)
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a copy without open shard handles
    torch.testing.assert_close(clone.posterior(3)[0], ds.posterior(3)[0])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Windows of three shapes: 4-frame landscape clips, 2-frame portrait clips and images (T' = 1), captions on some."""
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 4, 4, 6)] * 6 + [(2, 2, 6, 4)] * 4 + [(2, 1, 4, 4)] * 2
    windows = [{"mean": torch.randn(s, generator=g), "aesthetic": float(i), "caption": "a cat" if i % 2 else None}
               for i, s in enumerate(shapes)]
    return write_latents(tmp_path_factory.mktemp("mixed") / "latents", windows)


def test_bucket_sampler_groups_shapes(mixed):
    ds = LatentDataset(str(mixed))
    sampler = ds.batch_sampler(4, seed=1)
    assert {k: len(v) for k, v in sampler.buckets.items()} == {(2, 4, 4, 6): 6, (2, 2, 6, 4): 4, (2, 1, 4, 4): 2}
    epoch = list(sampler)
    assert sorted(i for b in epoch for i in b) == list(range(12))  # every window once per epoch
    for b in epoch:
        assert len({ds.shapes[i] for i in b}) == 1
    g = torch.Generator().manual_seed(0)
    drawn = [sampler.sample(3, g) for _ in range(300)]
    for b in drawn:
        assert len({ds.shapes[i] for i in b}) == 1
    share = sum(ds.shapes[b[0]][1] == 4 for b in drawn) / len(drawn)
    assert 0.4 < share < 0.6  # buckets drawn in proportion to their size (6 of 12)
    with pytest.raises(ValueError, match="one latent shape"):
        ds.batch([0, 7])
    assert ds.captions == ["a cat"] and (ds.caption_idx == torch.tensor([-1, 0] * 6)).all()
    assert BucketBatchSampler(ds.shapes, 5, drop_last=True).__len__() == 1


def test_training_on_mixed_shapes(mixed, tmp_path):
    result = train(TrainConfig(latents_dir=str(mixed), out_dir=str(tmp_path / "m"), steps=6, batch_size=4, warmup=1,
                               progress=False, attention="factorised", temporal_patch=2))
    assert len(result["losses"]) == 6 and all(map(lambda v: v == v, result["losses"]))
    assert result["tokens_per_s"] > 0
    _, ck = load_checkpoint(result["checkpoint"])
    assert [s for s, _ in latent_shapes_of(ck)] == [(2, 4, 4, 6), (2, 2, 6, 4), (2, 1, 4, 4)]
