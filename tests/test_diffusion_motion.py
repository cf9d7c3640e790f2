"""The motion condition controls how much a generated clip moves, measured with the project's own motion scorer.

Toy "latents": one channel, 4 frames of 8×8 cells, a blob moving right at 0 or 1.5 cells/frame; the window's
motion score is its speed. A tiny DiT trained briefly (300 steps) on them is sampled with motion = 0 and
motion = 1.5; the samples, read as grey frames (upscaled ×8), go through curation.motion (DIS optical flow), the
scorer that gave the clips their motion score. Measured here: still ≈ 0.16, moving ≈ 0.57 diagonals/s (the
ground-truth clips score 0.0 and 1.03): the direction is right, the still samples keep a little flicker.
"""
import cv2
import numpy as np
import pytest
import torch

from curation.motion import MotionParams, aggregate_motion, pair_flow
from training.diffusion.data import conditions_tensor
from training.diffusion.samplers import sample
from training.diffusion.toy import moving_blob, write_moving_latents
from training.diffusion.train import TrainConfig, cond_stats_of, latent_stats_of, load_checkpoint, train

torch.set_num_threads(1)
FRAMES, SIZE, FPS, SPEEDS = 4, 8, 8.0, (0.0, 1.5)


def motion_score(clip: torch.Tensor) -> float:
    """curation.motion's clip score of a (1, T, H, W) clip in [-1, 1] shown as grey frames upscaled to 64×64."""
    frames = ((clip[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    frames = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_LINEAR) for f in frames]
    p = MotionParams()
    return aggregate_motion([pair_flow(a, b, 1 / FPS, p) for a, b in zip(frames[:-1], frames[1:])], p)["motion"]


def test_scorer_reads_the_toy_speeds():
    assert motion_score(moving_blob(0.0, FRAMES, SIZE, 2.0)) < 0.01
    assert motion_score(moving_blob(1.5, FRAMES, SIZE, 2.0)) > 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    latents = write_moving_latents(root / "latents", n_clips=64, speeds=SPEEDS, frames=FRAMES, size=SIZE)
    cfg = TrainConfig(latents_dir=str(latents), out_dir=str(root / "run"), steps=300, batch_size=32, lr=3e-3,
                      warmup=10, ema_decay=0.9, p_uncond=0.2, progress=False, conditions=("motion",))
    return load_checkpoint(train(cfg)["checkpoint"])


def test_motion_condition_sets_how_much_the_clip_moves(trained):
    net, ck = trained
    scores = {}
    for speed in SPEEDS:
        raw, mask = conditions_tensor({"motion": speed}, ("motion",))
        z = sample(net, (1, FRAMES, SIZE, SIZE), 16, cond=cond_stats_of(ck).normalize(raw), cond_mask=mask,
                   guidance=2.0, steps=16, generator=torch.Generator().manual_seed(1))
        scores[speed] = [motion_score(c) for c in latent_stats_of(ck).denormalize(z)]
    low, high = np.array(scores[SPEEDS[0]]), np.array(scores[SPEEDS[1]])
    print(f"motion score of samples: asked 0 → mean {low.mean():.3f}, asked 1.5 → mean {high.mean():.3f}")
    assert high.mean() > 2 * low.mean()
    assert np.median(high) > np.percentile(low, 90)  # most fast samples move more than nearly every still one
