"""Hard-sample mining: keep the rows of a pool that today's best candidates get wrong.

Every candidate is scored on the pool with the harness itself (`harness.evaluation.evaluate`: the same
embedder, the same caches), each row's best score over the candidates is taken, and a row is kept when
that best score is below `threshold` and/or in the bottom `quantile` of best scores. Rows that no
candidate answered at all are left out: they measure a failed request, not a hard row.

The kept rows are written as a suite (Kaggle columns, `group`, the source row's provenance, and a
`mining` record of every candidate's score), with the `suites.toml` entry that points at it, and a
markdown report of the score distribution before and after.

Selection bias, stated in every report: rows were chosen *because* these candidates scored low on them,
so these candidates' scores on the mined suite are biased downwards (regression to the mean): use the
suite to compare other or later candidates, and re-mine with a fresh pool for the next round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tabulate import tabulate

from harness.errors import ConfigError, HarnessError
from harness.files import toml_table
from harness.generate.jsonl import read_jsonl

if TYPE_CHECKING:
    from harness.candidates.base import Candidate
    from harness.data import Suite
    from harness.embedders import Embedder
    from harness.evaluation import BootstrapSettings, Result
    from harness.store import Store

DEFAULT_QUANTILE = 0.25
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class Mining:
    """The outcome: per-candidate scores on the pool, each row's best, and which rows were kept."""

    pool: Suite
    results: tuple[Result, ...]
    best: np.ndarray
    best_candidate: tuple[str, ...]
    answered: np.ndarray
    kept: np.ndarray
    threshold: float | None
    quantile: float | None
    cut: float

    @property
    def rule(self) -> str:
        parts = []
        if self.threshold is not None:
            parts.append(f"best score < {self.threshold:g}")
        if self.quantile is not None:
            parts.append(f"best score <= {self.cut:.4f} (bottom {self.quantile:.0%})")
        return " and ".join(parts)

    @property
    def embedder(self) -> str:
        return self.results[0].embedder


