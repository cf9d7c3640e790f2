"""One CLI convention: every verb reports a bad option, a missing input or a bad config in one line on stderr,
exit 2, no traceback (in process, through pipelines.cli.main, and once through the installed script)."""
import subprocess
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _verbs() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    return set(sub.choices)


def _missing_input(tmp: Path) -> dict[str, list[str] | None]:
    """Per verb: a command line whose input does not exist (None: the verb reads no input)."""
    gone, out = str(tmp / "missing"), str(tmp / "out")
    return {
        "run": ["run", gone, out],
        "sample-data": None,
        "heldout-data": None,
        "evaluate": ["evaluate", gone, "--truth", str(tmp / "truth.json")],
        "dashboard": ["dashboard", gone],
        "compare": ["compare", gone, gone],
        "query": ["query", gone, "select 1"],
        "export": ["export", gone],
        "train-ae": ["train-ae", "--manifest", gone, "--out", out],
        "encode": ["encode", "--manifest", gone, "--checkpoint", gone, "--out", out],
        "eval-ae": ["eval-ae", "--checkpoint", gone, "--manifest", gone, "--out", str(tmp / "r.json")],
        "train-diffusion": ["train-diffusion", "--latents", gone, "--out", out],
        "sample": ["sample", "--checkpoint", gone, "--out", out],
        "models": ["models", "list", "--config", gone],
        "ablation-study": ["ablation-study", "--curated", gone, "--all", gone, "--reference", gone,
                           "--autoencoder", gone, "--out", out],
    }


def _bad_config(tmp: Path) -> list[list[str]]:
    bad = tmp / "bad.yaml"
    bad.write_text("output: {heartbeat_s: -1}\nno_such_section: 1\n")
    broken = tmp / "broken.yaml"
    broken.write_text("steps: [unclosed\n")
    return [["run", str(tmp), str(tmp / "out"), "--config", str(bad)],
            ["export", str(tmp), "--config", str(bad)],
            ["train-ae", "--config", str(broken), "--manifest", str(tmp)],
            ["train-diffusion", "--latents", str(tmp), "--out", str(tmp / "o"), "--config", str(broken)],
            ["train-diffusion", "--latents", str(tmp), "--out", str(tmp / "o"), "--model", "huge"],
            ["sample-data", str(tmp / "s"), "--count", "3"]]


def _one_line_exit_2(argv: list[str], capsys) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}, stderr {err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("vidcurate: error: "), f"{argv}: {err[-2000:]}"


def test_every_verb_has_a_missing_input_case():
    assert set(_missing_input(Path("/x"))) == _verbs()


def test_every_verb_refuses_a_missing_input_in_one_line(tmp_path, capsys):
    for verb, argv in _missing_input(tmp_path).items():
        if argv is not None:
            _one_line_exit_2(argv, capsys)


@pytest.mark.parametrize("option", [["--no-such-option"], ["--seed", "not-a-number"]])
def test_every_verb_refuses_a_bad_option_in_one_line(tmp_path, capsys, option):
    for verb in sorted(_verbs()):
        if option[0] == "--seed" and verb not in ("sample-data", "heldout-data", "sample"):
            continue
        _one_line_exit_2([verb, *option], capsys)


def test_bad_configs_are_one_line(tmp_path, capsys):
    for argv in _bad_config(tmp_path):
        _one_line_exit_2(argv, capsys)


def test_the_installed_script_says_one_line_and_exits_2(tmp_path):
    done = subprocess.run([str(REPO / ".venv" / "bin" / "vidcurate"), "train-diffusion", "--latents",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
