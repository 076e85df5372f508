"""`prh predict`: the Kaggle file from a candidate that passed the gate, for every kind of candidate, the gate
enforced (refusal, --force), the file's format checks, and the submissions in the history and the report."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from stub_openai_server import StubOpenAIServer

from harness.cli import main
from harness.run import RunRecord, RunSpec
from harness.store import _SCHEMA, Store
from harness.submission import (
    DEFAULT_FALLBACK,
    SubmissionError,
    csv_read_back,
    needs_repair,
    pandas_read_back,
    render_csv,
    submission_rows,
)
from harness.tomlfile import read_toml
from harness.verdict import Comparison
from harness.workspace import Workspace

# Kaggle's test.csv columns; texts with commas, quotes and line breaks; ids as Kaggle writes them, and "007".
TEST_ROWS = [
    ("9559194", 'The memo, "as sent", was short.', "Ahoy! The memo, as sent, was short, matey."),
    ("-1", "Line one.\nLine two, with a comma.", 'A poem:\n"Line one"\nLine two'),
    ("007", "Dear team, please review.", "Yo team, review this, fam."),
    ("42", "EMPTY answer wanted here.", "EMPTY rewrite here."),
]
TRAIN_ROWS = [(f"t{i}", f"Original train text {i}.", f"Rewritten train text {i}, shanty style.",
               f"Make train text {i} a shanty.") for i in range(6)]


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch, tiny_sentence_model_dir) -> Path:
    """A project: a suite (`rows`, for gate records), a train suite, Kaggle's test.csv, a candidates file
    with one candidate of each model-free kind, and a predictions file covering the test ids."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRH_STORE", raising=False)
    write_csv(tmp_path / "rows.csv", ["id", "original_text", "rewritten_text", "rewrite_prompt"],
              [(f"r{i}", f"Text {i}.", f"Rewritten {i}.", f"Rewrite {i}.") for i in range(3)])
    write_csv(tmp_path / "train.csv", ["id", "original_text", "rewritten_text", "rewrite_prompt"], TRAIN_ROWS)
    write_csv(tmp_path / "test.csv", ["id", "original_text", "rewritten_text"], TEST_ROWS)
    # a file answering every test id; two answers Kaggle would read as empty/NaN
    write_csv(tmp_path / "guesses.csv", ["id", "rewrite_prompt"],
              [("9559194", 'Make it a "pirate" memo, matey'), ("-1", "NA"), ("007", "Make it casual,\nslangy."),
               ("42", "  ")])
    (tmp_path / "suites.toml").write_text('[suites.rows]\npath = "rows.csv"\n[suites.train]\npath = "train.csv"\n')
    (tmp_path / "candidates.toml").write_text(
        '[candidates.const]\nkind = "constant"\nprompt = "Rewrite this, as a \\"pirate\\" would."\n'
        '[candidates.guesses]\nkind = "predictions-file"\npath = "guesses.csv"\n'
        f'[candidates.knn]\nkind = "retrieval"\ntrain_suite = "train"\nk = 1\nembedder = "path:{tiny_sentence_model_dir}"\n')
    return tmp_path


def fingerprint(name: str) -> str:
    with Workspace.from_dir(".") as workspace:
        return workspace.candidate(name).fingerprint


def gate(candidate: str, *, status: str = "no-difference", session: str = "gate-1", created: float = 1_800_000_000.0,
         n_empty: int = 0, delta: float = -0.001, suites=("rows",)) -> None:
    """Record a gate run (what `pytest suites/ --candidate=NAME` records) of this exact candidate."""
    with Store(Path(".prh/store.sqlite")) as store:
        for offset, suite in enumerate(suites):
            verdict = Comparison(status, f"verdict {status}", baseline_candidate="base", baseline_mean=0.5,
                                 delta=delta, delta_low=delta - 0.01, delta_high=delta + 0.01)
            spec = RunSpec(candidate=candidate, candidate_fingerprint=fingerprint(candidate), suite=suite,
                           suite_fingerprint="sfp", embedder="minilm", embedder_fingerprint="efp",
                           comparable_with_kaggle=False)
            store.record_run(RunRecord(spec=spec, n=3, mean=0.4, ci_low=0.3, ci_high=0.5, baseline=verdict,
                                       session=session, n_empty=n_empty, created=created + offset))


