"""LoRA fine-tuning runs end to end on a real tiny Llama (built here) with the packaged MiniLM scorer:
falling loss, an adapter the hf candidate loads, exact resumption, selection by SCS, the training card,
refused resumes and mismatched bases. CPU, one torch thread, a few seconds per run."""

from __future__ import annotations

import json
import struct

import pytest
from tiny_models import (
    HELD_OUT_ROWS,
    MEMORIZE_ROWS,
    build_other_tiny_model,
    build_tiny_llama,
    one_torch_thread,
    tiny_train_config,
)

from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate
from harness.candidates.hf import from_config
from harness.data import Sample, Suite
from harness.errors import ConfigError
from harness.evaluation import evaluate
from harness.tomlfile import tomllib
from harness.train import train_lora
from harness.train.checkpoints import TRAINING_STATE, list_checkpoints

TRAIN = Suite("mem", tuple(MEMORIZE_ROWS), source="mem.jsonl")
HELD = Suite("held", tuple(HELD_OUT_ROWS), source="held.jsonl")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="module")
def finished(base, minilm, tmp_path_factory):
    """One complete 40-step run (evaluated every 10 steps), shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("run") / "tiny-lora"
    return train_lora(tiny_train_config(base, max_steps=40, eval_steps=10), TRAIN, HELD, minilm, out)


def test_training_loss_falls_on_a_memorisation_set(finished):
    losses = [s.loss for s in finished.history.steps]
    assert [s.step for s in finished.history.steps] == list(range(1, 41))
    assert losses[-1] < 0.3 * losses[0]
    assert [e.step for e in finished.history.evals] == [10, 20, 30, 40]
    assert finished.train_tokens_per_second > 0 and 0 < finished.eval_share < 1


def test_saved_adapter_loads_through_the_hf_candidate_and_answers_as_during_training(finished, minilm):
    """The entry written by the run, read as candidates.toml is read, gives a candidate whose answers and
    score on the eval suite are exactly those recorded for the selected checkpoint during training."""
    entry = tomllib.loads(finished.entry_path.read_text())["candidates"][finished.name]
    candidate = from_config(finished.name, entry, CandidateContext(base_dir=finished.out_dir))
    assert candidate.adapter_dir == finished.adapter_dir and candidate.train_suites == {"mem"}
    recorded = [json.loads(line) for line in
                (finished.out_dir / "evals" / f"{finished.best.checkpoint}.jsonl").read_text().splitlines()]
    assert candidate.predict(list(HELD.samples)) == [row["prediction"] for row in recorded]
    result = evaluate(candidate, HELD, minilm)
    assert result.mean == pytest.approx(finished.best.scs, abs=1e-6)
    with pytest.raises(ConfigError, match="learned from suite 'mem'"):
        evaluate(candidate, TRAIN, minilm)  # never scored on its own training data


def test_training_card_has_the_scores_table_settings_and_a_real_png(finished):
    card = finished.card_path.read_text()
    assert "| step" in card and "SCS [95% CI]" in card and "**best**" in card
    for step in (10, 20, 30, 40):
        assert f"| {step} " in card
    for setting in ("lora_r", "learning_rate", "full_sequence_loss", "gradient_accumulation", "seed"):
        assert f"| {setting} " in card
    assert finished.best.checkpoint.startswith("step-") and "training data hash" in card
    assert "NOT COMPARABLE WITH THE KAGGLE LEADERBOARD" in card and "[candidates." in card
    data = finished.plot_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 300
    from matplotlib.image import imread

    pixels = imread(finished.plot_path)
    assert pixels.shape[:2] == (height, width) and pixels.std() > 0.05  # decodes, and is not blank


def test_adapter_on_another_base_is_refused_with_a_clear_error(finished, tmp_path):
    other = build_other_tiny_model(tmp_path / "other")
    candidate = from_config("wrong-base", {"kind": "hf", "model": str(other), "adapter": str(finished.adapter_dir)},
                            CandidateContext())
    with pytest.raises(ConfigError, match="made for another model"):
        candidate.preflight()


def test_resuming_with_another_base_or_other_settings_is_refused(base, finished, minilm, tmp_path):
    other = build_other_tiny_model(tmp_path / "other")
    before = sorted(p.name for p in (finished.out_dir / "checkpoints").iterdir())
    with pytest.raises(ConfigError, match="base model's files differ"):
        train_lora(tiny_train_config(other, max_steps=40, eval_steps=10), TRAIN, HELD, minilm, finished.out_dir)
    with pytest.raises(ConfigError, match="lora_r was 8, now 4"):
        train_lora(tiny_train_config(base, lora_r=4, max_steps=40, eval_steps=10), TRAIN, HELD, minilm,
                   finished.out_dir)
    assert sorted(p.name for p in (finished.out_dir / "checkpoints").iterdir()) == before  # nothing touched


def optimizer_step_count(checkpoint) -> int:
    import torch

    state = torch.load(checkpoint.path / TRAINING_STATE, weights_only=True)
    return int(next(iter(state["optimizer"]["state"].values()))["step"])


def adapter_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.mark.e2e  # three LoRA runs (straight, interrupted, resumed), compared step by step
def test_an_interrupted_run_resumes_where_it_stopped_and_matches_an_uninterrupted_one(base, minilm, tmp_path):
    import torch

    # dropout on, so the random state must be restored too for the runs to agree
    config = tiny_train_config(base, max_steps=6, eval_steps=3, lora_dropout=0.1)
    straight = train_lora(config, TRAIN, HELD, minilm, tmp_path / "straight")

    def stop_at_4(record):
        if record.step == 4:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_lora(config, TRAIN, HELD, minilm, out, on_step=stop_at_4)
    saved = list_checkpoints(out)
    assert [c.step for c in saved] == [3, 4]  # the eval checkpoint, and the one written on interruption
    assert optimizer_step_count(saved[-1]) == 4
    assert "interrupted at step 4 of 6" in (out / "training_card.md").read_text()

    resumed = train_lora(config, TRAIN, HELD, minilm, out)
    assert resumed.resumed_from == 4
    assert [s.step for s in resumed.history.steps] == [1, 2, 3, 4, 5, 6]  # continued, not restarted
    assert optimizer_step_count(list_checkpoints(out)[-1]) == 6  # optimizer moments carried over
    assert [s.loss for s in resumed.history.steps] == pytest.approx([s.loss for s in straight.history.steps],
                                                                    rel=1e-5)
    assert [(e.step, e.scs) for e in resumed.history.evals] == [(e.step, e.scs) for e in straight.history.evals]
    theirs, ours = adapter_weights(straight.adapter_dir), adapter_weights(resumed.adapter_dir)
    assert theirs.keys() == ours.keys()
    assert all(torch.allclose(theirs[k], ours[k], atol=1e-6) for k in theirs)


def recorded_answers(out, step: int) -> list[str]:
    lines = (out / "evals" / f"step-{step:06d}.jsonl").read_text().splitlines()
    return [json.loads(line)["prediction"] for line in lines]


@pytest.mark.e2e  # two 12-step LoRA runs, each scored every 2 steps
def test_best_checkpoint_is_chosen_by_scs_not_by_loss_or_recency(base, minilm, tmp_path):
    """Constructed case: the eval suite's true prompts are what the model answered at an early step k of
    a first run, so in an identical second run step k scores SCS 1 while the loss keeps falling to the
    last step, whose answers have moved on."""
    import torch

    config = tiny_train_config(base, max_steps=12, eval_steps=2)
    first = train_lora(config, TRAIN, HELD, minilm, tmp_path / "first")
    final = recorded_answers(tmp_path / "first", 12)
    early = [e.step for e in first.history.evals if e.step < 12
             and all(a.strip() for a in recorded_answers(tmp_path / "first", e.step))
             and recorded_answers(tmp_path / "first", e.step) != final]
    assert early, "no early checkpoint with complete answers that differ from the last ones"
    k = early[0]
    constructed = Suite("held-at-k", tuple(Sample(r.id, r.original_text, r.rewritten_text, a) for r, a in
                                           zip(HELD_OUT_ROWS, recorded_answers(tmp_path / "first", k))),
                        source="held-at-k.jsonl")
    second = train_lora(config, TRAIN, constructed, minilm, tmp_path / "second")
    history = second.history
    assert [s.loss for s in history.steps] == pytest.approx([s.loss for s in first.history.steps], rel=1e-6)
    assert second.best.step == k and second.best.scs == pytest.approx(1.0, abs=1e-4)
    assert history.last_eval().step == 12 and history.lowest_train_loss_step() == 12
    assert history.best_by_scs().scs > history.last_eval().scs
    # the adapter handed out is the step-k checkpoint's, not the last one's
    selected = adapter_weights(second.out_dir / "checkpoints" / f"step-{k:06d}" / "adapter")
    handed_out, last = adapter_weights(second.adapter_dir), adapter_weights(second.out_dir / "checkpoints" /
                                                                           "step-000012" / "adapter")
    assert all(torch.equal(selected[name], handed_out[name]) for name in selected)
    assert not all(torch.equal(last[name], handed_out[name]) for name in last)
    assert "Selected − last, paired" in second.card_path.read_text()


@pytest.mark.e2e  # three LoRA runs (one batch, accumulated, full-sequence loss)
def test_step_loss_is_per_labelled_token_and_full_sequence_loss_trains_on_more(base, minilm, tmp_path):
    """Three rows in one micro-batch or in three accumulated ones: the same step loss (the mean over the
    step's answer tokens), so the split is a memory setting, not a change of objective."""
    one_batch = train_lora(tiny_train_config(base, max_steps=2, eval_steps=2), TRAIN, HELD, minilm, tmp_path / "a")
    split = train_lora(tiny_train_config(base, max_steps=2, eval_steps=2, batch_size=1, gradient_accumulation=3),
                       TRAIN, HELD, minilm, tmp_path / "b")
    assert [s.loss for s in split.history.steps] == pytest.approx([s.loss for s in one_batch.history.steps], rel=1e-5)
    full = train_lora(tiny_train_config(base, max_steps=2, eval_steps=2, full_sequence_loss=True), TRAIN, HELD,
                      minilm, tmp_path / "c")
    assert full.history.steps[0].loss != pytest.approx(one_batch.history.steps[0].loss, rel=1e-3)  # other tokens
    card = full.card_path.read_text()
    assert "whole sequence (prompt and answer)" in card
    # the eval loss is always on the answer tokens, so the two runs' eval losses are comparable
    assert all(e.eval_loss > 0 for e in (*full.history.evals, *one_batch.history.evals))


@pytest.mark.e2e  # a LoRA run, merged, and both candidates generating
def test_merged_model_answers_like_base_plus_adapter(base, minilm, tmp_path):
    result = train_lora(tiny_train_config(base, max_steps=8, eval_steps=8, merge=True, name="tiny-merged-test"),
                        TRAIN, HELD, minilm, tmp_path / "run")
    assert (result.merged_dir / "config.json").is_file() and (result.merged_dir / "tokenizer_config.json").is_file()
    registry = load_candidate_registry(result.entry_path)
    assert registry.names() == ["tiny-merged-test", "tiny-merged-test-vllm", "tiny-merged-test-merged"]
    context = CandidateContext(base_dir=result.out_dir)
    with_adapter = resolve_candidate("tiny-merged-test", registry, context)
    merged = resolve_candidate("tiny-merged-test-merged", registry, context)
    assert merged.adapter is None
    assert merged.predict(list(MEMORIZE_ROWS)) == with_adapter.predict(list(MEMORIZE_ROWS))
