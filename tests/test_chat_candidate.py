"""The chat candidate end to end against the stub server, through the real registry, cache, store,
evaluate and report code: templates, few-shot turns, n answers, post-processing, failures, a SIGKILLed
run that resumes without paying twice, and a key that never leaks into any artefact."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from stub_openai_server import Reply, StubOpenAIServer

from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate
from harness.candidates.chat import ChatCandidate
from harness.data import Sample, load_suite, load_suite_specs
from harness.errors import ConfigError, ModelUnavailableError
from harness.evaluation import BootstrapSettings, evaluate
from harness.report import write_reports
from harness.run import run_json
from harness.store import Store

ROW = re.compile(r"ROW-(\d+)")


class HashEmbedder:
    """A deterministic bag-of-words embedder (real enough for evaluate, instant to build)."""

    name = "hash-test"
    fingerprint = "hash-test-1"
    comparable_with_kaggle = False

    def embed(self, texts):
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        vectors[:, 0] += 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_suite(path: Path, count: int, *, start: int = 0) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "original_text", "rewritten_text", "rewrite_prompt"])
        for i in range(start, start + count):
            writer.writerow([f"r{i}", f"Original text ROW-{i}.", f"Rewritten text ROW-{i}.", f"Make row {i} formal."])
    return path


def project(tmp_path: Path, candidate: str, *, rows: int = 4, train_rows: int = 6) -> tuple[CandidateContext, object]:
    """A suites file (rows + train), a candidates file holding `candidate` (TOML), the real registry."""
    write_suite(tmp_path / "rows.csv", rows)
    write_suite(tmp_path / "train.csv", train_rows, start=100)
    (tmp_path / "suites.toml").write_text('[suites.rows]\npath = "rows.csv"\n[suites.train]\npath = "train.csv"\n')
    (tmp_path / "candidates.toml").write_text(candidate)
    context = CandidateContext(base_dir=tmp_path, suites=load_suite_specs(tmp_path / "suites.toml"))
    return context, load_candidate_registry(tmp_path / "candidates.toml")


def chat_entry(server: StubOpenAIServer, **extra) -> str:
    lines = ["[candidates.chatty]", 'kind = "chat"', f'base_url = "{server.base_url}"', 'model = "stub-model"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def build(tmp_path, server, **extra) -> tuple[ChatCandidate, list[Sample], CandidateContext]:
    context, registry = project(tmp_path, chat_entry(server, **extra))
    candidate = resolve_candidate("chatty", registry, context)
    return candidate, list(load_suite(context.suites["rows"]).samples), context


@pytest.fixture
def server():
    with StubOpenAIServer() as stub:
        yield stub


# -- behaviour ------------------------------------------------------------------------------------------------
def test_templates_and_few_shot_turns_from_a_train_suite(tmp_path, server):
    candidate, samples, context = build(
        tmp_path, server, system="You recover prompts.", user="O: {original_text}\nR: {rewritten_text}\n{{json}}",
        few_shot_suite="train", few_shot_k=2)
    assert isinstance(candidate, ChatCandidate) and candidate.train_suites == ("train",)
    assert candidate.predict(samples[:1]) == ["Rewrite the text in a more formal tone."]
    messages = server.chat_requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "You recover prompts."
    # k = 2 of 6 rows, spread evenly: rows 0 and 3 of the train suite
    assert messages[1]["content"] == "O: Original text ROW-100.\nR: Rewritten text ROW-100.\n{json}"
    assert messages[2]["content"] == "Make row 100 formal."
    assert messages[4]["content"] == "Make row 103 formal."
    assert messages[5]["content"] == "O: Original text ROW-0.\nR: Rewritten text ROW-0.\n{json}"
    # scoring on the few-shot pool is refused: it would measure memorisation
    with pytest.raises(ConfigError, match="learned from suite 'train'"):
        evaluate(candidate, load_suite(context.suites["train"]), HashEmbedder())


def test_default_templates_and_json_mode_examples(tmp_path, server):
    server.handler = lambda request: '{"prompt": "Make it formal."}'
    candidate, samples, _ = build(tmp_path, server, postprocess="json", few_shot_suite="train", few_shot_k=1)
    assert candidate.predict(samples[:1]) == ["Make it formal."]
    messages = server.chat_requests[0].body["messages"]
    assert messages[0]["role"] == "system" and "instruction" in messages[0]["content"]
    assert json.loads(messages[2]["content"]) == {"prompt": "Make row 100 formal."}
    assert messages[-1]["content"].endswith('Answer with JSON only: {"prompt": "<the instruction>"}')
    assert "Original text ROW-0." in messages[-1]["content"] and "Rewritten text ROW-0." in messages[-1]["content"]


def test_empty_system_sends_none(tmp_path, server):
    candidate, samples, _ = build(tmp_path, server, system="")
    candidate.predict(samples[:1])
    assert [m["role"] for m in server.chat_requests[0].body["messages"]] == ["user"]


def test_n_answers_are_cleaned_and_joined(tmp_path, server):
    server.handler = lambda request: ["Sure, here is the prompt: **Make it formal.**", '{"prompt": "Make it a poem"}',
                                      "Sure, here is the prompt:"]
    candidate, samples, _ = build(tmp_path, server, n=3, temperature=0.8)
    assert candidate.predict(samples[:2]) == ["Make it formal. Make it a poem"] * 2
    assert server.chat_requests[0].body["n"] == 3 and server.chat_requests[0].body["temperature"] == 0.8


def test_failed_rows_and_bad_answers_are_empty_while_others_succeed(tmp_path, server, caplog):
    def answer(request):
        row = int(ROW.search(request.last_user_text).group(1))
        if row == 1:
            return Reply.error(400, "context length exceeded")
        if row == 2:
            return "Sure, here is the prompt:"  # nothing usable
        return f"Make row {row} formal."

    server.handler = answer
    candidate, samples, _ = build(tmp_path, server, max_retries=0)
    with caplog.at_level(logging.WARNING):
        predictions = candidate.predict(samples)
    assert predictions == ["Make row 0 formal.", "", "", "Make row 3 formal."]
    assert set(candidate.failures) == {"r1", "r2"}
    assert "HTTP 400: context length exceeded" in candidate.failures["r1"]
    assert "no usable prompt" in candidate.failures["r2"]
    assert "row 'r1' answered empty" in caplog.text


def test_evaluate_reports_empty_rows_and_caches_answers(tmp_path, server):
    server.handler = lambda request: "" if "ROW-3" in request.last_user_text else "Make it formal."
    candidate, _, context = build(tmp_path, server)
    suite = load_suite(context.suites["rows"])
    with Store(tmp_path / "store.sqlite") as store:
        result = evaluate(candidate, suite, HashEmbedder(), store=store, bootstrap=BootstrapSettings(n_resamples=200))
        assert result.empty_prediction_ids == ["r3"] and not result.complete
        hits = server.chat_hits
        evaluate(candidate, suite, HashEmbedder(), store=store, bootstrap=BootstrapSettings(n_resamples=200))
    assert server.chat_hits == hits + 1  # only the empty row is asked again
    assert server.hits["GET /v1/models"] == 1  # preflight once per candidate


def test_preflight_failure_stops_evaluate_before_any_row(tmp_path, server):
    server.models = ["another-model"]
    candidate, _, context = build(tmp_path, server)
    with pytest.raises(ModelUnavailableError, match="does not list model 'stub-model'"):
        evaluate(candidate, load_suite(context.suites["rows"]), HashEmbedder())
    assert server.chat_hits == 0


def test_fingerprint_tracks_what_changes_answers(tmp_path, server, monkeypatch):
    def fingerprint(**extra) -> str:
        folder = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        return build(folder, server, **extra)[0].fingerprint

    base = fingerprint(few_shot_suite="train", few_shot_k=2)
    # answers do not depend on the key, concurrency, timeout or retries
    monkeypatch.setenv("PRH_KEY_A", "sk-aaaa")
    assert fingerprint(few_shot_suite="train", few_shot_k=2, max_concurrency=32, timeout=5, max_retries=0,
                       api_key_env="PRH_KEY_A") == base
    for change in [{"few_shot_k": 3}, {"temperature": 0.5}, {"n": 2}, {"max_tokens": 64}, {"postprocess": "raw"},
                   {"user": "{rewritten_text}"}, {"system": "Be brief."}, {"seed": 1}]:
        assert fingerprint(**{"few_shot_suite": "train", "few_shot_k": 2, **change}) != base, change
    # the few-shot *content* counts, not just the suite's name
    edited = tmp_path / "edited"
    edited.mkdir()
    context, registry = project(edited, chat_entry(server, few_shot_suite="train", few_shot_k=2))
    train = edited / "train.csv"
    train.write_text(train.read_text().replace("Make row 100 formal.", "Make row 100 casual."))
    assert resolve_candidate("chatty", registry, context).fingerprint != base


@pytest.mark.parametrize(("extra", "message"), [
    ({"temprature": 0.1}, r"unknown key 'temprature'; known keys: kind, description, few_shot_suite, few_shot_k, base_url"),
    ({"postprocess": "fancy"}, "'postprocess' must be one of 'auto', 'json', 'last_line' or 'raw', found string 'fancy'"),
    ({"user": "{original}"}, r"unknown placeholder\(s\) \{original\}"),
    ({"user": "no placeholders"}, "uses neither"),
    ({"few_shot_k": 2}, "needs a few_shot_suite"),
    ({"few_shot_suite": "train"}, "needs few_shot_k >= 1"),
    ({"few_shot_suite": "nope", "few_shot_k": 1}, "few_shot_suite 'nope' is not a known suite; known: rows, train"),
    ({"few_shot_suite": "train", "few_shot_k": 99}, "has only 6 rows"),
    ({"n": 0}, "'n' must be >= 1, found integer 0"),
    ({"temperature": "hot"}, "'temperature' must be a number, found string 'hot'"),
    ({"temperature": 3}, "'temperature' must be <= 2.0, found integer 3"),
])
def test_configuration_errors_are_precise(tmp_path, server, extra, message):
    with pytest.raises(ConfigError, match=message):
        build(tmp_path, server, **extra)


@pytest.mark.parametrize(("extra", "message"), [
    ({"timeout": "slow"}, "'timeout' must be a number, found string 'slow'"),
    ({"max_retries": 1.5}, "'max_retries' must be an integer, found float 1.5"),
    ({"max_concurrency": 0}, "'max_concurrency' must be >= 1, found integer 0"),
    ({"api_key_env": 7}, "'api_key_env' must be a string, found integer 7"),
    ({"max_retries": -1}, "'max_retries' must be >= 0, found integer -1"),
])
def test_option_errors_name_the_candidate_once(tmp_path, server, extra, message):
    """Issue 9: options read inside the client's try block were prefixed twice."""
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        build(tmp_path, server, **extra)
    assert str(error.value).count("[candidates.chatty] (kind chat)") == 1, str(error.value)