def read_submission(path: Path) -> list[tuple[str, str]]:
    """The file as Kaggle reads it (pandas, ids as text), checked against the csv module's reading."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "rewrite_prompt"]
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(path, dtype=str)
    assert list(frame.columns) == ["id", "rewrite_prompt"]
    assert frame["rewrite_prompt"].map(lambda v: isinstance(v, str) and v.strip() != "").all()
    assert [tuple(r) for r in rows[1:]] == list(zip(frame["id"], frame["rewrite_prompt"]))
    return [tuple(r) for r in rows[1:]]


def prh(*args: str) -> int:
    return main(list(args))


TEST_IDS = [row[0] for row in TEST_ROWS]


# -- every kind of candidate writes a file Kaggle accepts ------------------------------------------------------
def test_constant_candidate_writes_kaggles_format(project, capsys):
    gate("const")
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "submission.csv") == 0
    out = capsys.readouterr().out
    written = read_submission(project / "submission.csv")
    assert [i for i, _ in written] == TEST_IDS  # every id once, in input order, "007" kept as text
    assert {p for _, p in written} == {'Rewrite this, as a "pirate" would.'}
    assert "gate: passed, gate run of 2027-01-15 08:00 UTC (minilm): rows no-difference" in out
    assert "read back with csv and pandas: identical" in out and "repaired 0 answers" in out
    assert "wrote submission.csv (4 rows, sha256 " in out


def test_predictions_file_candidate_repairs_empty_and_nan_like_answers(project, capsys):
    gate("guesses")
    assert prh("predict", "--candidate", "guesses", "--input", "test.csv", "--out", "s.csv",
               "--fallback", "Rewrite the text.") == 0
    assert read_submission(project / "s.csv") == [
        ("9559194", 'Make it a "pirate" memo, matey'), ("-1", "Rewrite the text."),
        ("007", "Make it casual,\nslangy."), ("42", "Rewrite the text.")]
    assert "repaired 2 empty or NaN-like answer(s) with the fallback 'Rewrite the text.': ids '-1', '42'" in \
        capsys.readouterr().out
    with Store(Path(".prh/store.sqlite")) as store:
        [submission] = store.submissions()
    assert (submission.n_rows, submission.n_repaired, submission.repaired_ids) == (4, 2, ("-1", "42"))
    assert submission.candidate_fingerprint == fingerprint("guesses") and not submission.forced
    assert submission.output_path == str((project / "s.csv").resolve())


def test_retrieval_candidate_answers_with_its_neighbours_prompts(project):
    gate("knn")
    assert prh("predict", "--candidate", "knn", "--input", "test.csv", "--out", "s.csv") == 0
    written = read_submission(project / "s.csv")
    assert [i for i, _ in written] == TEST_IDS
    train_prompts = {row[3] for row in TRAIN_ROWS}
    assert all(prompt in train_prompts for _, prompt in written)  # k = 1: one train prompt per row


def test_chat_candidate_through_the_stub_server_same_messages_as_scoring(project, capsys):
    with StubOpenAIServer() as server:
        server.handler = lambda request: "" if "EMPTY" in request.last_user_text else \
            'Rewrite it as a pirate, "arr", matey.'
        with (project / "candidates.toml").open("a") as handle:
            handle.write(f'[candidates.chatty]\nkind = "chat"\nbase_url = "{server.base_url}"\nmodel = "stub-model"\n'
                         "max_retries = 0\n")
        gate("chatty")
        assert prh("predict", "--candidate", "chatty", "--input", "test.csv", "--out", "s.csv") == 0
        with Workspace.from_dir(".") as workspace:
            chat = workspace.candidate("chatty")
            rows = workspace.suite("test.csv", needs_truth=False)
            expected = [chat.messages(sample) for sample in rows.samples]
        asked = [request.messages for request in server.chat_requests]
    assert sorted(map(json.dumps, asked)) == sorted(map(json.dumps, expected))  # scoring's prompt formatting
    assert read_submission(project / "s.csv") == [
        ("9559194", 'Rewrite it as a pirate, "arr", matey.'), ("-1", 'Rewrite it as a pirate, "arr", matey.'),
        ("007", 'Rewrite it as a pirate, "arr", matey.'), ("42", DEFAULT_FALLBACK)]
    assert "repaired 1 empty or NaN-like answer(s)" in capsys.readouterr().out


def test_column_mapping_as_for_suites(project):
    write_csv(project / "other.csv", ["key", "Original", "Rewritten"], [("a", "One.", "Uno."), ("b", "Two.", "Dos.")])
    gate("const")
    assert prh("predict", "--candidate", "const", "--input", "other.csv", "--out", "s.csv",
               "--column", "id=key", "--column", "original_text=Original", "--column", "rewritten_text=Rewritten") == 0
    assert [i for i, _ in read_submission(project / "s.csv")] == ["a", "b"]


# -- the gate is enforced ---------------------------------------------------------------------------------------
def test_never_gated_is_refused_with_one_line_and_nothing_written(project, capsys):
    gate("const", session="cli")  # `prh score` runs are not gate runs
    assert prh("predict", "--candidate", "guesses", "--input", "test.csv", "--out", "s.csv") == 1
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["refused: candidate 'guesses' was never gated: no `pytest suites/ --candidate=guesses` run of this "
                   "exact candidate (same fingerprint) is in the store; run it first, or pass --force",
                   err[0].replace("guesses", "const")]
    assert not (project / "s.csv").exists()


def test_an_edited_candidate_is_another_candidate(project, capsys):
    gate("const")
    (project / "candidates.toml").write_text(
        (project / "candidates.toml").read_text().replace('a \\"pirate\\" would', "a sailor would"))
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 1
    assert "was never gated" in capsys.readouterr().err


def test_regression_in_the_latest_gate_run_is_refused_naming_suite_delta_and_when(project, capsys):
    gate("const", created=1_700_000_000.0)  # an older gate run that passed does not count
    gate("const", status="regression", delta=-0.05, session="gate-2", suites=("rows", "train"))
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("refused: candidate 'const' failed its latest gate run (2027-01-15 08:00 UTC, minilm): "
                    "suite 'rows' regressed by -0.0500 [-0.0600, -0.0400] against base (regression); "
                    "suite 'train' regressed by -0.0500 [-0.0600, -0.0400] against base (regression)")
    assert not (project / "s.csv").exists()


@pytest.mark.parametrize(("status", "n_empty", "message"), [
    ("stale", 0, "suite 'rows' regressed by -0.0010 [-0.0110, +0.0090] against base (stale)"),
    ("no-difference", 2, "suite 'rows' had 2 empty prediction(s)"),
    ("not-judged", 0, "judged no suite (rows not-judged)"),
])
def test_stale_baselines_empty_predictions_and_nothing_judged_are_refused(project, capsys, status, n_empty, message):
    gate("const", status=status, n_empty=n_empty)
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 1
    assert message in capsys.readouterr().err


def test_a_newer_passing_gate_run_lifts_the_refusal(project):
    gate("const", status="regression", created=1_700_000_000.0)
    gate("const", session="gate-2")
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 0


def test_force_writes_says_so_and_records_it(project, capsys):
    gate("const", status="regression", delta=-0.05)
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv", "--force") == 0
    out = capsys.readouterr().out
    assert "FORCED (--force): writing although candidate 'const' failed its latest gate run" in out
    assert [i for i, _ in read_submission(project / "s.csv")] == TEST_IDS
    with Store(Path(".prh/store.sqlite")) as store:
        [submission] = store.submissions()
        gate_runs = [r.run_id for r in store.runs()]
    assert submission.forced and "suite 'rows' regressed by -0.0500" in submission.refusal
    assert submission.gate_run_ids == tuple(gate_runs) and submission.gate_session == "gate-1"


# -- the history and the report show the submissions ------------------------------------------------------------
def test_history_list_and_index_html_show_which_candidate_was_submitted_when(project, capsys):
    gate("const")
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 0
    assert prh("predict", "--candidate", "guesses", "--input", "test.csv", "--out", "g.csv", "--force") == 0
    capsys.readouterr()
    assert prh("history", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 submission(s)"
    assert lines[-3].startswith("submission #1  ") and f"const (fingerprint {fingerprint('const')[:12]})" in lines[-3]
    assert "4 rows, 0 repaired  gate passed: gate run of 2027-01-15 08:00 UTC" in lines[-3]
    assert "guesses" in lines[-2] and "4 rows, 2 repaired  FORCED past the gate: candidate 'guesses' was never gated" \
        in lines[-2]
    assert prh("history", "list", "--candidate", "guesses") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 submission(s)"
    assert prh("leaderboard") == 0
    page = (project / "reports" / "index.html").read_text()
    table = page[page.index('<h2 id="submissions">'):]
    assert table.index(">guesses<") < table.index(">const<")  # newest first
    assert "FORCED: candidate &#x27;guesses&#x27; was never gated" in table
    assert str((project / "g.csv").resolve()) in table


def test_a_store_from_before_submissions_opens_and_gains_the_table(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:  # the layout every store had before migration 1
        connection.executescript(_SCHEMA)
        connection.execute("INSERT INTO runs (created, session, candidate, candidate_fingerprint, suite, "
                            "suite_fingerprint, embedder, embedder_fingerprint, record) VALUES "
                            "(1.0, 's', 'c', 'fp', 'rows', 'sfp', 'minilm', 'efp', ?)",
                            (json.dumps({"candidate": "c", "candidate_fingerprint": "fp", "suite": "rows",
                                         "suite_fingerprint": "sfp", "embedder": "minilm", "embedder_fingerprint": "efp",
                                         "comparable_with_kaggle": False, "n": 3, "mean": 0.5, "ci_low": 0.4,
                                         "ci_high": 0.6}),))
    with Store(path, create=False) as store:
        assert [r.candidate for r in store.runs()] == ["c"] and store.submissions() == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (1,)


# -- paths and overwrites -----------------------------------------------------------------------------------------
def test_path_typos_are_errors_and_never_create_files(project, capsys):
    gate("const")
    assert prh("predict", "--candidate", "const", "--input", "tset.csv", "--out", "s.csv") == 2
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "outt/s.csv") == 2
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv", "--store", "x.sqlite") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: --input tset.csv: file not found (nor a suite of suites.toml)",
                   "error: --out outt/s.csv: the folder outt does not exist (check the path; it is not created)",
                   "error: --store x.sqlite: store not found (it holds the gate runs; check the path)"]
    assert sorted(p.name for p in project.iterdir() if p.suffix in (".csv", ".sqlite")) == [
        "guesses.csv", "rows.csv", "test.csv", "train.csv"] and not (project / "outt").exists()


def test_replacing_a_submission_says_old_and_new(project, capsys):
    gate("const")
    (project / "s.csv").write_text("id,rewrite_prompt\n1,old\n2,old\n")
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("replaced")][0]
    assert line.startswith("replaced s.csv: 2 rows, sha256 ") and " → 4 rows, sha256 " in line


def test_input_without_the_texts_a_candidate_reads_is_an_error_naming_the_column(project, capsys):
    write_csv(project / "bad.csv", ["id", "original_text"], [("1", "Text.")])
    gate("const")
    assert prh("predict", "--candidate", "const", "--input", "bad.csv", "--out", "s.csv") == 2
    assert "missing column 'rewritten_text' for field rewritten_text" in capsys.readouterr().err


# -- the file's checks ------------------------------------------------------------------------------------------
def test_default_fallback_is_the_shipped_mean_prompt():
    entry = read_toml(REPO_ROOT / "candidates.toml", "candidates file")["candidates"]["mean-prompt"]
    assert DEFAULT_FALLBACK == entry["prompt"]


def test_duplicate_and_empty_ids_are_named_by_row():
    with pytest.raises(SubmissionError, match=r"row 3: id 'a' again \(first in row 1\); row 4: empty id"):
        submission_rows(["a", "b", "a", " "], ["x"] * 4)
    with pytest.raises(SubmissionError, match="fallback prompt 'NaN' is itself empty"):
        submission_rows(["a"], ["x"], fallback="NaN")


def test_a_file_that_reads_back_differently_is_caught_with_its_rows():
    rows = submission_rows(["1", "2"], ["one", "two"])
    with pytest.raises(SubmissionError, match=r"read back with csv, 1 row\(s\) differ .*rows 2; first: id '2'"):
        csv_read_back(render_csv(rows).replace("two", "tw0"), rows)


prompts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(prompts, min_size=1, max_size=8))
def test_any_answers_round_trip_through_csv_and_pandas(answers):
    """Whatever the candidate answers (commas, quotes, line breaks, "NA", blanks), the text reads back with
    the csv module and pandas exactly as meant, and only empty or NaN-like answers are replaced."""
    ids = [f"{i:03d}" for i in range(len(answers))]
    rows = submission_rows(ids, answers)
    text = render_csv(rows)
    csv_read_back(text, rows)
    if pytest.importorskip("pandas"):
        assert pandas_read_back(text, rows)
    assert rows.repaired_ids == tuple(i for i, a in zip(ids, answers) if needs_repair(a))
    assert [p for p, a in zip(rows.prompts, answers) if not needs_repair(a)] == [a for a in answers if not needs_repair(a)]


class CountingStream:
    """A small real streaming candidate (answers arrive one by one), as chat and hf candidates are."""

    name = spec = "counting"
    fingerprint = "counting-v1"

    def predict(self, samples):
        return [p for _, p in sorted(self.predict_stream(samples))]

    def predict_stream(self, samples):
        for index, sample in enumerate(samples):
            yield index, f"Answer {sample.id}."


def test_progress_starts_from_the_cached_rows_and_counts_each_answer(tmp_path):
    from harness.candidates.cache import predict_with_cache
    from harness.data import Sample

    samples = [Sample(f"s{i}", f"original {i}", f"rewritten {i}", "") for i in range(5)]
    seen: list[tuple[int, int]] = []
    with Store(tmp_path / "s.sqlite") as store:
        predict_with_cache(CountingStream(), samples[:2], store)
        answers = predict_with_cache(CountingStream(), samples, store, on_progress=lambda *a: seen.append(a))
    assert answers == [f"Answer s{i}." for i in range(5)]
    assert seen == [(2, 5), (3, 5), (4, 5), (5, 5)]


def test_a_gate_run_over_some_suites_says_which_it_left_out(project, capsys):
    gate("const", suites=("rows",))  # `pytest suites/ --suite rows`: train not scored
    assert prh("predict", "--candidate", "const", "--input", "test.csv", "--out", "s.csv") == 0
    assert "note: that gate run did not score suite(s) train of suites.toml" in capsys.readouterr().out
    gate("knn", suites=("rows",))  # knn learned from train: it is never scored there
    assert prh("predict", "--candidate", "knn", "--input", "test.csv", "--out", "s.csv") == 0
    assert "note:" not in capsys.readouterr().out
