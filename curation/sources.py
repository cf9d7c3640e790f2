"""List input videos under any fsspec URI and read their bytes."""
import hashlib
import posixpath
from dataclasses import dataclass

import fsspec


class InputError(RuntimeError):
    """The input URI cannot be listed (does not exist, no permission, unknown protocol)."""


@dataclass(frozen=True, slots=True)  # slots: a listing of millions of files stays small
class VideoFile:
    uri: str  # full URI (with protocol) a worker can open with fsspec
    relpath: str  # path relative to the input root, "/"-separated
    size: int  # bytes, as listed (-1 when unknown)


def list_videos(input_uri: str, extensions: list[str], storage_options: dict | None = None) -> tuple[list[VideoFile], list[tuple[str, str]]]:
    """Return (videos sorted by relpath, skipped [(uri, reason)]) under `input_uri`.

    `input_uri` may name a folder or a single file. Extensions are matched
    case-insensitively. Files we cannot stat are returned as skipped with a reason
    so the caller can turn them into error rows.
    """
    try:
        fs, root = fsspec.core.url_to_fs(input_uri, **(storage_options or {}))
    except (ImportError, ValueError) as e:
        raise InputError(f"cannot open input {input_uri!r}: {e}") from None
    exts = tuple(e.lower() for e in extensions)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    try:
        if not fs.exists(root):
            raise InputError(f"input {input_uri!r} does not exist")
        if fs.isfile(root):
            info = fs.info(root)
            return [VideoFile(_unstrip(fs, protocol, root), posixpath.basename(root), int(info.get("size") or -1))], []
        if protocol in ("file", "local"):
            entries, unlistable = _find_local(fs, root)
        else:  # object stores list a prefix flat, in pages: there are no folders to be denied
            entries, unlistable = fs.find(root, detail=True, withdirs=False), []
    except InputError:
        raise
    except (OSError, PermissionError) as e:
        raise InputError(f"cannot list input {input_uri!r}: {e}") from None
    videos, skipped = [], []
    for folder, e in unlistable:
        skipped.append((_unstrip(fs, protocol, folder), f"cannot list folder: {e.strerror or e}"))
    root_prefix = root.rstrip("/") + "/"
    for path in sorted(entries):
        info = entries[path]
        rel = path[len(root_prefix):] if path.startswith(root_prefix) else posixpath.basename(path)
        if not rel.lower().endswith(exts):
            continue
        if posixpath.basename(rel).startswith("."):
            continue  # hidden files, partial uploads
        size = info.get("size")
        if info.get("type") not in (None, "file"):
            try:  # a symbolic link to a file is followed; a loop or a dangling link is not
                followed = fs.isfile(path)
                size = fs.size(path) if followed else None
            except (OSError, RuntimeError):
                followed = False
            if not followed:
                why = "broken symbolic link or symlink loop" if info.get("islink") else f"not a regular file ({info.get('type')})"
                skipped.append((_unstrip(fs, protocol, path), why))
                continue
        videos.append(VideoFile(_unstrip(fs, protocol, path), rel, int(size if size is not None else -1)))
    return videos, skipped


def _find_local(fs, root: str) -> tuple[dict[str, dict], list[tuple[str, OSError]]]:
    """Files under `root` with their info, and the folders that could not be listed.

    Like fs.find(detail=True), whose walk silently omits a sub-folder it may not
    read (its on_error is not passed down the recursion). Symbolic links to folders
    are not followed (their type is "other"), so a link loop cannot recurse forever.
    """
    files: dict[str, dict] = {}
    failed: list[tuple[str, OSError]] = []
    stack = [root.rstrip("/")]
    while stack:
        folder = stack.pop()
        try:
            listing = fs.ls(folder, detail=True)
        except OSError as e:
            if folder == root.rstrip("/"):
                raise
            failed.append((folder, e))
            continue
        for info in listing:
            name = info["name"].rstrip("/")
            if info["type"] == "directory":
                if name != folder:
                    stack.append(name)
            else:
                files[name] = info
    return files, failed


def _unstrip(fs, protocol: str, path: str) -> str:
    """Put the protocol back so workers can reopen the path without the listing fs."""
    if protocol in ("file", "local"):
        return path
    return fs.unstrip_protocol(path)


def content_hash(uri: str, storage_options: dict | None = None, chunk: int = 8 << 20) -> str:
    """sha256 of the file's bytes, hex."""
    h = hashlib.sha256()
    with fsspec.open(uri, "rb", **(storage_options or {})) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
