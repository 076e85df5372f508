"""`prh generate synth` end to end against the in-process OpenAI-compatible stub: rows, provenance,
resume, retries of transport failures and of invalid answers, JSON-mode fallback, dry run, secrecy."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import REPO_ROOT
from stub_openai_server import Reply, StubOpenAIServer, chat_completion

from harness.cli import main
from harness.data import load_suite, load_suite_specs
from harness.generate.jsonl import read_jsonl
from harness.generate.synth import example_answer

CATALOG = str(REPO_ROOT / "fixtures" / "prompt_catalog.toml")
SECRET = "sk-test-0123456789abcdef-SECRET"


def pair_for(request) -> str:
    """A valid pair that differs per item (the first user turn differs per item, retries included)."""
    first_user = next(m["content"] for m in request.messages if m["role"] == "user")
    tag = hashlib.sha1(first_user.encode()).hexdigest()[:10]
    return example_answer(f"The library on Elm Street closes early on Friday {tag} for the book sale setup.",
                          f"Hear ye! Elm Street's library shutteth early this Friday {tag}, for the great book sale.")


@pytest.fixture
def server():
    with StubOpenAIServer(handler=pair_for) as stub:
        yield stub


def synth(server, out, *extra, n=8, capsys=None):
    code = main(["generate", "synth", "--catalog", CATALOG, "--n", str(n), "--out", str(out), "--base-url",
                 server.base_url, "--model", "stub-model", "--concurrency", "4", "--no-progress", *extra])
    captured = capsys.readouterr() if capsys is not None else None
    return code, captured


def test_synth_writes_n_rows_with_provenance_that_load_as_a_suite(server, tmp_path, capsys):
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--seed", "3", n=12, capsys=capsys)
    assert code == 0, captured.err
    rows = read_jsonl(out)
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12 and server.chat_hits == 12
    row = rows[0]
    assert list(row)[:5] == ["id", "original_text", "rewrite_prompt", "rewritten_text", "group"]
    provenance = row["provenance"]
    assert provenance["model"] == "stub-model" and provenance["seed"] == 3 and provenance["task"] == "synth"
    assert provenance["template_hash"] and provenance["created"].endswith("+00:00")
    assert provenance["prompt_tokens"] == 11 and provenance["completion_tokens"] == 7
    assert provenance["json_mode"] is True
    assert all(r["id"].startswith("syn-s3-") for r in rows)
    assert server.chat_requests[0].body["response_format"] == {"type": "json_object"}
    # a suites.toml entry can point at the file: Kaggle columns plus group
    (tmp_path / "suites.toml").write_text('[suites.mine]\npath = "synth.jsonl"\ncolumns = { group = "group" }\n')
    suite = load_suite(load_suite_specs(tmp_path / "suites.toml")["mine"])
    assert len(suite) == 12 and suite.has_groups and {s.id for s in suite.samples} == {r["id"] for r in rows}
    assert "12 written" in captured.out


def test_a_rerun_skips_finished_items_and_a_larger_n_or_new_seed_grows_the_set(server, tmp_path):
    out = tmp_path / "synth.jsonl"
    assert synth(server, out, n=6)[0] == 0
    first = out.read_bytes()
    server.reset()
    assert synth(server, out, n=6)[0] == 0 and server.chat_hits == 0 and out.read_bytes() == first
    assert synth(server, out, n=9)[0] == 0 and server.chat_hits == 3
    assert out.read_bytes().startswith(first)  # append-only: earlier rows untouched
    assert synth(server, out, "--seed", "1", n=4)[0] == 0 and server.chat_hits == 7
    assert synth(server, out, "--temperature", "0.5", n=2)[0] == 0 and server.chat_hits == 9  # new items
    rows = read_jsonl(out)
    assert len(rows) == 15 and len({r["id"] for r in rows}) == 15


def test_malformed_bodies_429s_5xx_and_timeouts_are_retried_without_losing_rows(server, tmp_path, capsys):
    server.enqueue(Reply.malformed(), Reply.rate_limited(retry_after=0.01), Reply.server_error(503),
                   Reply.answer(example_answer("late", "too late"), delay=2.0))
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--timeout", "0.5", n=6, capsys=capsys)
    assert code == 0, captured.err
    assert len(read_jsonl(out)) == 6 and server.chat_hits == 10
    assert not (tmp_path / "synth.failures.jsonl").exists() or not read_jsonl(tmp_path / "synth.failures.jsonl")


def test_invalid_answers_are_corrected_then_recorded_and_retried_by_a_rerun(server, tmp_path, capsys):
    bad_item: list[str] = []

    def handler(request):
        first_user = next(m["content"] for m in request.messages if m["role"] == "user")
        if not bad_item:
            bad_item.append(first_user)
        if first_user == bad_item[0]:
            return '{"original_text": "Too short to be long", "rewritten_text": "Too short to be long"}'
        return pair_for(request)

    server.handler = handler
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--invalid-retries", "2", n=5, capsys=capsys)
    assert code == 1 and "1 items failed for good" in captured.err
    assert len(read_jsonl(out)) == 4 and server.chat_hits == 4 + 3
    log = read_jsonl(tmp_path / "synth.failures.jsonl")
    assert [(f["reason"], f["final"], f["attempt"]) for f in log] == [("unchanged", False, 1), ("unchanged", False, 2),
                                                                        ("unchanged", True, 3)]
    assert log[0]["answer"].startswith('{"original_text"') and log[0]["rewrite_prompt"]
    retried = [r for r in server.chat_requests if len(r.messages) > 2]
    assert len(retried) == 2 and retried[-1].messages[-2]["role"] == "assistant"
    assert "That answer cannot be used: rewritten_text is the original text unchanged" in retried[-1].messages[-1]["content"]
    server.reset()
    code, _ = synth(server, out, "--invalid-retries", "0", n=5, capsys=capsys)
    assert code == 1 and server.chat_hits == 1  # only the failed item is asked again


def test_json_mode_auto_falls_back_when_the_server_rejects_response_format(server, tmp_path, capsys):
    def handler(request):
        if "response_format" in request.body:
            return Reply.error(400, "'response_format' is not supported by this server")
        return pair_for(request)

    server.handler = handler
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--concurrency", "1", n=4, capsys=capsys)
    assert code == 0, captured.err
    rows = read_jsonl(out)
    assert len(rows) == 4 and not any(r["provenance"]["json_mode"] for r in rows)
    # The client may already have the next request on its way when the first refusal arrives (it reads
    # ahead by one): at most that one more is refused, and every refused row is asked again without it.
    refused = sum("response_format" in r.body for r in server.chat_requests)
    assert 1 <= refused <= 2 and server.chat_hits == 4 + refused
    code, captured = synth(server, tmp_path / "on.jsonl", "--json-mode", "on", n=2, capsys=capsys)
    assert code == 1 and "HTTP 400" in json.dumps(read_jsonl(tmp_path / "on.failures.jsonl"))


def test_dry_run_prints_requests_and_cost_and_sends_nothing(server, tmp_path, capsys):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."stub-model"]\ninput_per_million = 2.0\noutput_per_million = 10.0\n')
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--dry-run", "--prices", str(prices), "--max-tokens", "500", n=40, capsys=capsys)
    assert code == 0 and server.hits.total() == 0 and not out.exists()
    assert "requests: 40" in captured.out and "cost: typical $0.1" in captured.out and "at most $0.2" in captured.out
    synth(server, out, n=10)
    server.reset()
    code, captured = synth(server, out, "--dry-run", n=40, capsys=capsys)
    assert "requests: 30" in captured.out and "10 already in" in captured.out and server.hits.total() == 0
    assert "no price for 'stub-model'" in captured.out


def test_the_key_never_reaches_rows_logs_or_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PRH_GEN_TEST_KEY", SECRET)

    def leaky(request):  # a model that repeats what it saw, key included
        return example_answer(f"Note about the account {SECRET} renewal this week.", f"Renew account {SECRET} now!")

    with StubOpenAIServer(handler=leaky, api_key=SECRET) as stub:
        out = tmp_path / "synth.jsonl"
        code = main(["generate", "synth", "--catalog", CATALOG, "--n", "3", "--out", str(out), "--base-url",
                     stub.base_url, "--model", "stub-model", "--api-key-env", "PRH_GEN_TEST_KEY", "--no-progress"])
        assert code == 0
        assert stub.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"
        monkeypatch.setenv("PRH_GEN_TEST_KEY", SECRET + "-wrong")
        code = main(["generate", "synth", "--catalog", CATALOG, "--n", "4", "--out", str(out), "--base-url",
                     stub.base_url, "--model", "stub-model", "--api-key-env", "PRH_GEN_TEST_KEY", "--no-progress"])
        assert code == 2
    captured = capsys.readouterr()
    assert "rejected the key" in captured.err
    for text in [captured.out, captured.err, *(p.read_text() for p in tmp_path.iterdir())]:
        assert SECRET not in text
    assert "[REDACTED]" in out.read_text()
    monkeypatch.delenv("PRH_GEN_TEST_KEY")
    assert main(["generate", "synth", "--catalog", CATALOG, "--n", "1", "--out", str(out), "--base-url",
                 "http://127.0.0.1:9/v1", "--api-key-env", "PRH_GEN_TEST_KEY"]) == 2
    assert "PRH_GEN_TEST_KEY" in capsys.readouterr().err


def test_configuration_errors_are_one_line(tmp_path, capsys):
    assert main(["generate", "synth", "--catalog", str(tmp_path / "none.toml"), "--n", "3", "--out",
                 str(tmp_path / "o.jsonl"), "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "prompt catalog not found" in capsys.readouterr().err
    assert main(["generate", "synth", "--catalog", CATALOG, "--n", "-1", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "--n must be >= 0" in capsys.readouterr().err


# -- what a real weak model (Gemma-3-270m behind llama.cpp, tests/realmodel) exposed ----------------------
def cut_off(text: str) -> Reply:
    """An answer that hit max_tokens: the server says finish_reason "length"."""
    body = chat_completion([text], model="stub-model")
    body["choices"][0]["finish_reason"] = "length"
    return Reply(json=body)


def test_an_answer_cut_off_at_max_tokens_is_rejected_as_truncated_and_asked_again(server, tmp_path, capsys):
    # a JSON object that happens to parse but was cut (the rewrite stops mid-sentence), and one that does not
    server.enqueue(cut_off(example_answer("The bakery on Elm Street opens at six.", "Dawn: the bakery")),
                   cut_off('{"original_text": "The bakery on Elm Street opens at six every'))
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--concurrency", "1", "--max-tokens", "40", n=2, capsys=capsys)
    assert code == 0, captured.err
    rows = read_jsonl(out)
    assert len(rows) == 2 and all("Dawn: the bakery" != r["rewritten_text"] for r in rows)
    log = read_jsonl(tmp_path / "synth.failures.jsonl")
    assert [(f["reason"], f["final"]) for f in log] == [("truncated", False), ("truncated", False)]
    assert "max_tokens 40" in log[0]["detail"]
    # asked afresh: the cut-off answer is not shown back (a weak model repeats what it is shown)
    assert [len(r.messages) for r in server.chat_requests] == [2, 2, 2, 2]
    assert "2 answers rejected; reasons: truncated ×2" in captured.out


def test_json_mode_schema_sends_the_answer_schema_and_stop_sequences_reach_the_server(server, tmp_path, capsys):
    out = tmp_path / "synth.jsonl"
    code, captured = synth(server, out, "--json-mode", "schema", "--stop", "\n\n\n", n=2, capsys=capsys)
    assert code == 0, captured.err
    body = server.chat_requests[0].body
    assert body["response_format"]["type"] == "json_object"
    assert body["response_format"]["schema"]["required"] == ["original_text", "rewritten_text"]
    assert body["stop"] == ["\n\n\n"] and read_jsonl(out)[0]["provenance"]["stop"] == ["\n\n\n"]
    server.reset()
    synth(server, tmp_path / "plain.jsonl", n=1)
    assert "stop" not in server.chat_requests[0].body  # nothing is sent unless asked for
    assert main(["generate", "synth", "--catalog", CATALOG, "--n", "1", "--out", str(out), "--stop", "a", "--stop",
                 "b", "--stop", "c", "--stop", "d", "--stop", "e", "--base-url", server.base_url]) == 2
    assert "at most 4" in capsys.readouterr().err
