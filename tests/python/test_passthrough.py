"""What passes through the gateway untouched: unknown request fields, tool calls, annotation chunks,
mid-stream errors, timeouts."""

from __future__ import annotations

import threading

import openai
import pytest
from fakes import Recorded, Reply, chunk, completion, error_reply, usage
from openai import OpenAI

MESSAGES = [{"role": "user", "content": "hello"}]


def config(upstream_url: str, timeout: float | None = None) -> str:
    router_timeout = f"\n  timeout: {timeout}" if timeout is not None else ""
    return f"""
model_list:
  - model_name: upstream
    litellm_params:
      model: openai/fake-model
      api_base: {upstream_url}/v1
      api_key: sk-upstream
router_settings:
  num_retries: 0{router_timeout}
mirror_settings:
  log_file: null
  shutdown_timeout: 10
"""


def sdk(gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def test_unknown_fields_and_tool_calls_pass_through(start_gateway, fake_upstream):
    def handle(request: Recorded) -> Reply:
        body = request.json
        if body.get("stream"):
            events = [
                chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **TOOL_CALL, "function": {"name": "get_weather", "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                chunk({}, "tool_calls"),
                "[DONE]",
            ]
            return Reply(events=events)
        answer = completion("", system_fingerprint="fp_x", service_tier="default")
        answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
        answer["choices"][0]["finish_reason"] = "tool_calls"
        return Reply(body=answer)

    upstream = fake_upstream(handle)
    gateway = start_gateway(config(upstream.url))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    result = sdk(gateway).chat.completions.create(
        model="upstream",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        ],
        tools=tools,
        tool_choice="auto",
        seed=42,
        response_format={"type": "text"},
        max_completion_tokens=50,
        user="end-user-1",
        extra_body={"some_future_field": {"nested": [1, 2]}},
    )
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.choices[0].message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert result.system_fingerprint == "fp_x"
    sent = upstream.requests[-1].json
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert sent["seed"] == 42
    assert sent["response_format"] == {"type": "text"}
    assert sent["max_completion_tokens"] == 50
    assert sent["user"] == "end-user-1"
    assert sent["some_future_field"] == {"nested": [1, 2]}
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "weather?"}]

    # Tool-call deltas in a stream, assembled by the SDK's stream helper.
    with sdk(gateway).chat.completions.stream(model="upstream", messages=MESSAGES, tools=tools) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    assert final.choices[0].finish_reason == "tool_calls"


def test_annotation_only_chunks_are_relayed(start_gateway, fake_upstream):
    """Azure's asynchronous content filter sends chunks with no `delta` and an empty id."""
    annotation = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [
            {
                "index": 0,
                "finish_reason": None,
                "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
                "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 5},
            }
        ],
    }

    def handle(request: Recorded) -> Reply:
        return Reply(
            events=[
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "safe"}),
                annotation,
                chunk({"content": " text"}),
                chunk({}, "stop"),
                annotation,
                "[DONE]",
            ]
        )

    upstream = fake_upstream(handle)
    gateway = start_gateway(config(upstream.url))
    chunks = list(sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES, stream=True))
    text = "".join((c.choices[0].delta.content or "") if c.choices and c.choices[0].delta else "" for c in chunks)
    assert text == "safe text"
    annotations = [c for c in chunks if c.choices and c.choices[0].delta is None]
    assert len(annotations) == 2, [c.model_dump() for c in chunks]
    assert annotations[0].model_dump()["choices"][0]["content_filter_offsets"]["end_offset"] == 5


def test_mid_stream_error_raises_api_error(start_gateway, fake_upstream):
    def handle(request: Recorded) -> Reply:
        return Reply(
            events=[
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "partial"}),
                {"error": {"message": "upstream overloaded mid-stream", "type": "server_error", "code": None}},
            ]
        )

    upstream = fake_upstream(handle)
    gateway = start_gateway(config(upstream.url))
    stream = sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for c in stream:
            received.append(c)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "partial"
    assert caught.value.message


def test_stream_request_rejected_upstream_is_a_status_error(start_gateway, fake_upstream):
    upstream = fake_upstream(
        lambda request: error_reply(429, "slow down", "requests", "rate_limit_exceeded", {"retry-after-ms": "2500"})
    )
    gateway = start_gateway(config(upstream.url))
    with pytest.raises(openai.RateLimitError) as caught:
        list(sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES, stream=True))
    assert caught.value.response.headers.get("retry-after") in {"3", "2.5"}


def test_upstream_content_filter_is_bad_request(start_gateway, fake_upstream):
    upstream = fake_upstream(
        lambda request: Reply(
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {"code": "ResponsibleAIPolicyViolation"},
                }
            },
        )
    )
    gateway = start_gateway(config(upstream.url))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert caught.value.code == "content_filter"


def test_upstream_timeout_is_a_gateway_timeout(start_gateway, fake_upstream):
    release = threading.Event()

    def slow(request: Recorded) -> Reply:
        release.wait(60)
        return Reply(body=completion("too late"))

    upstream = fake_upstream(slow)
    gateway = start_gateway(config(upstream.url, timeout=1))
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
        assert caught.value.status_code == 504
    finally:
        release.set()


def test_response_without_usage(start_gateway, fake_upstream):
    def handle(request: Recorded) -> Reply:
        body = completion("no usage here")
        del body["usage"]
        return Reply(body=body)

    upstream = fake_upstream(handle)
    gateway = start_gateway(config(upstream.url))
    result = sdk(gateway).chat.completions.create(model="upstream", messages=MESSAGES)
    assert result.choices[0].message.content == "no usage here"
    assert result.usage is None


def test_stream_usage_chunk_from_upstream_is_relayed_once(start_gateway, fake_upstream):
    def handle(request: Recorded) -> Reply:
        return Reply(
            events=[
                chunk({"role": "assistant", "content": "one"}),
                chunk({}, "stop"),
                {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": "fake-model", "choices": [], "usage": usage(7, 1)},
                "[DONE]",
            ]
        )

    upstream = fake_upstream(handle)
    gateway = start_gateway(config(upstream.url))
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="upstream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].usage.prompt_tokens == 7
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}
