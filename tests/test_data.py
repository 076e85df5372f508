"""Suites and table loading: formats, column mapping, and errors that name file, row and column."""

from __future__ import annotations

import csv
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data import SuiteSpec, load_suite, load_suite_specs, select_specs
from harness.errors import ConfigError, DataError
from harness.tables import is_missing

KAGGLE = ["id", "original_text", "rewrite_prompt", "rewritten_text"]


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_kaggle_csv_loads_in_order(tmp_path):
    path = write_csv(tmp_path / "s.csv", KAGGLE, [["a", "orig 1", "p1", "rew 1"], ["b", "orig, 2", 'say "hi"', "rew\n2"]])
    suite = load_suite(SuiteSpec("s", path))
    assert suite.ids == ["a", "b"]
    assert suite.prompts == ["p1", 'say "hi"']
    assert suite.samples[1].rewritten_text == "rew\n2"
    assert suite.groups is None


def test_column_mapping_and_numbered_rows(tmp_path):
    path = write_csv(tmp_path / "g.csv", ["Original", "Prompt", "Rewritten", "fam"],
                     [["o1", "p1", "r1", "tone"], ["o2", "p2", "r2", "style"]])
    spec = SuiteSpec("g", path, columns={"id": "", "original_text": "Original", "rewrite_prompt": "Prompt",
                                         "rewritten_text": "Rewritten", "group": "fam"})
    suite = load_suite(spec)
    assert suite.ids == ["1", "2"]
    assert suite.groups == ["tone", "style"]


def test_jsonl_and_parquet_give_the_same_suite(tmp_path):
    rows = [{"id": 7, "original_text": "o", "rewrite_prompt": "p", "rewritten_text": "r", "group": "g"}]
    from_jsonl = load_suite(SuiteSpec("x", write_jsonl(tmp_path / "x.jsonl", rows)))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    from_parquet = load_suite(SuiteSpec("x", tmp_path / "x.parquet"))
    assert from_jsonl.samples == from_parquet.samples
    assert from_jsonl.fingerprint == from_parquet.fingerprint
    assert from_jsonl.samples[0].id == "7" and from_jsonl.groups == ["g"]


def test_fingerprint_changes_with_any_cell(tmp_path):
    a = load_suite(SuiteSpec("s", write_csv(tmp_path / "a.csv", KAGGLE, [["1", "o", "p", "r"]])))
    b = load_suite(SuiteSpec("s", write_csv(tmp_path / "b.csv", KAGGLE, [["1", "o", "p", "r!"]])))
    assert a.fingerprint != b.fingerprint


# -- round trips (property) ---------------------------------------------------------------------------
field_text = st.text(min_size=1, max_size=60).filter(lambda s: not is_missing(s))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.tuples(field_text, field_text, field_text), min_size=1, max_size=5))
def test_arbitrary_text_survives_every_format(tmp_path_factory, texts):
    directory = tmp_path_factory.mktemp("roundtrip")
    rows = [{"id": f"r{i}", "original_text": o, "rewrite_prompt": p, "rewritten_text": r}
            for i, (o, p, r) in enumerate(texts)]
    paths = [write_csv(directory / "s.csv", KAGGLE, [[r[k] for k in KAGGLE] for r in rows]),
             write_jsonl(directory / "s.jsonl", rows)]
    pq.write_table(pa.Table.from_pylist(rows), directory / "s.parquet")
    paths.append(directory / "s.parquet")
    for path in paths:
        suite = load_suite(SuiteSpec("s", path))
        assert [(s.original_text, s.rewrite_prompt, s.rewritten_text) for s in suite.samples] == list(texts), path


# -- bad input -----------------------------------------------------------------------------------------
def test_missing_column_names_file_column_and_columns_found(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["id", "original_text", "prompt", "rewritten_text"], [["1", "o", "p", "r"]])
    with pytest.raises(DataError) as error:
        load_suite(SuiteSpec("bad", path))
    message = str(error.value)
    assert "bad.csv" in message and "'rewrite_prompt'" in message and "prompt" in message.split("columns found:")[1]


def test_every_missing_column_is_named_at_once(tmp_path):
    path = write_csv(tmp_path / "few.csv", ["id", "prompt"], [["1", "x"]])
    with pytest.raises(DataError) as error:
        load_suite(SuiteSpec("few", path))
    message = str(error.value)
    for column in ("original_text", "rewritten_text", "rewrite_prompt"):
        assert f"'{column}' for field {column}" in message
    assert "columns found: id, prompt" in message and 'map original_text and rewritten_text to ""' in message


