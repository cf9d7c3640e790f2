"""Caption throughput: the endpoint backend against a real `transformers serve` process at several concurrencies,
side by side with the in-process backend (transformers generate) on the same clips and the same tiny random VLM.

    python -m bench.caption_bench [--clips 48] [--concurrency 1,4,16] [--max-new-tokens 32]

Both backends caption the same keyframe JPEGs with the same model folder, prompt, frames per clip and token
budget (greedy), and the bench reports how many endpoint captions equal the in-process ones. A tiny random model
on a shared CPU makes the absolute clips/s mean little: the ratios and the scaling with concurrency are the point.
Writes bench/results/caption.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Describe this video clip in one or two sentences: the subject, the action, the setting and the camera."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def transformers_serve(folder: str | Path, extra_args: tuple[str, ...] = (), start_timeout_s: float = 180.0,
                       log_path: str | Path | None = None) -> Iterator[str]:
    """A `transformers serve` process preloading the model in `folder` on CPU; yields its base URL (…/v1).

    Started as a child process (own session) and stopped by its PID: SIGTERM, then SIGKILL if it lingers."""
    import httpx

    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe) if exe.exists() else "transformers", "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", "--dtype", "float32", *extra_args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"transformers serve exited with code {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer /health within {start_timeout_s:.0f} s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # this PID only, never a name
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def make_clips(n: int, frames: int = 3, seed: int = 0, size: tuple[int, int] = (144, 256)) -> list[list[bytes]]:
    """`n` clips of `frames` keyframe JPEGs each: smooth colour fields with noise (not semantic, just pixels)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    clips = []
    for _ in range(n):
        base = rng.uniform(0, 255, 3)
        clip = []
        for t in range(frames):
            img = (base + 60 * np.sin((xx + 7 * t) / rng.uniform(8, 40))[..., None] + rng.normal(0, 12, (h, w, 3)))
            buf = io.BytesIO()
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
            clip.append(buf.getvalue())
        clips.append(clip)
    return clips


def bench_local(folder: str, clips: list[list[bytes]], batch_size: int, max_new_tokens: int, frames_per_clip: int) -> tuple[float, list[str]]:
    """(clips/s, captions) of the in-process backend, JPEG decode included as in the stage; model load excluded."""
    from curation.captions import VlmCaptioner
    from pipelines.text_stage import decode_jpeg

    cap = VlmCaptioner(folder, PROMPT, frames_per_clip=frames_per_clip, max_new_tokens=max_new_tokens, batch_size=batch_size)
    cap.caption_clips([[decode_jpeg(j) for j in clips[0]]])  # warm-up
    t0 = time.perf_counter()
    texts = cap.caption_clips([[decode_jpeg(j) for j in c] for c in clips])
    return len(clips) / (time.perf_counter() - t0), texts


def bench_endpoint(url: str, model: str, clips: list[list[bytes]], concurrency: int, max_new_tokens: int,
                   frames_per_clip: int) -> tuple[float, list[str], int]:
    """(clips/s, captions, errors) of the endpoint backend at `concurrency` requests in flight."""
    from curation.caption_endpoint import EndpointCaptioner

    cap = EndpointCaptioner(url, model, PROMPT, frames_per_clip=frames_per_clip, max_new_tokens=max_new_tokens,
                            concurrency=concurrency, timeout_s=300, retries=1)
    try:
        cap.caption_clips(clips[:1])  # warm-up (connection, first request)
        t0 = time.perf_counter()
        out = cap.caption_clips(clips)
        rate = len(clips) / (time.perf_counter() - t0)
    finally:
        cap.close()
    return rate, [o if isinstance(o, str) else None for o in out], sum(not isinstance(o, str) for o in out)