def test_a_key_written_in_the_file_is_refused_without_echoing_it(tmp_path, server):
    for extra in ({"api_key": "sk-live-abcdef123456"}, {"api_key_env": "sk-live-abcdef123456"}):
        with pytest.raises(ConfigError, match="api_key_env") as error:
            build(tmp_path, server, **extra)
        assert "sk-live-abcdef123456" not in str(error.value)


# -- a killed run resumes without paying twice -----------------------------------------------------------------
CHILD = """
import sys
from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate
from harness.candidates.cache import predict_with_cache
from harness.data import load_suite, load_suite_specs
from harness.store import Store

folder = sys.argv[1]
specs = load_suite_specs(folder + "/suites.toml")
candidate = resolve_candidate("chatty", load_candidate_registry(folder + "/candidates.toml"),
                              CandidateContext(suites=specs))
candidate.preflight()
predictions = predict_with_cache(candidate, load_suite(specs["rows"]).samples, Store(folder + "/store.sqlite"))
print("DONE", sum(bool(p) for p in predictions), flush=True)
"""


def stored_ids(store_path: Path) -> set[str]:
    if not store_path.exists():
        return set()
    try:
        with sqlite3.connect(store_path, timeout=5) as connection:
            return {row[0] for row in connection.execute("SELECT sample_id FROM predictions")}
    except sqlite3.OperationalError:  # the child has not created the table yet
        return set()


