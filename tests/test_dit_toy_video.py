"""The toy pixel-video set (training/diffusion/toy_video.py) is what it claims, the bench's statistics read what they
claim, the DiT attends across time at the toy's geometry, and a tiny DiT run on it moves the samples' colour
histogram toward held-out data (bench/dit_toy_bench.py has the full table)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts in the repo, not an installed package

from bench import dit_toy_bench as bench  # noqa: E402
from training.diffusion.dit import DiT, DiTConfig  # noqa: E402
from training.diffusion.toy_video import BACKGROUND, COUNTS, PALETTE, toy_clips  # noqa: E402

FRAMES, SIZE = 8, 16


@pytest.fixture(scope="module")
def toy():
    return toy_clips(240, FRAMES, SIZE, seed=3)


def _components(frame: np.ndarray) -> list[tuple[float, float, tuple[int, int, int]]]:
    """(cx, cy, colour) of each 8-connected foreground component of an (H, W, 3) uint8 frame."""
    import cv2

    fg = (np.abs(frame.astype(np.float32) - np.array(BACKGROUND) * 255).max(2) > bench.FG_THRESHOLD).astype(np.uint8)
    n, labels, _, centroids = cv2.connectedComponentsWithStats(fg, connectivity=8)
    return [(*centroids[i], tuple(frame[labels == i][0])) for i in range(1, n)]


def test_counts_colours_and_speeds_are_the_claimed_ones(toy):
    clips, specs = toy
    frames = bench.to_uint8(clips)  # (N, T, H, W, 3)
    palette = {tuple(int(round((v * 2 - 1 + 1) * 127.5)) for v in c) for c in PALETTE.values()}
    background = tuple(int(round(v * 255)) for v in BACKGROUND)
    for clip, shapes in zip(frames, specs):
        comps = [_components(f) for f in clip]
        assert all(len(c) == len(shapes) for c in comps)  # every frame shows exactly its shapes
        assert {col for c in comps for *_, col in c} == {tuple(int(round(v * 255)) for v in PALETTE[s.colour])
                                                         for s in shapes}
        colours = {tuple(p) for p in clip.reshape(-1, 3)}
        assert colours <= palette | {background}  # plain background, palette colours, nothing else
        for s in shapes:  # the shape's centroid moves by (vx, vy) every frame
            x0, y0, x1, y1 = s.box(0)
            start = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
            for t, c in enumerate(comps):
                centres = np.array([[cx, cy] for cx, cy, _ in c])
                d = np.linalg.norm(centres - (start + t * np.array([s.vx, s.vy])), axis=1)
                assert d.min() < 1e-6
    counts = np.bincount([len(s) for s in specs], minlength=4)[1:]
    assert set(COUNTS) == {1, 2, 3} and counts.min() > 0.2 * len(specs)  # uniform-ish over 1-3
    assert np.array_equal(bench.shape_counts(clips), [len(s) for s in specs])  # the bench's counter agrees
    speeds = [abs(sh.vx) + abs(sh.vy) for s in specs for sh in s]
    assert set(speeds) == {0, 1} and 0.35 < np.mean(speeds) < 0.65


def test_our_motion_score_reads_the_toy_speeds(toy):
    clips, specs = toy
    still = [i for i, s in enumerate(specs) if all(sh.vx == sh.vy == 0 for sh in s)][:10]
    moving = [i for i, s in enumerate(specs) if all(abs(sh.vx) + abs(sh.vy) == 1 for sh in s)][:10]
    ms, mm = bench.motion_scores(clips[still]), bench.motion_scores(clips[moving])
    assert len(still) == len(moving) == 10
    assert ms.max() < 0.01 < 0.05 < mm.min()  # still clips score ~0; every all-moving clip clearly moves


def test_distances_are_zero_on_identical_sets_and_large_on_noise(toy):
    clips, _ = toy
    s = bench.statistics(clips[:32])
    same = bench.distances(s, s)
    assert same == {"motion_w1": 0.0, "colour_tv": 0.0, "count_tv": 0.0, "flicker_w1": 0.0}
    noise = bench.statistics(torch.rand_like(clips[:32]) * 2 - 1)
    far = bench.distances(noise, s)
    assert far["colour_tv"] > 0.5 and far["count_tv"] > 0.5
    jumbled = torch.stack([torch.stack([clips[(i + t) % 32, :, t] for t in range(FRAMES)], 1) for i in range(32)])
    flicker = bench.distances(bench.statistics(jumbled), s)  # frame t from clip i + t: shapes jump frame to frame
    assert flicker["flicker_w1"] > 0.4 and flicker["colour_tv"] < 0.05


@pytest.mark.parametrize("attention", ["full", "factorised"])
@pytest.mark.parametrize("temporal_patch, patch", [(1, 4), (2, 4), (2, 2)])
def test_dit_attends_across_time_at_the_toy_geometry(attention, temporal_patch, patch):
    """Flicker is not a wiring bug: with adaLN-Zero left (random weights), changing frame 0 of the input changes
    the output at the last frame, for every patch layout and attention mode the bench uses (depth 2)."""
    torch.manual_seed(0)
    m = DiT(DiTConfig(in_channels=3, patch_size=patch, temporal_patch=temporal_patch, hidden_size=32, depth=2,
                      num_heads=2, num_conds=0, p_uncond=0.0, attention=attention)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
        x = torch.randn(1, 3, FRAMES, SIZE, SIZE)
        x2 = x.clone()
        x2[:, :, 0] += 1.0
        change = (m(x2, torch.zeros(1)) - m(x, torch.zeros(1)))[:, :, -1].abs().max()
    assert change > 1e-2


def test_tiny_training_moves_colour_histogram_below_untrained(tmp_path):
    torch.set_num_threads(1)
    res = bench.run(train_clips=512, held_out=32, samples=32, steps=300, patch_size=4, temporal_patch=1, lr=3e-3,
                    ema_decay=0.98, sampler_steps=16, workdir=str(tmp_path), out=None, progress=False)
    d = res["distances_to_held_out"]
    print(bench.table(res))
    assert d["trained"]["colour_tv"] < d["untrained"]["colour_tv"]
    assert d["data_vs_data"]["colour_tv"] < d["trained"]["colour_tv"]  # and the floor is below both
