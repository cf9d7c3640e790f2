"""Config: defaults validate; bad configs fail fast with a message naming the key."""
import pytest

from pipelines.config import ConfigError, load_config, stage_order


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_default_config_is_valid_and_ordered():
    cfg = load_config()
    order = stage_order(cfg)
    assert order.index("probe_split_score") < order.index("filter") < order.index("dedup")
    assert len(cfg.hash()) == 64


@pytest.mark.parametrize(
    "text, key",
    [
        ("split:\n  min_clip_s: lots\n", "split.min_clip_s"),
        ("spilt:\n  min_clip_s: 1\n", "spilt"),
        ("decode:\n  sample_fps: -1\n", "decode.sample_fps"),
        ("split:\n  min_clip_s: 30\n  max_clip_s: 20\n", "split"),
        ("filters:\n  - {column: sharpnes, min: 1, reason: blurry}\n", "filters.0.column"),
        ("stages:\n  filter: {depends_on: [nowhere]}\n", "nowhere"),
        ("aesthetic:\n  clip_checkpoint: /nonexistent/clip.bin\n", "aesthetic.clip_checkpoint"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_write(tmp_path, text))


def test_user_config_merges_over_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "split:\n  max_clip_s: 7.5\n"))
    assert cfg.split.max_clip_s == 7.5
    assert cfg.split.detector == "adaptive"


def test_credentials_never_in_public_config(tmp_path):
    cfg = load_config(_write(tmp_path, "input:\n  storage_options: {key: AKIASECRET, secret: hunter2}\n"))
    text = str(cfg.public_dict())
    assert "AKIASECRET" not in text and "hunter2" not in text


def test_unknown_stage_needs_an_entrypoint(tmp_path):
    with pytest.raises(ConfigError, match="stages.summary"):
        load_config(_write(tmp_path, "stages:\n  summary: {depends_on: [filter]}\n"))
    with pytest.raises(ConfigError, match="stages.summary.entrypoint"):
        load_config(_write(tmp_path, "stages:\n  summary: {depends_on: [filter], entrypoint: 'nomodule:fn'}\n"))
    cfg = load_config(_write(tmp_path, "stages:\n  summary: {depends_on: [filter], entrypoint: 'custom_stage_example:drop_short_names'}\n"))
    assert "summary" in stage_order(cfg)


def test_cycle_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="cycle"):
        load_config(_write(tmp_path, "stages:\n  filter: {depends_on: [dedup]}\n"))
