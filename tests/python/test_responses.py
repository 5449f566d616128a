"""The Responses API through `mirror serve` with the official SDK: create (plain and streamed), retrieve,
a mirrored two-turn conversation where each side sees only its own ids, MCP tools not mirrored, and
`AzureOpenAI` against an Azure deployment."""

from __future__ import annotations

import json

from conftest import read_jsonl, wait_until
from fakes import Recorded, error_reply, responses_handler
from openai import AzureOpenAI, OpenAI

AZURE_KEY = "azure-key-0123456789"
AZURE_API_VERSION = "2025-04-01-preview"


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
  shutdown_timeout: 30
"""


def silent_completed(gateway, count: int) -> None:
    """Waits until `count` silent calls completed (the readiness body carries the counters)."""

    def done() -> bool:
        status, body = gateway.get("/health/readiness")
        return status == 200 and json.loads(body)["silent"]["completed"] >= count

    wait_until(done, what=f"{count} completed silent call(s)")


def creates(upstream) -> list[Recorded]:
    return [r for r in upstream.requests if r.method == "POST" and r.path.endswith("/responses")]


def test_create_plain_streamed_and_retrieve(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(responses_handler("primary"))
    shadow = fake_upstream(responses_handler("shadow"))
    log = tmp_path / "calls.jsonl"
    gateway = start_gateway(mirror_config(primary.url, shadow.url, log))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)

    raw = client.responses.with_raw_response.create(model="primary", input="hi", instructions="be brief")
    response = raw.parse()
    call_id = raw.headers["x-mirror-call-id"]
    assert response.output_text == "hello from primary"
    assert response.usage.input_tokens == 11 and response.usage.output_tokens_details.reasoning_tokens == 1
    # The id names the deployment that stored it, so a later call finds it.
    assert response.id.startswith("resp_") and not response.id.startswith("resp_primary_")

    got = client.responses.retrieve(response.id)
    assert got.id == response.id
    assert got.output_text == "hello from primary"
    assert primary.requests[-1].method == "GET"
    assert primary.requests[-1].path == "/v1/responses/resp_primary_1"

    stream = client.responses.create(model="primary", input="hi again", stream=True)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "hello from primary"
    completed = events[-1].response
    assert completed.id == events[0].response.id
    assert not completed.id.startswith("resp_primary_")
    assert completed.usage.total_tokens == 17

    silent_completed(gateway, 2)
    gateway.stop()
    # The shadow got both creates (the second streamed), with its own model and no gateway fields.
    shadow_creates = creates(shadow)
    assert len(shadow_creates) == 2
    assert [r.json.get("stream") for r in shadow_creates] == [None, True]
    assert all(r.json["model"] == "model-b" for r in shadow_creates)
    assert shadow_creates[0].json["instructions"] == "be brief"
    assert all("silent_model" not in r.json and "litellm_metadata" not in r.json for r in shadow_creates)
    records = read_jsonl(log)
    first = next(r for r in records if r["litellm_call_id"] == call_id)
    assert first["call_type"] == "aresponses" and first["prompt_tokens"] == 11
    # The record carries the Responses object the caller got, under the routed id.
    assert first["id"] == response.id and first["response"]["id"] == response.id
    assert first["response"]["output"][0]["content"][0]["text"] == "hello from primary"
    paired = next(r for r in records if r["metadata"].get("mirror_of") == call_id)
    assert paired["model_group"] == "shadow" and paired["trace_id"] == first["trace_id"]
    assert any(r["call_type"] == "aget_responses" for r in records)


def test_conversation_continues_on_each_side_with_its_own_ids(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(responses_handler("primary"))
    shadow = fake_upstream(responses_handler("shadow"))
    gateway = start_gateway(mirror_config(primary.url, shadow.url, tmp_path / "calls.jsonl"))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)

    first = client.responses.create(model="primary", input="my name is Ada")
    # The shadow's id for the first turn is linked once the shadow answered.
    silent_completed(gateway, 1)
    second = client.responses.create(model="primary", input="what is my name?", previous_response_id=first.id)
    assert second.output_text == "hello from primary"
    silent_completed(gateway, 2)

    # Each upstream saw only its own ids: never the gateway's, never the other side's.
    assert [r.json.get("previous_response_id") for r in creates(primary)] == [None, "resp_primary_1"]
    assert [r.json.get("previous_response_id") for r in creates(shadow)] == [None, "resp_shadow_1"]
    status, body = gateway.get("/health/readiness")
    silent = json.loads(body)["silent"]
    assert silent["mirrored"] == 2 and silent["dropped_missing_state"] == 0, silent


def test_mcp_tools_are_answered_not_mirrored_and_counted(start_gateway, fake_upstream, tmp_path):
    primary = fake_upstream(responses_handler("primary"))
    shadow = fake_upstream(responses_handler("shadow"))
    gateway = start_gateway(mirror_config(primary.url, shadow.url, tmp_path / "calls.jsonl"))
    client = OpenAI(base_url=gateway.v1, api_key="sk-caller", max_retries=0, timeout=60)

    response = client.responses.create(
        model="primary",
        input="what does the repo say?",
        tools=[{"type": "mcp", "server_label": "wiki", "server_url": "https://mcp.example/mcp", "require_approval": "never"}],
    )
    assert response.output_text == "hello from primary"
    # The tool went to the primary as sent.
    assert creates(primary)[0].json["tools"][0]["server_label"] == "wiki"
    assert 'mirror_silent_dropped_total{reason="mcp_tools"} 1' in gateway.metrics()
    gateway.stop()
    assert creates(shadow) == []


def azure_handler(name: str):
    """An Azure OpenAI Responses upstream on the dated surface: `api-key` auth and the deployment's
    `api-version` on every path."""
    inner = responses_handler(name)

    def handle(request: Recorded):
        if request.headers.get("api-key") != AZURE_KEY:
            return error_reply(401, "Access denied due to invalid subscription key.", "invalid_request_error", "401")
        if not request.path.startswith("/openai/responses") or request.query.get("api-version") != [AZURE_API_VERSION]:
            return error_reply(404, "Resource not found", "invalid_request_error", "404")
        return inner(request)

    return handle


def test_azure_openai_client_against_an_azure_deployment(start_gateway, fake_upstream, tmp_path):
    upstream = fake_upstream(azure_handler("azure"))
    config = f"""
