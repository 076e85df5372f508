"""The append-only output: one line per record, torn tails repaired, keys unique, one writer at a time."""

from __future__ import annotations

import json

import pytest

from harness.errors import DataError, HarnessError
from harness.generate.jsonl import AppendOnlyJsonl, existing_keys, read_jsonl


def test_records_are_appended_and_a_reopened_file_knows_its_keys(tmp_path):
    path = tmp_path / "sub" / "rows.jsonl"
    with AppendOnlyJsonl(path) as rows:
        assert rows.append({"id": "a", "text": "é"}) and rows.append({"id": "b"})
        assert not rows.append({"id": "a", "text": "again"})  # never a duplicate
    with AppendOnlyJsonl(path) as rows:
        assert rows.keys == {"a", "b"} and rows.count == 2 and "a" in rows
        rows.append({"id": "c"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]
    assert path.read_text(encoding="utf-8").count("\n") == 3 and "é" in path.read_text(encoding="utf-8")
    assert existing_keys(path) == {"a", "b", "c"} and existing_keys(tmp_path / "none.jsonl") == set()


def test_a_torn_last_line_is_moved_aside_and_a_complete_one_kept(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "text": "cut sho')
    assert [r["id"] for r in read_jsonl(path)] == ["a"]  # readers ignore the torn tail
    with AppendOnlyJsonl(path) as rows:
        assert rows.keys == {"a"}
        rows.append({"id": "b"})
    assert [r["id"] for r in read_jsonl(path, allow_torn_tail=False)] == ["a", "b"]
    assert (tmp_path / "rows.jsonl.torn").read_text() == '{"id": "b", "text": "cut sho\n'
    path.write_text('{"id": "a"}\n{"id": "b"}')  # only the newline is missing (a hand edit)
    with AppendOnlyJsonl(path) as rows:
        assert rows.keys == {"a", "b"}
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "a"}\nnot json\n{"id": "b"}\n', r"rows.jsonl, line 2: not a JSON line"),
    ('{"id": "a"}\n[1]\n', r"line 2: expected a JSON object"),
    ('{"id": "a"}\n{"id": "a"}\n', r"line 2, column 'id': duplicate id 'a'"),
    ('{"text": "x"}\n', r"line 1, column 'id': record has no string 'id'"),
])
def test_corrupt_files_are_errors_naming_the_line(tmp_path, content, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        AppendOnlyJsonl(path).open()


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    with AppendOnlyJsonl(path):
        with pytest.raises(HarnessError, match="being written by another run"):
            AppendOnlyJsonl(path).open()
    with AppendOnlyJsonl(path) as rows:  # released on close
        rows.append({"id": "x"})


def test_a_log_file_may_repeat_keys(tmp_path):
    path = tmp_path / "failures.jsonl"
    with AppendOnlyJsonl(path, unique=False) as log:
        log.append({"id": "a", "attempt": 1})
        log.append({"id": "a", "attempt": 2})
    with AppendOnlyJsonl(path, unique=False) as log:
        assert log.count == 2
    assert [json.loads(line)["attempt"] for line in path.read_text().splitlines()] == [1, 2]