@pytest.mark.e2e  # a subprocess killed with SIGKILL, then rerun
def test_sigkilled_run_resumes_without_repeating_answered_rows(tmp_path):
    total = 30
    with StubOpenAIServer(latency=0.1) as server:
        server.handler = lambda request: f"Make row {ROW.search(request.last_user_text).group(1)} formal."
        project(tmp_path, chat_entry(server, max_concurrency=2), rows=total)
        (tmp_path / "child.py").write_text(CHILD)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, str(tmp_path / "child.py"), str(tmp_path)]

        def hits_per_row() -> Counter:
            return Counter(f"r{ROW.search(r.last_user_text).group(1)}" for r in server.chat_requests)

        child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while len(stored_ids(tmp_path / "store.sqlite")) < 6:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child stored nothing in time"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        time.sleep(0.3)  # let requests the dead child had in flight reach the server's log
        answered = stored_ids(tmp_path / "store.sqlite")
        before = hits_per_row()
        assert 6 <= len(answered) < total

        finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
        assert f"DONE {total}" in finished.stdout
        after = hits_per_row()

    assert stored_ids(tmp_path / "store.sqlite") == {f"r{i}" for i in range(total)}
    assert {row: after[row] for row in answered} == {row: before[row] for row in answered}  # nothing paid twice
    assert sum(after.values()) - sum(before.values()) == total - len(answered)  # each missing row asked once


