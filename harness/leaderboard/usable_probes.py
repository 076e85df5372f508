"""Which probes (and answers) an embedder can judge: the rules that set probes aside before a leaderboard
model is fitted, and the "not judged" verdict for a candidate whose answers rely on strings only Kaggle's
scorer reads.

An embedder other than sentence-t5 cannot see sentence-t5's token quirks: the 1st place's "lucrarea"
suffix, a literal `</s>`, SentencePiece "▁" markers, strings searched against sentence-t5's vocabulary.
Under MiniLM on 4,483 real rows the public constant probes rank at Spearman −0.13 against the
leaderboard (issue 10), and a map fitted on them predicts natural-language submissions anti-correlated.
So a leaderboard model first sets aside the probes its embedder cannot judge, by three rules, in order:

1. `scorer-specific` (only for an embedder that is not Kaggle's): the probe's answers contain a known
   scorer-specific string (`SCORER_SPECIFIC`), or a string the user declared for it.
2. `vocabulary` (same): less than `VOCABULARY_MIN_SHARE` of the words of its answers are whole words of
   the embedder's own tokenizer vocabulary. A word the vocabulary lacks is split into pieces whose
   embedding says little about what sentence-t5 made of it; natural instructions are 95-100% vocabulary
   words, searched strings far less (bench/calibrate.py prints each probe's share).
3. `residual`: its leave-one-out residual under a robust line (Siegel's repeated medians, which
   tolerates up to half the probes being wrong) is more than `RESIDUAL_K` robust standard deviations
   (1.4826·MAD of the residuals), and more than `RESIDUAL_K`·leaderboard noise: the probe disagrees with
   what the others say about the map. This is the data-driven rule; it needs `MIN_FOR_RESIDUALS` probes,
   and evidence that the embedder ranks them at all (Kendall's τ of local vs leaderboard scores > 0 at
   one-sided p < `RANKING_P`): without it the robust line is flat noise, and calling one probe the odd one
   out would remove the only informative one (under MiniLM on the real rows: the {original_text} probe at
   0.38, far below constants that MiniLM cannot rank among themselves).

Rules 1-2 need no leaderboard score, so they also apply to a candidate being predicted; rule 3 needs the
score, so it applies to probes only. Each set-aside probe carries its rule and a reason a person can read.

`not_judged`: on an embedder that is not Kaggle's scorer, a candidate whose answers contain a known
scorer-specific string or one declared for it in candidates.toml (`scorer_specific = [...]`,
`declared_strings`) gets the verdict NOT_JUDGED instead of a regression or an improvement: this embedder
cannot see what those strings do. The paired numbers stay in the comparison, for information.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from harness.stats import loo_residuals, robust_sd
from harness.verdict import NOT_JUDGED, Comparison

if TYPE_CHECKING:
    from harness.evaluation import Result

#: Strings Kaggle's scorer (TF-Hub sentence-t5-base) reads in its own way: known to change its score, and
#: invisible to (or misread by) another embedder. Matched case-insensitively.
SCORER_SPECIFIC: Mapping[str, str] = {
    "lucrarea": "the lucrarea string (the 1st place's sentence-t5 suffix)",
    "</s>": "the end-of-sequence string </s>",
    "<pad>": "the special-token string <pad>",
    "<unk>": "the special-token string <unk>",
    "<extra_id_": "sentence-t5 sentinel strings <extra_id_N>",
    "\u2581": "SentencePiece '\u2581' markers",
}
#: at least 4 words in 5 must be words of the embedder's vocabulary (bench/calibrate.py measures others)
VOCABULARY_MIN_SHARE = 0.8
RESIDUAL_K = 3.0
MIN_FOR_RESIDUALS = 5
#: the residual rule applies only when the probes' local scores rank them like the leaderboard at this level
RANKING_P = 0.1
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class SetAside:
    """A probe left out of the fit: which rule, and why in words."""

    probe: str
    rule: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"probe": self.probe, "rule": self.rule, "reason": self.reason}


def scorer_specific_hits(texts: Sequence[str], declared: Iterable[str] = ()) -> dict[str, int]:
    """For each known (or `declared`) scorer-specific string found in `texts`: how many texts contain it."""
    lowered = [t.lower() for t in texts]
    hits: dict[str, int] = {}
    for marker in (*SCORER_SPECIFIC, *declared):
        needle = marker.lower()
        count = sum(needle in t for t in lowered)
        if count:
            hits[marker] = count
    return hits


def describe_hits(hits: Mapping[str, int], n_texts: int) -> str:
    """'the lucrarea string (64 of 64 rows)', joined with 'and'."""
    parts = []
    for marker, count in hits.items():
        what = SCORER_SPECIFIC.get(marker, f"the declared scorer-specific string {marker!r}")
        parts.append(what if n_texts == 1 else f"{what} ({count} of {n_texts} rows)")
    return " and ".join(parts)


def embedder_vocabulary(embedder: object) -> frozenset[str] | None:
    """The whole words of the embedder's tokenizer vocabulary, lower-cased, or None when it has none to read.

    An embedder may offer `vocabulary()` itself; a sentence-transformers embedder's tokenizer is read
    (WordPiece continuation pieces `##…` are not words; SentencePiece's leading '▁' marks a word start).
    """
    offered = getattr(embedder, "vocabulary", None)
    if callable(offered):
        return frozenset(w.lower() for w in offered())
    load = getattr(embedder, "load", None)
    if load is None:
        return None
    tokenizer = getattr(load(), "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        return None
    words = set()
    for token in tokenizer.get_vocab():
        if token.startswith("##"):
            continue
        token = token.lstrip("\u2581")
        if _WORD.fullmatch(token):
            words.add(token.lower())
    return frozenset(words)


def vocabulary_share(texts: Sequence[str], vocabulary: frozenset[str]) -> float:
    """The share of the words (runs of letters) of `texts` that are whole words of `vocabulary`; 1.0 when
    there are no words."""
    words = [w for t in texts for w in _WORD.findall(t.lower())]
    if not words:
        return 1.0
    return sum(w in vocabulary for w in words) / len(words)


def answer_rules(name: str, answers: Sequence[str], *, comparable_with_kaggle: bool,
                 vocabulary: frozenset[str] | None, declared: Iterable[str] = (),
                 min_share: float = VOCABULARY_MIN_SHARE) -> SetAside | None:
    """Rules 1 and 2 (see the module docstring) for one probe's answers; None when neither applies."""
    if comparable_with_kaggle:
        return None
    hits = scorer_specific_hits(answers, declared)
    if hits:
        return SetAside(name, "scorer-specific", f"its answers contain {describe_hits(hits, len(answers))}, "
                                                 "which only Kaggle's scorer reads as it does")
    if vocabulary is not None:
        share = vocabulary_share(answers, vocabulary)
        if share < min_share:
            return SetAside(name, "vocabulary", f"only {share:.0%} of its words are words of the embedder's "
                                                f"vocabulary (< {min_share:.0%}): a string searched against "
                                                "another tokenizer reads as noise here")
    return None


def residual_rule(names: Sequence[str], x: np.ndarray, y: np.ndarray, *, leaderboard_noise: float,
                  k: float = RESIDUAL_K) -> list[SetAside]:
    """Rule 3: the probes whose leave-one-out robust residual is an outlier (see the module docstring)."""
    if len(names) < MIN_FOR_RESIDUALS:
        return []
    from scipy.stats import kendalltau

    if kendalltau(x, y, alternative="greater").pvalue >= RANKING_P:
        return []  # the embedder does not rank these probes as the leaderboard does: none is "the odd one"
    residuals = loo_residuals(x, y)
    scale = robust_sd(residuals)
    threshold = max(k * scale, k * leaderboard_noise)
    return [SetAside(name, "residual",
                     f"its leaderboard score is {r:+.3f} from what the other probes' robust line predicts "
                     f"(threshold ±{threshold:.3f} = {k:g} × max(robust sd {scale:.3f}, leaderboard noise "
                     f"{leaderboard_noise:g})): this embedder ranks it unlike the others")
            for name, r in zip(names, residuals) if abs(r) > threshold]


def declared_strings(entries: Mapping[str, Mapping], spec: str) -> list[str]:
    """The `scorer_specific` strings declared for candidate `spec` in candidates.toml, and for the members
    of an ensemble (their answers are part of its answers), recursively."""
    found: list[str] = []
    seen: set[str] = set()
    pending = [spec]
    while pending:
        name = pending.pop()
        if name in seen or name not in entries:
            continue
        seen.add(name)
        entry = entries[name]
        found += [s for s in entry.get("scorer_specific", ()) if s not in found]
        pending += [m for m in entry.get("members", ()) if isinstance(m, str)]
    return found


def not_judged(comparison: Comparison | None, result: Result, declared: Sequence[str] = ()) -> Comparison | None:
    """The comparison, turned NOT_JUDGED when this embedder cannot judge the candidate's answers."""
    if comparison is None or result.comparable_with_kaggle or comparison.delta is None:
        return comparison
    hits = scorer_specific_hits(result.predictions, declared)
    if not hits:
        return comparison
    numbers = (f"local Δ {comparison.delta:+.4f} [{comparison.delta_low:+.4f}, {comparison.delta_high:+.4f}] vs "
               f"baseline '{comparison.baseline_candidate}', for information")
    message = (f"cannot be judged by {result.embedder}: its answers rely on {describe_hits(hits, result.n)}, which "
               f"{result.embedder} cannot see as Kaggle's scorer does; check it with st5 or by its predicted "
               f"leaderboard score ({numbers})")
    return replace(comparison, status=NOT_JUDGED, raw_status=NOT_JUDGED, message=message)
