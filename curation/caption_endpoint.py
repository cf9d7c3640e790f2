"""Clip captions from a VLM served behind an OpenAI-compatible endpoint (vLLM, TGI, `transformers serve`).

Each clip is one chat request: its keyframes (sampled across the clip) as base64 JPEG `image_url` parts, then
the prompt; greedy (temperature 0). Many requests are kept in flight at once: the server batches what is in
flight, so concurrency here is what makes it fast. A request that fails on a connection error, a timeout or a
5xx/429 answer is tried again with exponential backoff; a clip that still fails comes back as an error for that
clip alone. An optional second request per clip (text only, same endpoint) rewrites or condenses the caption.
"""
from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from curation.captions import pick_frames

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """A request that failed for good (after its retries, or at once on a 4xx answer)."""


def image_part(jpeg: bytes) -> dict:
    """One frame as an OpenAI `image_url` content part (a data URL: the JPEG as stored, not encoded again)."""
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")}}


def caption_request(model: str, prompt: str, jpegs: Sequence[bytes], max_tokens: int) -> dict:
    """Chat-completion body: one user turn with the clip's frames, then the prompt; greedy decoding."""
    content = [image_part(j) for j in jpegs] + [{"type": "text", "text": prompt}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": max_tokens,
            "stream": False}


def rewrite_request(model: str, rewrite_prompt: str, caption: str, max_tokens: int) -> dict:
    """Chat-completion body of the enhancement pass: the instruction, then the caption, text only."""
    return {"model": model, "messages": [{"role": "user", "content": f"{rewrite_prompt}\n\n{caption}"}], "temperature": 0,
            "max_tokens": max_tokens, "stream": False}


def backoff_s(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before try `attempt + 1`: exponential with jitter (full jitter over the upper half)."""
    top = min(cap, base * 2 ** attempt)
    return top / 2 + random.random() * top / 2


class EndpointCaptioner:
    """Captions clips through an OpenAI-compatible chat endpoint, `concurrency` requests in flight."""

    def __init__(self, base_url: str, model: str, prompt: str, frames_per_clip: int = 3, max_new_tokens: int = 96,
                 concurrency: int = 8, timeout_s: float = 120.0, retries: int = 3, api_key_env: str | None = None,
                 rewrite_prompt: str | None = None, backoff_base_s: float = 0.5):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.prompt, self.frames_per_clip, self.max_new_tokens = model, prompt, frames_per_clip, max_new_tokens
        self.concurrency, self.retries, self.rewrite_prompt, self.backoff_base_s = concurrency, retries, rewrite_prompt, backoff_base_s
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"caption.api_key_env names {api_key_env!r}, which is not set in this process's environment")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s),
                                   limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="caption-endpoint")

    def caption_clips(self, clip_jpegs: Sequence[Sequence[bytes]]) -> list[str | EndpointError]:
        """One caption per clip from its keyframe JPEGs, or the EndpointError that stopped it (in input order)."""
        return list(self.pool.map(self._caption_one, clip_jpegs))

    def _caption_one(self, jpegs: Sequence[bytes]) -> str | EndpointError:
        try:
            if not jpegs:
                raise EndpointError("the clip has no keyframes to caption")
            text = self._chat(caption_request(self.model, self.prompt, pick_frames(jpegs, self.frames_per_clip), self.max_new_tokens))
            if self.rewrite_prompt:
                text = self._chat(rewrite_request(self.model, self.rewrite_prompt, text, self.max_new_tokens))
            return text
        except EndpointError as e:
            return e

    def _chat(self, body: dict) -> str:
        """The reply's text (whitespace collapsed); retried on transport errors, timeouts and 408/429/5xx."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff_s(attempt - 1, self.backoff_base_s))
            try:
                r = self.client.post(self.url, json=body)
            except httpx.TransportError as e:  # refused, reset, DNS, read/connect timeout
                last = f"{type(e).__name__}: {e}"
                continue
            if r.status_code in RETRY_STATUS:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code != 200:
                raise EndpointError(f"HTTP {r.status_code} from {self.url}: {r.text[:300]}")
            try:
                text = r.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise EndpointError(f"unexpected reply from {self.url} ({type(e).__name__}): {r.text[:300]}") from None
            if not isinstance(text, str):
                raise EndpointError(f"reply from {self.url} has no text content: {r.text[:300]}")
            return " ".join(text.split())
        raise EndpointError(f"{self.url}: gave up after {self.retries + 1} tries; last: {last}")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()
