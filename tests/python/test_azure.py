"""Azure OpenAI on both sides: the SDK's `AzureOpenAI` client against the gateway, and an Azure-shaped
upstream behind it."""

from __future__ import annotations

import re

import openai
from fakes import Recorded, Reply, error_reply, openai_handler
from openai import AzureOpenAI, OpenAI

API_VERSION = "2024-10-21"
AZURE_KEY = "azure-key-0123456789"

FILTER_OK = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
PROMPT_FILTER = [
    {"prompt_index": 0, "content_filter_results": {**FILTER_OK, "jailbreak": {"filtered": False, "detected": False}}}
]
DEPLOYMENT_PATH = re.compile(r"^/openai/deployments/(?P<dep>[^/]+)/chat/completions$")


def azure_upstream_handler(answer_words: list[str]):
    """Answers like Azure OpenAI: `api-key` auth, filter results, and a stream that opens with an
    empty-choices chunk carrying only `prompt_filter_results`."""

    def handle(request: Recorded) -> Reply:
        match = DEPLOYMENT_PATH.match(request.path)
        if not match:
            return error_reply(404, "Resource not found", "invalid_request_error", "404")
        if request.headers.get("api-key") != AZURE_KEY:
            return error_reply(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
                "invalid_request_error",
                "401",
            )
        if request.query.get("api-version") != [API_VERSION]:
            return error_reply(404, "Resource not found", "invalid_request_error", "404")
        body = request.json
        model = "gpt-4o-2024-08-06"  # Azure answers with the model, not the deployment name
        if not body.get("stream"):
            return Reply(
                body={
                    "id": "chatcmpl-azure",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": model,
                    "system_fingerprint": "fp_azure",
                    "prompt_filter_results": PROMPT_FILTER,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "message": {"role": "assistant", "content": " ".join(answer_words), "refusal": None},
                            "content_filter_results": FILTER_OK,
                        }
                    ],
                    "usage": {"prompt_tokens": 9, "completion_tokens": len(answer_words), "total_tokens": 9 + len(answer_words)},
                }
            )
        base = {"id": "chatcmpl-azure", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "system_fingerprint": "fp_azure"}
        events: list = [
            # Azure's first chunk: empty choices, empty ids, only the prompt filter results.
            {"id": "", "object": "", "created": 0, "model": "", "choices": [], "prompt_filter_results": PROMPT_FILTER}
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "content_filter_results": {}}]})
        for i, word in enumerate(answer_words):
            piece = word if i == 0 else " " + word
            events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None, "content_filter_results": FILTER_OK}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "content_filter_results": {}}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(answer_words), "total_tokens": 9 + len(answer_words)}})
        events.append("[DONE]")
        return Reply(events=events)

    return handle


def azure_config(upstream_url: str) -> str:
    return f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-gpt4o-deployment
      api_base: {upstream_url}
      api_key: {AZURE_KEY}
      api_version: "{API_VERSION}"
router_settings:
  num_retries: 0
mirror_settings:
  log_file: null
  shutdown_timeout: 10