@pytest.mark.parametrize("value", ["", "   ", "NaN", "nan"])
def test_empty_or_nan_prompt_names_row_and_column(tmp_path, value):
    path = write_csv(tmp_path / "e.csv", KAGGLE, [["1", "o", "p", "r"], ["2", "o", value, "r"]])
    with pytest.raises(DataError) as error:
        load_suite(SuiteSpec("e", path))
    assert error.value.row == 2 and error.value.column == "rewrite_prompt" and error.value.line == 3
    assert "e.csv" in str(error.value)


def test_null_in_parquet_and_jsonl_is_reported(tmp_path):
    rows = [{"id": "1", "original_text": "o", "rewrite_prompt": "p", "rewritten_text": "r"},
            {"id": "2", "original_text": None, "rewrite_prompt": "p", "rewritten_text": "r"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "n.parquet")
    for path in (tmp_path / "n.parquet", write_jsonl(tmp_path / "n.jsonl", rows)):
        with pytest.raises(DataError) as error:
            load_suite(SuiteSpec("n", path))
        assert error.value.row == 2 and error.value.column == "original_text"


def test_duplicate_ids(tmp_path):
    path = write_csv(tmp_path / "d.csv", KAGGLE, [["x", "o", "p", "r"], ["y", "o", "p", "r"], ["x", "o", "p", "r"]])
    with pytest.raises(DataError, match="duplicate id 'x' \\(first seen in row 1\\)") as error:
        load_suite(SuiteSpec("d", path))
    assert error.value.row == 3


def test_undecodable_bytes_name_row_and_column(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"id,original_text,rewrite_prompt,rewritten_text\n1,ok,p,r\n2,ok,bad \xff\xfe byte,r\n")
    with pytest.raises(DataError, match="not valid UTF-8") as error:
        load_suite(SuiteSpec("u", path))
    assert (error.value.row, error.value.column, error.value.line) == (2, "rewrite_prompt", 3)


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "1", "original_text": "o", "rewrite_prompt": "p", "rewritten_text": "r"}\n{"id": \n')
    with pytest.raises(DataError, match="invalid JSON") as error:
        load_suite(SuiteSpec("m", path))
    assert (error.value.row, error.value.line) == (2, 2)


def test_ragged_csv_row(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,original_text,rewrite_prompt,rewritten_text\n1,o,p\n")
    with pytest.raises(DataError, match="expected 4 fields"):
        load_suite(SuiteSpec("r", path))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_suite(SuiteSpec("x", tmp_path / "nope.csv"))
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown file format"):
        load_suite(SuiteSpec("x", tmp_path / "x.xlsx"))


def test_suites_file_resolves_relative_paths_and_rejects_typos(tmp_path):
    write_csv(tmp_path / "a.csv", KAGGLE, [["1", "o", "p", "r"]])
    (tmp_path / "suites.toml").write_text('[suites.a]\npath = "a.csv"\n')
    specs = load_suite_specs(tmp_path / "suites.toml")
    assert specs["a"].path == tmp_path / "a.csv" and len(load_suite(specs["a"])) == 1
    with pytest.raises(ConfigError, match="unknown suite"):
        select_specs(specs, ["b"])
    (tmp_path / "typo.toml").write_text('[suites.a]\npaht = "a.csv"\n')
    with pytest.raises(ConfigError, match="needs a 'path'"):
        load_suite_specs(tmp_path / "typo.toml")


def test_shipped_fixture_suites_meet_their_promises():
    """The three shipped suites: sizes, formats and (for synthetic-hard) groups and short texts."""
    from conftest import REPO_ROOT

    specs = load_suite_specs(REPO_ROOT / "suites.toml")
    suites = {name: load_suite(spec) for name, spec in specs.items()}
    assert len(suites["public"]) >= 120 and specs["public"].path.suffix == ".csv"
    assert len(suites["leaked"]) >= 50
    hard = suites["synthetic-hard"]
    assert len(hard) >= 120 and specs["synthetic-hard"].path.suffix == ".jsonl"
    assert hard.groups is not None and len(set(hard.groups)) >= 8
    assert max(len(s.original_text.split()) for s in hard.samples) < 200
    public = suites["public"].samples
    assert sum(s.rewritten_text.startswith("Sure") for s in public) >= len(public) // 5
    assert sum("**" in s.rewritten_text for s in public) >= 10
    assert not any(s.rewritten_text.startswith("Sure") or "**" in s.rewritten_text for s in suites["leaked"].samples)


# -- values typed as something other than text (issue 9) ---------------------------------------------------
def _row(**overrides):
    return {"id": "1", "original_text": "o", "rewrite_prompt": "p", "rewritten_text": "r", **overrides}


@pytest.mark.parametrize(("value", "found"), [
    (0, "a JSON number"), (1.5, "a JSON number"), (True, "a JSON boolean"),
    ({"a": 1}, "a JSON object"), ([1, 2], "a JSON array"),
])
@pytest.mark.parametrize("column", ["rewrite_prompt", "original_text", "rewritten_text"])
def test_jsonl_non_text_in_a_text_column_is_refused(tmp_path, value, found, column):
    path = write_jsonl(tmp_path / "t.jsonl", [_row(), _row(id="2", **{column: value})])
    with pytest.raises(DataError, match=f"expected text, found {found}") as error:
        load_suite(SuiteSpec("t", path))
    assert (error.value.row, error.value.line, error.value.column) == (2, 2, column)
    assert "t.jsonl" in str(error.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                       st.lists(st.text(max_size=3), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)))
def test_no_json_non_string_becomes_a_prompt(tmp_path_factory, value):
    path = write_jsonl(tmp_path_factory.mktemp("types") / "t.jsonl", [_row(rewrite_prompt=value)])
    with pytest.raises(DataError, match="expected text, found a JSON") as error:
        load_suite(SuiteSpec("t", path))
    assert error.value.column == "rewrite_prompt"


def test_parquet_non_text_columns_are_refused_with_their_arrow_type(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b"], "original_text": ["o", "o"], "rewritten_text": ["r", "r"],
                             "rewrite_prompt": pa.array([0, 1], pa.int64())}), tmp_path / "i.parquet")
    with pytest.raises(DataError, match="expected text, found int64") as error:
        load_suite(SuiteSpec("i", tmp_path / "i.parquet"))
    assert (error.value.row, error.value.column) == (1, "rewrite_prompt")
    pq.write_table(pa.table({"id": ["a"], "original_text": [["x", "y"]], "rewritten_text": ["r"],
                             "rewrite_prompt": ["p"]}), tmp_path / "l.parquet")
    with pytest.raises(DataError, match=r"expected text, found list<") as error:
        load_suite(SuiteSpec("l", tmp_path / "l.parquet"))
    assert error.value.column == "original_text"


