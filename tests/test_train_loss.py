"""harness.train's data and loss on a real tiny Llama: answer-only labels, the loss against a cross-entropy
computed by hand, the batch plan, and the checks that keep the eval split out of training. CPU, seconds."""

from __future__ import annotations

import json
import math

import pytest
from tiny_models import HELD_OUT_ROWS, MEMORIZE_ROWS, TINY_PROMPT, build_tiny_llama, one_torch_thread

from harness.data import Sample, Suite
from harness.errors import ConfigError, DataError
from harness.prompting import format_prompt
from harness.train import (
    BatchPlan,
    TrainConfig,
    check_disjoint,
    encode_examples,
    summed_token_loss,
)
from harness.train.data import IGNORE_INDEX, collate

PROMPT_OPTIONS = {"system": TINY_PROMPT["system"], "user_template": TINY_PROMPT["user_template"], "max_chars": 2000}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(directory, local_files_only=True)


def hand_cross_entropy(row_logits, target: int) -> float:
    """-log softmax(row)[target] with plain Python floats (log-sum-exp shifted by the maximum)."""
    values = [float(v) for v in row_logits]
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values)) - values[target]


def test_masked_loss_is_the_cross_entropy_of_the_answer_tokens_only(tiny):
    import torch

    model, tokenizer = tiny
    rows = list(MEMORIZE_ROWS[:2])
    examples, too_long = encode_examples(tokenizer, rows, prompt_options=PROMPT_OPTIONS)
    assert too_long == []
    expected_sum, expected_count = 0.0, 0
    for row, example in zip(rows, examples):
        # The prompt is exactly what the hf candidate feeds the model; the answer is the prompt + EOS.
        prompt_ids = tokenizer(format_prompt(tokenizer, row.original_text, row.rewritten_text, **PROMPT_OPTIONS),
                               add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(row.rewrite_prompt + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        assert example.input_ids == prompt_ids + answer_ids
        assert example.labels == [IGNORE_INDEX] * len(prompt_ids) + answer_ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0]
        for offset, target in enumerate(answer_ids):
            position = len(prompt_ids) + offset  # predicted from the position before it
            expected_sum += hand_cross_entropy(logits[position - 1], target)
        expected_count += len(answer_ids)

    batch = collate(examples, tokenizer.pad_token_id)  # two lengths: right padding must not count
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss_sum, count = summed_token_loss(logits, batch["labels"])
        model_loss = model(**batch).loss
    assert count == expected_count == sum(e.label_tokens for e in examples)
    assert float(loss_sum) == pytest.approx(expected_sum, rel=1e-5)
    assert float(model_loss) == pytest.approx(expected_sum / expected_count, rel=1e-5)  # transformers agrees


def test_full_sequence_loss_labels_every_token_and_is_a_different_loss(tiny):
    import torch

    model, tokenizer = tiny
    masked, _ = encode_examples(tokenizer, MEMORIZE_ROWS[:1], prompt_options=PROMPT_OPTIONS)
    full, _ = encode_examples(tokenizer, MEMORIZE_ROWS[:1], prompt_options=PROMPT_OPTIONS, full_sequence_loss=True)
    assert full[0].input_ids == masked[0].input_ids and full[0].labels == full[0].input_ids
    assert full[0].label_tokens == len(full[0].input_ids) - 1 > masked[0].label_tokens
    ids = torch.tensor([full[0].input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    loss_sum, count = summed_token_loss(logits, torch.tensor([full[0].labels]))
    expected = sum(hand_cross_entropy(logits[0, t - 1], full[0].input_ids[t]) for t in range(1, ids.shape[1]))
    assert count == ids.shape[1] - 1 and float(loss_sum) == pytest.approx(expected, rel=1e-5)


def test_rows_longer_than_max_length_are_left_out_and_named(tiny):
    _, tokenizer = tiny
    long_row = Sample("long", "word " * 300, "WORD " * 300, "Shout it.")
    examples, too_long = encode_examples(tokenizer, [MEMORIZE_ROWS[0], long_row], prompt_options=PROMPT_OPTIONS,
                                         max_length=200)
    assert [e.id for e in examples] == ["m0"] and too_long == ["long"]


def test_batch_plan_visits_every_row_once_per_epoch_and_is_reproducible():
    plan = BatchPlan(n_rows=10, batch_size=3, gradient_accumulation=2, seed=7)
    assert plan.batches_per_epoch == 4 and plan.total_steps(epochs=3, max_steps=None) == 6
    assert plan.total_steps(epochs=3, max_steps=5) == 5
    first_epoch = [rows for step in (1, 2) for rows in plan.micro_batches(step)]
    assert sorted(i for rows in first_epoch for i in rows) == list(range(10))
    assert [len(rows) for rows in first_epoch] == [3, 3, 3, 1]
    assert plan.micro_batches(3) == BatchPlan(10, 3, 2, 7).micro_batches(3)  # a resumed run sees the same rows
    assert plan.micro_batches(3) != BatchPlan(10, 3, 2, 8).micro_batches(3)
    assert plan.epoch_at(2) == 1.0


def suite(name: str, rows, source: str = "") -> Suite:
    return Suite(name, tuple(rows), source=source or f"{name}.jsonl")


def test_eval_suite_equal_to_or_overlapping_the_training_suite_is_refused():
    train = suite("mem", MEMORIZE_ROWS)
    with pytest.raises(ConfigError, match="is the training suite"):
        check_disjoint(train, suite("mem", HELD_OUT_ROWS))
    with pytest.raises(ConfigError, match="is the training suite"):
        check_disjoint(train, suite("other-name", HELD_OUT_ROWS, source="mem.jsonl"))
    copied = Sample("x9", MEMORIZE_ROWS[1].original_text, MEMORIZE_ROWS[1].rewritten_text, "Other prompt.")
    with pytest.raises(ConfigError, match=r"1 of 3 rows .*eval row 'x9' = train row 'm1'"):
        check_disjoint(train, suite("held", [*HELD_OUT_ROWS, copied]))
    check_disjoint(train, suite("held", HELD_OUT_ROWS))  # disjoint: fine


def test_train_suites_are_read_by_the_workspace_names_and_files_without_an_id_column(tmp_path):
    from harness.workspace import Workspace

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"original_text": r.original_text, "rewritten_text": r.rewritten_text,
                                          "rewrite_prompt": r.rewrite_prompt}) for r in MEMORIZE_ROWS) + "\n")
    from_file = Workspace.from_dir(tmp_path).suite(str(data))
    assert from_file.ids == ["1", "2", "3"]
    assert [s.rewrite_prompt for s in from_file.samples] == [r.rewrite_prompt for r in MEMORIZE_ROWS]
    (tmp_path / "suites.toml").write_text('[suites.mem]\npath = "pairs.jsonl"\ncolumns = { id = "" }\n')
    workspace = Workspace.from_dir(tmp_path)
    assert workspace.suite(str(data)).name == "mem"  # a file that a suite entry points at is that suite
    with pytest.raises(ConfigError, match="'nope' is neither a suite"):
        workspace.suite("nope")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"original_text": "a", "rewritten_text": "b", "rewrite_prompt": ""}\n')
    with pytest.raises(DataError, match="row 1.*rewrite_prompt"):
        workspace.suite(str(bad))


