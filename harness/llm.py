"""The project's one client for OpenAI-compatible chat endpoints (OpenAI, vLLM, llama.cpp server, …).

Candidates, synthetic-data generation and prompt optimisation all talk to models through `ChatClient`:

    client = ChatClient("http://localhost:8000/v1", "mistral-7b-instruct")
    client.preflight()                                  # fails fast, before any row is processed
    result = client.complete([{"role": "user", "content": "Hi"}])
    for index, outcome in client.complete_many(list_of_message_lists, temperature=0.7):
        ...                                             # ChatResult, or the row's ChatRequestError

What it guarantees:
- bounded concurrency: at most `max_concurrency` requests of this client are in flight at once, over all
  threads (a thread pool; the openai SDK's sync client is thread-safe), and `complete_many` yields each
  result the moment it exists, so a caller can store it before the next one arrives;
- retries with exponential backoff and jitter on 429 (honouring `retry-after-ms` / `retry-after`; the
  whole client pauses, because a rate limit is per key, not per request), 408/409, 5xx, timeouts,
  connection errors and malformed bodies; never on other 4xx (400, 401, 404: retrying cannot help);
  `max_retries` retries at most, then the row's `ChatRequestError` is yielded, not raised;
- secrecy: the key is read from the environment variable *named* by `api_key_env` when the SDK client is
  first built; it is never an attribute of this object, never in repr, fingerprints, logs or messages:
  every error text the SDK or the server produces is redacted before it leaves this module.

The SDK's own retry loop is switched off (`max_retries=0`) so that the policy above is the only one.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, HarnessError, ModelUnavailableError

if TYPE_CHECKING:  # the SDK is imported when a client first talks to a server, not at import time
    import openai

log = logging.getLogger(__name__)

#: What servers without authentication (vLLM, llama.cpp) receive as the key: not a secret.
PLACEHOLDER_API_KEY = "sk-no-key-required"
REDACTED = "[REDACTED]"
#: Statuses worth retrying: request timeout, conflict/lock timeout, rate limit, and every 5xx.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Message = Mapping[str, Any]


@dataclass(frozen=True)
class ChatResult:
    """One completed request: the choices' texts (in choice order), token usage as reported by the
    server (None where it reports none), wall seconds including retries, and how many attempts it took."""

    texts: list[str]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    finish_reasons: list[str | None] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The first choice's text (the common case, n = 1)."""
        return self.texts[0] if self.texts else ""


class ChatRequestError(HarnessError):
    """A request that failed for good (not retryable, or out of retries). The message is redacted and
    says what happened, with which endpoint and model; no SDK exception is attached (its request object
    carries the Authorization header)."""

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 1,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts
        self.retryable = retryable


@dataclass(frozen=True)
class _Failure:
    """What a failed attempt left behind: plain, redacted data (never the SDK exception itself)."""

    message: str
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None
    rate_limited: bool = False


class _MalformedResponse(Exception):
    """The server answered 200 with a body that is not a chat completion."""


def read_api_key(api_key_env: str | None, *, what: str) -> str:
    """The key in the variable named `api_key_env` (a placeholder when None). `what` names the endpoint
    in the error raised when the variable is missing or empty."""
    if api_key_env is None:
        return PLACEHOLDER_API_KEY
    value = os.environ.get(api_key_env, "")
    if not value.strip():
        raise ConfigError(f"{what}: environment variable {api_key_env} (named by api_key_env) is not set or "
                          f"empty; export {api_key_env}=<your key> before running")
    return value.strip()


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds a server asks us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lower.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    value = lower.get("retry-after")
    if value:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, moment.timestamp() - (time.time() if now is None else now))
    return None