def test_numeric_ids_and_groups_still_load_and_nulls_stay_missing(tmp_path):
    rows = [_row(id=1, group=3), _row(id=2, group=None)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "n.parquet")
    for path in (write_jsonl(tmp_path / "n.jsonl", rows), tmp_path / "n.parquet"):
        suite = load_suite(SuiteSpec("n", path))
        assert suite.ids == ["1", "2"] and suite.groups == ["3", "__row_1"]
    # a nested id has no text form worth matching predictions against
    with pytest.raises(DataError, match="expected text or a number, found a JSON object") as error:
        load_suite(SuiteSpec("n", write_jsonl(tmp_path / "o.jsonl", [_row(id={"k": 1})])))
    assert error.value.column == "id"
    # null is still "missing", not a wrong type
    with pytest.raises(DataError, match="rewrite_prompt is missing"):
        load_suite(SuiteSpec("n", write_jsonl(tmp_path / "m.jsonl", [_row(rewrite_prompt=None)])))


# -- long CSV fields (issue 9) --------------------------------------------------------------------------------
def test_csv_fields_longer_than_the_csv_modules_default_limit_load(tmp_path):
    long_text = "word " * 60_000  # 300,000 characters, over csv's default 131,072
    path = write_csv(tmp_path / "long.csv", KAGGLE, [["1", long_text, "p", "r"], ["2", "o", "p", long_text]])
    suite = load_suite(SuiteSpec("long", path))
    assert suite.samples[0].original_text == long_text and suite.samples[1].rewritten_text == long_text


def test_a_field_over_the_remaining_limit_names_its_column(tmp_path, monkeypatch):
    import harness.tables as tables

    path = write_csv(tmp_path / "big.csv", KAGGLE, [["1", "o", "p", "r"], ["2", "o", "x" * 5_000, "r"]])
    monkeypatch.setattr(tables, "CSV_FIELD_LIMIT", 1_000, raising=False)
    previous = csv.field_size_limit(1_000)
    try:
        with pytest.raises(DataError, match="over 1,000 characters") as error:
            load_suite(SuiteSpec("big", path))
    finally:
        csv.field_size_limit(previous)
    assert (error.value.row, error.value.line, error.value.column) == (2, 3, "rewrite_prompt")


def test_the_csv_limit_is_lifted_where_sys_maxsize_overflows_a_c_long(tmp_path, monkeypatch):
    """On Windows a C long is 32 bits: csv.field_size_limit(sys.maxsize) raises OverflowError."""
    real = csv.field_size_limit
    previous = real()

    def field_size_limit(*new):
        if new and new[0] > 2**31 - 1:
            raise OverflowError("Python int too large to convert to C long")
        return real(*new)

    monkeypatch.setattr(csv, "field_size_limit", field_size_limit)
    real(131_072)
    try:
        path = write_csv(tmp_path / "w.csv", KAGGLE, [["1", "y" * 200_000, "p", "r"]])
        assert len(load_suite(SuiteSpec("w", path)).samples[0].original_text) == 200_000
        assert real() >= 2**30
    finally:
        real(previous)


