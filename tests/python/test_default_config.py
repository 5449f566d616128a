"""The official `openai` SDK against `mirror serve` with the built-in default (mock providers)."""

from __future__ import annotations

import asyncio
import re

import openai
from conftest import read_jsonl, wait_until
from openai import AsyncOpenAI, OpenAI

ID = re.compile(r"^[0-9A-Za-z_.:-]{8,}$")


def client(gateway, **kwargs) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key="sk-anything", max_retries=0, timeout=60, **kwargs)


def test_sync_chat_response_shape_and_id_headers(start_gateway):
    gateway = start_gateway()
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="primary",
        messages=[{"role": "user", "content": "ping through the gateway"}],
    )
    assert raw.status_code == 200
    call_id = raw.headers.get("x-mirror-call-id")
    trace_id = raw.headers.get("x-mirror-trace-id")
    assert call_id and ID.match(call_id), call_id
    assert trace_id and ID.match(trace_id), trace_id
    completion = raw.parse()
    # The SDK's request id is the call id, as OpenAI's `x-request-id` would be.
    assert completion._request_id == call_id
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.model == "primary-v1"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    # The mock echoes the last user message.
    assert choice.message.content == "ping through the gateway"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    # A second call gets other ids.
    again = client(gateway).chat.completions.with_raw_response.create(
        model="primary", messages=[{"role": "user", "content": "again"}]
    )
    assert again.headers["x-mirror-call-id"] != call_id
    assert again.headers["x-mirror-trace-id"] != trace_id

    # The call log (default `mirror-calls.jsonl` in the working directory) has the caller's call id.
    log = gateway.workdir / "mirror-calls.jsonl"
    records = wait_until(
        lambda: [r for r in read_jsonl(log) if r.get("litellm_call_id") == call_id],
        what="the primary record in the JSONL log",
    )
    assert records[0]["trace_id"] == trace_id
    assert records[0]["metadata"]["is_silent_experiment"] is False


def test_models_lists_the_groups(start_gateway):
    gateway = start_gateway()
    ids = sorted(model.id for model in client(gateway).models.list())
    assert ids == ["primary", "shadow"]


def test_async_client_concurrent_chats(start_gateway):
    gateway = start_gateway()

    async def main() -> None:
        async with AsyncOpenAI(base_url=gateway.v1, api_key="sk-anything", max_retries=0, timeout=60) as aclient:
            prompts = [f"concurrent question {i}" for i in range(8)]
            results = await asyncio.gather(
                *(
                    aclient.chat.completions.with_raw_response.create(
                        model="primary", messages=[{"role": "user", "content": prompt}]
                    )
                    for prompt in prompts
                )
            )
            answers = [raw.parse().choices[0].message.content for raw in results]
            assert answers == prompts
            call_ids = {raw.headers["x-mirror-call-id"] for raw in results}
            assert len(call_ids) == len(prompts)

            # Async streaming too.
            stream = await aclient.chat.completions.create(
                model="primary",
                messages=[{"role": "user", "content": "async stream works"}],
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "async stream works"

    asyncio.run(main())


def test_streaming_with_usage(start_gateway):
    gateway = start_gateway()
    prompt = "the quick brown fox jumps"
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="primary",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers.get("x-mirror-call-id")
    assert raw.headers.get("x-mirror-trace-id")
    chunks = list(raw.parse())
    assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
    content_chunks = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == prompt
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    # The usage chunk comes last, with no choices; the others carry no usage.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_has_no_usage_chunk(start_gateway):
    gateway = start_gateway()
    with client(gateway).chat.completions.stream(
        model="primary", messages=[{"role": "user", "content": "helper stream"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "helper stream"
    assert final.choices[0].finish_reason == "stop"


def test_embeddings_default_encoding(start_gateway):
    """The SDK asks for `encoding_format: base64` unless told; whatever the gateway answers must decode."""
    gateway = start_gateway()
    result = client(gateway).embeddings.create(model="primary", input=["hello", "world", "hello"])
    assert result.object == "list"
    assert [item.index for item in result.data] == [0, 1, 2]
    vectors = [item.embedding for item in result.data]
    for vector in vectors:
        assert isinstance(vector, list) and len(vector) > 0
        assert all(isinstance(x, float) for x in vector)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert result.usage.prompt_tokens > 0


def test_embeddings_float_encoding(start_gateway):
    gateway = start_gateway()
    result = client(gateway).embeddings.create(model="primary", input="hello", encoding_format="float")
    assert len(result.data) == 1
    assert all(isinstance(x, float) for x in result.data[0].embedding)


def test_unknown_model_is_not_found(start_gateway):
    gateway = start_gateway()
    try:
        client(gateway).chat.completions.create(model="no-such-group", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as err:
        assert err.status_code == 404
        assert isinstance(err.body, dict)
        assert err.body.get("code") == "model_not_found"
        assert err.response.headers.get("x-mirror-call-id")
    else:
        raise AssertionError("expected openai.NotFoundError")