def best_of(results: Sequence[Result]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per row: the best score over the candidates, the candidate that reached it, and whether any
    candidate answered (a non-empty prediction). All results must be on the same rows."""
    if not results:
        raise ConfigError("mining needs at least one candidate")
    ids = results[0].ids
    for result in results[1:]:
        if result.ids != ids:
            raise HarnessError(f"candidates '{results[0].candidate}' and '{result.candidate}' were scored on different rows")
        if result.embedder_fingerprint != results[0].embedder_fingerprint:
            raise HarnessError("mining compares scores of one embedder only")
    scores = np.stack([r.scores for r in results])
    answered = np.stack([[bool(p.strip()) for p in r.predictions] for r in results])
    scores = np.where(answered, scores, -np.inf)
    which = scores.argmax(axis=0)
    best = scores.max(axis=0)
    any_answer = answered.any(axis=0)
    best = np.where(any_answer, best, 0.0)
    return best, [results[k].candidate for k in which], any_answer


def select_hard(best: np.ndarray, answered: np.ndarray, *, threshold: float | None = None,
                quantile: float | None = None) -> tuple[np.ndarray, float]:
    """The mask of kept rows and the quantile cut used (see the module docstring). With neither rule
    given, the bottom `DEFAULT_QUANTILE` is kept."""
    if threshold is None and quantile is None:
        quantile = DEFAULT_QUANTILE
    if quantile is not None and not 0.0 < quantile <= 1.0:
        raise ConfigError(f"quantile must be in (0, 1], got {quantile!r}")
    if threshold is not None and not np.isfinite(threshold):
        raise ConfigError(f"threshold must be a number, got {threshold!r}")
    keep = answered.copy()
    cut = float("nan")
    if threshold is not None:
        keep &= best < threshold
    if quantile is not None:
        cut = float(np.quantile(best[answered], quantile, method="lower")) if answered.any() else float("nan")
        keep &= best <= cut
    return keep, cut


def mine(pool: Suite, candidates: Sequence[Candidate], embedder: Embedder, *, store: Store | None = None,
         threshold: float | None = None, quantile: float | None = None,
         bootstrap: BootstrapSettings | None = None) -> Mining:
    """Score every candidate on `pool` and select its hard rows."""
    from harness.evaluation import BootstrapSettings, evaluate

    settings = bootstrap or BootstrapSettings(n_resamples=2000)
    results = tuple(evaluate(c, pool, embedder, store=store, bootstrap=settings) for c in candidates)
    best, which, answered = best_of(results)
    kept, cut = select_hard(best, answered, threshold=threshold, quantile=quantile)
    if not kept.any():
        raise HarnessError(f"no row of suite '{pool.name}' meets the mining rule (threshold {threshold}, quantile "
                           f"{quantile}); best scores range {best.min():.3f}-{best.max():.3f}: loosen the rule")
    return Mining(pool, results, best, tuple(which), answered, kept, threshold, quantile, cut)


def mined_rows(mining: Mining, source_records: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The kept rows as JSON records (Kaggle fields, group, provenance of the source row, mining info)."""
    rows = []
    for index in np.flatnonzero(mining.kept):
        sample = mining.pool.samples[index]
        source = dict((source_records or {}).get(sample.id, {}))
        row = {"id": sample.id, "original_text": sample.original_text, "rewrite_prompt": sample.rewrite_prompt,
               "rewritten_text": sample.rewritten_text, "group": sample.group}
        for key, value in source.items():
            row.setdefault(key, value)
        row["mining"] = {
            "pool": mining.pool.name, "pool_fingerprint": mining.pool.fingerprint, "rule": mining.rule,
            "embedder": mining.embedder, "embedder_fingerprint": mining.results[0].embedder_fingerprint,
            "best_score": round(float(mining.best[index]), 6), "best_candidate": mining.best_candidate[index],
            "scores": {r.candidate: round(float(r.scores[index]), 6) for r in mining.results}}
        rows.append(row)
    return rows


def source_records(path: str | Path) -> dict[str, dict[str, Any]]:
    """Records of a JSONL pool by id (to carry their provenance over); {} for other formats."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file():
        return {}
    return {str(r["id"]): r for r in read_jsonl(path) if "id" in r}


def suite_entry(name: str, data_path: Path, suites_file: Path, description: str) -> str:
    """The `[suites.NAME]` TOML entry for the mined file (path relative to the suites file when possible)."""
    try:
        shown = Path(data_path).resolve().relative_to(Path(suites_file).resolve().parent).as_posix()
    except ValueError:
        shown = Path(data_path).resolve().as_posix()
    return toml_table("suites", name, {"path": shown, "description": " ".join(description.split()),
                                       "columns": {"group": "group"}})


# -- the report ------------------------------------------------------------------------------------
def _describe(values: np.ndarray) -> list[str]:
    if values.size == 0:
        return ["0", "—"] + ["—"] * len(QUANTILES)
    return [str(values.size), f"{values.mean():.4f}"] + [f"{q:.4f}" for q in np.quantile(values, QUANTILES)]


def _histogram(before: np.ndarray, after: np.ndarray, bins: int = 10) -> list[list[str]]:
    top = max(1.0, float(before.max(initial=0.0)))
    edges = np.linspace(0.0, top, bins + 1)
    counts_before, _ = np.histogram(before, edges)
    counts_after, _ = np.histogram(after, edges)
    widest = max(1, int(counts_before.max(initial=0)))
    return [[f"[{edges[i]:.1f}, {edges[i + 1]:.1f}{']' if i == bins - 1 else ')'}", str(counts_before[i]),
             str(counts_after[i]), "█" * round(20 * counts_before[i] / widest),
             "█" * round(20 * counts_after[i] / widest)] for i in range(bins)]


def mining_report(mining: Mining, *, out_path: str | Path | None = None, suite_name: str | None = None) -> str:
    """Markdown: the rule, the distribution of best scores before and after, per-candidate means,
    kept rows per group, and the selection-bias caveat."""
    before = mining.best[mining.answered]
    after = mining.best[mining.kept]
    lines = [f"# Hard-sample mining of suite `{mining.pool.name}`", "",
             f"- rule: {mining.rule}",
             f"- embedder: `{mining.embedder}` ({mining.results[0].embedder_fingerprint})"
             + ("" if mining.results[0].comparable_with_kaggle else " — not comparable with the Kaggle leaderboard"),
             f"- candidates: {', '.join(f'`{r.candidate}`' for r in mining.results)}",
             f"- kept {int(mining.kept.sum())} of {len(mining.best)} rows"
             + (f"; {int((~mining.answered).sum())} rows no candidate answered were left out"
                if (~mining.answered).any() else ""),
             *( [f"- written to `{out_path}`" + (f" as suite `{suite_name}`" if suite_name else "")] if out_path else []),
             "", "## Best score per row", "",
             tabulate([["before (pool)", *_describe(before)], ["after (kept)", *_describe(after)]],
                      headers=["", "n", "mean", *[f"p{int(q * 100)}" for q in QUANTILES]], tablefmt="github"),
             "", tabulate(_histogram(before, after), headers=["best score", "before", "after", "before", "after"],
                          tablefmt="github"),
             "", "## Per candidate (mean SCS)", "",
             tabulate([[r.candidate, f"{r.scores.mean():.4f}", f"{r.scores[mining.kept].mean():.4f}",
                        str(sum(1 for c in np.array(mining.best_candidate)[mining.kept] if c == r.candidate))]
                       for r in mining.results], headers=["candidate", "pool", "kept rows", "best on kept rows"],
                      tablefmt="github")]
    groups = [s.group or "(none)" for s in mining.pool.samples]
    if any(s.group for s in mining.pool.samples):
        totals: dict[str, list[int]] = {}
        for group, keep in zip(groups, mining.kept):
            totals.setdefault(group, [0, 0])
            totals[group][0] += 1
            totals[group][1] += int(keep)
        ranked = sorted(totals.items(), key=lambda item: (-item[1][1] / item[1][0], -item[1][0], item[0]))
        lines += ["", "## Kept rows per group (hardest first, top 20)", "",
                  tabulate([[g, t, k, f"{k / t:.0%}"] for g, (t, k) in ranked[:20]],
                           headers=["group", "pool", "kept", "share"], tablefmt="github")]
    lines += ["", "**Selection bias.** These rows were chosen because the candidates above scored low on them, "
              "so their scores on the mined suite are biased downwards (regression to the mean). Compare other "
              "or later candidates on it, and mine a fresh pool for the next round.", ""]
    return "\n".join(lines)
