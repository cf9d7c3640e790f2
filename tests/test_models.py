"""Models by name: paths, URIs and Hugging Face names resolved from a local cache laid out as huggingface_hub lays
it out (tiny random models, HF_HUB_OFFLINE=1: no network), `auto`, and `vidcurate models`."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curation.aesthetics import AestheticHead, ClipScorer
from curation.models import RECOMMENDED, HubRef, ModelNotCached, hub_ref, is_cached, resolve_file
from pipelines.cli import main
from pipelines.config import ConfigError, load_config

TINY_NAME = "vidcurate-models-tiny-vit"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _lay_out(cache, repo: str, files: dict[str, bytes]) -> None:
    """A repo in the hub cache as huggingface_hub writes it: refs/main -> snapshots/<commit>/<files>."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        path = root / "snapshots" / COMMIT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty hub cache for this test (HF_HUB_CACHE and the already-imported constant both point at it)."""
    from huggingface_hub import constants

    d = tmp_path / "hub"
    d.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(d))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return d


@pytest.fixture
def tiny_repos(cache, tmp_path):
    """A tiny open_clip model as a hub repo (open_clip_model.safetensors) and a head file in another repo."""
    import open_clip

    torch.manual_seed(0)
    save_file(open_clip.model.CLIP(**TINY_CFG).state_dict(), str(tmp_path / "clip.safetensors"))
    save_file(AestheticHead(32).state_dict(), str(tmp_path / "head.safetensors"))
    _lay_out(cache, "test-org/tiny-clip", {"open_clip_model.safetensors": (tmp_path / "clip.safetensors").read_bytes()})
    _lay_out(cache, "test-org/heads", {"tiny/head.safetensors": (tmp_path / "head.safetensors").read_bytes()})
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_CFG))
    return tmp_path / "tiny.json"


def test_names_paths_and_uris_are_told_apart(tmp_path, monkeypatch):
    assert hub_ref("org/name") == HubRef("org/name")
    assert hub_ref("hf-hub:laion/CLIP-ViT-L-14") == HubRef("laion/CLIP-ViT-L-14")
    assert hub_ref("org/name/sub/file.pth") == HubRef("org/name", "sub/file.pth")
    assert hub_ref("hf://org/name/file.pth") == HubRef("org/name", "file.pth")
    for not_a_name in ("s3://bucket/head.pth", "/models/head.pth", "./org/name", "head.pth", "memory://x/y"):
        assert hub_ref(not_a_name) is None, not_a_name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").write_text("x")
    assert hub_ref("org/name") is None  # a relative path that exists is a path


def test_a_cached_name_loads_through_the_same_path_as_a_file(tiny_repos, cache):
    clip = resolve_file("test-org/tiny-clip", ("open_clip_model.safetensors",))
    assert clip.startswith(str(cache)) and clip.endswith("open_clip_model.safetensors")
    scorer = ClipScorer(TINY_NAME, "hf-hub:test-org/tiny-clip", "test-org/heads/tiny/head.safetensors", model_config=TINY_CFG)
    [(emb, aesthetic)] = scorer.score_clips([[np.full((64, 64, 3), 120, np.uint8)]])
    assert len(emb) == 32 and np.isfinite(aesthetic)


def test_config_resolves_names_from_the_cache_and_refuses_an_uncached_one_in_one_line(tiny_repos):
    cfg = load_config(overrides={"aesthetic": {"clip_model": TINY_NAME, "clip_checkpoint": "test-org/tiny-clip",
                                               "head_checkpoint": "test-org/heads/tiny/head.safetensors",
                                               "model_config_file": str(tiny_repos)}})
    assert cfg.aesthetic.clip_checkpoint == "test-org/tiny-clip"  # the name is kept: the record says what ran
    with pytest.raises(ConfigError) as e:
        load_config(overrides={"aesthetic": {"clip_checkpoint": "test-org/not-pulled"}})
    msg = str(e.value)
    assert "\n" not in msg and "aesthetic.clip_checkpoint" in msg and "vidcurate models pull test-org/not-pulled" in msg
    with pytest.raises(ConfigError, match="vidcurate models pull org/vlm"):
        load_config(overrides={"caption": {"model": "org/vlm"}})


def test_auto_is_the_recommended_model_when_cached_else_off_with_the_pull_command(cache):
    cfg = load_config()
    assert cfg.aesthetic.clip_checkpoint is None and cfg.aesthetic.head_checkpoint is None and cfg.caption.model is None
    clip_name = RECOMMENDED["aesthetic.clip_checkpoint"][0]
    assert f"vidcurate models pull {clip_name}" in cfg.unresolved["aesthetic.clip_checkpoint"]
    # lay the recommended CLIP and head out (tiny bytes: `auto` checks the cache, loading is the stage's job)
    _lay_out(cache, clip_name, {"open_clip_model.safetensors": b"x"})
    head_repo, head_file = RECOMMENDED["aesthetic.head_checkpoint"][0].split("/", 2)[:2], \
        RECOMMENDED["aesthetic.head_checkpoint"][0].split("/", 2)[2]
    _lay_out(cache, "/".join(head_repo), {head_file: b"x"})
    cfg = load_config()
    assert cfg.aesthetic.clip_checkpoint == clip_name and cfg.aesthetic.head_checkpoint == RECOMMENDED["aesthetic.head_checkpoint"][0]
    assert "aesthetic.clip_checkpoint" not in cfg.unresolved and cfg.caption.model is None
    assert is_cached(clip_name, ("open_clip_model.safetensors",)).endswith("open_clip_model.safetensors")


def test_the_run_record_says_how_to_get_an_auto_model(cache, tmp_path):
    from pipelines.run import _prepare
    from pipelines.store import RunStore
    from schemas import RunRecord

    (tmp_path / "in").mkdir()
    cfg = load_config()
    record = RunRecord(run_id="r", input_uri="", output_uri="", started_at="", versions={}, config={}, config_hash="")
    _prepare(RunStore(str(tmp_path / "out")), record, str(tmp_path / "in"), cfg, print)
    lines = [x for x in record.not_configured if x.startswith(("embedding", "caption"))]
    assert len(lines) == 2 and all("vidcurate models pull" in x for x in lines), record.not_configured


def test_models_list_and_pull_from_the_cache(tiny_repos, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "aesthetic.clip_checkpoint" in out and "not cached" in out and RECOMMENDED["caption.model"][0] in out
    assert main(["models", "pull", "test-org/tiny-clip"]) == 0  # offline: served from the cache
    assert "test-org/tiny-clip:" in capsys.readouterr().out
    assert main(["models", "pull", "test-org/never-pulled"]) == 2  # offline and not cached: one line, exit 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test-org/never-pulled" in err[0]
    assert main(["models", "pull", "/a/local/path.pth"]) == 2


def test_a_missing_name_raises_model_not_cached(cache):
    with pytest.raises(ModelNotCached, match="vidcurate models pull org/x/file.bin"):
        resolve_file("org/x/file.bin")
