"""Where a model's weights are: a path, an fsspec URI, or a Hugging Face repo id resolved from the local cache.

A model setting takes any of:

- a local path or an fsspec URI (`s3://bucket/head.safetensors`, `/models/qwen-vl/`);
- a Hugging Face repo id, `org/name` (or open_clip's `hf-hub:org/name`): the whole repo
  (a transformers model folder, or an open_clip repo whose weights file is found in it);
- a file in a repo, `org/name/file.pth` (or `hf://org/name/file.pth`).

Names resolve from the standard Hugging Face cache only (`HF_HUB_CACHE`, `HF_HOME`):
a run never downloads. `vidcurate models pull NAME...` fills the cache ahead of the run
(huggingface_hub), and a name that is not cached fails at config time with one line that
names that command.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# open_clip's file names in a hub repo, newest format first
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# what `auto` stands for in the default config: (setting, reference, what it is)
RECOMMENDED = {
    "aesthetic.clip_checkpoint": ("laion/CLIP-ViT-L-14-laion2B-s32B-b82K", "open_clip ViT-L-14 (LAION-2B), 768-d embeddings"),
    "aesthetic.head_checkpoint": ("camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth",
                                  "LAION improved aesthetic predictor (MLP on ViT-L-14 embeddings)"),
    "caption.model": ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL 3B instruct, image-text-to-text"),
}


class ModelNotCached(FileNotFoundError):
    """A Hugging Face name that the local cache does not hold (one line, naming the pull command)."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str | None = None  # None: the whole repo

    @property
    def name(self) -> str:
        return self.repo_id + (f"/{self.filename}" if self.filename else "")


def hub_ref(ref: str) -> HubRef | None:
    """The Hugging Face reference `ref` names, or None for a path or URI (a path that exists wins)."""
    if ref.startswith("hf-hub:"):
        return HubRef(ref.removeprefix("hf-hub:").strip("/"))
    if ref.startswith("hf://"):
        ref = ref.removeprefix("hf://")
    elif "://" in ref or ref.startswith((".", "/", "~")) or os.path.exists(ref):
        return None
    parts = ref.strip("/").split("/")
    if len(parts) < 2 or not _REPO.match("/".join(parts[:2])):
        return None
    return HubRef("/".join(parts[:2]), "/".join(parts[2:]) or None)


def _not_cached(ref: HubRef, what: str = "") -> ModelNotCached:
    return ModelNotCached(f"{ref.name!r}{what} is not in the Hugging Face cache ({_cache_dir()}): "
                          f"run `vidcurate models pull {ref.name}` first (runs never download)")


def _cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_file(ref: HubRef, candidates: tuple[str, ...] = ()) -> str:
    """Local path of the file `ref` names (or of the first of `candidates` in the repo) in the cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ([ref.filename] if ref.filename else list(candidates)):
        path = try_to_load_from_cache(ref.repo_id, filename)
        if isinstance(path, str):
            return path
    wanted = "" if ref.filename else f" (one of {', '.join(candidates)})"
    raise _not_cached(ref, wanted)


def cached_folder(ref: HubRef) -> str:
    """Local snapshot folder of the repo `ref` names, from the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(ref.repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise _not_cached(ref) from None


def is_cached(ref: str, candidates: tuple[str, ...] = ()) -> str | None:
    """The local path `ref` resolves to in the cache, or None (not cached, or not a hub name)."""
    hub = hub_ref(ref)
    if hub is None:
        return None
    try:
        return cached_file(hub, candidates) if hub.filename or candidates else cached_folder(hub)
    except ModelNotCached:
        return None


def resolve_file(ref: str, candidates: tuple[str, ...] = ()) -> str:
    """A local path or URI for a weights file: `ref` itself unless it is a hub name (then its cached file)."""
    hub = hub_ref(ref)
    return ref if hub is None else cached_file(hub, candidates)


def resolve_folder(ref: str) -> str:
    """A local path or URI for a model folder: `ref` itself unless it is a hub name (then its cached snapshot)."""
    hub = hub_ref(ref)
    if hub is None:
        return ref
    return cached_folder(hub) if hub.filename is None else os.path.dirname(cached_file(hub))


def pull(ref: str) -> str:
    """Download `ref` (a hub name) into the standard cache with huggingface_hub; returns its local path."""
    from huggingface_hub import hf_hub_download, snapshot_download

    hub = hub_ref(ref)
    if hub is None:
        raise ValueError(f"{ref!r} is a path or URI, not a Hugging Face name (org/name or org/name/file)")
    return hf_hub_download(hub.repo_id, hub.filename) if hub.filename else snapshot_download(hub.repo_id)
