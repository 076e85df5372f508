"""The table reader's own parsers: finding which CSV field broke the csv module's limit."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from harness.tables import _field_over_limit

cell = st.text(alphabet=st.sampled_from(list('ab ,"\r\n\té')), max_size=12)


@given(before=st.lists(st.text(max_size=2), max_size=3), fields=st.lists(cell, min_size=1, max_size=6),
       limit=st.integers(min_value=0, max_value=8), delimiter=st.sampled_from([",", "\t"]))
def test_the_oversized_field_is_the_first_one_over_the_limit(before, fields, limit, delimiter):
    """For any row the csv module writes, the index found is the first field longer than `limit`, counted
    as the csv module counts it (after unquoting), whatever quotes and line breaks the fields hold."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(before)  # an earlier row: the scan starts at the offset of the row that failed
    offset = buffer.tell()
    writer.writerow(fields)
    writer.writerow(["after", "x" * 20])
    expected = next((i for i, value in enumerate(fields) if len(value) > limit), None)
    assert _field_over_limit(buffer.getvalue(), offset, delimiter, limit) == expected
