"""Real-model tier, the hf candidate: the shipped `gemma-270m` (Gemma-3-270m base from its GGUF, three
few-shot rows of `leaked`, one line per answer) on 24 rows of `synthetic-hard`, on a CPU, float32, greedy.

What a random tiny model cannot show and these do: a real 262k-token vocabulary and its special tokens,
padding, stopping at a newline, and answers that read like prompts."""

from __future__ import annotations

import re

import pytest

from harness.evaluation import evaluate
from harness.workspace import Workspace
from realmodel.conftest import REPO_ROOT

pytestmark = pytest.mark.realmodel

#: Chatty openers that post-processing must have removed.
OPENER = re.compile(r"^(sure|certainly|of course|okay|here(?:'s| is| are)|the (?:rewrite )?prompt)\b", re.IGNORECASE)
ROWS = 24
BATCH_ONE_ROWS = 4


@pytest.fixture(scope="module")
def first_run(gemma_candidate, suite_rows, realmodel_workspace, minilm):
    suite = suite_rows("synthetic-hard", 0, ROWS)
    result = evaluate(gemma_candidate, suite, minilm, store=realmodel_workspace.store())
    return suite, result


def test_gemma_answers_every_row_with_one_clean_prompt_like_line(first_run, gemma_candidate, record_number):
    suite, result = first_run
    assert gemma_candidate.generated_rows == ROWS
    assert result.complete and result.empty_prediction_ids == []
    for prediction in result.predictions:
        assert prediction.strip() == prediction and prediction
        assert "\n" not in prediction
        assert not OPENER.match(prediction), prediction
        assert len(prediction.split()) <= 40
    # prompt-like: most answers are instructions (an imperative verb first), as the few-shot rows are
    imperative = sum(bool(re.match(r"(rewrite|make|turn|convert|write|change|add|remove|summari[sz]e|explain|"
                                   r"translate|shorten|simplify|improve|use|transform|rephrase|describe)\b",
                                   p, re.IGNORECASE)) for p in result.predictions)
    assert imperative >= ROWS // 2, result.predictions
    record_number("gemma-270m few-shot on synthetic-hard[0:24] (minilm)",
                  f"{result.mean:.4f} [{result.interval.low:.4f}, {result.interval.high:.4f}]; "
                  f"{gemma_candidate.generated_tokens} tokens generated, {len(set(result.predictions))} distinct answers")


def test_a_rerun_is_served_from_the_prediction_cache(first_run, realmodel_workspace, minilm):
    suite, result = first_run
    # a new instance (a workspace builds each spec once, so from a second one over the same store): nothing loaded
    with Workspace.from_dir(REPO_ROOT, store=realmodel_workspace.store_path) as second:
        again = second.candidate("gemma-270m")
        rerun = evaluate(again, suite, minilm, store=realmodel_workspace.store())
    assert again.generated_rows == 0 and again.generated_tokens == 0 and again._loaded is None
    assert rerun.predictions == result.predictions


def test_batching_gives_the_answers_of_batch_size_one(first_run, gemma_candidate):
    suite, result = first_run
    rows = list(suite.samples[:BATCH_ONE_ROWS])
    assert gemma_candidate.batch_size > 1  # the first run batched these rows with others
    before = gemma_candidate.batch_size
    gemma_candidate.batch_size = 1  # not part of the fingerprint: it changes speed, not answers
    try:
        single = gemma_candidate.predict(rows)
    finally:
        gemma_candidate.batch_size = before
    assert single == result.predictions[:BATCH_ONE_ROWS]
