"""Across formats through `mirror serve` with the official SDKs: the `openai` SDK calling an
`anthropic/` group (chat, streamed, tools; a 400 naming what cannot be translated), and the
`anthropic` SDK calling an OpenAI group (create, streamed, tools), each primary mirrored to the other
format and paired in the log."""

from __future__ import annotations

import json

import anthropic
import openai
from conftest import read_jsonl, wait_until
from fakes import Recorded, Reply, anthropic_handler, chunk, completion, stream_events, usage

MASTER_KEY = "sk-master-0123456789"


def config(claude_url: str, gpt_url: str, log_file) -> str:
    return f"""
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {claude_url}
      api_key: sk-ant-primary
      silent_model: gpt
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {gpt_url}/v1
      api_key: sk-openai
      silent_model: claude
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
mirror_settings:
  log_file: {log_file}
  shutdown_timeout: 30
"""


def gpt_handler(request: Recorded) -> Reply:
    """An OpenAI chat server that calls the first tool when the request has tools and the last message
    is not a tool result, and otherwise answers `hello from gpt`."""
    body = request.json or {}
    tools = body.get("tools") or []
    calls_tool = tools and body["messages"][-1]["role"] != "tool"
    if body.get("stream"):
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        if not calls_tool:
            return Reply(events=stream_events(["hello", "from", "gpt"], include))
        name = tools[0]["function"]["name"]
        events = [
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({}, "tool_calls"),
        ]
        if include:
            events.append({**chunk({}), "choices": [], "usage": usage()})
        return Reply(events=events + ["[DONE]"])
    if not calls_tool:
        return Reply(body=completion("hello from gpt"))
    answer = completion("")
    answer["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": tools[0]["function"]["name"], "arguments": '{"city": "Paris"}'}}],
    }
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return Reply(body=answer)


def silent_completed(gateway, count: int) -> None:
    def done() -> bool:
        status, body = gateway.get("/health/readiness")
        return status == 200 and json.loads(body)["silent"]["completed"] >= count

    wait_until(done, what=f"{count} completed silent call(s)")


WEATHER_TOOL_OPENAI = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
WEATHER_TOOL_ANTHROPIC = {"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def test_openai_sdk_calls_a_claude_group(start_gateway, fake_upstream, tmp_path):
    claude = fake_upstream(anthropic_handler("claude"))
    gpt = fake_upstream(gpt_handler)
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(config(claude.url, gpt.url, log))
    client = openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0, timeout=60)

    answer = client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=64,
    )
    assert answer.choices[0].message.content == "hello from claude"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens == 11 and answer.usage.completion_tokens == 4
    seen = claude.wait_for_requests(1)[0]
    assert seen.path.endswith("/v1/messages")
    assert seen.json["system"] == "Be brief." and seen.json["max_tokens"] == 64

    stream = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    text, last_usage = "", None
    for part in stream:
        if part.choices and part.choices[0].delta.content:
            text += part.choices[0].delta.content
        if part.usage:
            last_usage = part.usage
    assert text == "hello from claude"
    assert last_usage is not None and last_usage.completion_tokens == 4

    tooled = client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL_OPENAI], tool_choice="required"
    )
    call = tooled.choices[0].message.tool_calls[0]
    assert tooled.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("weather", {"city": "Paris"})
    follow_up = client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            tooled.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL_OPENAI],
    )
    assert follow_up.choices[0].message.content == "hello from claude"
    sent = claude.wait_for_requests(4)[3].json
    assert sent["messages"][1]["content"][-1]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}

    try:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}], logprobs=True)
        raise AssertionError("logprobs cannot be translated to Anthropic")
    except openai.BadRequestError as err:
        assert err.status_code == 400
        assert "`logprobs` cannot be translated to Anthropic Messages" in str(err)

    silent_completed(gateway, 5)
    gateway.stop()
    records = read_jsonl(log)
    primaries = [r for r in records if not r["metadata"].get("is_silent_experiment") and r["status"] == "success"]
    assert len(primaries) == 4
    for primary in primaries:
        shadows = [r for r in records if r["metadata"].get("mirror_of") == primary["litellm_call_id"]]
        assert len(shadows) == 1, primary
        assert shadows[0]["custom_llm_provider"] == "openai" and shadows[0]["trace_id"] == primary["trace_id"]
    assert all(seen.path.endswith("/chat/completions") for seen in gpt.requests)


def test_anthropic_sdk_calls_an_openai_group(start_gateway, fake_upstream, tmp_path):
    claude = fake_upstream(anthropic_handler("claude"))
    gpt = fake_upstream(gpt_handler)
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(config(claude.url, gpt.url, log))
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=60)

    message = client.messages.create(model="gpt", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "hello from gpt"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    seen = gpt.wait_for_requests(1)[0].json
    assert seen["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]

    with client.messages.stream(model="gpt", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "hello from gpt"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3

    tooled = client.messages.create(
        model="gpt", max_tokens=64, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL_ANTHROPIC], tool_choice={"type": "any"}
    )
    tool_use = next(block for block in tooled.content if block.type == "tool_use")
    assert tooled.stop_reason == "tool_use"
    assert (tool_use.name, tool_use.input) == ("weather", {"city": "Paris"})
    assert gpt.wait_for_requests(3)[2].json["tool_choice"] == "required"

    with client.messages.stream(
        model="gpt", max_tokens=64, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        streamed = stream.get_final_message()
    streamed_use = next(block for block in streamed.content if block.type == "tool_use")
    assert streamed.stop_reason == "tool_use"
    assert (streamed_use.id, streamed_use.input) == ("call_1", {"city": "Paris"})

    follow_up = client.messages.create(
        model="gpt",
        max_tokens=64,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump() for block in tooled.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}]},
        ],
    )
    assert follow_up.content[0].text == "hello from gpt"
    sent = gpt.wait_for_requests(5)[4].json["messages"]
    assert sent[-1] == {"role": "tool", "content": "sunny", "tool_call_id": tool_use.id}

    try:
        client.messages.create(model="gpt", max_tokens=64, messages=[{"role": "user", "content": "hi"}], extra_body={"container": "c-1"})
        raise AssertionError("container cannot be translated to chat completions")
    except anthropic.BadRequestError as err:
        assert err.status_code == 400
        assert "`container` cannot be translated to OpenAI chat completions" in str(err)

    silent_completed(gateway, 6)
    gateway.stop()
    records = read_jsonl(log)
    primaries = [r for r in records if not r["metadata"].get("is_silent_experiment") and r["status"] == "success"]
    assert len(primaries) == 5
    for primary in primaries:
        shadows = [r for r in records if r["metadata"].get("mirror_of") == primary["litellm_call_id"]]
        assert len(shadows) == 1, primary
        assert shadows[0]["custom_llm_provider"] == "anthropic" and shadows[0]["trace_id"] == primary["trace_id"]
