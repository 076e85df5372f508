"""The hf candidate on real tiny models (a 2-layer Llama and a LoRA adapter trained here), CPU only."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from hf_cache_layout import put_in_hf_cache
from hypothesis import given
from hypothesis import strategies as st
from tiny_models import (
    MEMORIZE_ROWS,
    TINY_PROMPT,
    build_other_tiny_model,
    build_tiny_llama,
    one_torch_thread,
    train_tiny_lora,
)

from harness.candidates import (
    CandidateContext,
    StreamingCandidate,
    load_candidate_registry,
    resolve_candidate,
)
from harness.candidates.cache import predict_with_cache
from harness.candidates.hf import HFCandidate, cut_at_stop, from_config
from harness.data import Sample
from harness.errors import ConfigError, ModelUnavailableError
from harness.hf_models import check_adapter_fits, read_model_config
from harness.store import Store

REPO_ROOT = Path(__file__).resolve().parents[1]
ROWS = [Sample(f"r{i}", f"Original number {i}: the meeting is moved to {i} pm.",
               "Rewritten " * (i + 1) + "text.", "Make it short.") for i in range(5)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a busy machine makes more threads very slow."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def other_model(tmp_path_factory):
    return build_other_tiny_model(tmp_path_factory.mktemp("other-llama") / "model")


@pytest.fixture(scope="session")
def adapter(tiny_llama, tmp_path_factory):
    return train_tiny_lora(tiny_llama, tmp_path_factory.mktemp("tiny-lora") / "adapter")


#: The entry keys that give the adapter the prompt it was trained with.
TRAINED_PROMPT = {"system": TINY_PROMPT["system"], "user": TINY_PROMPT["user_template"]}


def hf(model, **entry):
    return from_config("tiny", {"kind": "hf", "model": str(model), "max_new_tokens": 12, **entry}, CandidateContext())


def test_candidates_file_entry_with_relative_paths_predicts_one_string_per_row(tiny_llama, adapter, tmp_path):
    (tmp_path / "candidates.toml").write_text(
        f'[candidates.base]\nkind = "hf"\nmodel = "{tiny_llama}"\nmax_new_tokens = 12\npostprocess = "raw"\n'
        f'[candidates.tuned]\nkind = "hf"\nmodel = "{tiny_llama}"\nadapter = "adapters/mine"\nmax_new_tokens = 12\n'
        f'system = "{TINY_PROMPT["system"]}"\nuser = """{TINY_PROMPT["user_template"]}"""\n')
    shutil.copytree(adapter.path, tmp_path / "adapters" / "mine")
    registry = load_candidate_registry(tmp_path / "candidates.toml")
    base = resolve_candidate("base", registry)
    assert isinstance(base, StreamingCandidate) and base._loaded is None  # nothing loaded when built
    predictions = base.predict(ROWS[:3])
    assert len(predictions) == 3 and all(isinstance(p, str) for p in predictions)
    tuned = resolve_candidate("tuned", registry)
    assert tuned.adapter_dir == tmp_path / "adapters" / "mine"
    assert tuned.predict(list(MEMORIZE_ROWS)) == [row.rewrite_prompt for row in MEMORIZE_ROWS]


def test_batch_size_does_not_change_greedy_answers(tiny_llama):
    one = hf(tiny_llama, batch_size=1, postprocess="raw").predict(ROWS)
    three = hf(tiny_llama, batch_size=3, postprocess="raw").predict(ROWS)
    assert one == three
    assert any(one)  # decoding returns the new tokens, not an echo of the prompt
    assert not any("Original number" in p for p in one)


def test_lora_adapter_memorises_its_rows_and_changes_answers(tiny_llama, adapter):
    assert adapter.losses[-1] < adapter.losses[0] / 10
    answers = [row.rewrite_prompt for row in MEMORIZE_ROWS]
    tuned = hf(tiny_llama, adapter=str(adapter.path), batch_size=2, **TRAINED_PROMPT)
    assert tuned.predict(list(MEMORIZE_ROWS)) == answers
    base = hf(tiny_llama, batch_size=2, postprocess="raw", **TRAINED_PROMPT).predict(list(MEMORIZE_ROWS))
    assert base != answers and all(b != a for b, a in zip(base, answers))


def test_fingerprint_follows_what_changes_answers(tiny_llama, adapter, tmp_path):
    base = hf(tiny_llama).fingerprint
    assert hf(tiny_llama).fingerprint == base
    with_adapter = hf(tiny_llama, adapter=str(adapter.path)).fingerprint
    assert with_adapter != base
    moved = tmp_path / "moved-adapter"
    shutil.copytree(adapter.path, moved)
    assert hf(tiny_llama, adapter=str(moved)).fingerprint == with_adapter  # a copy is the same adapter
    retrained = train_tiny_lora(tiny_llama, tmp_path / "retrained", steps=3)
    assert hf(tiny_llama, adapter=str(retrained.path)).fingerprint != with_adapter
    for changed in ({"max_new_tokens": 13}, {"temperature": 0.7}, {"system": "Be brief."}, {"max_text_chars": 99},
                    {"user": "{rewritten_text}"}, {"dtype": "bfloat16"}, {"postprocess": "raw"}):
        assert hf(tiny_llama, **changed).fingerprint != base, changed
    for same in ({"batch_size": 1}, {"device": "cpu"}, {"seed": 5}, {"top_p": 0.5}):  # seed/top_p: greedy ignores them
        assert hf(tiny_llama, **same).fingerprint == base, same
    assert hf(tiny_llama, temperature=0.7, seed=1).fingerprint != hf(tiny_llama, temperature=0.7, seed=2).fingerprint


def test_adapter_for_another_base_fails_before_anything_is_loaded(other_model, adapter, tmp_path):
    candidate = hf(other_model, adapter=str(adapter.path))
    with pytest.raises(ConfigError, match="hidden_size is 48 in the adapter's base but 64 in the model"):
        candidate.preflight()
    with pytest.raises(ConfigError, match="made for another model"):
        candidate.predict(ROWS[:1])
    assert candidate._loaded is None
    # The declared base is a hub id this machine does not have: the LoRA shapes still give it away.
    renamed = tmp_path / "renamed"
    shutil.copytree(adapter.path, renamed)
    config = json.loads((renamed / "adapter_config.json").read_text())
    (renamed / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "acme/not-here"}))
    with pytest.raises(ConfigError, match=r"lora_A \(8, 48\) does not fit the model's weight \(\d+, 64\)"):
        hf(other_model, adapter=str(renamed)).preflight()


def test_adapter_declared_as_hub_id_fits_its_base_under_another_name(tiny_llama, other_model, adapter, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(adapter.path, renamed)
    config = json.loads((renamed / "adapter_config.json").read_text())
    (renamed / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "acme/tiny"}))
    candidate = hf(tiny_llama, adapter=str(renamed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        candidate.preflight()  # the declared base is unknown here, but the shapes match: no error, no warning
    assert [str(w.message) for w in caught] == []
    assert candidate.adapter_dir == renamed
    # the check did run: the same adapter on a model of other shapes is refused
    with pytest.raises(ConfigError, match="made for another model"):
        hf(other_model, adapter=str(renamed)).preflight()


def test_adapter_whose_declared_base_is_a_cached_hub_id_is_checked_against_it(tiny_llama, other_model, adapter,
                                                                              tmp_path, monkeypatch):
    """The declared base is found in the HF cache layout (HF_HUB_CACHE read when asked, not at import), so
    its config is compared too; the same check is `harness.hf_models.check_adapter_fits` for any caller."""
    hub = tmp_path / "hub"
    put_in_hf_cache(hub, "acme/tiny", tiny_llama, "rev1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    declared = tmp_path / "declared"
    shutil.copytree(adapter.path, declared)
    config = json.loads((declared / "adapter_config.json").read_text())
    (declared / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "acme/tiny"}))
    with pytest.raises(ConfigError, match="hidden_size is 48 in the adapter's base but 64 in the model"):
        check_adapter_fits(declared, other_model, read_model_config(other_model, "test"), where="test")
    with pytest.raises(ConfigError, match="made for another model"):
        hf(other_model, adapter=str(declared)).preflight()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fits its declared base: no error, no "could not verify" warning
        check_adapter_fits(declared, tiny_llama, read_model_config(tiny_llama, "test"), where="test")
    # The hub id names the model in the cache; the candidate finds it there as well.
    assert hf("acme/tiny").model_dir == hub / "models--acme--tiny" / "snapshots" / "rev1"
    assert hf("acme/tiny").fingerprint == hf(tiny_llama).fingerprint


def test_missing_model_or_adapter_is_a_clear_error(tiny_llama, tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailableError, match="model directory .*nowhere does not exist"):
        hf(tmp_path / "nowhere").preflight()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match=r"not in the local Hugging Face cache \(.*\), and HF_HUB_OFFLINE is set"):
        hf("acme/never-downloaded").predict(ROWS[:1])
    with pytest.raises(ModelUnavailableError, match="adapter directory .*gone does not exist"):
        hf(tiny_llama, adapter=str(tmp_path / "gone")).preflight()


def test_predict_stream_yields_every_index_once(tiny_llama):
    candidate = hf(tiny_llama, batch_size=2, max_new_tokens=4)
    indices = [index for index, _ in candidate.predict_stream(ROWS)]
    assert sorted(indices) == list(range(len(ROWS)))
    assert list(candidate.predict_stream([])) == []


class GPUTooSmall(HFCandidate):
    """Runs the real model, but a batch of more than `fits` rows raises CUDA's out-of-memory error."""

    fits = 2

    def _generate(self, prompts, model, tokenizer):
        import torch

        if len(prompts) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._generate(prompts, model, tokenizer)


