"""Shared fixtures: the real test videos in ../shared and a generated demo set."""
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_VIDEOS = Path(os.environ.get("VIDCURATE_TEST_VIDEOS", REPO / ".." / "shared" / "data" / "videos")).resolve()


def under_ci() -> bool:
    """CI=true (GitHub Actions, GitLab, most runners): missing test data is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def test_videos() -> Path:
    """Folder of real videos from public test suites (read-only)."""
    if not (TEST_VIDEOS / "EXPECTED.json").exists():
        why = f"real test videos not found at {TEST_VIDEOS} (set VIDCURATE_TEST_VIDEOS)"
        if under_ci():
            pytest.fail(f"{why}; CI=true: the tests that need them must run", pytrace=False)
        pytest.skip(why)
    return TEST_VIDEOS


@pytest.fixture(scope="session")
def expected(test_videos) -> dict:
    return json.loads((test_videos / "EXPECTED.json").read_text())


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for the whole session (starting one costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The generated demo set (vidcurate sample-data), written once per session."""
    from curation.sample_data import write_sample_data

    out = tmp_path_factory.mktemp("demo") / "input"
    write_sample_data(out)
    return out


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    """A tiny random 2-D AutoencoderKL (f2, 2 latent channels) saved as a diffusers folder, loaded by path."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    ae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                       up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                       latent_channels=2, norm_num_groups=4)
    path = tmp_path_factory.mktemp("ae") / "ae"
    ae.save_pretrained(str(path))
    return path