@pytest.mark.parametrize(("override", "message"), [
    ({"lora_r": 0}, "lora_r must be a positive integer"),
    ({"lr_schedule": "zigzag"}, "lr_schedule must be one of"),
    ({"dtype": "float16"}, "loss scaling"),
    ({"target_modules": ("all-linear", "q_proj")}, "either 'all-linear' alone"),
    ({"user_template": "{texte}"}, "unknown placeholder"),
    ({"device": "gpu"}, "device must be"),
])
def test_config_errors_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(base="m", **override)


def test_config_resolves_alpha_and_keeps_every_setting_in_its_identity():
    config = TrainConfig(base="m", lora_r=2)
    assert config.alpha == 4.0 and config.to_dict()["lora_alpha"] == 4.0
    identity = config.resume_identity()
    assert "learning_rate" in identity and "full_sequence_loss" in identity and "device" not in identity


@pytest.mark.parametrize("full_sequence", [False, True])
def test_loss_from_the_labelled_positions_only_equals_the_loss_over_full_logits(tiny, full_sequence):
    """batch_token_loss asks the model for logits only where a label follows (logits_to_keep mask); the
    sum and count must be those of the full logits, in a right-padded batch of unequal rows."""
    import torch

    from harness.train.loss import batch_token_loss

    model, tokenizer = tiny
    examples, _ = encode_examples(tokenizer, MEMORIZE_ROWS, prompt_options=PROMPT_OPTIONS,
                                  full_sequence_loss=full_sequence)
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected, expected_count = summed_token_loss(logits, batch["labels"])
        loss, count = batch_token_loss(model, batch)
    assert count == expected_count
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
