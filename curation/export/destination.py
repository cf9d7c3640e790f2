"""Where an export goes: a folder on any fsspec filesystem, written one atomic file at a time."""
import json
import posixpath
import uuid

import fsspec


class DestinationError(RuntimeError):
    """The destination cannot be opened or written."""


class Destination:
    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri_root = uri.rstrip("/")
        try:
            self.fs, root = fsspec.core.url_to_fs(self.uri_root, **(storage_options or {}))
        except (ImportError, ValueError) as e:
            raise DestinationError(f"cannot open destination {uri!r}: {e}") from None
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.has_folders = bool({"file", "local"} & set(protocols))  # object stores: keys only, and no bucket creation

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def uri(self, rel: str) -> str:
        return f"{self.uri_root}/{rel}"

    def check_writable(self) -> None:
        """Fail fast, with one line, when nothing can be written there."""
        probe = self.path(f".write-probe-{uuid.uuid4().hex}")
        try:
            if self.has_folders:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"ok")
            self.fs.rm(probe)
        except Exception as e:  # PermissionError, read-only fs, missing bucket, bad credentials...
            raise DestinationError(f"destination {self.uri_root!r} is not writable: {' '.join(str(e).split())}") from None

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under `rel`; empty when it does not exist."""
        folder = self.path(rel) if rel else self.root
        self.fs.invalidate_cache(folder)  # object stores cache listings; another process may have written since
        if not self.fs.exists(folder):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False))

    def _commit(self, tmp: str, rel: str) -> None:
        self.fs.mv(tmp, self.path(rel))

    def _tmp(self, rel: str) -> str:
        parent = posixpath.dirname(self.path(rel))
        if self.has_folders:
            self.fs.makedirs(parent, exist_ok=True)
        return posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(rel)}")

    def put_file(self, local_path: str, rel: str) -> None:
        """Copy a local file to `rel` atomically: a hidden temporary name, then a rename."""
        tmp = self._tmp(rel)
        self.fs.put_file(local_path, tmp)
        self._commit(tmp, rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        tmp = self._tmp(rel)
        self.fs.pipe_file(tmp, data)
        self._commit(tmp, rel)

    def write_json(self, rel: str, data) -> None:
        self.write_bytes(rel, dumps(data).encode())

    def read_json(self, rel: str):
        path = self.path(rel)
        self.fs.invalidate_cache(path)
        if not self.fs.exists(path):
            return None
        return json.loads(self.fs.cat_file(path))

    def remove(self, rel: str) -> None:
        if self.fs.exists(self.path(rel)):
            self.fs.rm(self.path(rel))

    def remove_temporaries(self, rel: str = "") -> None:
        """Delete hidden temporaries a killed export left behind."""
        for name in self.listdir(rel):
            if name.startswith(".tmp-"):
                self.fs.rm(self.path(posixpath.join(rel, name) if rel else name))


def dumps(data) -> str:
    """JSON with sorted keys and no NaN (null instead): the same data gives the same bytes."""
    return json.dumps(_finite(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _finite(x):
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
