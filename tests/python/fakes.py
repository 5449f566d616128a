"""Small fake upstream servers (OpenAI- and Azure-shaped) on 127.0.0.1, for the gateway to call.

Each server runs `http.server` in a background thread, records every request it receives and answers
with a handler function: `handler(request) -> Reply`. Handlers may block (on a `threading.Event`, say)
to hold an answer until a test releases it.
"""

from __future__ import annotations

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
    # For streams: each item is one SSE `data:` payload (a dict is JSON-encoded; a str is sent as is).
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
                    payload = event if isinstance(event, str) else json.dumps(event)
                    self._chunk(f"data: {payload}\n\n".encode())
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
