"""Caption endpoint backend (curation/caption_endpoint.py) against a REAL `transformers serve` process serving the
tests' tiny random LLaVA from a folder (started in a fixture, stopped by its PID), plus a stdlib HTTP stub (labelled
below) that answers with scripted failures to test retries, timeouts and error rows. No semantics are asserted."""
import http.server
import io
import json
import shutil
import threading
import time

import numpy as np
import pytest
import yaml

from bench.caption_bench import free_port, transformers_serve
from curation.caption_endpoint import EndpointCaptioner, EndpointError, caption_request
from curation.captions import VlmCaptioner
from pipelines.config import ConfigError, load_config
from pipelines.run import run_pipeline
from pipelines.text_stage import decode_jpeg
from schemas import read_table
from test_captions import build_tiny_vlm

pytest.importorskip("fastapi", reason="transformers serve needs the test extra (fastapi, uvicorn, openai, accelerate)")


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vlm") / "tiny-llava"
    build_tiny_vlm(folder)
    return folder


@pytest.fixture(scope="module")
def served(tiny_vlm, tmp_path_factory):
    """(base URL, model name) of `transformers serve <tiny_vlm>` on a free port; stopped by PID afterwards."""
    with transformers_serve(tiny_vlm, log_path=tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url, str(tiny_vlm)


def _jpegs(n: int, seed: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def test_served_captions_equal_in_process_ones(served, tiny_vlm):
    """Same JPEGs, model, prompt and greedy decoding: the endpoint's text is the in-process text, at any concurrency."""
    url, model = served
    clips = [_jpegs(3, 0), _jpegs(1, 1), _jpegs(2, 2), _jpegs(3, 3), _jpegs(3, 4)]
    local = VlmCaptioner(str(tiny_vlm), "Describe this clip.", frames_per_clip=2, max_new_tokens=12, batch_size=1)
    expected = local.caption_clips([[decode_jpeg(j) for j in c] for c in clips])
    for concurrency in (1, 4):
        cap = EndpointCaptioner(url, model, "Describe this clip.", frames_per_clip=2, max_new_tokens=12, concurrency=concurrency)
        try:
            assert cap.caption_clips(clips) == expected
        finally:
            cap.close()
    body = caption_request(model, "p", clips[0][:2], 7)
    assert [c["type"] for c in body["messages"][0]["content"]] == ["image_url", "image_url", "text"]
    assert body["temperature"] == 0 and body["max_tokens"] == 7


def test_rewrite_pass_goes_through_the_same_endpoint(served):
    url, model = served
    plain = EndpointCaptioner(url, model, "Describe this clip.", max_new_tokens=10, concurrency=2)
    rewritten = EndpointCaptioner(url, model, "Describe this clip.", max_new_tokens=10, concurrency=2,
                                  rewrite_prompt="Condense this caption:")
    try:
        [caption] = plain.caption_clips([_jpegs(2, 5)])
        [final] = rewritten.caption_clips([_jpegs(2, 5)])
        # the second request is text only: instruction + the first caption; its answer is the final caption
        assert final == plain._chat({"model": model, "messages": [{"role": "user", "content": f"Condense this caption:\n\n{caption}"}],
                                     "temperature": 0, "max_tokens": 10})
    finally:
        plain.close()
        rewritten.close()


# ---- a scripted stub server (NOT transformers serve): stdlib http.server answering from a list of behaviours ----

class _Stub:
    """OpenAI-shaped stub: each POST pops the next behaviour: an HTTP status, "sleep" (longer than the client's timeout)
    or "ok" (a 200 with a chat completion). Counts requests and the Authorization headers it saw."""

    def __init__(self, script: list):
        self.script, self.requests, self.auth = list(script), 0, []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                stub.requests += 1
                stub.auth.append(self.headers.get("Authorization"))
                what = stub.script.pop(0) if stub.script else "ok"
                if what == "sleep":
                    time.sleep(1.5)
                    what = "ok"
                code, body = (200, {"choices": [{"message": {"role": "assistant", "content": "  a   stub\ncaption "}}]}) if what == "ok" \
                    else (what, {"error": "scripted"})
                data = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _one(url, **kw) -> str | EndpointError:
    cap = EndpointCaptioner(url, "m", "Describe.", concurrency=1, backoff_base_s=0.01, **kw)
    try:
        return cap.caption_clips([_jpegs(1, 0)])[0]
    finally:
        cap.close()


def test_retries_on_5xx_and_timeouts_then_error_without_retry_on_4xx(monkeypatch):
    stub = _Stub([503, 500, "ok"])
    try:
        assert _one(stub.url, retries=2) == "a stub caption" and stub.requests == 3  # whitespace collapsed
        stub.script, stub.requests = [502, 503], 0
        err = _one(stub.url, retries=1)
        assert isinstance(err, EndpointError) and "gave up after 2 tries" in str(err) and "HTTP 503" in str(err) and stub.requests == 2
        stub.script, stub.requests = [400], 0
        err = _one(stub.url, retries=3)
        assert isinstance(err, EndpointError) and "HTTP 400" in str(err) and stub.requests == 1  # a bad request is not retried
        stub.script, stub.requests = ["sleep", "ok"], 0
        assert _one(stub.url, retries=1, timeout_s=0.5) == "a stub caption" and stub.requests == 2  # the slow try timed out
        stub.script, stub.requests = ["sleep"], 0
        err = _one(stub.url, retries=0, timeout_s=0.5)
        assert isinstance(err, EndpointError) and "Timeout" in str(err)
        monkeypatch.setenv("VIDCURATE_TEST_KEY", "sk-test")
        stub.auth = []
        assert _one(stub.url, api_key_env="VIDCURATE_TEST_KEY") == "a stub caption" and stub.auth == ["Bearer sk-test"]
    finally:
        stub.close()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    err = _one(dead, retries=1)
    assert isinstance(err, EndpointError) and "ConnectError" in str(err)


def test_endpoint_config():
    c = load_config(overrides={"caption": {"backend": "endpoint", "endpoint": "http://h:8000/v1", "endpoint_model": "org/vlm"}}).caption
    assert c.model == "org/vlm" and c.concurrency >= 1  # the served name is the stage's model (run record, cache key)
    for bad, says in [({"backend": "endpoint"}, "needs endpoint and endpoint_model"),
                      ({"backend": "endpoint", "endpoint": "h:8000", "endpoint_model": "m"}, "caption.endpoint"),
                      ({"backend": "endpoint", "endpoint": "http://h/v1", "endpoint_model": "m", "model": "/some/folder"}, "backend local"),
                      ({"rewrite_prompt": "Shorter."}, "needs backend: endpoint"),
                      ({"backend": "endpoint", "endpoint": "http://h/v1", "endpoint_model": "m", "api_key_env": "VIDCURATE_UNSET_KEY"},
                       "not set"),
                      ({"backend": "endpoint", "endpoint": "http://h/v1", "endpoint_model": "m", "api_key_env": "sk-123"}, "api_key_env")]:
        with pytest.raises(ConfigError, match=says):
            load_config(overrides={"caption": bad})


def test_stage_on_endpoint_error_rows_then_captions_on_rerun(ray_local, demo_data, served, tmp_path):
    """A dead endpoint: every kept clip is an error row (stage caption) and the run completes; the rerun against the
    served model captions them all (failed clips were not cached)."""
    url, model = served
    data = tmp_path / "input"
    data.mkdir()
    for name in ("cuts.mp4", "pan_h2.mp4", "static.mp4"):
        shutil.copy(demo_data / name, data / name)
    out = tmp_path / "out"
    cfg = {"caption": {"backend": "endpoint", "endpoint": f"http://127.0.0.1:{free_port()}/v1", "endpoint_model": model,
                       "max_new_tokens": 12, "retries": 0, "concurrency": 4},
           "stages": {"text": {"enabled": False}}}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    record = run_pipeline(str(data), str(out), load_config(cfg_path), log=lambda *_: None)
    n = record.counts["caption"]["clips_to_caption"]
    assert n >= 3 and record.counts["caption"]["caption_errors"] == n and record.counts["caption"]["clips_captioned"] == 0
    errors = read_table(str(out / "errors"), "errors").to_pylist()
    caption_errors = [e for e in errors if e["stage"] == "caption"]
    assert len(caption_errors) == n and all("ConnectError" in e["message"] for e in caption_errors)
    first = read_table(str(out / "clips"), "clips")
    assert first.column("caption").null_count == first.num_rows  # no made-up captions for the failed clips

    cfg["caption"]["endpoint"] = url
    cfg_path.write_text(yaml.safe_dump(cfg))
    (out / "_work" / "final.json").unlink(missing_ok=True)
    again = run_pipeline(str(data), str(out), load_config(cfg_path), log=lambda *_: None)
    assert again.counts["caption"]["clips_to_caption"] == n and again.counts["caption"]["caption_errors"] == 0
    clips = read_table(str(out / "clips"), "clips").select(["caption", "drop_reasons"]).to_pylist()
    captioned = [r for r in clips if r["caption"] is not None]
    assert len(captioned) == n
    assert not [e for e in read_table(str(out / "errors"), "errors").to_pylist() if e["stage"] == "caption"]
