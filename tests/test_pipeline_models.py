"""The model stages inside a real run: a tiny random open_clip model and head saved to files,
configured by path, loaded by Ray actors through the same code real weights take."""
import json

import pyarrow.compute as pc
import pytest
import torch
import yaml
from safetensors.torch import save_file

from curation.aesthetics import AestheticHead
from pipelines.config import default_config_dict, load_config
from pipelines.run import run_pipeline
from schemas import read_table

TINY_NAME = "vidcurate-pipeline-tiny-vit"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def model_config_file(tmp_path_factory):
    import open_clip

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    torch.save(open_clip.model.CLIP(**TINY_CFG).state_dict(), d / "clip.pt")
    save_file(AestheticHead(32).state_dict(), str(d / "head.safetensors"))
    (d / "arch.json").write_text(json.dumps(TINY_CFG))
    cfg = {
        "aesthetic": {"clip_model": TINY_NAME, "clip_checkpoint": str(d / "clip.pt"),
                      "head_checkpoint": str(d / "head.safetensors"), "model_config_file": str(d / "arch.json"),
                      "batch_size": 8},
        # random weights: do not drop anything on their scores (rules merge by reason: keep only too_short)
        "filters": [{"reason": r["reason"], "enabled": False} for r in default_config_dict()["filters"]
                    if r["reason"] != "too_short"],
        "dedup": {"kinds": ["exact", "perceptual", "semantic"], "semantic_eps": 0.0},
    }
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_embeddings_and_aesthetic_for_every_clip(ray_local, demo_data, model_config_file, tmp_path):
    record = run_pipeline(str(demo_data), str(tmp_path / "out"), load_config(model_config_file), log=lambda *_: None)
    clips = read_table(str(tmp_path / "out" / "clips"), "clips")
    with_keys = clips.filter(pc.invert(pc.is_null(clips.column("phash"))))
    assert with_keys.num_rows >= 10
    assert with_keys.column("aesthetic").null_count == 0
    dims = {len(e) for e in with_keys.column("embedding").to_pylist()}
    assert dims == {TINY_CFG["embed_dim"]}
    norms = pc.list_value_length(with_keys.column("embedding"))
    assert pc.min(norms).as_py() == 32
    for emb in with_keys.column("embedding").to_pylist():
        assert sum(x * x for x in emb) == pytest.approx(1.0, abs=1e-4)
    assert not any(line.startswith("aesthetic") for line in record.not_configured)
    assert record.counts["embed"]["clips_embedded"] == with_keys.num_rows
    assert not any("semantic dedup: skipped" in n for n in record.notes)

    # a rerun with the same weights reuses the cached embeddings: nothing to embed again
    again = run_pipeline(str(demo_data), str(tmp_path / "out"), load_config(model_config_file), log=lambda *_: None)
    assert again.status == "nothing_to_do"
