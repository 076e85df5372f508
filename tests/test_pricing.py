"""harness.pricing: the one price type, price table and usage accounting shared by generation and
optimization; and harness._lazy, the one lazy re-export the packages use."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness._lazy import lazy_exports
from harness.errors import ConfigError
from harness.pricing import Price, PriceTable, Usage, load_prices, parse_price

counts = st.integers(0, 10_000)
costs = st.one_of(st.none(), st.floats(0, 10, allow_nan=False))


@given(st.lists(st.tuples(st.one_of(st.none(), counts), st.one_of(st.none(), counts), costs), max_size=8))
def test_usage_adds_requests_and_an_unknown_cost_stays_unknown(requests):
    total = Usage()
    for prompt, completion, cost in requests:
        total = total + Usage.of_request(prompt, completion, cost)
    assert total.requests == len(requests)
    assert total.prompt_tokens == sum(p or 0 for p, _, _ in requests)
    assert total.tokens == total.prompt_tokens + sum(c or 0 for _, c, _ in requests)
    assert total.unreported == sum(p is None and c is None for p, c, _ in requests)
    known = [c for _, _, c in requests]
    if None in known:
        assert total.cost_usd is None
    else:
        assert total.cost_usd == pytest.approx(sum(known))
    assert total.to_dict()["unreported_usage_requests"] == total.unreported


def test_price_table_matches_by_prefix_and_never_prices_the_unknown(tmp_path):
    table = PriceTable({"gpt-4o": Price(2.5, 10.0), "gpt-4o-mini": Price(0.15, 0.6)}, "test")
    assert table.price_for("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)  # the longest listed prefix
    assert table.price_for("gpt-4o-2024-08-06") == Price(2.5, 10.0)
    assert table.price_for("gpt-4") is None and table.cost("gpt-4", 10, 10) is None
    assert table.cost("gpt-4o", None, 5) is None  # no usage reported: unknown, not zero
    assert table.cost("gpt-4o", 1_000_000, 100_000) == pytest.approx(3.5)
    path = tmp_path / "prices.toml"
    path.write_text('[models."m"]\ninput_per_million = 1\noutput_per_million = -2\n')
    with pytest.raises(ConfigError, match="output_per_million"):
        load_prices(path)
    assert parse_price("gpt-4o=2.5,10") == ("gpt-4o", Price(2.5, 10.0))
    with pytest.raises(ConfigError, match="MODEL=IN,OUT"):
        parse_price("gpt-4o=2.5")


def test_lazy_exports_import_on_first_use_and_refuse_a_name_exported_twice():
    with pytest.raises(ValueError, match="'x' is exported from both"):
        lazy_exports("harness", {".a": ("x",), ".b": ("x",)})
    code = ("import sys, harness.optimize as o; before = 'harness.optimize.oracle' in sys.modules; "
            "f = o.oracle_bound; print(before, 'harness.optimize.oracle' in sys.modules, "
            "'oracle_bound' in vars(o), 'oracle_bound' in dir(o))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]
    import harness.optimize

    with pytest.raises(AttributeError, match="harness.optimize.*no_such_name"):
        harness.optimize.no_such_name  # noqa: B018
