"""The prediction cache: a rerun, or a run killed half way, never pays for the same prediction twice.

Predictions are keyed by (candidate fingerprint, sample id, input hash); the input hash covers what the
candidate reads of a row (original and rewritten text), so an edited row is asked again. Each answer is
written to the store as soon as the candidate yields it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.candidates.base import Candidate
from harness.data import Sample
from harness.hashing import text_hash
from harness.store import Store


def input_hash(sample: Sample) -> str:
    """What a candidate sees of a row: its original and rewritten text (never the answer)."""
    return text_hash(sample.original_text + "\x00" + sample.rewritten_text)


def predict_with_cache(candidate: Candidate, samples: Sequence[Sample], store: Store | None, *,
                       on_progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Predictions for `samples`, reading and filling the store's cache for streaming candidates.

    Cheap candidates (constant, predictions file) are simply called. Empty answers are not cached, so a
    rerun retries exactly the rows that failed. `on_progress(done, total)` is called first with the rows
    already answered (for a streaming candidate: those found in the cache), then as answers arrive.
    """
    report = on_progress or (lambda done, total: None)
    total = len(samples)
    stream = getattr(candidate, "predict_stream", None)
    if store is None or stream is None:
        report(0, total)
        predictions = candidate.predict(samples)
        report(total, total)
        return predictions
    keys = [(s.id, input_hash(s)) for s in samples]
    cached = store.get_predictions(candidate.fingerprint, keys)
    predictions = [cached.get(key, "") for key in keys]
    todo = [i for i, key in enumerate(keys) if key not in cached]
    done = total - len(todo)
    report(done, total)
    if todo:
        for position, prediction in stream([samples[i] for i in todo]):
            index = todo[position]
            predictions[index] = prediction
            if prediction.strip():
                store.put_predictions(candidate.fingerprint, [(keys[index][0], keys[index][1], prediction)])
            done += 1
            report(done, total)
    return predictions