# -- the key never leaks ---------------------------------------------------------------------------------------
def test_the_key_never_appears_in_any_artefact(tmp_path, server, monkeypatch, caplog, capfd):
    secret, wrong = "sk-test-PRHSECRET-7f3e9a1c5b", "sk-test-PRHWRONG-0d9e8f"
    monkeypatch.setenv("PRH_TEST_KEY", secret)
    monkeypatch.setenv("PRH_TEST_WRONG_KEY", wrong)
    server.api_key = secret

    def answer(request):
        row = int(ROW.search(request.last_user_text).group(1))
        if row == 1:  # a server that echoes the credentials it got
            return Reply.error(400, f"bad request from {request.headers['authorization']}")
        if row == 2:
            return Reply.server_error(message=f"upstream refused key {secret}")
        if row == 3:
            return f"Prompt: use {secret}"  # even a model repeating it: the store must not keep it
        return "Make it formal."

    server.handler = answer
    for name in ("", "openai", "httpx2", "httpcore", "harness"):
        caplog.set_level(logging.DEBUG, logger=name)
    entries = (chat_entry(server, api_key_env="PRH_TEST_KEY", max_retries=1)
               + chat_entry(server, api_key_env="PRH_TEST_WRONG_KEY").replace("chatty", "wrong-key")
               + chat_entry(server, api_key_env="PRH_TEST_KEY").replace("chatty", "wrong-model")
               .replace('"stub-model"', '"missing-model"'))
    context, registry = project(tmp_path, entries, rows=5)
    candidate = resolve_candidate("chatty", registry, context)
    suite = load_suite(context.suites["rows"])
    shown: list[str] = [repr(candidate), str(candidate), repr(candidate.client), str(vars(candidate)),
                        str(vars(candidate.client)), candidate.fingerprint]
    with Store(tmp_path / "store.sqlite") as store:
        result = evaluate(candidate, suite, HashEmbedder(), store=store, bootstrap=BootstrapSettings(n_resamples=200))
        record = result.to_run_record(session="secret-test")
        store.record_run(record)
        write_reports(store.runs(), tmp_path / "reports")
        shown += [json.dumps(run_json(record, result, rows=True)), str(candidate.failures)]
        for name, error_type in (("wrong-key", ConfigError), ("wrong-model", ModelUnavailableError)):
            with pytest.raises(error_type) as error:
                evaluate(resolve_candidate(name, registry, context), suite, HashEmbedder(), store=store)
            shown += [str(error.value), repr(error.value)]
    captured = capfd.readouterr()
    shown += [caplog.text, captured.out, captured.err]

    # the test means something: the key was sent, refused and echoed, rows failed
    assert any(r.headers.get("authorization") == f"Bearer {secret}" for r in server.chat_requests)
    assert any(r.headers.get("authorization") == f"Bearer {wrong}" for r in server.requests)
    assert {"r1", "r2"} <= set(candidate.failures) and "[REDACTED]" in candidate.failures["r1"]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "store.sqlite" for path in files) and any(path.suffix == ".md" for path in files)
    for key in (secret, wrong):
        for text in shown:
            assert key not in text
        for path in files:
            assert key.encode() not in path.read_bytes(), path
