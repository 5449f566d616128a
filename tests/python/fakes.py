"""Small fake upstream servers (OpenAI- and Azure-shaped) on 127.0.0.1, for the gateway to call.

Each server runs `http.server` in a background thread, records every request it receives and answers
with a handler function: `handler(request) -> Reply`. Handlers may block (on a `threading.Event`, say)
to hold an answer until a test releases it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the fake server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    raw_body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw_body or b"null")


@dataclass
class Reply:
    """What a handler answers: a JSON body, or SSE events streamed one by one."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # For streams: each item is one SSE `data:` payload (a dict is JSON-encoded; a str is sent as is),
    # or an `(event name, payload)` pair, sent with an `event:` line first (the Responses API's framing).
    events: Iterable[Any] | None = None


Handler = Callable[[Recorded], Reply]


class FakeUpstream:
    """A threaded HTTP server on a free loopback port."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.requests: list[Recorded] = []
        self._cond = threading.Condition()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    raw_body=raw,
                )
                with fake._cond:
                    fake.requests.append(recorded)
                    fake._cond.notify_all()
                try:
                    reply = fake.handler(recorded)
                except Exception as err:  # a test bug; answer so nothing hangs
                    reply = Reply(500, {"error": {"message": f"fake handler failed: {err!r}"}})
                try:
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, reply: Reply) -> None:
                if reply.events is None:
                    data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                for event in reply.events:
                    name = None
                    if isinstance(event, tuple):
                        name, event = event
                    payload = event if isinstance(event, str) else json.dumps(event)
                    head = f"event: {name}\n" if name else ""
                    self._chunk(f"{head}data: {payload}\n\n".encode())
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[Recorded]:
        """Waits until at least `count` requests arrived; fails the test at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"fake upstream got {len(self.requests)} request(s) in {timeout}s, expected {count}"
                    )
                self._cond.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---- OpenAI-shaped answers -------------------------------------------------------------------------


def usage(prompt: int = 5, completion: int = 3) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(answer: str, model: str = "fake-model", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(),
        **extra,
    }


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "fake-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def stream_events(words: list[str], include_usage: bool, model: str = "fake-model") -> list[Any]:
    events: list[Any] = [chunk({"role": "assistant", "content": ""}, model=model)]
    events += [chunk({"content": word if i == 0 else " " + word}, model=model) for i, word in enumerate(words)]
    events.append(chunk({}, "stop", model=model))
    if include_usage:
        events.append(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [],
                "usage": usage(),
            }
        )
    events.append("[DONE]")
    return events


def openai_handler(answer: str = "hello from upstream", words: list[str] | None = None) -> Handler:
    """An OpenAI-compatible chat + embeddings server (base path `/v1`)."""

    def handle(request: Recorded) -> Reply:
        if request.path.endswith("/embeddings"):
            return Reply(body=embeddings_answer(request.json))
        body = request.json or {}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return Reply(events=stream_events(words or answer.split(" "), include))
        return Reply(body=completion(answer))

    return handle


def embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Honours `encoding_format`, as OpenAI does: base64 of little-endian float32s, or float lists."""
    import array
    import base64

    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, _ in enumerate(inputs):
        vector = [0.5, -0.25, float(index)]
        if body.get("encoding_format") == "base64":
            embedding: Any = base64.b64encode(array.array("f", vector).tobytes()).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": "fake-embed", "usage": {"prompt_tokens": 2, "total_tokens": 2}}


def error_reply(status: int, message: str, kind: str, code: str | None, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers or {})


# ---- Responses API -----------------------------------------------------------------------------------


def response_object(response_id: str, model: Any, text: str, previous: Any = None, status: str = "completed") -> dict[str, Any]:
    """A Responses API response object as OpenAI sends it (a text answer with usage)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": model,
        "previous_response_id": previous,
        "output": [
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "metadata": {},
        "usage": {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens": 6,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 17,
        },
    }


