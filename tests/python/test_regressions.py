"""Regressions found by these end-to-end tests: the mock provider honours an explicit base64 encoding,
and responses refused before routing still carry the id headers."""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from fakes import openai_handler
from openai import OpenAI


def test_mock_embeddings_honour_explicit_base64(start_gateway):
    """`encoding_format: "base64"` asked explicitly must come back as a base64 string of float32s (the
    SDK leaves it undecoded for the caller); the built-in mock provider once answered float lists instead."""
    gateway = start_gateway()
    client = OpenAI(base_url=gateway.v1, api_key="x", max_retries=0, timeout=60)
    floats = client.embeddings.create(model="primary", input="hi", encoding_format="float").data[0].embedding
    encoded = client.embeddings.create(model="primary", input="hi", encoding_format="base64").data[0].embedding
    assert isinstance(encoded, str), f"expected a base64 string, got {type(encoded).__name__}: {encoded!r}"
    raw = base64.b64decode(encoded)
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert decoded == pytest.approx(floats, abs=1e-6)


def _config(upstream_url: str) -> str:
    return f"""
model_list:
  - model_name: upstream
    litellm_params:
      model: openai/fake-model
      api_base: {upstream_url}/v1
      api_key: sk-upstream
general_settings:
  master_key: sk-master
mirror_settings:
  log_file: null
  max_body_bytes: 1000
  shutdown_timeout: 10
"""


def test_every_error_response_carries_the_id_headers(start_gateway, fake_upstream):
    """Issue 5: "every response carries `x-mirror-call-id` and `x-mirror-trace-id`". Errors that the
    gateway answers before routing (bad key 401, body too large 413, empty messages 400) do not."""
    upstream = fake_upstream(openai_handler())
    gateway = start_gateway(_config(upstream.url))
    good = OpenAI(base_url=gateway.v1, api_key="sk-master", max_retries=0, timeout=60)
    bad = OpenAI(base_url=gateway.v1, api_key="sk-wrong", max_retries=0, timeout=60)
    cases = []
    for name, call, kind in [
        ("401", lambda: bad.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "x"}]), openai.AuthenticationError),
        ("413", lambda: good.chat.completions.create(model="upstream", messages=[{"role": "user", "content": "x" * 5000}]), openai.APIStatusError),
        ("400", lambda: good.chat.completions.create(model="upstream", messages=[]), openai.BadRequestError),
    ]:
        with pytest.raises(kind) as caught:
            call()
        headers = caught.value.response.headers
        cases.append((name, headers.get("x-mirror-call-id"), headers.get("x-mirror-trace-id")))
    missing = [case for case in cases if not case[1] or not case[2]]
    assert not missing, f"responses without id headers (status, call id, trace id): {missing}"
