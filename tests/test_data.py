"""Suites and table loading: formats, column mapping, and errors that name file, row and column."""

from __future__ import annotations

import csv
import json

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