def response_stream(done: dict[str, Any]) -> list[Any]:
    """The events of a text answer in OpenAI's order, as `(event, data)` pairs with sequence numbers."""
    created = {**done, "status": "in_progress", "output": [], "usage": None}
    item = done["output"][0]
    text = item["content"][0]["text"]
    first, _, rest = text.partition(" ")
    pieces = [first + (" " if rest else ""), rest] if rest else [first]
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": created}),
        ("response.in_progress", {"response": created}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}}),
        ("response.content_part.added", {"item_id": item["id"], "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    for piece in pieces:
        events.append(("response.output_text.delta", {"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}))
    events += [
        ("response.output_text.done", {"item_id": item["id"], "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
        ("response.content_part.done", {"item_id": item["id"], "output_index": 0, "content_index": 0, "part": item["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": done}),
    ]
    return [(kind, {"type": kind, "sequence_number": number, **data}) for number, (kind, data) in enumerate(events)]


def responses_handler(name: str, model_of: Callable[[Recorded], Any] | None = None) -> Handler:
    """A Responses API server under any prefix (`/v1/responses`, Azure's `/openai/responses` and
    `/openai/v1/responses`): creates answer `hello from <name>` with ids `resp_<name>_<n>` and echo
    `previous_response_id`, so a test sees which ids each upstream got; retrieve, delete, cancel and
    input_items answer for any id."""
    counter = itertools.count(1)
    lock = threading.Lock()
    text = f"hello from {name}"

    def handle(request: Recorded) -> Reply:
        at = request.path.find("/responses")
        if at < 0:
            return error_reply(404, f"no route {request.path}", "invalid_request_error", None)
        rest = request.path[at + len("/responses") :].strip("/")
        body = request.json or {}
        model = model_of(request) if model_of else body.get("model")
        if request.method == "POST" and not rest:
            with lock:
                number = next(counter)
            done = response_object(f"resp_{name}_{number}", model, text, body.get("previous_response_id"))
            if body.get("stream"):
                return Reply(events=response_stream(done))
            return Reply(body=done)
        response_id, _, action = rest.partition("/")
        if request.method == "GET" and not action:
            return Reply(body=response_object(response_id, model, text))
        if request.method == "DELETE" and not action:
            return Reply(body={"id": response_id, "object": "response.deleted", "deleted": True})
        if request.method == "POST" and action == "cancel":
            return Reply(body=response_object(response_id, model, text, status="cancelled"))
        if request.method == "GET" and action == "input_items":
            item = {"id": f"msg_in_{response_id}", "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "hi"}]}
            return Reply(body={"object": "list", "data": [item], "first_id": item["id"], "last_id": item["id"], "has_more": False})
        return error_reply(404, f"no route {request.method} {request.path}", "invalid_request_error", None)

    return handle


# ---- Anthropic Messages API --------------------------------------------------------------------------


def anthropic_usage() -> dict[str, int]:
    """9 uncached input tokens, 2 read from the prompt cache, 4 output."""
    return {"input_tokens": 9, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2}


def anthropic_message(message_id: str, model: Any, content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def anthropic_events(message: dict[str, Any]) -> list[Any]:
    """The events of `message` in Anthropic's order, as `(event, data)` pairs: `message_start`, a
    `ping`, each block's start, deltas and stop, `message_delta` with the usage, `message_stop`."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start}), ("ping", {})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            skeleton, text = {**block, "text": ""}, block["text"]
            first, _, rest = text.partition(" ")
            pieces = [first + (" " if rest else ""), rest] if rest else [first]
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
        else:  # tool_use
            skeleton, arguments = {**block, "input": {}}, json.dumps(block["input"])
            half = len(arguments) // 2
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in (arguments[:half], arguments[half:])]
        events.append(("content_block_start", {"index": index, "content_block": skeleton}))
        events += [("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"index": index}))
    events.append(("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}, "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    events.append(("message_stop", {}))
    return [(kind, {"type": kind, **data}) for kind, data in events]


def anthropic_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return Reply(status, body, {"request-id": "req_fake", **(headers or {})})


def anthropic_handler(name: str) -> Handler:
    """An Anthropic Messages server (`/v1/messages`, `/v1/messages/count_tokens`): answers `hello from
    <name>` with ids `msg_<name>_<n>`; a request with tools whose last turn is not a tool result gets a
    `tool_use` of its first tool with input `{"city": "Paris"}`. Requests without `x-api-key` or
    `anthropic-version` get Anthropic's 401 / 400."""
    counter = itertools.count(1)
    lock = threading.Lock()

    def handle(request: Recorded) -> Reply:
        if not request.headers.get("x-api-key"):
            return anthropic_error(401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        body = request.json or {}
        if request.path.endswith("/v1/messages/count_tokens"):
            return Reply(body={"input_tokens": 21}, headers={"request-id": "req_fake"})
        if not request.path.endswith("/v1/messages"):
            return anthropic_error(404, "not_found_error", f"no route {request.path}")
        with lock:
            number = next(counter)
        messages = body.get("messages") or []
        last = messages[-1]["content"] if messages else ""
        answered_tool = isinstance(last, list) and any(block.get("type") == "tool_result" for block in last)
        tools = body.get("tools") or []
        if tools and not answered_tool:
            tool = tools[0]["name"]
            content = [
                {"type": "text", "text": f"calling {tool}"},
                {"type": "tool_use", "id": f"toolu_{name}_{number}", "name": tool, "input": {"city": "Paris"}},
            ]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": f"hello from {name}"}], "end_turn"
        message = anthropic_message(f"msg_{name}_{number}", body.get("model"), content, stop)
        if body.get("stream"):
            return Reply(events=anthropic_events(message), headers={"request-id": "req_fake"})
        return Reply(body=message, headers={"request-id": "req_fake"})

    return handle