@contextlib.contextmanager
def latency_stub(latency_s: float) -> Iterator[str]:
    """NOT a model: an OpenAI-shaped stdlib server whose every answer takes `latency_s` whatever the load, the way a
    GPU server batching the requests in flight behaves below its batch limit. It isolates the client's scaling."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(latency_s)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": "a stub caption"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.caption_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=48, help="clips captioned per measurement (default 48)")
    ap.add_argument("--concurrency", default="1,4,16", help="endpoint requests in flight, comma-separated (default 1,4,16)")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="caption length budget (tokens, default 32)")
    ap.add_argument("--frames-per-clip", type=int, default=3, help="keyframes per clip (default 3)")
    ap.add_argument("--batch-size", type=int, default=4, help="in-process generate() batch (default 4, the config default)")
    ap.add_argument("--model", help="a VLM folder (default: a tiny random LLaVA built here)")
    ap.add_argument("--continuous-batching", action="store_true", help="also measure `transformers serve --continuous-batching`")
    ap.add_argument("--stub-latency-ms", type=float, default=200.0,
                    help="also measure against a stub server (not a model) answering in this many ms; 0 = skip (default 200)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]

    import torch

    with tempfile.TemporaryDirectory(prefix="vidcurate-caption-bench-") as tmp:
        folder = args.model
        if folder is None:
            sys.path.insert(0, str(REPO))
            from tests.test_captions import build_tiny_vlm

            folder = str(Path(tmp) / "tiny-llava")
            build_tiny_vlm(folder)
        clips = make_clips(args.clips, args.frames_per_clip)
        rows = []
        local_rate, local_texts = bench_local(folder, clips, args.batch_size, args.max_new_tokens, args.frames_per_clip)
        rows.append({"backend": f"in-process, batch {args.batch_size}", "clips_per_s": local_rate})
        ref_rate, ref_texts = bench_local(folder, clips, 1, args.max_new_tokens, args.frames_per_clip)
        rows.append({"backend": "in-process, batch 1", "clips_per_s": ref_rate})
        servers = [("transformers serve", ())] + [("transformers serve --continuous-batching", ("--continuous-batching",))] * args.continuous_batching
        for label, extra in servers:
            try:
                with transformers_serve(folder, extra, log_path=Path(tmp) / "serve.log") as url:
                    for c in levels:
                        rate, texts, errors = bench_endpoint(url, folder, clips, c, args.max_new_tokens, args.frames_per_clip)
                        rows.append({"backend": f"endpoint ({label}), concurrency {c}", "clips_per_s": rate, "errors": errors,
                                     "same_as_in_process_batch1": sum(a == b for a, b in zip(texts, ref_texts))})
            except RuntimeError as e:
                rows.append({"backend": f"endpoint ({label})", "error": str(e)[-500:]})
        if args.stub_latency_ms > 0:
            with latency_stub(args.stub_latency_ms / 1000) as url:
                for c in levels:
                    rate, _, errors = bench_endpoint(url, "stub", clips, c, args.max_new_tokens, args.frames_per_clip)
                    rows.append({"backend": f"endpoint (stub, NOT a model: {args.stub_latency_ms:.0f} ms/answer), concurrency {c}",
                                 "clips_per_s": rate, "errors": errors})
    base = rows[0]["clips_per_s"]
    for r in rows:
        if "clips_per_s" in r:
            r["vs_in_process"] = r["clips_per_s"] / base
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), torch threads {torch.get_num_threads()}",
        "model": "tiny random LLaVA (tests/test_captions.py)" if args.model is None else args.model,
        "clips": args.clips, "frames_per_clip": args.frames_per_clip, "max_new_tokens": args.max_new_tokens,
        "note": "client and server share the same CPU cores; absolute numbers mean little, ratios and scaling are the point",
        "rows": rows,
        "summary": [{"metric": r["backend"], "value": round(r["clips_per_s"], 2), "unit": f"clips/s ({r['vs_in_process']:.2f}x)"}
                    for r in rows if "clips_per_s" in r],
    }
    print(f"\n{'backend':<64} {'clips/s':>8} {'vs local':>9} {'same text':>10}")
    for r in rows:
        if "clips_per_s" in r:
            same = f"{r['same_as_in_process_batch1']}/{args.clips}" if "same_as_in_process_batch1" in r else ""
            print(f"{r['backend']:<64} {r['clips_per_s']:>8.2f} {r['vs_in_process']:>8.2f}x {same:>10}")
        else:
            print(f"{r['backend']:<64} FAILED: {r['error'][-200:]}")
    out = REPO / "bench" / "results" / "caption.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