# -- JSON syntax errors (issue 9: "at at") ---------------------------------------------------------------------
@pytest.mark.parametrize("line", ['{"id": "1", "rewrite_prompt": "unterminated', '{"id": "1\t"}'])
def test_json_syntax_errors_say_where_once(tmp_path, line):
    path = tmp_path / "j.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match="invalid JSON") as error:
        load_suite(SuiteSpec("j", path))
    message = str(error.value)
    assert " at at " not in message and "column" in message.split("invalid JSON")[1]


# -- suites.toml value types (issue 9) -------------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "key", "expected"), [
    ("path = 42", "path", "a string"),
    ('path = ""', "path", "a non-empty string"),
    ('path = "a.csv"\ndescription = 3', "description", "a string"),
    ('path = "a.csv"\nformat = true', "format", "one of csv, jsonl, parquet"),
    ('path = "a.csv"\nformat = "xlsx"', "format", "one of csv, jsonl, parquet"),
    ('path = "a.csv"\ncolumns = "rewrite_prompt"', "columns", "a table"),
    ('path = "a.csv"\ncolumns = {rewrite_prompt = 1}', "columns.rewrite_prompt", "a string"),
    ('path = "a.csv"\ncolumns = {prompt = "p"}', "columns.prompt", "one of id, original_text"),
    ('path = "a.csv"\ncolumns = {rewrite_prompt = ""}', "columns.rewrite_prompt", "a column name"),
])
def test_wrong_typed_suite_keys_name_file_suite_and_key(tmp_path, entry, key, expected):
    (tmp_path / "suites.toml").write_text(f"[suites.good]\npath = \"a.csv\"\n[suites.broken]\n{entry}\n")
    with pytest.raises(ConfigError) as error:
        load_suite_specs(tmp_path / "suites.toml")
    message = str(error.value)
    assert "suites.toml" in message and "suite 'broken'" in message and f"'{key}'" in message
    assert expected in message


@pytest.mark.parametrize(("text", "expected"), [
    ('[suites]\npublic = "x"\n', "suite 'public' must be a table"),
    ("[suites]\npublic = 42\n", "suite 'public' must be a table"),
    ("suites = 3\n", "[suites.NAME]"),
])
def test_suites_that_are_not_tables_are_named(tmp_path, text, expected):
    (tmp_path / "suites.toml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expected)) as error:
        load_suite_specs(tmp_path / "suites.toml")
    assert "suites.toml" in str(error.value)


# -- one outcome per suite (issue 9: `prh suites` stopped at the first broken one) ---------------------------
def test_check_suites_reports_every_suite_by_name(tmp_path):
    from harness.data import check_suites

    write_csv(tmp_path / "good.csv", KAGGLE, [["1", "o", "p", "r"]])
    write_csv(tmp_path / "empty_prompt.csv", KAGGLE, [["1", "o", "", "r"]])
    (tmp_path / "suites.toml").write_text(
        '[suites.good]\npath = "good.csv"\n'
        '[suites.bad-row]\npath = "empty_prompt.csv"\n'
        '[suites.no-file]\npath = "nope.csv"\n'
        '[suites.bad-key]\npath = 42\n'
        '[suites.also-good]\npath = "good.csv"\ndescription = "same rows"\n')
    outcomes = check_suites(tmp_path / "suites.toml")
    assert [o.name for o in outcomes] == ["good", "bad-row", "no-file", "bad-key", "also-good"]
    by_name = {o.name: o for o in outcomes}
    for name in ("good", "also-good"):
        assert by_name[name].error is None and len(by_name[name].suite) == 1
    for name in ("bad-row", "no-file", "bad-key"):
        assert by_name[name].suite is None and f"suite '{name}'" in by_name[name].error
    assert "row 1" in by_name["bad-row"].error and "rewrite_prompt" in by_name["bad-row"].error
    assert "file not found" in by_name["no-file"].error and "'path'" in by_name["bad-key"].error
    assert by_name["also-good"].suite.description == "same rows"


def test_load_suite_errors_name_the_suite(tmp_path):
    path = write_csv(tmp_path / "e.csv", KAGGLE, [["1", "o", "", "r"]])
    with pytest.raises(DataError, match="suite 'holdout'") as error:
        load_suite(SuiteSpec("holdout", path))
    assert (error.value.row, error.value.column) == (1, "rewrite_prompt") and "e.csv" in str(error.value)