"""


def test_azure_client_against_the_gateway(start_gateway):
    """`AzureOpenAI` calls `/openai/deployments/{deployment}/chat/completions?api-version=...` with an
    `api-key` header; the deployment names the model group."""
    gateway = start_gateway()
    client = AzureOpenAI(azure_endpoint=gateway.url, api_version=API_VERSION, api_key="any-key", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "azure client says hi"}]
    )
    assert raw.http_request.url.path == "/openai/deployments/primary/chat/completions"
    assert raw.http_request.url.params["api-version"] == API_VERSION
    assert raw.headers.get("x-mirror-call-id")
    completion = raw.parse()
    assert completion.choices[0].message.content == "azure client says hi"
    assert completion.model == "primary-v1"

    stream = client.chat.completions.create(
        model="primary",
        messages=[{"role": "user", "content": "azure stream says hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "azure stream says hi"
    assert chunks[-1].usage is not None and chunks[-1].choices == []

    # A deployment that is no model group.
    try:
        client.chat.completions.create(model="not-a-group", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("expected openai.NotFoundError")

    # Azure embeddings path too.
    embedded = client.embeddings.create(model="primary", input="azure embedding")
    assert embedded.data and all(isinstance(x, float) for x in embedded.data[0].embedding)


def test_azure_shaped_upstream(start_gateway, fake_upstream):
    upstream = fake_upstream(azure_upstream_handler(["filtered", "but", "fine"]))
    gateway = start_gateway(azure_config(upstream.url))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)

    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello azure"}],
        temperature=0.2,
        metadata={"tag": "caller-metadata"},
        extra_body={"silent_model": "should-not-leak"},
    )
    assert completion.choices[0].message.content == "filtered but fine"
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.usage.total_tokens == 12
    # Azure's extra fields are relayed.
    dumped = completion.model_dump()
    assert dumped.get("prompt_filter_results") == PROMPT_FILTER
    assert dumped["choices"][0].get("content_filter_results") == FILTER_OK

    seen = upstream.wait_for_requests(1)[0]
    assert seen.method == "POST"
    assert seen.path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert seen.query == {"api-version": [API_VERSION]}
    assert seen.headers.get("api-key") == AZURE_KEY
    assert "authorization" not in seen.headers  # the caller's key never reaches the upstream
    body = seen.json
    assert "metadata" not in body
    assert "silent_model" not in body
    assert body["messages"] == [{"role": "user", "content": "hello azure"}]
    assert body["temperature"] == 0.2

    # Streaming, with Azure's empty first chunk.
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream from azure"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "filtered but fine"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    stream_seen = upstream.wait_for_requests(2)[1]
    assert stream_seen.path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert stream_seen.json.get("stream") is True
    assert "metadata" not in stream_seen.json

    # The AzureOpenAI client through the gateway to the Azure upstream.
    azure_client = AzureOpenAI(azure_endpoint=gateway.url, api_version=API_VERSION, api_key="sk-caller", max_retries=0, timeout=60)
    stream = azure_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "both sides azure"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "filtered but fine"


def test_azure_upstream_rejects_a_wrong_key(start_gateway, fake_upstream):
    upstream = fake_upstream(azure_upstream_handler(["never"]))
    gateway = start_gateway(azure_config(upstream.url).replace(f"api_key: {AZURE_KEY}", "api_key: wrong-key"))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    except openai.APIStatusError as err:
        # An upstream auth failure is the operator's problem, not the caller's key: any error status but 2xx.
        assert err.status_code >= 400
        assert AZURE_KEY not in str(err.body) and "wrong-key" not in str(err.body)
    else:
        raise AssertionError("expected an error")
    assert upstream.wait_for_requests(1)[0].headers.get("api-key") == "wrong-key"


def test_embeddings_base64_through_an_openai_upstream(start_gateway, fake_upstream):
    """The SDK asks for base64 by default; an upstream that honours it answers base64 strings, which the
    gateway must relay as they are so the SDK decodes them."""
    upstream = fake_upstream(openai_handler())
    gateway = start_gateway(
        f"""
model_list:
  - model_name: embedder
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {upstream.url}/v1
      api_key: sk-upstream
mirror_settings:
  log_file: null
  shutdown_timeout: 10
"""
    )
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)
    result = client.embeddings.create(model="embedder", input=["a", "b"])
    assert upstream.requests[-1].json["encoding_format"] == "base64"
    assert upstream.requests[-1].path == "/v1/embeddings"
    assert upstream.requests[-1].json["model"] == "text-embedding-3-small"
    assert [item.embedding for item in result.data] == [[0.5, -0.25, 0.0], [0.5, -0.25, 1.0]]

    result = client.embeddings.create(model="embedder", input="a", encoding_format="float", dimensions=3)
    assert upstream.requests[-1].json["encoding_format"] == "float"
    assert upstream.requests[-1].json["dimensions"] == 3
    assert result.data[0].embedding == [0.5, -0.25, 0.0]