def test_out_of_memory_splits_the_batch_and_still_answers_every_row_once(tiny_llama):
    plain = hf(tiny_llama, batch_size=5, max_new_tokens=4, postprocess="raw").predict(ROWS)
    small = GPUTooSmall("small", tiny_llama, batch_size=5, max_new_tokens=4, postprocess="raw")
    streamed = list(small.predict_stream(ROWS))
    assert sorted(index for index, _ in streamed) == list(range(len(ROWS)))
    assert [text for _, text in sorted(streamed)] == plain
    small.fits = 0  # not even one row fits: every row is answered "" and the run goes on
    assert small.predict(ROWS[:3]) == ["", "", ""]


def test_answers_are_cached_as_they_stream(tiny_llama, tmp_path):
    candidate = hf(tiny_llama, max_new_tokens=6, postprocess="raw")
    with Store(tmp_path / "store.sqlite") as store:
        first = predict_with_cache(candidate, ROWS[:3], store)
        candidate._loaded = None
        candidate.load = None  # a second run must not generate at all
        assert predict_with_cache(candidate, ROWS[:3], store) == first


def test_plain_prompt_model_without_chat_template(tmp_path):
    model = build_tiny_llama(tmp_path / "plain", chat_template=None)
    adapter = train_tiny_lora(model, tmp_path / "plain-adapter")
    tuned = hf(model, adapter=str(adapter.path), **TRAINED_PROMPT)
    assert tuned.predict(list(MEMORIZE_ROWS)) == [r.rewrite_prompt for r in MEMORIZE_ROWS]


