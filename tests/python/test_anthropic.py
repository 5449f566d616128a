"""Anthropic's Messages API through `mirror serve` with the official `anthropic` SDK: `messages.create`
plain and streamed (raw events and the `messages.stream` helper), tool use, `count_tokens`, errors as
the SDK's own exception types, and a Claude primary mirrored to a Claude shadow, paired in the log."""

from __future__ import annotations

import json

import anthropic
import pytest
from conftest import read_jsonl, wait_until
from fakes import Recorded, Reply, anthropic_error, anthropic_handler

MASTER_KEY = "sk-master-0123456789"


def config(primary_url: str, shadow_url: str, log_file, failing_url: str | None = None) -> str:
    failing = ""
    if failing_url:
        failing = f"""
  - model_name: claude-failing
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {failing_url}
      api_key: sk-ant-failing
"""
    return f"""
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {primary_url}
      api_key: sk-ant-primary
      silent_model: claude-shadow
  - model_name: claude-shadow
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: {shadow_url}
      api_key: sk-ant-shadow
{failing}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
mirror_settings:
  log_file: {log_file}
  shutdown_timeout: 30
"""


def client(gateway, prefix: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url + prefix, api_key=MASTER_KEY, max_retries=0, timeout=60)


def silent_completed(gateway, count: int) -> None:
    def done() -> bool:
        status, body = gateway.get("/health/readiness")
        return status == 200 and json.loads(body)["silent"]["completed"] >= count

    wait_until(done, what=f"{count} completed silent call(s)")


@pytest.mark.parametrize("prefix", ["", "/anthropic"])
def test_create_plain_and_streamed(start_gateway, fake_upstream, tmp_path, prefix):
    primary = fake_upstream(anthropic_handler("primary"))
    shadow = fake_upstream(anthropic_handler("shadow"))
    gateway = start_gateway(config(primary.url, shadow.url, tmp_path / "calls.jsonl"))
    claude = client(gateway, prefix)

    raw = claude.messages.with_raw_response.create(
        model="claude",
        max_tokens=64,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert raw.headers["x-mirror-call-id"] == raw.headers["request-id"]
    message = raw.parse()
    assert message.content[0].text == "hello from primary"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (9, 2, 4)

    events = list(claude.messages.create(model="claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    text = "".join(event.delta.text for event in events if event.type == "content_block_delta")
    assert text == "hello from primary"

    with claude.messages.stream(model="claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "hello from primary"
    assert final.usage.output_tokens == 4

    seen = primary.wait_for_requests(3)[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-primary", "the upstream key comes from the config"
    assert seen.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert seen.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert seen.json["model"] == "claude-sonnet-4-5"


def test_tool_use_round_trip(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(anthropic_handler("primary"))
    shadow = fake_upstream(anthropic_handler("shadow"))
    gateway = start_gateway(config(primary.url, shadow.url, tmp_path / "calls.jsonl"))
    claude = client(gateway)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    question = {"role": "user", "content": "weather in Paris?"}

    first = claude.messages.create(model="claude", max_tokens=64, tools=tools, messages=[question])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})

    with claude.messages.stream(model="claude", max_tokens=64, tools=tools, messages=[question]) as stream:
        streamed = stream.get_final_message()
    streamed_call = next(block for block in streamed.content if block.type == "tool_use")
    assert streamed_call.input == {"city": "Paris"}

    answer = claude.messages.create(
        model="claude",
        max_tokens=64,
        tools=tools,
        messages=[
            question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert answer.content[0].text == "hello from primary"
    sent = primary.wait_for_requests(3)[2].json
    assert sent["messages"][1]["content"][1]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}


def test_count_tokens(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(anthropic_handler("primary"))
    shadow = fake_upstream(anthropic_handler("shadow"))
    gateway = start_gateway(config(primary.url, shadow.url, tmp_path / "calls.jsonl"))
    counted = client(gateway).messages.count_tokens(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == 21
    seen = primary.wait_for_requests(1)[0]
    assert seen.path == "/v1/messages/count_tokens"
    assert "max_tokens" not in seen.json
    assert shadow.requests == [], "count_tokens is never mirrored"


def test_errors_are_the_sdk_s_exception_types(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(anthropic_handler("primary"))
    shadow = fake_upstream(anthropic_handler("shadow"))
    replies = {
        "rate": anthropic_error(429, "rate_limit_error", "rate limited", {"retry-after": "3"}),
        "overloaded": anthropic_error(529, "overloaded_error", "Overloaded"),
        "bad": anthropic_error(400, "invalid_request_error", "max_tokens: must be at least 1"),
    }
    current = {"reply": replies["rate"]}

    def failing_handler(_request: Recorded) -> Reply:
        return current["reply"]

    failing = fake_upstream(failing_handler)
    gateway = start_gateway(config(primary.url, shadow.url, tmp_path / "calls.jsonl", failing.url))
    claude = client(gateway)
    hello = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}

    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="claude-failing", **hello)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["error"]["type"] == "rate_limit_error"

    current["reply"] = replies["overloaded"]
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(model="claude-failing", **hello)

    current["reply"] = replies["bad"]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude-failing", **hello)
    assert "max_tokens" in caught.value.message

    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-group", **hello)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0).messages.create(model="claude", **hello)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude", max_tokens=64, messages=[])


def test_a_claude_primary_is_mirrored_to_a_claude_shadow(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(anthropic_handler("primary"))
    shadow = fake_upstream(anthropic_handler("shadow"))
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(config(primary.url, shadow.url, log))
    claude = client(gateway)

    claude.messages.create(model="claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}], metadata={"user_id": "u-1"})
    with claude.messages.stream(model="claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "hello from primary"
    silent_completed(gateway, 2)
    gateway.stop()

    records = read_jsonl(log)
    primaries = [r for r in records if not r["metadata"]["is_silent_experiment"]]
    shadows = [r for r in records if r["metadata"]["is_silent_experiment"]]
    assert len(primaries) == 2 and len(shadows) == 2
    for record in primaries:
        twin = next(r for r in shadows if r["metadata"]["mirror_of"] == record["litellm_call_id"])
        assert twin["trace_id"] == record["trace_id"]
        assert (record["call_type"], twin["call_type"]) == ("anthropic_messages", "anthropic_messages")
        assert record["response"]["choices"][0]["message"]["content"] == "hello from primary"
        assert twin["response"]["choices"][0]["message"]["content"] == "hello from shadow"
        assert twin["model_group"] == "claude-shadow"
        assert record["prompt_tokens"] == 11
    assert all(seen.json["model"] == "claude-haiku-4-5" for seen in shadow.requests)
    assert all("litellm_metadata" not in seen.json for seen in shadow.requests)
    assert shadow.requests[0].json["metadata"] == {"user_id": "u-1"}
