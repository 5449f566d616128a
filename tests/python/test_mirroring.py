"""Silent mirroring through the gateway, and graceful shutdown with a request in flight."""

from __future__ import annotations

import threading
import time

from conftest import read_jsonl, wait_until
from fakes import Recorded, Reply, completion, openai_handler
from openai import OpenAI


def mirror_config(primary_url: str, shadow_url: str, log_file) -> str:
    return f"""
model_list:
  - model_name: primary
    litellm_params:
      model: openai/model-a
      api_base: {primary_url}/v1
      api_key: sk-primary
      silent_model: shadow
  - model_name: shadow
    litellm_params:
      model: openai/model-b
      api_base: {shadow_url}/v1
      api_key: sk-shadow
router_settings:
  num_retries: 0
mirror_settings:
  log_file: {log_file}
  silent_max_in_flight: 1
  shutdown_timeout: 30
"""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def user_text(request: Recorded) -> str:
    return request.json["messages"][-1]["content"]


def test_silent_copy_logs_and_opt_out(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(openai_handler("answer from A"))
    shadow = fake_upstream(openai_handler("answer from B"))
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(mirror_config(primary.url, shadow.url, log))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)

    raw = client.chat.completions.with_raw_response.create(
        model="primary",
        messages=[{"role": "user", "content": "first, mirrored"}],
        metadata={"experiment": "e1"},
    )
    assert raw.parse().choices[0].message.content == "answer from A"
    call_id = raw.headers["x-mirror-call-id"]
    trace_id = raw.headers["x-mirror-trace-id"]

    # B receives a copy, with its own model and key, without gateway metadata.
    copy = shadow.wait_for_requests(1, timeout=60)[0]
    assert copy.path == "/v1/chat/completions"
    assert copy.headers["authorization"] == "Bearer sk-shadow"
    assert copy.json["model"] == "model-b"
    assert user_text(copy) == "first, mirrored"
    assert "metadata" not in copy.json and "silent_model" not in copy.json
    assert primary.requests[0].json["model"] == "model-a"
    assert "metadata" not in primary.requests[0].json and "silent_model" not in primary.requests[0].json

    # The JSONL log: the primary record and the shadow record, tied together.
    def both_records():
        records = read_jsonl(log)
        primary_records = [r for r in records if r.get("litellm_call_id") == call_id]
        shadow_records = [r for r in records if r.get("metadata", {}).get("mirror_of") == call_id]
        return (primary_records, shadow_records) if primary_records and shadow_records else None

    primary_records, shadow_records = wait_until(both_records, timeout=60, what="primary and shadow records")
    assert len(primary_records) == 1 and len(shadow_records) == 1
    first, silent = primary_records[0], shadow_records[0]
    assert first["trace_id"] == trace_id
    assert first["model_group"] == "primary"
    assert first["metadata"]["is_silent_experiment"] is False
    assert first["metadata"].get("mirror_of") is None
    assert silent["metadata"]["is_silent_experiment"] is True
    assert silent["trace_id"] == trace_id
    assert silent["litellm_call_id"] != call_id
    assert silent["model_group"] == "shadow"
    assert silent["status"] == first["status"] == "success"

    # `x-mirror-silent: off` opts this request out.
    opted = client.chat.completions.create(
        model="primary",
        messages=[{"role": "user", "content": "second, opted out"}],
        extra_headers={"x-mirror-silent": "off"},
    )
    assert opted.choices[0].message.content == "answer from A"
    # A third request is mirrored; with one silent call at a time, copies reach B in order, so once the
    # third's copy arrived, an opted-out copy would have too.
    client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "third, mirrored"}])
    copies = shadow.wait_for_requests(2, timeout=60)
    wait_until(
        lambda: [r for r in read_jsonl(log) if r.get("metadata", {}).get("is_silent_experiment")][1:],
        timeout=60,
        what="the second shadow record",
    )
    assert [user_text(r) for r in shadow.requests] == ["first, mirrored", "third, mirrored"], [
        user_text(r) for r in copies
    ]
    assert [user_text(r) for r in primary.requests] == ["first, mirrored", "second, opted out", "third, mirrored"]

    def completed_twice():
        text = gateway.metrics()
        return text if metric(text, "mirror_silent_completed_total") == 2 else None

    text = wait_until(
        completed_twice,
        timeout=60,
        what="two completed silent calls in /metrics",
    )
    assert metric(text, 'mirror_silent_dropped_total{reason="opted_out"}') == 1, text
    # Eligible copies, opted-out one included: mirrored = completed + failed + dropped + in flight.
    assert metric(text, "mirror_silent_mirrored_total") == 3, text
    assert metric(text, "mirror_silent_failed_total") == 0, text


def test_streaming_primary_is_mirrored(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(openai_handler("streamed from A"))
    shadow = fake_upstream(openai_handler("streamed from B"))
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(mirror_config(primary.url, shadow.url, log))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model="primary",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed from A"
    call_id = raw.headers["x-mirror-call-id"]
    copy = shadow.wait_for_requests(1, timeout=60)[0]
    assert copy.json.get("stream") is True
    assert user_text(copy) == "stream me"
    silent = wait_until(
        lambda: [r for r in read_jsonl(log) if r.get("metadata", {}).get("mirror_of") == call_id],
        timeout=60,
        what="the shadow record of a streaming call",
    )[0]
    assert silent["stream"] is True
    assert silent["trace_id"] == raw.headers["x-mirror-trace-id"]


def test_sigterm_drains_an_in_flight_request(start_gateway, fake_upstream, tmp_path):
    arrived = threading.Event()
    release = threading.Event()

    def held(request: Recorded) -> Reply:
        arrived.set()
        release.wait(120)
        return Reply(body=completion("held answer"))

    upstream = fake_upstream(held)
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(
        f"""
model_list:
  - model_name: slow
    litellm_params:
      model: openai/slow-model
      api_base: {upstream.url}/v1
      api_key: sk-upstream
router_settings:
  num_retries: 0
  timeout: 120
mirror_settings:
  log_file: {log}
  shutdown_timeout: 60
"""
    )
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=120)
    outcome: dict = {}

    def call() -> None:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="slow", messages=[{"role": "user", "content": "wait for it"}]
            )
            outcome["call_id"] = raw.headers.get("x-mirror-call-id")
            outcome["answer"] = raw.parse().choices[0].message.content
        except Exception as err:  # reported below
            outcome["error"] = err

    caller = threading.Thread(target=call)
    caller.start()
    assert arrived.wait(60), "the request never reached the upstream"
    gateway.terminate()

    # Readiness turns 503 (or the listener is already closed) while the request is held.
    def not_ready():
        try:
            return gateway.get("/health/readiness")[0] == 503
        except OSError:
            return True

    wait_until(not_ready, timeout=30, what="readiness to go away after SIGTERM")
    time.sleep(0.5)
    assert gateway.proc.poll() is None, "the gateway exited with a request in flight"
    assert "answer" not in outcome

    release.set()
    caller.join(60)
    assert not caller.is_alive()
    assert outcome.get("answer") == "held answer", outcome
    assert gateway.wait() == 0, gateway.stderr()
    # The sinks were flushed before exit.
    records = [r for r in read_jsonl(log) if r.get("litellm_call_id") == outcome["call_id"]]
    assert len(records) == 1 and records[0]["status"] == "success"
