"""Gateway and upstream errors surface as the `openai` SDK's exception types."""

from __future__ import annotations

import openai
import pytest
from fakes import Reply, error_reply, openai_handler
from openai import OpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


def one_group(upstream_url: str, extra: str = "") -> str:
    return f"""
model_list:
  - model_name: upstream
    litellm_params:
      model: openai/fake-model
      api_base: {upstream_url}/v1
      api_key: sk-upstream
router_settings:
  num_retries: 0
mirror_settings:
  log_file: null
  shutdown_timeout: 10
{extra}
"""


def sdk(gateway, api_key: str = "sk-anything") -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=api_key, max_retries=0, timeout=60)


def test_master_key(start_gateway, fake_upstream):
    upstream = fake_upstream(openai_handler("authorized"))
    gateway = start_gateway(one_group(upstream.url, 'general_settings:\n  master_key: "sk-master-1234"'))

    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(gateway, "sk-wrong").chat.completions.create(model="upstream", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert len(upstream.requests) == 0

    # /v1/models and /metrics are protected too; health is not.
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-wrong").models.list()
    assert gateway.get("/metrics")[0] == 401
    assert gateway.get("/health/liveliness")[0] == 200

    answer = sdk(gateway, "sk-master-1234").chat.completions.create(model="upstream", messages=MESSAGES)
    assert answer.choices[0].message.content == "authorized"
    # The caller's key is not the upstream's: the gateway sends the configured one.
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-upstream"

    # Azure clients send `api-key`.
    azure = openai.AzureOpenAI(
        azure_endpoint=gateway.url, api_version="2024-10-21", api_key="sk-master-1234", max_retries=0
    )
    assert azure.chat.completions.create(model="upstream", messages=MESSAGES).choices[0].message.content == "authorized"
    with pytest.raises(openai.AuthenticationError):
        openai.AzureOpenAI(
            azure_endpoint=gateway.url, api_version="2024-10-21", api_key="nope", max_retries=0
        ).chat.completions.create(model="upstream", messages=MESSAGES)


def test_no_master_key_accepts_any_key(start_gateway, fake_upstream):
    upstream = fake_upstream(openai_handler("open door"))
    gateway = start_gateway(one_group(upstream.url))
    for key in ["sk-one", "another-key", "x"]:
        answer = sdk(gateway, key).chat.completions.create(model="upstream", messages=MESSAGES)
        assert answer.choices[0].message.content == "open door"


def test_unknown_model_not_found(start_gateway, fake_upstream):
    upstream = fake_upstream(openai_handler())
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(gateway).chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert caught.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        sdk(gateway).embeddings.create(model="gpt-nonexistent", input="x")
    assert len(upstream.requests) == 0


def test_upstream_429_is_rate_limit_error(start_gateway, fake_upstream):
    upstream = fake_upstream(
        lambda request: error_reply(
            429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", {"Retry-After": "7"}
        )
    )
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    err = caught.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded"
    retry_after = err.response.headers.get("retry-after")
    assert retry_after is not None, dict(err.response.headers)
    assert float(retry_after) >= 1
    assert err.response.headers.get("x-mirror-call-id")
    assert len(upstream.requests) == 1  # num_retries: 0


def test_upstream_context_length_is_bad_request(start_gateway, fake_upstream):
    upstream = fake_upstream(
        lambda request: error_reply(
            400,
            "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        )
    )
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"


def test_upstream_500_is_internal_server_error(start_gateway, fake_upstream):
    upstream = fake_upstream(lambda request: error_reply(500, "The server had an error", "server_error", None))
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict) and caught.value.body.get("message")


def test_upstream_garbage_is_internal_server_error(start_gateway, fake_upstream):
    upstream = fake_upstream(lambda request: Reply(200, b"this is not json"))
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert caught.value.status_code == 502


def test_body_over_the_limit_is_413(start_gateway, fake_upstream):
    upstream = fake_upstream(openai_handler("small enough"))
    gateway = start_gateway(one_group(upstream.url).replace("shutdown_timeout: 10", "shutdown_timeout: 10\n  max_body_bytes: 1000"))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=[{"role": "user", "content": "x" * 5000}])
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict) and caught.value.body.get("message")
    assert len(upstream.requests) == 0
    # A small request still passes.
    answer = sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert answer.choices[0].message.content == "small enough"


def test_bad_request_body_is_400(start_gateway, fake_upstream):
    upstream = fake_upstream(openai_handler())
    gateway = start_gateway(one_group(upstream.url))
    with pytest.raises(openai.BadRequestError):
        sdk(gateway).chat.completions.create(model="upstream", messages=[])
    with pytest.raises(openai.BadRequestError):
        # `messages` missing altogether.
        sdk(gateway).post("/chat/completions", body={"model": "upstream"}, cast_to=object)
    assert len(upstream.requests) == 0
