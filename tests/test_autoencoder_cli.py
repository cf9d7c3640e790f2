"""The `train-ae` and `encode` subcommands parse and route to their handlers; usage errors are SystemExit(message)
(one line and exit 2 under `vidcurate`, tests/test_cli_convention.py)."""
import argparse

import pytest

from training.autoencoder.cli import add_parsers


def _parser():
    p = argparse.ArgumentParser(prog="vidcurate")
    add_parsers(p.add_subparsers(dest="command", required=True))
    return p


def test_subcommands_parse():
    a = _parser().parse_args(["encode", "--manifest", "m", "--checkpoint", "c.pt", "--out", "o", "--size", "64"])
    assert a.command == "encode" and a.size == 64 and a.fps == 8.0 and a.frames == 17 and a.func.__name__ == "_encode"
    t = _parser().parse_args(["train-ae", "--manifest", "m", "--steps", "5"])
    assert t.steps == 5 and t.func.__name__ == "_train"


def test_encode_requires_checkpoint(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["encode", "--manifest", "m", "--out", "o"])
    assert e.value.code == 2 and "--checkpoint" in capsys.readouterr().err


def test_train_without_manifest_is_a_clear_error():
    a = _parser().parse_args(["train-ae"])
    with pytest.raises(SystemExit, match="no manifest"):
        a.func(a)


def test_bad_config_fails_fast_before_the_inputs_are_looked_at(tmp_path):
    cfg = tmp_path / "ae.yaml"
    cfg.write_text("model: {kind: video}\ndata: {clip_frames: 8}\n")  # 8 is not 1 + 4k
    a = _parser().parse_args(["train-ae", "--config", str(cfg), "--manifest", "m"])
    with pytest.raises(SystemExit, match=r"clip_frames must be 1 \+ 4\*k"):
        a.func(a)
    cfg.write_text("model: {kind: audio}\n")
    a = _parser().parse_args(["train-ae", "--config", str(cfg), "--manifest", "m"])
    with pytest.raises(SystemExit, match="model.kind"):
        a.func(a)
    cfg.write_text("model: {}\n")
    a = _parser().parse_args(["train-ae", "--config", str(cfg), "--manifest", str(tmp_path / "gone")])
    with pytest.raises(SystemExit, match="--manifest .*gone: not found"):
        a.func(a)
