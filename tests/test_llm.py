"""harness.llm.ChatClient against the in-process stub server: retries, concurrency, preflight, redaction."""

from __future__ import annotations

import threading
import time

import openai  # noqa: F401 - imported up front: timing tests measure requests, not the SDK's import
import pytest
from stub_openai_server import Reply, StubOpenAIServer, free_port

from harness.errors import ConfigError, ModelUnavailableError
from harness.llm import REDACTED, ChatClient, ChatRequestError, ChatResult, parse_retry_after

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def server():
    with StubOpenAIServer() as stub:
        yield stub


def fast_client(server: StubOpenAIServer, **kwargs) -> ChatClient:
    """A client whose exponential backoff is milliseconds, so retry tests stay fast."""
    kwargs = {"backoff_initial": 0.005, "backoff_max": 0.02, "max_retries": 3, **kwargs}
    return ChatClient(server.base_url, "stub-model", **kwargs)


def rows(count: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"row {i}"}] for i in range(count)]


# -- answers ------------------------------------------------------------------------------------------------
def test_complete_returns_texts_usage_and_latency(server):
    server.handler = lambda request: ["first", "second"] if request.n == 2 else "one"
    result = fast_client(server).complete(HELLO, n=2, temperature=0.7, max_tokens=20, seed=3)
    assert isinstance(result, ChatResult)
    assert result.texts == ["first", "second"] and result.text == "first"
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (11, 14, 1)
    assert result.latency_s > 0 and result.finish_reasons == ["stop", "stop"]
    body = server.chat_requests[0].body
    assert body["model"] == "stub-model" and body["messages"] == HELLO
    assert (body["n"], body["temperature"], body["max_tokens"], body["seed"]) == (2, 0.7, 20, 3)


def test_servers_that_ignore_n_are_asked_again(server):
    server.handler = lambda request: Reply.answer(f"answer {len(server.chat_requests)}")  # always one choice
    result = fast_client(server).complete(HELLO, n=3)
    assert result.texts == ["answer 1", "answer 2", "answer 3"]
    assert [r.n for r in server.chat_requests] == [3, 2, 1]


def test_response_format_and_extra_body_are_sent(server):
    fast_client(server).complete(HELLO, response_format={"type": "json_object"}, extra_body={"top_k": 5})
    body = server.chat_requests[0].body
    assert body["response_format"] == {"type": "json_object"} and body["top_k"] == 5


# -- retries ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply", [Reply.rate_limited(retry_after=0.4), Reply.rate_limited(retry_after_ms=400)],
                         ids=["retry-after", "retry-after-ms"])
def test_429_waits_as_long_as_the_server_asks(server, reply):
    server.enqueue(reply)
    result = fast_client(server).complete(HELLO)
    assert result.attempts == 2 and result.text
    first, second = server.chat_requests
    assert second.received_at - first.received_at >= 0.4  # not the 5 ms backoff


def test_500_then_success(server):
    server.enqueue(Reply.server_error(), Reply.server_error(503))
    result = fast_client(server).complete(HELLO)
    assert result.attempts == 3 and server.chat_hits == 3


def test_timeout_then_success(server):
    client = fast_client(server, timeout=0.3)
    client.preflight()  # warm: the SDK import and the connection are not what is timed
    server.enqueue(Reply.answer("too late", delay=1.5))
    started = time.perf_counter()
    result = client.complete(HELLO)
    assert result.text != "too late" and result.attempts == 2
    assert 0.3 <= time.perf_counter() - started < 1.5


def test_malformed_body_then_success(server):
    server.enqueue(Reply.malformed(), Reply(json={"object": "chat.completion", "choices": []}))
    result = fast_client(server).complete(HELLO)
    assert result.attempts == 3 and result.text


