"""`prh generate rewrite`: existing rows rewritten by another model (the stub endpoint, or a tiny local
transformers model), with Gemma-like post-processing, provenance and resume."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT
from hypothesis import given
from hypothesis import strategies as st
from stub_openai_server import Reply, StubOpenAIServer, chat_completion

from harness.cli import main
from harness.data import load_suite, spec_for_file
from harness.generate.jsonl import read_jsonl
from harness.generate.local import cut_at_stop

GEMMA_STYLE = "Sure, here is the rewritten text:\n\n**{body}**\n\nI hope this rewrite is helpful!"


def gemma_like(request) -> str:
    user = request.last_user_text
    return GEMMA_STYLE.format(body=f"A rewritten version of: {user.splitlines()[-1][:60]}")


def rewrite(base_url, source, out, *extra):
    return main(["generate", "rewrite", "--in", str(source), "--out", str(out), "--base-url", base_url, "--model",
                 "gemma-stub", "--concurrency", "3", "--no-progress", "--suites-file",
                 str(REPO_ROOT / "suites.toml"), *extra])


def test_rewrite_a_named_suite_with_post_processing_and_resume(tmp_path, capsys):
    out = tmp_path / "rewritten.jsonl"
    with StubOpenAIServer(models=["gemma-stub"], handler=gemma_like) as server:
        assert rewrite(server.base_url, "leaked", out, "--limit", "5") == 0
        first = server.chat_requests[0]
        asked = {r.last_user_text for r in server.chat_requests}
        assert [m["role"] for m in first.messages] == ["user"]  # Gemma: no system turn
        assert "response_format" not in first.body
        server.reset()
        assert rewrite(server.base_url, "leaked", out, "--limit", "6") == 0 and server.chat_hits == 1
    rows = read_jsonl(out)
    source = load_suite(spec_for_file(REPO_ROOT / "fixtures" / "leaked.csv"))
    assert len(rows) == 6 and {r["source_id"] for r in rows} == {s.id for s in source.samples[:6]}
    by_source = {s.id: s for s in source.samples}
    for row in rows:
        sample = by_source[row["source_id"]]
        assert row["id"].startswith(f"{sample.id}~rw-")
        assert row["original_text"] == sample.original_text and row["rewrite_prompt"] == sample.rewrite_prompt
        assert row["rewritten_text"].startswith("**A rewritten version of:")  # opener and closer stripped
        assert row["rewritten_text_raw"].startswith("Sure, here is")
        assert row["provenance"]["model"] == "gemma-stub" and row["provenance"]["postprocess"] == "strip"
    assert asked == {f"{s.rewrite_prompt}\n\n{s.original_text}" for s in source.samples[:5]}
    assert load_suite(spec_for_file(out)).samples  # the output loads as a suite


def test_rewrite_a_file_without_rewritten_text_and_plain_mode(tmp_path, capsys):
    source = tmp_path / "todo.csv"
    source.write_text("id,original_text,rewrite_prompt\na,The bus is late again.,Make it a haiku.\n"
                      "b,We won the cup!,Rewrite it as a news headline.\n")
    out = tmp_path / "out.jsonl"
    with StubOpenAIServer(models=["gemma-stub"], handler=gemma_like) as server:
        assert rewrite(server.base_url, source, out, "--postprocess", "plain", "--system", "Rewrite for: {rewrite_prompt}",
                       "--user-template", "TEXT: {original_text}") == 0
        systems = {r.messages[0]["content"] for r in server.chat_requests}
        assert systems == {"Rewrite for: Make it a haiku.", "Rewrite for: Rewrite it as a news headline."}
    rows = read_jsonl(out)
    assert len(rows) == 2 and all(r["rewritten_text"].startswith("A rewritten version of: TEXT:") for r in rows)
    assert main(["generate", "rewrite", "--in", str(source), "--out", str(out), "--model", "m",
                 "--user-template", "{rewrite_prompt} only", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "uses {original_text}" in capsys.readouterr().err


def test_rewrite_dry_run_counts_only_missing_rows(tmp_path, capsys):
    code = main(["generate", "rewrite", "--in", "leaked", "--suites-file", str(REPO_ROOT / "suites.toml"), "--out",
                 str(tmp_path / "o.jsonl"), "--model", "gemma-7b-it", "--base-url", "http://127.0.0.1:9/v1",
                 "--limit", "10", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "requests: 10" in out and "cost: typical $0.0000" in out


@pytest.mark.slow
def test_rewrite_with_a_local_transformers_model(tmp_path, capsys):
    from tiny_models import build_tiny_llama, one_torch_thread

    model_dir = build_tiny_llama(tmp_path / "tiny")
    source = tmp_path / "todo.csv"
    source.write_text("id,original_text,rewrite_prompt\na,The bus is late again.,Make it a haiku.\n"
                      "b,We won the cup!,Rewrite it as a news headline.\nc,Soup of the day: lentil.,Make it formal.\n")
    out = tmp_path / "out.jsonl"
    with one_torch_thread():
        code = main(["generate", "rewrite", "--backend", "local", "--in", str(source), "--out", str(out), "--model",
                     str(model_dir), "--max-tokens", "8", "--invalid-retries", "0", "--no-progress"])
    rows = read_jsonl(out)
    failures = read_jsonl(tmp_path / "out.failures.jsonl") if (tmp_path / "out.failures.jsonl").exists() else []
    assert code in (0, 1)  # a random tiny model may answer nothing usable: the pipeline is what is tested
    assert {r["source_id"] for r in rows} | {f["id"].split("~")[0] for f in failures if f["final"]} == {"a", "b", "c"}
    for row in rows:
        assert row["provenance"]["endpoint"].startswith("local:") and 1 <= row["provenance"]["completion_tokens"] <= 8


# -- what a real weak model (Gemma-3-270m behind llama.cpp, tests/realmodel) exposed ----------------------
def test_a_base_model_rewrite_needs_a_stop_and_is_never_written_cut_off_or_as_the_instruction(tmp_path, capsys):
    """A base model never ends its turn: its answer runs on to max_tokens (echoing, inventing a next turn).
    Such an answer is `truncated`, and a first line that only repeats the instruction is `echoed_prompt`:
    both are recorded failures, never rows; `--stop` ends answers where the model would not."""
    source = tmp_path / "todo.csv"
    source.write_text("id,original_text,rewrite_prompt\na,The bus is late again today.,Make it a haiku.\n")

    stopped_answers = iter(["Make it a haiku.", "Late bus again, rain"])  # first lines, cut at the stop

    def base_model(request):
        body = chat_completion(["Make it a haiku. mendatang\nuser\nMake it a haiku. The bus is late again today."])
        if request.body.get("stop"):
            body = chat_completion([next(stopped_answers)])
        else:
            body["choices"][0]["finish_reason"] = "length"
        return Reply(json=body)

    out = tmp_path / "out.jsonl"
    with StubOpenAIServer(models=["gemma-stub"], handler=base_model) as server:
        assert rewrite(server.base_url, source, out, "--max-tokens", "24", "--invalid-retries", "0") == 1
        assert not out.exists() or read_jsonl(out) == []
        assert rewrite(server.base_url, source, out, "--stop", "\n", "--invalid-retries", "3",
                       "--temperature", "0.9") == 0
        assert server.chat_requests[-1].body["stop"] == ["\n"]
    log = read_jsonl(tmp_path / "out.failures.jsonl")
    assert [f["reason"] for f in log] == ["truncated", "echoed_prompt"]
    assert [r["rewritten_text"] for r in read_jsonl(out)] == ["Late bus again, rain"]
    assert main(["generate", "rewrite", "--in", str(source), "--out", str(out), "--model", "m", "--base-url",
                 "http://127.0.0.1:9/v1", "--json-mode", "schema"]) == 2
    assert "needs a task whose answer is JSON" in capsys.readouterr().err


@given(text=st.text(max_size=60), stops=st.lists(st.text(min_size=1, max_size=3), max_size=3))
def test_the_local_backend_cuts_at_stop_texts_like_a_server(text, stops):
    cut, stopped = cut_at_stop(text, stops)
    assert text.startswith(cut) and stopped == any(s in text for s in stops)
    assert not any(s in cut for s in stops)  # nothing past the first stop, and no stop text itself
    if stopped:
        assert any(text[len(cut):].startswith(s) for s in stops)