model_list:
  - model_name: gpt-4o-prod
    litellm_params:
      model: azure/prod-deployment
      api_base: {upstream.url}
      api_key: {AZURE_KEY}
      api_version: "{AZURE_API_VERSION}"
router_settings:
  num_retries: 0
mirror_settings:
  log_file: {tmp_path / "calls.jsonl"}
"""
    gateway = start_gateway(config)
    client = AzureOpenAI(azure_endpoint=gateway.url, api_key="sk-caller", api_version=AZURE_API_VERSION, max_retries=0, timeout=60)

    response = client.responses.create(model="gpt-4o-prod", input="hi")
    assert response.output_text == "hello from azure"
    stream = client.responses.create(model="gpt-4o-prod", input="hi", stream=True)
    assert [event.type for event in stream][-1] == "response.completed"
    got = client.responses.retrieve(response.id)
    assert got.id == response.id

    seen = upstream.requests
    assert [(r.method, r.path) for r in seen] == [
        ("POST", "/openai/responses"),
        ("POST", "/openai/responses"),
        ("GET", "/openai/responses/resp_azure_1"),
    ]
    # Azure's body names the deployment; the key went as `api-key`, once, never the caller's.
    assert seen[0].json["model"] == "prod-deployment"
    assert all(r.query["api-version"] == [AZURE_API_VERSION] for r in seen)