@pytest.mark.parametrize(("entry", "problem"), [
    ({"load_in_4bit": True, "device": "cpu"}, "load_in_4bit needs a CUDA GPU"),
    ({"dtype": "int3"}, "'dtype' must be one of 'auto', 'float32'"),
    ({"batch_size": 0}, "'batch_size' must be >= 1, found integer 0"),
    ({"batch_size": True}, "'batch_size' must be an integer, found boolean true"),
    ({"user": "{original}"}, "unknown placeholder"),
    ({"postprocess": "magic"}, "'postprocess' must be one of"),
    ({"adaptor": "x"}, "unknown key 'adaptor'; known keys: kind, description"),
])
def test_bad_entries_are_config_errors(tiny_llama, entry, problem):
    with pytest.raises(ConfigError, match=problem):
        hf(tiny_llama, **entry).preflight()


def test_building_needs_a_model():
    with pytest.raises(ConfigError, match="'model' is required"):
        from_config("x", {"kind": "hf"}, CandidateContext())
    candidate = HFCandidate("x", "acme/model")  # building reads nothing: a missing model fails later
    assert candidate.model == "acme/model" and candidate._loaded is None


# -- few-shot rows, stop strings, GGUF models, the adapter's recipe ---------------------------------------------
def test_stop_strings_end_generation_and_cut_the_answer(tiny_llama, adapter):
    """The memorised answers are known, so a stop string inside one must cut it exactly there."""
    tuned = hf(tiny_llama, adapter=str(adapter.path), batch_size=3, stop=[" more", " like"], **TRAINED_PROMPT)
    assert tuned.predict(list(MEMORIZE_ROWS)) == ["Rewrite it", "Make it sound", "Turn this into a haiku."]
    assert tuned.fingerprint != hf(tiny_llama, adapter=str(adapter.path), **TRAINED_PROMPT).fingerprint
    with pytest.raises(ConfigError, match=r"'stop\[0\]' must be a non-empty string"):
        hf(tiny_llama, stop=[""])


