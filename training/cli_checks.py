"""Checks the training verbs make before any work: inputs that exist, configs that parse.

A failure is SystemExit(message): `vidcurate` prints it as one line and exits 2
(pipelines/cli.py); training/ does not import pipelines/.
"""
import fsspec
import yaml


def require(uri: str, flag: str) -> str:
    """`uri` (a local path or fsspec URI), or SystemExit naming the flag when nothing is there."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        found = fs.exists(path)
    except (ImportError, ValueError, OSError) as e:  # unknown protocol, unreachable store
        raise SystemExit(f"{flag} {uri}: cannot reach it: {e}") from None
    if not found:
        raise SystemExit(f"{flag} {uri}: not found")
    return uri


def read_yaml(path: str, flag: str = "--config") -> dict:
    """The mapping in a YAML file, or SystemExit naming the flag."""
    with fsspec.open(require(path, flag), "r") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise SystemExit(f"{flag} {path}: not valid YAML: {' '.join(str(e).split())}") from None
    if data is not None and not isinstance(data, dict):
        raise SystemExit(f"{flag} {path}: wants a mapping of settings, got {type(data).__name__}")
    return data or {}
