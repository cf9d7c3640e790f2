"""CLIP image embeddings and the LAION "improved aesthetic predictor" score.

Weights are only ever read from configured files, fsspec URIs or the local Hugging Face cache (never
downloaded by name, never randomly initialised here): a scorer without a
checkpoint is not created, and the pipeline leaves its columns null.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import fsspec
import numpy as np
import torch
from torch import nn

from curation.models import OPEN_CLIP_FILES, resolve_file


class AestheticHead(nn.Module):
    """LAION improved-aesthetic-predictor MLP (christophschuhmann/improved-aesthetic-predictor).

    Layer indices match that repo's `layers.N.weight` keys (N = 0, 2, 4, 6, 7), so its
    released .pth files load unchanged. It has no activations: the original is affine.
    Input: L2-normalised CLIP image embeddings (N, D); output: scores (N,), ~1..10.
    """

    def __init__(self, input_dim: int = 768):
        super().__init__()
        self.input_dim = input_dim
        self.layers = nn.Sequential(
            nn.Linear(input_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.layers(emb).squeeze(-1)  # (N, D) -> (N,)


@contextlib.contextmanager
def _local_copy(uri: str, storage_options: dict | None) -> Iterator[str]:
    """Yield a local path for uri: itself when local, else a temp copy (same suffix)."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if "file" in fs.protocol or "local" in fs.protocol:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint not found: {uri}")
        yield path
        return
    suffix = "".join(Path(path).suffixes[-1:])
    with tempfile.TemporaryDirectory(prefix="vidcurate-ckpt-") as tmp:
        local = os.path.join(tmp, "checkpoint" + suffix)
        fs.get_file(path, local)
        yield local


def _read_state_dict(local_path: str) -> dict[str, torch.Tensor]:
    if local_path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(local_path, device="cpu")
    if local_path.endswith((".pth", ".pt")):
        sd = torch.load(local_path, map_location="cpu", weights_only=True)
        return sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    raise ValueError(f"unsupported checkpoint format {local_path!r}: use .safetensors, .pth or .pt")


def load_aesthetic_head(uri: str, storage_options: dict | None = None) -> AestheticHead:
    """Read an aesthetic head from a .safetensors/.pth/.pt file, an fsspec URI or a cached Hugging Face file name
    (eval mode)."""
    with _local_copy(resolve_file(uri), storage_options) as local:
        sd = _read_state_dict(local)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "layers.0.weight" not in sd:
        raise ValueError(f"{uri}: not an aesthetic head state dict (no 'layers.0.weight'; keys: {sorted(sd)[:5]})")
    head = AestheticHead(input_dim=int(sd["layers.0.weight"].shape[1]))
    head.load_state_dict(sd, strict=True)
    return head.eval()


def load_clip_encoder(
    model_name: str,
    checkpoint_uri: str,
    device: str,
    storage_options: dict | None = None,
    model_config: dict | None = None,
):
    """(model, preprocess) of an open_clip model with weights from checkpoint_uri (eval mode).

    model_config registers a custom architecture under model_name (open_clip config
    dict with embed_dim, vision_cfg, text_cfg), e.g. a tiny model in tests.
    """
    import open_clip

    if model_config is not None:
        # open_clip finds architectures by JSON file stem in its config registry
        cfg_dir = Path(tempfile.mkdtemp(prefix="vidcurate-oc-cfg-"))
        (cfg_dir / f"{model_name}.json").write_text(json.dumps(model_config))
        open_clip.add_model_config(cfg_dir / f"{model_name}.json")
    with _local_copy(resolve_file(checkpoint_uri, OPEN_CLIP_FILES), storage_options) as local:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=local,
            device=device,
            weights_only=True,
            pretrained_image=False,  # no base-tower downloads: the checkpoint is the whole model
            pretrained_text=False,
            require_pretrained=True,  # fail rather than run on random weights
        )
    return model.eval(), preprocess


class ClipScorer:
    """CLIP embedding + optional aesthetic score per clip; loads the models once."""

    def __init__(
        self,
        model_name: str,
        clip_checkpoint: str,
        head_checkpoint: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        reduce: str = "mean",
        storage_options: dict | None = None,
        model_config: dict | None = None,
    ):
        if reduce not in ("mean", "min"):
            raise ValueError(f"reduce must be 'mean' or 'min', got {reduce!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device, self.batch_size, self.reduce = device, batch_size, reduce
        self.model, self.preprocess = load_clip_encoder(
            model_name, clip_checkpoint, device, storage_options=storage_options, model_config=model_config
        )
        self.head: AestheticHead | None = None
        if head_checkpoint:
            self.head = load_aesthetic_head(head_checkpoint, storage_options).to(device)
            embed_dim = int(self.model.visual.output_dim)
            if self.head.input_dim != embed_dim:
                raise ValueError(f"aesthetic head expects {self.head.input_dim}-d embeddings, {model_name} gives {embed_dim}")

    @torch.inference_mode()
    def embed_frames(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """L2-normalised image embeddings (N, D) of RGB uint8 frames, float32 on CPU."""
        from PIL import Image

        out = []
        for i in range(0, len(frames), self.batch_size):
            x = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames[i : i + self.batch_size]])
            emb = self.model.encode_image(x.to(self.device)).float()  # (B, D)
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def score_clips(self, clip_frames: Sequence[Sequence[np.ndarray]]) -> list[tuple[list[float], float | None]]:
        """Per clip: (mean of frame embeddings, re-normalised; aesthetic reduced over frames or None)."""
        if any(len(f) == 0 for f in clip_frames):
            raise ValueError("every clip needs at least one frame to score")
        flat = [f for frames in clip_frames for f in frames]
        if not flat:
            return []
        emb = self.embed_frames(flat)  # (N, D), all clips' frames in shared batches
        scores = self.head(emb.to(self.device)).float().cpu() if self.head is not None else None  # (N,)
        results, start = [], 0
        for frames in clip_frames:
            end = start + len(frames)
            clip_emb = torch.nn.functional.normalize(emb[start:end].mean(dim=0), dim=0)  # (D,)
            aesthetic = None
            if scores is not None:
                s = scores[start:end]
                aesthetic = float(s.mean() if self.reduce == "mean" else s.min())
            results.append((clip_emb.tolist(), aesthetic))
            start = end
        return results
