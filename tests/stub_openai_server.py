"""An in-process stand-in for an OpenAI-compatible server, for tests and benchmarks.

It speaks just enough of the API for `harness.llm.ChatClient` (and the data-generation and optimisation
code built on it): `GET /v1/models` and `POST /v1/chat/completions`, on 127.0.0.1 at a free port, over
HTTP/1.1 keep-alive like a real server. Every request is recorded (path, headers, JSON body, arrival
time) and counted; the most chat requests ever in flight at once is measured, so a test can check that
a client really bounds its concurrency.

Behaviour is chosen per request by a handler: a function of the `StubRequest` returning a `Reply`
(status, JSON or raw body, headers, delay), or simply the answer text(s). Ready-made replies cover what
a client must survive: `Reply.rate_limited(retry_after=...)`, `Reply.server_error()`,
`Reply.malformed()`, `Reply.answer(text, delay=...)` for answers slower than the client's timeout,
`Reply.error(status, message)`. Replies queued with `enqueue` are served first, in arrival order.

    with StubOpenAIServer(latency=0.2) as server:
        server.handler = lambda request: "Rewrite the text as a poem."
        client = ChatClient(server.base_url, "stub-model")
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "stub-model"
DEFAULT_ANSWER = "Rewrite the text in a more formal tone."


@dataclass(frozen=True)
class StubRequest:
    """One request as the server received it. Header names are lower case."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: Any
    received_at: float

    @property
    def messages(self) -> list[dict]:
        return list((self.body or {}).get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def last_user_text(self) -> str:
        """The content of the last user message (where a prompt-recovery row's texts are)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    @property
    def n(self) -> int:
        return int((self.body or {}).get("n") or 1) if isinstance(self.body, dict) else 1


@dataclass
class Reply:
    """What the server sends back: `raw` (bytes) wins over `json`; `delay` is slept before sending."""

    status: int = 200
    json: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def answer(cls, texts: str | Sequence[str], *, delay: float = 0.0, model: str = DEFAULT_MODEL,
               prompt_tokens: int = 11, completion_tokens: int = 7) -> Reply:
        """A chat completion with one choice per text."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return cls(json=chat_completion(texts, model=model, prompt_tokens=prompt_tokens,
                                        completion_tokens=completion_tokens), delay=delay)

    @classmethod
    def error(cls, status: int, message: str = "error", *, code: str | None = None,
              headers: dict[str, str] | None = None) -> Reply:
        """An OpenAI-style error body: {"error": {"message", "type", "code"}}."""
        body = {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                          "param": None, "code": code}}
        return cls(status=status, json=body, headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, *, retry_after: float | None = None, retry_after_ms: int | None = None,
                     code: str | None = "rate_limit_exceeded") -> Reply:
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        return cls.error(429, "Rate limit reached, please retry later.", code=code, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500, message: str = "The server had an error.") -> Reply:
        return cls.error(status, message)

    @classmethod
    def malformed(cls) -> Reply:
        """A 200 whose JSON body is cut off, as from a crashed proxy."""
        return cls(raw=b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')


Handler = Callable[[StubRequest], "Reply | str | Sequence[str] | None"]


def chat_completion(texts: Sequence[str], *, model: str = DEFAULT_MODEL, prompt_tokens: int = 11,
                    completion_tokens: int = 7) -> dict:
    """The JSON of a chat completion with one choice per text."""
    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": None} for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens * len(texts),
                  "total_tokens": prompt_tokens + completion_tokens * len(texts)},
    }


