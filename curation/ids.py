"""Deterministic ids: the same bytes at the same relative path and span give the same id everywhere."""
import hashlib


def _short_hash(*parts: object) -> str:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:16]


def video_id(content_hash: str, relpath: str) -> str:
    """Id of an input file: its content and where it sits under the input root.

    The path is part of the id so that an exact copy under another name is its own
    video (and is then found by the duplicates stage), not a silent collision.
    """
    return _short_hash("video", content_hash, relpath)


def clip_id(video_id_: str, start_frame: int, end_frame: int) -> str:
    """Id of a clip: its video and its frame span [start_frame, end_frame)."""
    return _short_hash("clip", video_id_, start_frame, end_frame)
