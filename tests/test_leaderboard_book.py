"""The probe book: the shipped public facts, parsing errors that name file/row/column, atomic appends,
and `prh probes add|list`."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from optimize_helpers import family_suite

from harness.candidates import TemplateCandidate
from harness.candidates.constant import ConstantCandidate
from harness.cli import main
from harness.errors import ConfigError, DataError
from harness.leaderboard.book import (
    Probe,
    append_probe,
    load_book,
    parse_candidate_spec,
)
from harness.options import DEFAULT_BOOK

SHIPPED = REPO_ROOT / DEFAULT_BOOK


def test_the_shipped_book_cites_a_source_for_every_fact():
    book = load_book(SHIPPED)
    assert len(book) >= 25 and all(p.source for p in book)
    by_name = book.by_name()
    # one probe per submission, every source kept: 0.60 and 0.63 were each reported by several sources
    assert by_name["improve-text"].public == 0.60 and by_name["improve-text"].source.count("|") >= 2
    assert by_name["mean-prompt-0.63"].source.count("|") >= 2
    texts = [p.submission for p in book if p.kind == "constant" and p.reproducible]
    assert len(texts) == len(set(texts))
    # the "▁" strings are kept as published, with the caveat
    spm = [p for p in book if "\u2581" in p.submission]
    assert len(spm) == 3 and all("probably had spaces" in p.note for p in spm)
    # descriptions of submissions are not reproducible, and say why
    described = [p for p in book if not p.reproducible]
    assert {p.name for p in described} >= {"ironbar-mixtral-plus-original", "7th-over-128-tokens"}
    assert all(p.exclude and p.unusable_reason().startswith("not reproducible") for p in described)
    assert by_name["original-text"].kind == "template" and by_name["original-text"].public == 0.38
    assert by_name["11th-lucrarea-private"].unusable_reason() == "no public score (only private)"
    assert by_name["11th-lucrarea-private"].unusable_reason("private") is None
    assert sum(p.unusable_reason() is None for p in book) >= 15


def test_probes_answer_what_was_submitted():
    suite = family_suite(repeats=1)
    original = Probe("o", "{original_text}", 0.38, kind="template").candidate()
    assert isinstance(original, TemplateCandidate)
    assert original.predict(suite.samples) == [s.original_text for s in suite.samples]
    literal = Probe("braces", "Use {original_text} literally.", 0.5, kind="constant").candidate()
    assert isinstance(literal, ConstantCandidate) and literal.prompt == "Use {original_text} literally."
    built = []
    spec = Probe("c", "file:sub.csv", 0.6, kind="candidate").candidate(lambda s: built.append(s) or "built")
    assert spec == "built" and built == ["file:sub.csv"]
    with pytest.raises(ConfigError, match="needs a workspace"):
        Probe("c", "file:sub.csv", 0.6, kind="candidate").candidate()


def test_the_older_two_column_format_still_reads(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("name,prompt,leaderboard_score,note\na,Improve it.,0.6,x\nb,{original_text},0.38,\n"
                    "c,Use {{braces}}.,0.5,\n")
    book = load_book(path)
    assert [(p.kind, p.public) for p in book] == [("constant", 0.6), ("template", 0.38), ("constant", 0.5)]
    assert book.probes[2].submission == "Use {braces}."


@pytest.mark.parametrize("content, message", [
    ("prompt,score\nx,0.5\n", "unknown column(s) score"),
    ("name,submission\na,x\n", "missing column(s)"),
    ("submission,public\nx,abc\n", "row 1 (line 2), column 'public': public must be a number in [0, 1]"),
    ("prompt,leaderboard_score\nx,0.5\ny,1.5\n", "row 2 (line 3), column 'leaderboard_score'"),
    ("submission,public,private\nx,,\n", "row 1 (line 2), column 'public': no leaderboard score"),
    ("submission,kind,public\n{foo},template,0.5\n", "column 'submission': probe template: unknown placeholder"),
    ("submission,kind,public\nx,template,0.5\n", "uses neither {original_text}"),
    ("submission,kind,public\nx,mean,0.5\n", "row 1 (line 2), column 'kind'"),
    ("submission,public\n,0.5\n", "the submission is empty"),
    ("name,submission,public\na,x,0.5\na,y,0.6\n", "row 2 (line 3), column 'name': duplicate probe name 'a'"),
    ("name,submission,public\na,x,0.5\nb,x,0.6\n", "row 2 (line 3), column 'submission': the same constant"),
    ("submission,public,reproducible\nx,0.5,no\n", "column 'exclude': a probe marked not reproducible"),
    ("submission,public,reproducible\nx,0.5,maybe\n", "column 'reproducible'"),
    ("submission,public,date\nx,0.5,12/04/2024\n", "column 'date': date must be YYYY-MM-DD"),
    ("submission,public\n", "no rows"),
])
def test_bad_books_name_file_row_and_column(tmp_path, content, message):
    path = tmp_path / "book.csv"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        load_book(path)
    assert message in str(error.value) and str(path) in str(error.value)


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda t: t.strip() and t.strip() == t and t.lower() not in ("nan", "null", "none"))
_SCORE = st.one_of(st.none(), st.floats(0, 1).map(lambda v: round(v, 4)))


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.lists(st.tuples(_TEXT, _SCORE, _SCORE, _TEXT), min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_appended_probes_read_back_exactly(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("book") / "book.csv"
    written = []
    for i, (text, public, private, note) in enumerate(rows):
        if public is None and private is None:
            public = 0.5
        probe = Probe(name=f"p{i}", submission=text.replace("{", "(").replace("}", ")"), public=public,
                      private=private, note=note, source="test")
        append_probe(path, probe)
        written.append(probe)
    assert list(load_book(path)) == written


def test_append_refuses_duplicates_and_leaves_the_book_untouched(tmp_path):
    path = tmp_path / "book.csv"
    append_probe(path, Probe("a", "Improve it.", 0.6))
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already has a probe named 'a'"):
        append_probe(path, Probe("a", "Other.", 0.6))
    with pytest.raises(ConfigError, match="already has this constant submission as probe 'a'"):
        append_probe(path, Probe("b", "Improve it.", 0.61))
    assert path.read_bytes() == before and not list(tmp_path.glob(".*"))
    with pytest.raises(ConfigError, match="CSV"):
        append_probe(tmp_path / "book.jsonl", Probe("a", "x", 0.5))


def test_candidate_specs():
    assert parse_candidate_spec("mean:Improve the text.") == ("constant", "Improve the text.")
    assert parse_candidate_spec("template:Rewrite: {original_text}") == ("template", "Rewrite: {original_text}")
    assert parse_candidate_spec("file:sub.csv") == ("candidate", "file:sub.csv")
    assert parse_candidate_spec("mean-prompt") == ("candidate", "mean-prompt")
    with pytest.raises(ConfigError):
        parse_candidate_spec("template:no placeholder")


def test_probes_add_and_list_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    book = tmp_path / "mine.csv"
    code = main(["probes", "add", "--candidate", "mean:My mean prompt.", "--public", "0.62", "--date", "2024-04-12",
                 "--note", "LoRA v3", "--source", "my submission", "--book", str(book)])
    out = capsys.readouterr().out
    assert code == 0 and "added probe 'My mean prompt.' (constant: My mean prompt.; public 0.62)" in out
    assert "(now 1 probes)" in out
    code = main(["probes", "add", "--candidate", "mean-prompt", "--public", "0.63", "--name", "registry",
                 "--book", str(book), "--store", str(tmp_path / "s.sqlite")])
    assert code == 0
    row = list(csv.DictReader(book.open()))[1]
    assert row["kind"] == "candidate" and row["submission"] == "mean-prompt"
    assert main(["probes", "add", "--candidate", "nope-typo", "--public", "0.6", "--book", str(book),
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "unknown candidate 'nope-typo'" in capsys.readouterr().err
    assert main(["probes", "add", "--candidate", "mean:x", "--book", str(book)]) == 2
    assert "--public and/or --private" in capsys.readouterr().err
    assert main(["probes", "list", "--book", str(book), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed] == ["My mean prompt.", "registry"] and listed[0]["date"] == "2024-04-12"
    assert main(["probes", "list"]) == 0
    assert "probes in fixtures/probe_book.csv" in capsys.readouterr().out