class StubOpenAIServer:
    """A threaded HTTP server on 127.0.0.1 that answers like the OpenAI API.

    Args:
        models: ids listed by GET /models (an empty list lists none).
        latency: seconds every chat completion waits before answering (on top of a reply's delay).
        handler: chooses the reply to each chat request (default: `DEFAULT_ANSWER`, `n` times).
        api_key: when set, requests without `Authorization: Bearer <api_key>` get a 401 (whose message,
            like some real servers', echoes the key it received: clients must redact it).
    """

    def __init__(self, *, models: Iterable[str] = (DEFAULT_MODEL,), latency: float = 0.0,
                 handler: Handler | None = None, api_key: str | None = None) -> None:
        self.models = list(models)
        self.latency = latency
        self.handler = handler
        self.api_key = api_key
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self.requests: list[StubRequest] = []
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> StubOpenAIServer:
        stub = self

        class _Handler(_RequestHandler):
            server_stub = stub

        server = _QuietServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        server.daemon_threads = True
        server.block_on_close = False  # slow handlers sleeping past a client's timeout must not block stop()
        server.request_queue_size = 256
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stub-openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection -----------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Serve these replies to the next chat requests, in arrival order, before the handler."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def chat_requests(self) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests if _route(r.path) == "/v1/chat/completions"]

    @property
    def chat_hits(self) -> int:
        return len(self.chat_requests)

    def reset(self) -> None:
        """Forget recorded requests and counters (the handler, queue and models stay)."""
        with self._lock:
            self.requests.clear()
            self.hits.clear()
            self.max_in_flight = self.in_flight

    # -- request handling (called from the server's threads) ----------------------------------------
    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> StubRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            request = StubRequest(len(self.requests), method, path, headers, raw, body, time.monotonic())
            self.requests.append(request)
            self.hits[f"{method} {path}"] += 1
        return request

    def _auth_failure(self, request: StubRequest) -> Reply | None:
        if self.api_key is None:
            return None
        received = request.headers.get("authorization", "")
        if received == f"Bearer {self.api_key}":
            return None
        return Reply.error(401, f"Incorrect API key provided: {received.removeprefix('Bearer ')}",
                           code="invalid_api_key")

    def _models_reply(self, request: StubRequest) -> Reply:
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        return Reply(json={"object": "list", "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "stub"} for model in self.models]})

    def _chat_reply(self, request: StubRequest) -> Reply:
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            return queued
        answer = self.handler(request) if self.handler is not None else None
        if answer is None:
            answer = DEFAULT_ANSWER
        if isinstance(answer, Reply):
            return answer
        if isinstance(answer, str):
            return Reply.answer([answer] * request.n)
        return Reply.answer(list(answer))

    def _enter_chat(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave_chat(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a real bug in the stub: show it


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers: a client's connection pool is exercised
    server_stub: StubOpenAIServer

    def setup(self) -> None:
        super().setup()
        # as real servers do: without it, headers and body leave in two segments and Nagle's algorithm
        # meets the client's delayed ACK, adding ~40 ms to every keep-alive answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        pass  # quiet: tests assert on captured output

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        stub = self.server_stub
        request = stub._record("GET", self.path, self._headers(), self._read_body())
        if _route(self.path) == "/v1/models":
            self._send(stub._models_reply(request))
        else:
            self._send(Reply.error(404, f"no route for GET {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        stub = self.server_stub
        request = stub._record("POST", self.path, self._headers(), self._read_body())
        if _route(self.path) != "/v1/chat/completions":
            self._send(Reply.error(404, f"no route for POST {self.path}"))
            return
        stub._enter_chat()
        try:
            try:
                reply = stub._chat_reply(request)
            except Exception as error:  # a broken test handler should show up as a 500, not a hang
                reply = Reply.server_error(message=f"stub handler failed: {type(error).__name__}: {error}")
            delay = stub.latency + reply.delay
            if delay > 0:
                time.sleep(delay)
            self._send(reply)
        finally:
            stub._leave_chat()

    def _send(self, reply: Reply) -> None:
        body = reply.raw if reply.raw is not None else json.dumps(reply.json).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout): nothing to answer


def _route(path: str) -> str:
    return path.split("?", 1)[0].rstrip("/")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for "unreachable endpoint" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