class ChatClient:
    """A client for one model behind one OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. "https://api.openai.com/v1" or "http://localhost:8000/v1".
        model: the model name sent with every request (and checked by `preflight`).
        api_key_env: the NAME of the environment variable holding the key; None for servers without
            authentication (a placeholder key is sent).
        timeout: seconds one attempt may take (connect, read, write) before it counts as a timeout.
        max_retries: retries after the first attempt of a request (so max_retries + 1 attempts at most).
        max_concurrency: requests of this client in flight at once, over all threads.
        backoff_initial, backoff_max: the exponential backoff: attempt k waits
            min(backoff_max, backoff_initial * 2**(k-1)) times a jitter factor in [0.5, 1].
        max_retry_after: a server asking to wait longer than this many seconds (e.g. a daily quota) is
            not retried: the row fails at once instead of blocking the run.
        preflight_timeout: the timeout of `preflight`'s single request.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout: float = 60.0,
                 max_retries: int = 5, max_concurrency: int = 8, *, backoff_initial: float = 0.5,
                 backoff_max: float = 20.0, max_retry_after: float = 60.0, preflight_timeout: float = 5.0) -> None:
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(f"base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"chat endpoint {base_url}: 'model' must be a non-empty model name")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not _ENV_NAME.match(api_key_env)):
            # never echo the value: a user may have pasted the key itself here
            raise ConfigError(f"chat endpoint {base_url}: api_key_env must be the NAME of an environment variable "
                              "(letters, digits, _), not the key itself")
        _check_number("timeout", timeout, base_url, minimum=0.0, strict=True)
        _check_int("max_retries", max_retries, base_url, minimum=0)
        _check_int("max_concurrency", max_concurrency, base_url, minimum=1)
        for name, value in (("backoff_initial", backoff_initial), ("backoff_max", backoff_max),
                            ("max_retry_after", max_retry_after)):
            _check_number(name, value, base_url, minimum=0.0, strict=False)
        _check_number("preflight_timeout", preflight_timeout, base_url, minimum=0.0, strict=True)
        self.base_url = base_url.rstrip("/")
        self.model = model.strip()
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_concurrency = int(max_concurrency)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.max_retry_after = float(max_retry_after)
        self.preflight_timeout = float(preflight_timeout)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._paused_until = 0.0  # time.monotonic() before which no attempt starts (a 429's retry-after)
        self._sdk: openai.OpenAI | None = None  # holds the key; built on first use, never printed

    def __repr__(self) -> str:
        return (f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
                f"timeout={self.timeout:g}, max_retries={self.max_retries}, max_concurrency={self.max_concurrency})")

    @property
    def describe(self) -> str:
        """How errors name this client: endpoint and model (never the key)."""
        return f"chat endpoint {self.base_url} (model {self.model!r})"

    # -- the SDK client, built on first use ---------------------------------------------------------
    def _client(self) -> openai.OpenAI:
        with self._lock:
            if self._sdk is None:
                import openai

                self._sdk = openai.OpenAI(base_url=self.base_url,
                                          api_key=read_api_key(self.api_key_env, what=self.describe),
                                          timeout=self.timeout, max_retries=0)
            return self._sdk

    def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        with self._lock:
            sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """`text` with the key in use (and the one now in the environment variable) replaced."""
        if self.api_key_env is None:
            return text  # the placeholder key is not a secret
        secrets = {os.environ.get(self.api_key_env, "").strip()}
        sdk = self._sdk
        if sdk is not None:
            secrets.add(sdk.api_key)
        secrets.discard("")
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    # -- preflight ---------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check, with one short request and no retries, that the key variable is set, the endpoint
        answers GET /models, accepts the key, and lists the model (when it lists any).

        Raises ConfigError (key variable missing, key rejected) or ModelUnavailableError (endpoint
        unreachable or failing, model not listed), naming base_url, model and variable."""
        import openai

        sdk = self._client()
        timeout = min(self.timeout, self.preflight_timeout)
        problem: str | None = None
        status: int | None = None
        body = b""
        try:
            body = sdk.models.with_raw_response.list(timeout=timeout).http_response.content
        except openai.APIStatusError as error:
            status, problem = error.status_code, self.redact(_status_message(error))
        except openai.APITimeoutError:
            problem = f"no answer within {timeout:g} s"
        except openai.APIConnectionError as error:
            problem = f"cannot connect ({self.redact(_cause(error))})"
        # raised out here, not inside `except`: the SDK exception must not ride along as __context__
        where = f"{self.describe}: GET {self.base_url}/models"
        if status in (401, 403):
            hint = (f"check the key in ${self.api_key_env}" if self.api_key_env
                    else "the server needs a key: set api_key_env to the name of the variable that holds it")
            raise ConfigError(f"{where} rejected the key (HTTP {status}: {problem}); {hint}")
        if status == 404:
            raise ModelUnavailableError(f"{where} answered 404 (not found); is base_url right? OpenAI-compatible "
                                        "servers usually serve the API under /v1")
        if problem is not None:
            what = f"HTTP {status}: {problem}" if status is not None else problem
            raise ModelUnavailableError(f"{where} failed: {what}; is the server running and base_url right?")
        listed = _model_ids(body)
        if listed and self.model not in listed:
            shown = ", ".join(listed[:20]) + (" …" if len(listed) > 20 else "")
            raise ModelUnavailableError(f"{self.describe}: the server does not list model {self.model!r}; "
                                        f"it lists: {shown}")

    # -- completions -------------------------------------------------------------------------------
    def complete(self, messages: Sequence[Message], *, temperature: float = 0.0, n: int = 1,
                 max_tokens: int | None = None, response_format: Mapping[str, Any] | None = None,
                 seed: int | None = None, stop: Sequence[str] | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> ChatResult:
        """One chat completion with `n` choices, retried as the module docstring says.

        Servers that return fewer than `n` choices (some ignore `n`) are asked again for the rest.
        `stop`: sequences that end an answer (the server leaves them out of the text).
        `extra_body` passes server-specific parameters (vLLM's `top_k`, `guided_json`, …).
        Raises ChatRequestError when the request fails for good.
        """
        _check_int("n", n, self.base_url, minimum=1)
        started = time.perf_counter()
        texts: list[str] = []
        finish: list[str | None] = []
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        attempts = 0
        for _ in range(n):  # one request normally; more only for servers that ignore `n`
            want = n - len(texts)
            parsed, used = self._with_retries(lambda want=want: self._create(
                messages, temperature=temperature, n=want, max_tokens=max_tokens,
                response_format=response_format, seed=seed, stop=stop, extra_body=extra_body))
            attempts += used
            more_texts, more_finish, usage = parsed
            texts.extend(more_texts)
            finish.extend(more_finish)
            if usage.get("prompt_tokens") is not None:
                prompt_tokens = (prompt_tokens or 0) + usage["prompt_tokens"]
            if usage.get("completion_tokens") is not None:
                completion_tokens = (completion_tokens or 0) + usage["completion_tokens"]
            if len(texts) >= n:
                break
        return ChatResult(texts=texts[:n], prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=time.perf_counter() - started, attempts=attempts, finish_reasons=finish[:n])

    def complete_many(self, requests: Iterable[Sequence[Message]], **kwargs: Any
                      ) -> Iterator[tuple[int, ChatResult | Exception]]:
        """Complete every message list of `requests` (any iterable, read lazily), at most
        `max_concurrency` at a time, yielding (index, ChatResult or the row's Exception) in completion
        order. A failed row never stops the others. Keyword arguments are those of `complete`.

        Closing the iterator early cancels the requests not yet started."""
        self._client()  # a missing key variable fails here, once, before any row
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="chat")
        pending: dict[Future, int] = {}
        rows = enumerate(requests)

        def submit_next() -> None:
            item = next(rows, None)
            if item is not None:
                pending[pool.submit(self._complete_row, item[1], kwargs)] = item[0]

        try:
            for _ in range(self.max_concurrency):
                submit_next()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    submit_next()  # keep the endpoint busy while the caller handles this result
                    yield index, future.result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)

    def _complete_row(self, messages: Sequence[Message], kwargs: Mapping[str, Any]) -> ChatResult | Exception:
        try:
            return self.complete(messages, **kwargs)
        except Exception as error:  # yielded, not raised: one row's failure must not stop the run
            return error

    # -- one attempt and the retry loop ----------------------------------------------------------------
    def _create(self, messages: Sequence[Message], *, temperature: float, n: int, max_tokens: int | None,
                response_format: Mapping[str, Any] | None, seed: int | None, stop: Sequence[str] | None,
                extra_body: Mapping[str, Any] | None) -> tuple[list[str], list[str | None], dict]:
        options: dict[str, Any] = {"temperature": temperature}
        if n != 1:
            options["n"] = n
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if response_format is not None:
            options["response_format"] = dict(response_format)
        if seed is not None:
            options["seed"] = seed
        if stop:
            options["stop"] = list(stop)
        if extra_body:
            options["extra_body"] = dict(extra_body)
        raw = self._client().chat.completions.with_raw_response.create(
            model=self.model, messages=[dict(m) for m in messages], timeout=self.timeout, **options)
        return _parse_completion(raw.http_response.content)

    def _with_retries(self, attempt: Any) -> tuple[Any, int]:
        """Call `attempt()` until it succeeds, fails for good, or runs out of retries. Returns its value
        and the number of attempts made."""
        attempts = 0
        while True:
            attempts += 1
            with self._slots:
                # inside the slot: a request queued for a slot while another one met a 429 must see the
                # pause that one sets (it is set below, before the slot is released)
                self._wait_for_pause()
                try:
                    return attempt(), attempts
                except Exception as error:
                    failure = self._classify(error)
                    if failure is None:
                        raise  # not a transport or server problem: a bug, let it surface
                delay = self._backoff(attempts, failure.retry_after)
                if failure.rate_limited and failure.retryable:
                    with self._lock:  # a rate limit is per key: every request of this client waits
                        self._paused_until = max(self._paused_until, time.monotonic() + delay)
            if not failure.retryable or attempts > self.max_retries:
                tried = f" after {attempts} attempts" if attempts > 1 else ""
                raise ChatRequestError(f"{self.describe}: {failure.message}{tried}", status_code=failure.status_code,
                                       attempts=attempts, retryable=failure.retryable)
            log.info("%s: %s (retry %d of %d in %.2f s)", self.describe, failure.message, attempts,
                     self.max_retries, delay)
            time.sleep(delay)

    def _wait_for_pause(self) -> None:
        while True:
            with self._lock:
                remaining = self._paused_until - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * (1.0 + 0.1 * random.random())  # honoured, plus a little spread
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return base * (0.5 + 0.5 * random.random())

    def _classify(self, error: Exception) -> _Failure | None:
        """What a failed attempt means, as redacted plain data; None for errors that are not the
        endpoint's (programming errors), which are re-raised."""
        import openai

        if isinstance(error, openai.APITimeoutError):
            return _Failure(f"timed out after {self.timeout:g} s", retryable=True)
        if isinstance(error, openai.APIConnectionError):
            return _Failure(f"connection error ({self.redact(_cause(error))})", retryable=True)
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            message = f"HTTP {status}: {self.redact(_status_message(error))}"
            retry_after = parse_retry_after(dict(error.response.headers)) if status in (429, 503) else None
            if status == 429 and (error.code == "insufficient_quota" or _body_code(error) == "insufficient_quota"):
                return _Failure(message + " (quota exhausted: retrying cannot help)", retryable=False,
                                status_code=status)
            if retry_after is not None and retry_after > self.max_retry_after:
                return _Failure(f"{message} (the server asks to wait {retry_after:g} s, more than "
                                f"max_retry_after = {self.max_retry_after:g} s)", retryable=False, status_code=status)
            retryable = status in RETRYABLE_STATUSES or status >= 500
            return _Failure(message, retryable=retryable, status_code=status, retry_after=retry_after,
                            rate_limited=status == 429)
        if isinstance(error, (_MalformedResponse, json.JSONDecodeError)):
            return _Failure(f"malformed response: {self.redact(str(error))}", retryable=True)
        if isinstance(error, openai.OpenAIError):
            return _Failure(f"{type(error).__name__}: {self.redact(str(error))}", retryable=False)
        return None