@given(st.text(max_size=30), st.lists(st.text(min_size=1, max_size=3), max_size=3))
def test_cut_at_stop_keeps_a_stop_free_prefix(answer, stop):
    cut = cut_at_stop(answer, stop)
    assert answer.lstrip().startswith(cut)
    assert not any(s in cut for s in stop)
    assert cut_at_stop(answer, []) == answer.lstrip()


def test_few_shot_rows_come_from_a_suite_that_is_then_never_scored(tiny_llama, tmp_path):
    from harness.data import load_suite, load_suite_specs

    specs = load_suite_specs(REPO_ROOT / "suites.toml")
    context = CandidateContext(suites=specs)
    entry = {"kind": "hf", "model": str(tiny_llama), "max_new_tokens": 4, "few_shot_suite": "leaked", "few_shot_k": 2}
    candidate = from_config("shots", entry, context)
    leaked = load_suite(specs["leaked"])
    assert candidate.examples == (leaked.samples[0], leaked.samples[32])
    assert "leaked" in candidate.train_suites
    without = {k: v for k, v in entry.items() if not k.startswith("few_shot")}
    assert candidate.fingerprint != from_config("none", without, context).fingerprint
    model, tokenizer = candidate.load()
    assert len(candidate.predict(ROWS[:2])) == 2
    from harness.prompting import format_prompt

    prompt = format_prompt(tokenizer, "O", "R", examples=candidate.examples)
    assert leaked.samples[0].rewrite_prompt in prompt and leaked.samples[32].rewrite_prompt in prompt
    assert prompt.index(leaked.samples[32].rewrite_prompt) < prompt.index("\nO\n")
    with pytest.raises(ConfigError, match="few_shot_suite 'nope' is not a known suite"):
        from_config("bad", {**entry, "few_shot_suite": "nope"}, context)


def test_plain_few_shot_prompt_puts_each_answer_after_the_cue_and_a_newline_after_it():
    from harness.prompting import PLAIN_ANSWER_CUE, format_prompt

    class PlainTokenizer:
        bos_token, chat_template = "<s>", None

    shots = [Sample("a", "one", "uno", "Translate it."), Sample("b", "two", "TWO", "Shout it.")]
    prompt = format_prompt(PlainTokenizer(), "three", "tres", system="S", user_template="{original_text}|{rewritten_text}",
                           examples=shots)
    assert prompt == (f"<s>S\n\none|uno{PLAIN_ANSWER_CUE}Translate it.\n\ntwo|TWO{PLAIN_ANSWER_CUE}Shout it."
                      f"\n\nthree|tres{PLAIN_ANSWER_CUE}")
    assert format_prompt(PlainTokenizer(), "x", "y", system="S", user_template="{original_text}") == \
        f"<s>S\n\nx{PLAIN_ANSWER_CUE}"


def test_a_rerun_served_by_the_cache_generates_nothing(tiny_llama, tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        first = hf(tiny_llama, max_new_tokens=6, postprocess="raw")
        answers = predict_with_cache(first, ROWS[:3], store)
        assert first.generated_rows == 3 and first.generated_tokens > 0
        again = hf(tiny_llama, max_new_tokens=6, postprocess="raw")
        assert predict_with_cache(again, ROWS[:3], store) == answers
        assert again.generated_rows == 0 and again.generated_tokens == 0


def test_a_missing_adapter_says_the_command_that_makes_it(tiny_llama, tmp_path):
    command = "prh train --base gemma-270m --train leaked --out runs/x"
    candidate = hf(tiny_llama, adapter=str(tmp_path / "runs" / "x" / "adapter"), adapter_command=command)
    with pytest.raises(ModelUnavailableError, match=r"adapter directory .*adapter does not exist; make it with:\n    "
                                                    r"prh train --base gemma-270m"):
        candidate.preflight()


def test_gguf_models_are_named_relative_to_the_candidates_file(tmp_path):
    entry = {"kind": "hf", "model": "gguf:models/tiny.gguf"}
    candidate = from_config("g", entry, CandidateContext(base_dir=tmp_path))
    assert candidate.model == f"gguf:{tmp_path / 'models' / 'tiny.gguf'}"
    assert from_config("p", {"kind": "hf", "model": "gguf-package:some-gguf"}, CandidateContext(base_dir=tmp_path)
                       ).model == "gguf-package:some-gguf"
    assert from_config("f", {"kind": "hf", "model": "tiny.gguf"}, CandidateContext(base_dir=tmp_path)
                       ).model == tmp_path / "tiny.gguf"
    with pytest.raises(ModelUnavailableError, match="GGUF file .*tiny.gguf does not exist"):
        candidate.preflight()
