"""The prompt catalog: loading (TOML, YAML, CSV) with precise errors, and the seeded expansion."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError, DataError
from harness.generate.catalog import (
    catalog_from_mapping,
    expand_catalog,
    fill,
    join_clauses,
    load_catalog,
)

SHIPPED = REPO_ROOT / "fixtures" / "prompt_catalog.toml"
SMALL = {
    "options": {"tone": ["formal", "playful", "grim"], "creature": ["dragons", "owls"]},
    "combine": {"leads": ["Rewrite the text", "Rewrite this"], "fraction": 0.5, "max_prompts": 3},
    "synth": {"text_kinds": ["an email", "a recipe"], "topics": ["a bakery", "a storm"]},
    "prompts": [
        {"id": "tone", "family": "tone", "text": "Make it {tone}.", "clause": "in a {tone} tone"},
        {"id": "dragons", "family": "add", "text": "Add {creature} to it.", "clause": "adding {creature}"},
        {"id": "haiku", "family": "poetry", "text": "Rewrite it as a haiku.", "clause": "as a haiku", "form": True},
        {"id": "email", "family": "format", "text": "Turn it into an {email|memo}.", "clause": "as an {email|memo}",
         "form": True, "text_kinds": ["a note"]},
        {"id": "improve", "family": "edit", "text": "Improve the text."},
    ],
}


def test_the_shipped_catalog_has_at_least_150_diverse_prompts_that_all_expand():
    catalog = load_catalog(SHIPPED)
    assert len(catalog.prompts) >= 150 and len(catalog.families) >= 15
    assert len({p.text for p in catalog.prompts}) == len(catalog.prompts)
    items = expand_catalog(catalog, 400, seed=7)
    assert not any(re.search(r"[{}]", item.instruction) for item in items)
    combined = [item for item in items if item.combined]
    assert 0.2 < len(combined) / len(items) < 0.5
    assert {len(item.template_ids) for item in combined} == {2, 3}
    # the example of the issue: "Rewrite the text adding dragons and with a more humorous tone" has this shape
    assert any(" and " in item.instruction for item in combined)


def test_combinations_join_distinct_families_with_at_most_one_form_prompt_first():
    catalog = catalog_from_mapping(SMALL)
    forms = {p.id for p in catalog.prompts if p.form}
    for item in expand_catalog(catalog, 300, seed=1):
        assert len(set(item.families)) == len(item.families)
        assert "improve" not in item.template_ids or not item.combined  # no clause: never combined
        in_forms = [i for i, t in enumerate(item.template_ids) if t in forms]
        assert len(in_forms) <= 1 and (not in_forms or in_forms == [0])
        if item.combined:
            assert item.instruction.split(" ")[0] == "Rewrite" and item.instruction.endswith(".")
        if "email" in item.template_ids:
            assert item.text_kind == "a note"  # the prompt's own kinds win over the catalog's


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(0, 40), extra=st.integers(0, 20),
       fraction=st.floats(0.0, 1.0))
def test_expansion_is_deterministic_prefix_stable_and_fills_every_placeholder(seed, n, extra, fraction):
    catalog = catalog_from_mapping(SMALL)
    items = expand_catalog(catalog, n + extra, seed, combine_fraction=fraction)
    assert items == expand_catalog(catalog, n + extra, seed, combine_fraction=fraction)
    assert items[:n] == expand_catalog(catalog, n, seed, combine_fraction=fraction)  # growing N keeps paid items
    assert items[n:] == expand_catalog(catalog, extra, seed, combine_fraction=fraction, start=n)
    for index, item in enumerate(items):
        assert item.index == index and item.seed == seed
        assert "{" not in item.instruction and "}" not in item.instruction
        assert 1 <= len(item.template_ids) <= 3 and item.group == "+".join(sorted(item.families))
        for choices in item.choices:
            for name, value in choices.items():
                allowed = (name[1:-1].split("|") if name.startswith("{") else SMALL["options"][name])
                assert value in allowed
        if fraction == 0.0:
            assert not item.combined
        assert item.text_kind in ("an email", "a recipe", "a note") and item.topic in ("a bakery", "a storm")


@given(template=st.text(alphabet=st.sampled_from(list("ab {}|x_")), max_size=30), seed=st.integers(0, 1000))
def test_fill_never_leaves_a_placeholder_and_is_deterministic(template, seed):
    import random

    from harness.generate.catalog import check_template

    options = {"x": ["ONE", "TWO"], "a": ["A1"], "b": ["B1"], "ab": ["AB"], "x_": ["X_"]}
    try:
        check_template(template, options, "t")
    except ConfigError:
        return  # rejected templates are the loader's business (tested below)
    text, chosen = fill(template, options, random.Random(seed))
    assert (text, chosen) == fill(template, options, random.Random(seed))
    literal = template.replace("{{", "").replace("}}", "")
    if not re.search(r"\{[^{}]*\}", literal):
        assert text == template.replace("{{", "{").replace("}}", "}")


def test_a_repeated_placeholder_gets_one_value():
    import random

    text, chosen = fill("{tone} and {tone} again, {{literal}}", {"tone": ["a", "b", "c"]}, random.Random(3))
    value = chosen["tone"]
    assert text == f"{value} and {value} again, {{literal}}"


def test_join_clauses_reads_like_one_instruction():
    assert join_clauses("Rewrite the text", ["adding dragons", "with a more humorous tone"]) == \
        "Rewrite the text adding dragons and with a more humorous tone."
    assert join_clauses("rewrite this", ["as a haiku", "adding owls", "sadly"]) == "Rewrite this as a haiku, adding owls and sadly."


@pytest.mark.parametrize(("prompt", "message"), [
    ({"family": "tone", "text": "Make it {mood}."}, r"prompt 1 \(id 'p'\), field 'text': unknown placeholder \{mood\}"),
    ({"family": "tone", "text": "ok", "clause": "as {a|}"}, r"field 'clause': inline choice \{a\|\} has an empty"),
    ({"family": "tone", "text": "Make it {tone"}, r"field 'text': unbalanced brace"),
    ({"family": "", "text": "x"}, r"field 'family': required"),
    ({"family": "tone", "text": "x", "form": "yes"}, r"field 'form': must be true or false"),
    ({"family": "tone", "text": "x", "colour": 1}, r"unknown key\(s\) colour"),
])
def test_catalog_errors_name_the_prompt_and_field(prompt, message):
    with pytest.raises(ConfigError, match=message):
        catalog_from_mapping({"options": {"tone": ["a"]}, "prompts": [{"id": "p", **prompt}]}, source="cat.toml")


def test_duplicate_ids_and_bad_knobs_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="prompt 2: duplicate id 'a'"):
        catalog_from_mapping({"prompts": [{"id": "a", "family": "f", "text": "x"}, {"id": "a", "family": "g", "text": "y"}]})
    with pytest.raises(ConfigError, match="combine.fraction"):
        catalog_from_mapping({"combine": {"fraction": 2}, "prompts": [{"family": "f", "text": "x"}]})
    bad = tmp_path / "bad.toml"
    bad.write_text("prompts = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_catalog(bad)
    with pytest.raises(ConfigError, match="unknown catalog format"):
        load_catalog(tmp_path / "c.txt")


def test_yaml_and_csv_catalogs(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("options:\n  tone: [calm, loud]\nprompts:\n  - family: tone\n    text: Make it {tone}.\n"
                         "    clause: in a {tone} way\n  - family: add\n    text: Add owls.\n    clause: adding owls\n")
    catalog = load_catalog(yaml_file)
    assert [p.id for p in catalog.prompts] == ["tone-1", "add-2"]
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('family,text,clause,form,text_kinds\ntone,"Make it {calm|loud}.",in a {calm|loud} way,,\n'
                        'poetry,Write it as a haiku.,as a haiku,true,a diary|a memo\n')
    catalog = load_catalog(csv_file)
    assert catalog.prompts[1].form and catalog.prompts[1].text_kinds == ("a diary", "a memo")
    assert all("{" not in i.instruction for i in expand_catalog(catalog, 30, 0, combine_fraction=0.5))
    csv_file.write_text("family,text\ntone,Make it {tone}.\n")
    with pytest.raises(ConfigError, match=r"c.csv \(CSV, line 2\): prompt 1.*field 'text': unknown placeholder \{tone\}"):
        load_catalog(csv_file)
    csv_file.write_text("family,text\ntone,\n")
    with pytest.raises(DataError, match=r"c.csv, row 1 \(line 2\), column 'text': required"):
        load_catalog(csv_file)
    csv_file.write_text("family,words\ntone,x\n")
    with pytest.raises(DataError, match="missing column"):
        load_catalog(csv_file)
