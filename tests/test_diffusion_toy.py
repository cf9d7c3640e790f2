"""End to end on a toy latent distribution with known modes: 4-mode Gaussian mixture of still 2-frame windows
(2, 2, 4, 4), written in the real latents contract, trained with the real loop; samples must cover every mode,
and guidance on the condition that selects a mode (aesthetic = mode/3) must move samples to it."""
import torch
import pytest

from training.diffusion.data import conditions_tensor
from training.diffusion.samplers import sample
from training.diffusion.toy import mode_patterns, write_gmm_latents
from training.diffusion.train import TrainConfig, cond_stats_of, latent_stats_of, load_checkpoint, train

torch.set_num_threads(1)
K, SHAPE, FRAMES = 4, (2, 4, 4), 2
WINDOW = (SHAPE[0], FRAMES, *SHAPE[1:])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    latents = write_gmm_latents(root / "latents", n_clips=64, k=K, shape=SHAPE, frames=FRAMES)
    cfg = TrainConfig(latents_dir=str(latents), out_dir=str(root / "run"), model="tiny", steps=400, batch_size=64,
                      lr=2e-3, warmup=20, ema_decay=0.9, p_uncond=0.2, progress=False)
    result = train(cfg)
    net, ck = load_checkpoint(result["checkpoint"])
    return net, ck, result


def classify(ck, z):
    """Nearest mode of each sample (in raw latent units) and the RMS distance to it."""
    z = latent_stats_of(ck).denormalize(z)  # (N, C, T', H', W')
    modes = mode_patterns(K, SHAPE).unsqueeze(2).expand(-1, -1, FRAMES, -1, -1)  # (K, C, T', H', W'): still clips
    d = ((z.flatten(1)[:, None] - modes.flatten(1)[None]) ** 2).mean(2)
    return d.argmin(1), d.min(1).values.sqrt()


def test_loss_decreases(trained):
    losses = trained[2]["losses"]
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20


def test_unconditional_samples_cover_every_mode(trained):
    net, ck, _ = trained
    z = sample(net, WINDOW, 400, steps=16, generator=torch.Generator().manual_seed(0))
    mode, dist = classify(ck, z)
    counts = torch.bincount(mode, minlength=K)
    print("unconditional mode counts", counts.tolist(), "median rms distance", dist.median().item())
    assert (counts >= 0.1 * 400).all(), counts  # every mode gets ≥ 10% (uniform would be 25%)
    assert dist.median() < 0.5  # samples land near a mode (modes are ±1 patterns, ≥ ~1 apart)


@pytest.mark.parametrize("m", range(K))
def test_guidance_selects_the_mode(trained, m):
    net, ck, _ = trained
    raw, mask = conditions_tensor({"aesthetic": m / (K - 1)})  # motion, quality: missing
    cond = cond_stats_of(ck).normalize(raw)
    z = sample(net, WINDOW, 200, cond=cond, cond_mask=mask, guidance=2.0, steps=16,
               generator=torch.Generator().manual_seed(1))
    mode, _ = classify(ck, z)
    frac = (mode == m).float().mean().item()
    print(f"mode {m}: guided fraction {frac:.3f}")
    assert frac > 0.9
