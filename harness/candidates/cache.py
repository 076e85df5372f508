"""The prediction cache: a rerun, or a run killed half way, never pays for the same prediction twice.

Predictions are keyed by (candidate fingerprint, sample id, input hash); the input hash covers what the
candidate reads of a row (original and rewritten text), so an edited row is asked again. Each answer is
written to the store as soon as the candidate yields it.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.candidates.base import Candidate
from harness.data import Sample
from harness.hashing import text_hash
from harness.store import Store


def input_hash(sample: Sample) -> str:
    """What a candidate sees of a row: its original and rewritten text (never the answer)."""
    return text_hash(sample.original_text + "\x00" + sample.rewritten_text)


def predict_with_cache(candidate: Candidate, samples: Sequence[Sample], store: Store | None) -> list[str]:
    """Predictions for `samples`, reading and filling the store's cache for streaming candidates.

    Cheap candidates (constant, predictions file) are simply called. Empty answers are not cached, so a
    rerun retries exactly the rows that failed.
    """
    stream = getattr(candidate, "predict_stream", None)
    if store is None or stream is None:
        return candidate.predict(samples)
    keys = [(s.id, input_hash(s)) for s in samples]
    cached = store.get_predictions(candidate.fingerprint, keys)
    predictions = [cached.get(key, "") for key in keys]
    todo = [i for i, key in enumerate(keys) if key not in cached]
    if todo:
        for position, prediction in stream([samples[i] for i in todo]):
            index = todo[position]
            predictions[index] = prediction
            if prediction.strip():
                store.put_predictions(candidate.fingerprint, [(keys[index][0], keys[index][1], prediction)])
    return predictions
