"""The harness's metric for DeepEval users: `SCSMetric`, a DeepEval custom metric (`BaseMetric`).

    from deepeval import assert_test
    from deepeval.test_case import LLMTestCase
    from harness.integrations.deepeval import SCSMetric

    metric = SCSMetric(embedder="st5", threshold=0.6)       # "minilm" works offline, from its package
    assert_test(LLMTestCase(input=rewritten_text, actual_output=my_model_answer,
                            expected_output=true_rewrite_prompt), [metric])

The score is the competition's sharpened cosine similarity, |cos|³ of the sentence embeddings of
`actual_output` and `expected_output`, computed by the harness itself (`harness.metric.scs_rows` on
`harness.embedding_cache.embed_texts`), so a DeepEval run and `pytest suites/` agree to the last digit
with the same embedder. No LLM judge, no network: it runs offline. `threshold` decides success (score >=
threshold). Scores are only comparable within one embedder (`st5` is the leaderboard's).

`goldens(suite)` maps a suite's rows to DeepEval goldens directly (input: the original and rewritten
texts; expected output: the rewrite prompt); `prh deepeval-dataset` writes them as a JSON file that
`EvaluationDataset.add_goldens_from_json_file` reads. That part needs no DeepEval.

Importing this module needs the `deepeval` extra (pip install -e ".[deepeval]"; kept apart from the
`optimizers` extra: with textgrad, pip backtracks for a long time over litellm versions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.data import Suite
from harness.embedders import Embedder
from harness.optimize.extras import require

require("deepeval", what="harness.integrations.deepeval")

from deepeval.metrics import BaseMetric  # noqa: E402  (after the install hint above)
from deepeval.test_case import LLMTestCase, SingleTurnParams  # noqa: E402


class SCSMetric(BaseMetric):
    """Sharpened cosine similarity between `actual_output` and `expected_output` (see the module).

    Args:
        embedder: an `Embedder`, or a name for `harness.embedders.choose_embedder` (auto, st5, minilm,
            path:DIR), loaded on first use.
        threshold: the score at which a test case passes.
        store: a `harness.store.Store` to cache embeddings in (None: none).
        signed: keep the cosine's sign (an anti-aligned answer scores negative), as `--signed` does.
    """

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]
    # the same for every instance, so set here over BaseMetric's class defaults
    include_reason = True
    async_mode = False
    evaluation_model = None
    evaluation_cost = 0.0  # no LLM judge: embedding costs nothing

    def __init__(self, embedder: Embedder | str = "auto", *, threshold: float = 0.5, store: Any = None,
                 signed: bool = False) -> None:
        self.threshold = threshold
        self.store = store
        self.signed = signed
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if isinstance(self._embedder, str):
            from harness.embedders import choose_embedder

            self._embedder = choose_embedder(self._embedder).embedder
        return self._embedder

    def score_texts(self, predictions: Sequence[str], truths: Sequence[str]) -> list[float]:
        """Per-row SCS of `predictions` against `truths` (one embed call for both)."""
        from harness.embedding_cache import embed_texts
        from harness.metric import scs_rows

        if len(predictions) != len(truths):
            raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
        vectors = embed_texts([*predictions, *truths], self.embedder, self.store)
        n = len(predictions)
        return [float(x) for x in scs_rows(vectors[:n], vectors[n:], signed=self.signed)]

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        missing = [name for name in ("actual_output", "expected_output")
                   if not isinstance(getattr(test_case, name, None), str)]
        if missing:
            self.error = f"SCSMetric needs {' and '.join(missing)} (text) in the test case"
            self.success = False
            raise ValueError(self.error)
        self.error = None
        self.score = self.score_texts([test_case.actual_output], [test_case.expected_output])[0]
        self.success = self.score >= self.threshold
        embedder = self.embedder
        self.reason = (f"sharpened cosine similarity {self.score:.4f} (|cos|^3, embedder {embedder.name}"
                       f"{'' if embedder.comparable_with_kaggle else ', not on the leaderboard scale'}) "
                       f"{'>=' if self.success else '<'} threshold {self.threshold:g}")
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success) and self.error is None

    @property
    def __name__(self) -> str:  # DeepEval's reports name a metric by this property
        return "SCS"


def goldens(suite: Suite) -> list[dict]:
    """The suite's rows as DeepEval goldens (JSON-ready; field names of `add_goldens_from_json_file`)."""
    from harness.commands.deepeval_dataset import golden_rows

    return golden_rows(suite)
