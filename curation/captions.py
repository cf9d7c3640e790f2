"""Clip captions from a vision-language model read from a folder or URI through `transformers`.

Any model that `AutoModelForImageTextToText` loads works (LLaVA, Qwen2-VL, Idefics,
PaliGemma, ...): the prompt goes through the chat template the model ships, with
one image entry per frame. Weights are only read from the configured location,
never downloaded by name; without a configured model there are no captions.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence

import fsspec
import numpy as np

from curation.models import resolve_folder

DTYPES = ("float32", "bfloat16", "float16", "auto")


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def vlm_folder_problem(uri: str, storage_options: dict | None = None) -> str | None:
    """Why `uri` is not an image-text-to-text model folder (one line), or None when it is one."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        if not fs.isdir(path):
            return f"{uri!r} is not a folder (a transformers model folder with config.json is expected)"
        if not fs.exists(f"{path.rstrip('/')}/config.json"):
            return f"{uri!r} has no config.json: not a transformers model folder"
        with fs.open(f"{path.rstrip('/')}/config.json", "r") as f:
            model_type = json.load(f).get("model_type")
        names = {n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(path, detail=False)}
    except json.JSONDecodeError as e:
        return f"{uri!r}: config.json is not valid JSON ({e})"
    except Exception as e:  # unknown protocol, unreachable store
        return f"cannot reach {uri!r}: {e}"
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return f"{uri!r} holds a {model_type!r} model, not an image-text-to-text model that transformers knows"
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        return f"{uri!r} has no weights (*.safetensors or *.bin)"
    if not names & {"processor_config.json", "preprocessor_config.json"}:
        return f"{uri!r} has no processor (processor_config.json or preprocessor_config.json)"
    return None


@contextlib.contextmanager
def _local_folder(uri: str, storage_options: dict | None) -> Iterator[str]:
    """Yield a local folder for uri: itself when local, else a temporary copy."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if _is_local(fs):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="vidcurate-vlm-") as tmp:
        fs.get(path.rstrip("/") + "/", tmp + "/", recursive=True)
        yield tmp


def pick_frames(frames: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """`n` frames spread evenly over `frames` (all of them when there are fewer)."""
    if len(frames) <= n:
        return list(frames)
    return [frames[i] for i in np.linspace(0, len(frames) - 1, n).round().astype(int)]


def chat_messages(prompt: str, n_frames: int) -> list[dict]:
    """One user turn: the clip's frames as images, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}] * n_frames + [{"type": "text", "text": prompt}]}]


class VlmCaptioner:
    """Holds one VLM and its processor (loaded once) and captions clips from their frames."""

    def __init__(self, model_uri: str, prompt: str, frames_per_clip: int = 3, max_new_tokens: int = 96,
                 batch_size: int = 4, device: str = "cpu", dtype: str = "float32", storage_options: dict | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_uri = resolve_folder(model_uri)  # a Hugging Face name: its snapshot in the local cache
        problem = vlm_folder_problem(model_uri, storage_options)
        if problem:
            raise ValueError(problem)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.prompt, self.frames_per_clip, self.max_new_tokens = prompt, frames_per_clip, max_new_tokens
        self.batch_size, self.device = batch_size, device
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        with _local_folder(model_uri, storage_options) as local:
            # local_files_only: a folder is read as it is, nothing is fetched from a hub
            self.processor = AutoProcessor.from_pretrained(local, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(local, dtype=torch_dtype, local_files_only=True)
        self.model = self.model.to(device).eval()
        if not getattr(self.processor, "chat_template", None):
            raise ValueError(f"{model_uri!r}: the processor has no chat template; captions need the one the model ships")
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # batched generation continues every row from its last prompt token

    def caption_clips(self, clip_frames: Sequence[Sequence[np.ndarray]]) -> list[str]:
        """One caption per clip from its RGB uint8 frames (greedy decoding: same input, same text)."""
        if any(len(f) == 0 for f in clip_frames):
            raise ValueError("every clip needs at least one frame to caption")
        out: list[str] = []
        for i in range(0, len(clip_frames), self.batch_size):
            out.extend(self._generate([pick_frames(f, self.frames_per_clip) for f in clip_frames[i : i + self.batch_size]]))
        return out

    def _generate(self, batch: list[list[np.ndarray]]) -> list[str]:
        import torch
        from PIL import Image

        prompts = [self.processor.apply_chat_template(chat_messages(self.prompt, len(f)), add_generation_prompt=True, tokenize=False)
                   for f in batch]
        images = [[Image.fromarray(x) for x in f] for f in batch]
        inputs = self.processor(text=prompts, images=images, padding=True, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs and self.model.dtype != torch.float32:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)  # (B, prompt + new)
        new = ids[:, inputs["input_ids"].shape[1] :]  # (B, new): left padding puts every prompt's end at the same column
        return [" ".join(t.split()) for t in self.processor.batch_decode(new, skip_special_tokens=True)]