# -- helpers ---------------------------------------------------------------------------------------------
def _parse_completion(content: bytes) -> tuple[list[str], list[str | None], dict]:
    """Texts, finish reasons and usage of a chat completion body, tolerant of server dialects (missing
    usage, null content from reasoning models); a body without choices is malformed."""
    try:
        data = json.loads(content)
    except ValueError:
        raise _MalformedResponse(f"body is not JSON: {content[:200]!r}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise _MalformedResponse(f"no 'choices' in the body: {content[:200]!r}")
    choices = sorted(choices, key=lambda c: c.get("index") if isinstance(c.get("index"), int) else 0)
    texts, finish = [], []
    for choice in choices:
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        text = message.get("content")
        texts.append(text if isinstance(text, str) else "")
        finish.append(choice.get("finish_reason"))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = {k: usage.get(k) if isinstance(usage.get(k), int) else None
              for k in ("prompt_tokens", "completion_tokens")}
    return texts, finish, tokens


def _model_ids(body: bytes) -> list[str]:
    """Model ids of a GET /models body; [] when the body lists none or is not a list of models."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    entries = data.get("data") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return []
    return [str(e["id"]) for e in entries if isinstance(e, dict) and "id" in e]


def _status_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and isinstance(body["error"].get("message"), str):
        return body["error"]["message"]
    return str(getattr(error, "message", "") or error)


def _body_code(error: Any) -> str | None:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code")
        return str(code) if code is not None else None
    return None


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(error)


def _check_int(name: str, value: Any, where: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"chat endpoint {where}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: Any, where: str, *, minimum: float, strict: bool) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > minimum if strict else value >= minimum))
    if not ok:
        relation = ">" if strict else ">="
        raise ConfigError(f"chat endpoint {where}: {name} must be a number {relation} {minimum:g}, got {value!r}")