def test_gives_up_after_max_retries_and_yields_the_error_while_other_rows_go_on(server):
    server.handler = lambda request: Reply.server_error() if "row 1" in request.last_user_text else "fine"
    outcomes = dict(fast_client(server, max_retries=2).complete_many(rows(3)))
    assert sorted(outcomes) == [0, 1, 2]
    assert outcomes[0].text == outcomes[2].text == "fine"
    error = outcomes[1]
    assert isinstance(error, ChatRequestError) and error.attempts == 3 and error.status_code == 500
    assert "HTTP 500" in str(error) and "after 3 attempts" in str(error) and server.base_url in str(error)
    assert sum("row 1" in r.last_user_text for r in server.chat_requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(server, status):
    server.enqueue(Reply.error(status, "nope"))
    with pytest.raises(ChatRequestError, match=f"HTTP {status}: nope") as error:
        fast_client(server).complete(HELLO)
    assert error.value.status_code == status and error.value.attempts == 1 and server.chat_hits == 1
    assert error.value.__context__ is None and error.value.__cause__ is None  # no SDK request object rides along


def test_exhausted_quota_and_long_retry_after_fail_at_once(server):
    server.enqueue(Reply.rate_limited(code="insufficient_quota"), Reply.rate_limited(retry_after=3600))
    client = fast_client(server)
    with pytest.raises(ChatRequestError, match="quota exhausted"):
        client.complete(HELLO)
    with pytest.raises(ChatRequestError, match="asks to wait 3600 s"):
        client.complete(HELLO)
    assert server.chat_hits == 2


def test_a_rate_limit_pauses_the_whole_client(server):
    """While one request waits out a 429's retry-after, the others do not hammer the server."""
    server.enqueue(Reply.rate_limited(retry_after=0.5))
    client = fast_client(server, max_concurrency=1)
    first = threading.Thread(target=client.complete, args=(HELLO,))
    first.start()
    while server.chat_hits == 0:
        time.sleep(0.005)
    client.complete(HELLO)  # starts during the pause: must wait for it
    first.join()
    limited_at = server.chat_requests[0].received_at
    assert all(r.received_at - limited_at >= 0.5 for r in server.chat_requests[1:])


def test_parse_retry_after():
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after(None) is None


# -- concurrency --------------------------------------------------------------------------------------------
def test_concurrency_is_bounded_and_used(server):
    server.latency = 0.05
    outcomes = list(fast_client(server, max_concurrency=4).complete_many(rows(24)))
    assert sorted(i for i, _ in outcomes) == list(range(24))
    assert server.max_in_flight == 4


def test_bound_holds_across_threads_sharing_a_client(server):
    server.latency = 0.05
    client = fast_client(server, max_concurrency=3)
    threads = [threading.Thread(target=lambda: list(client.complete_many(rows(6)))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.chat_hits == 18 and server.max_in_flight == 3


def test_results_are_yielded_as_they_complete(server):
    server.handler = lambda request: Reply.answer("slow", delay=0.4) if "row 0" in request.last_user_text else "fast"
    order = [index for index, _ in fast_client(server, max_concurrency=4).complete_many(rows(4))]
    assert order[-1] == 0 and sorted(order) == [0, 1, 2, 3]


def test_requests_are_read_lazily(server):
    consumed = []

    def conversations():
        for i, messages in enumerate(rows(20)):
            consumed.append(i)
            yield messages

    results = fast_client(server, max_concurrency=2).complete_many(conversations())
    next(results)
    assert len(consumed) <= 4  # the window, not the whole input
    results.close()


# -- preflight ----------------------------------------------------------------------------------------------
def test_preflight_passes_on_a_good_endpoint(server):
    fast_client(server).preflight()
    assert server.hits == {"GET /v1/models": 1}


def test_preflight_unreachable_endpoint_is_fast_and_clear():
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="cannot connect") as error:
        ChatClient(base_url, "m", max_retries=5).preflight()
    assert base_url in str(error.value) and "'m'" in str(error.value)
    assert time.perf_counter() - started < 2


def test_preflight_wrong_model_lists_the_served_ones(server):
    server.models = ["llama-3-8b", "mistral-7b"]
    with pytest.raises(ModelUnavailableError, match="does not list model 'stub-model'; it lists: llama-3-8b, mistral-7b"):
        fast_client(server).preflight()
    assert server.chat_hits == 0


def test_preflight_missing_key_variable_makes_no_request(server, monkeypatch):
    monkeypatch.delenv("PRH_TEST_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable PRH_TEST_MISSING_KEY .* is not set"):
        fast_client(server, api_key_env="PRH_TEST_MISSING_KEY").preflight()
    with pytest.raises(ConfigError, match="PRH_TEST_MISSING_KEY"):
        next(fast_client(server, api_key_env="PRH_TEST_MISSING_KEY").complete_many(rows(2)))
    assert server.requests == []


def test_preflight_rejected_key_names_the_variable_and_redacts_the_key(server, monkeypatch):
    server.api_key = "sk-right"
    monkeypatch.setenv("PRH_TEST_KEY", "sk-wrong-4242")
    with pytest.raises(ConfigError, match=r"rejected the key \(HTTP 401") as error:
        fast_client(server, api_key_env="PRH_TEST_KEY").preflight()
    assert "$PRH_TEST_KEY" in str(error.value)
    assert "sk-wrong-4242" not in str(error.value) and REDACTED in str(error.value)


def test_preflight_404_hints_at_the_api_path(server):
    with pytest.raises(ModelUnavailableError, match="404.*/v1"):
        ChatClient(server.base_url.removesuffix("/v1"), "stub-model").preflight()


def test_preflight_accepts_servers_that_list_no_models(server):
    """An empty model list (llama.cpp's single-model server) is no refusal; a list without the model is."""
    server.models = []
    fast_client(server).preflight()
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"]  # it did ask
    server.models = ["another-model"]
    with pytest.raises(ModelUnavailableError, match="does not list model 'stub-model'; it lists: another-model"):
        fast_client(server).preflight()


# -- configuration and secrecy ------------------------------------------------------------------------------
def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="base_url must be an http"):
        ChatClient("localhost:8000", "m")
    with pytest.raises(ConfigError, match="max_concurrency must be an integer >= 1"):
        ChatClient("http://x/v1", "m", max_concurrency=0)
    with pytest.raises(ConfigError, match="api_key_env must be the NAME") as error:
        ChatClient("http://x/v1", "m", api_key_env="sk-proj-abc123")
    assert "sk-proj-abc123" not in str(error.value)


def test_key_is_sent_but_never_shown(server, monkeypatch):
    secret = "sk-test-LLMSECRET-51d2"
    monkeypatch.setenv("PRH_TEST_KEY", secret)
    server.handler = lambda request: Reply.error(400, f"bad request from {request.headers['authorization']}")
    client = fast_client(server, api_key_env="PRH_TEST_KEY")
    outcomes = dict(client.complete_many(rows(2)))
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {secret}"
    shown = [repr(client), str(client.__dict__)] + [f"{o!s} {o!r}" for o in outcomes.values()]
    assert all(secret not in text for text in shown)
    assert f"bad request from Bearer {REDACTED}" in str(outcomes[0])
