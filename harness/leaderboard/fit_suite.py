"""Probe-matched validation suites: rows of a large pool chosen so that the probes score there what they
scored on the leaderboard.

The 3rd, 4th and 7th places built their local validation set this way (greedily minimising Σ or max
|local − LB| over 8-76 probes; the 7th place credits it with 0.68 → 0.70). Here:

- **targets**: with Kaggle's scorer (st5) a probe's target is its leaderboard score itself; with another
  embedder (scales differ) it is the leaderboard score through the inverse of the linear leaderboard map
  fitted on the pool, t = (LB − intercept) / slope. The probes used are those the leaderboard model keeps
  (harness.leaderboard.model: the ones the embedder cannot judge are set aside first).
- **greedy** (default, the teams' method): add, one at a time, the pool row that most reduces
  Σ_j |mean_j(selected) − t_j|, until `size` rows. Deterministic; the seed only orders ties.
- **weights**: entropy balancing (Hainmueller 2012): the weights closest to uniform (in KL divergence) whose
  weighted probe means match the targets, w_i ∝ exp(S_i·λ), with λ found by `scipy.optimize.minimize` on
  the convex dual (a small ridge keeps it finite when the targets cannot be met exactly); then `size`
  distinct rows are drawn with inclusion probabilities ∝ w, capped at 1 (systematic sampling, seeded).
- **honest check**: leave-one-probe-out. For each probe, the suite is rebuilt from the other probes only
  and the held-out probe is predicted from its mean on that suite (through the map refitted on the other
  probes when the embedder is not Kaggle's). The same is done on the unfitted pool. When the fitted suite's
  LOO error is not below the pool's, `helps` is False and the message says so plainly.

The suite is written as JSONL or CSV (by the suffix) with Kaggle's column names, and a sidecar
`<out stem>.provenance.json`: source suite and fingerprint, probe book and hash, seed, method, size, the
probes used and set aside, and the LOO numbers.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data import Suite
from harness.errors import ConfigError
from harness.files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from harness.leaderboard.model import MIN_PROBES, fit_map
from harness.stats import spearman

METHODS = ("greedy", "weights")
MAPS = ("auto", "identity", "linear")
#: ridge on the entropy-balancing dual: trades exact matching for finite, smooth weights
WEIGHTS_RIDGE = 1e-3


def greedy_rows(scores: np.ndarray, targets: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Indices of `size` distinct rows chosen greedily to minimise Σ_j |mean_j − t_j| (see module docstring)."""
    n, k = scores.shape
    if not 0 < size <= n:
        raise ConfigError(f"--size must be between 1 and the pool's {n} rows, got {size}")
    order = np.random.default_rng(seed).permutation(n)  # ties go to the first in a seeded order
    pool = scores[order]
    available = np.ones(n, dtype=bool)
    total = np.zeros(k)
    chosen = np.empty(size, dtype=np.intp)
    for step in range(size):
        objective = np.abs((total + pool) / (step + 1) - targets).sum(axis=1)
        objective[~available] = np.inf
        best = int(np.argmin(objective))
        chosen[step] = best
        available[best] = False
        total += pool[best]
    return order[chosen]


def balancing_weights(scores: np.ndarray, targets: np.ndarray, *, ridge: float = WEIGHTS_RIDGE) -> np.ndarray:
    """Entropy-balancing weights (sum 1): closest to uniform whose weighted means approach `targets`."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    centred = scores - targets  # the dual of "weighted mean = target" is min log Σ exp((S − t)·λ)
    scale = max(float(np.abs(centred).max()), 1e-12)
    z = centred / scale

    def dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        logits = z @ lam
        w = softmax(logits)
        return float(logsumexp(logits) + 0.5 * ridge * lam @ lam), z.T @ w + ridge * lam

    found = minimize(dual, np.zeros(scores.shape[1]), jac=True, method="L-BFGS-B")
    return softmax(z @ found.x)


def inclusion_probabilities(weights: np.ndarray, size: int) -> np.ndarray:
    """Per-row inclusion probabilities proportional to `weights`, capped at 1, summing to `size` (the
    standard πps design: a row whose share exceeds 1/size is taken for certain, the rest share the remainder)."""
    p = np.zeros_like(weights, dtype=float)
    certain = np.zeros(weights.size, dtype=bool)
    while True:
        rest = weights[~certain].sum()
        p[~certain] = (size - certain.sum()) * weights[~certain] / rest if rest > 0 else 0.0
        over = ~certain & (p >= 1.0)
        if not over.any():
            break
        certain |= over
        p[certain] = 1.0
    return np.clip(p, 0.0, 1.0)


def weighted_rows(scores: np.ndarray, targets: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """`size` distinct rows drawn with probability ∝ the balancing weights (capped at 1), by systematic
    sampling over a seeded shuffle of the rows: each row's chance of inclusion is its probability, and the
    realised family mix stays close to the weighted one."""
    n = scores.shape[0]
    if not 0 < size <= n:
        raise ConfigError(f"--size must be between 1 and the pool's {n} rows, got {size}")
    p = inclusion_probabilities(balancing_weights(scores, targets), size)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    edges = np.cumsum(p[order])
    edges *= size / edges[-1]  # the sum is `size` up to rounding, which must not drop the last row
    points = rng.random() + np.arange(size)
    picked = order[np.minimum(np.searchsorted(edges, points, side="right"), n - 1)]
    return np.sort(np.unique(picked))


def select_rows(scores: np.ndarray, targets: np.ndarray, size: int, *, method: str = "greedy",
                seed: int = 0) -> np.ndarray:
    if method == "greedy":
        return np.sort(greedy_rows(scores, targets, size, seed=seed))
    if method == "weights":
        return weighted_rows(scores, targets, size, seed=seed)
    raise ConfigError(f"unknown fit-suite method {method!r}; expected one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class SuiteMatch:
    """A probe-matched suite: the chosen pool rows and how well the suite predicts held-out probes."""

    rows: np.ndarray
    method: str
    map: str
    size: int
    seed: int
    probes: tuple[str, ...]
    loo: tuple[dict, ...]
    source_loo: tuple[dict, ...]
    loo_mae: float
    loo_spearman: float | None
    source_loo_mae: float
    source_loo_spearman: float | None
    seconds: float

    @property
    def helps(self) -> bool:
        return self.loo_mae < self.source_loo_mae

    def verdict(self) -> str:
        if self.helps:
            return (f"the probe-matched suite predicts held-out probes better than the pool: LOO MAE "
                    f"{self.loo_mae:.4f} vs {self.source_loo_mae:.4f}")
        return (f"fitting does not help: the probe-matched suite's LOO MAE is {self.loo_mae:.4f}, the unfitted "
                f"pool's {self.source_loo_mae:.4f}; keep using the pool")


def _targets(map_kind: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, object]:
    """Local-scale targets for the probes and the map used (None for identity)."""
    if map_kind == "identity":
        return y.copy(), None
    line = fit_map("linear", x, y)
    if line.slope <= 0:
        raise ConfigError("the probes' pool scores do not rise with their leaderboard scores (the linear map is "
                          "flat: a falling fit is never used): this embedder does not rank these probes, so no "
                          "choice of rows can be matched to them through the map")
    return (y - line.intercept) / line.slope, line


def _predict_from(map_kind: str, x_others: np.ndarray, y_others: np.ndarray, x_held: float) -> float:
    if map_kind == "identity":
        return float(x_held)
    return float(fit_map("linear", x_others, y_others).predict(x_held))


def match_suite(names: Sequence[str], scores: np.ndarray, leaderboard: Sequence[float], *, size: int,
                method: str = "greedy", map_kind: str = "linear", seed: int = 0) -> SuiteMatch:
    """Choose `size` rows of the pool (`scores`: rows × probes, the probes to match) and measure, leaving
    each probe out in turn, whether the chosen suite predicts it better than the pool does."""
    if map_kind not in ("identity", "linear"):
        raise ConfigError(f"unknown map {map_kind!r} for fit-suite; expected identity or linear")
    started = time.perf_counter()
    scores = np.asarray(scores, dtype=float)
    y = np.asarray(leaderboard, dtype=float)
    k = y.size
    if k < MIN_PROBES:
        raise ConfigError(f"fit-suite needs at least {MIN_PROBES} probes to match, got {k}")
    x = scores.mean(axis=0)
    targets, _ = _targets(map_kind, x, y)
    rows = select_rows(scores, targets, size, method=method, seed=seed)
    loo, source = [], []
    for j in range(k):
        others = np.arange(k) != j
        held_targets, _ = _targets(map_kind, x[others], y[others])
        chosen = select_rows(scores[:, others], held_targets, size, method=method, seed=seed)
        suite_means = scores[chosen].mean(axis=0)
        predicted = _predict_from(map_kind, suite_means[others], y[others], suite_means[j])
        pool_predicted = _predict_from(map_kind, x[others], y[others], x[j])
        loo.append({"probe": names[j], "leaderboard_score": float(y[j]), "predicted": round(predicted, 6),
                    "local_mean": round(float(suite_means[j]), 6), "error": round(predicted - float(y[j]), 6)})
        source.append({"probe": names[j], "leaderboard_score": float(y[j]), "predicted": round(pool_predicted, 6),
                       "local_mean": round(float(x[j]), 6), "error": round(pool_predicted - float(y[j]), 6)})
    return SuiteMatch(
        rows=rows, method=method, map=map_kind, size=size, seed=seed, probes=tuple(names), loo=tuple(loo),
        source_loo=tuple(source), loo_mae=float(np.mean([abs(r["error"]) for r in loo])),
        loo_spearman=spearman([r["predicted"] for r in loo], list(y)),
        source_loo_mae=float(np.mean([abs(r["error"]) for r in source])),
        source_loo_spearman=spearman([r["predicted"] for r in source], list(y)),
        seconds=time.perf_counter() - started)


def provenance_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.provenance.json")


def write_matched_suite(out: str | Path, pool: Suite, match: SuiteMatch, provenance: dict) -> tuple[Path, Path]:
    """Write the chosen rows (JSONL or CSV by suffix, Kaggle column names) and the provenance sidecar."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ConfigError(f"--out must end in .jsonl or .csv, got {out}")
    columns = ["id", "original_text", "rewrite_prompt", "rewritten_text"] + (["group"] if pool.has_groups else [])
    records = []
    for i in match.rows:
        s = pool.samples[int(i)]
        record = {"id": s.id, "original_text": s.original_text, "rewrite_prompt": s.rewrite_prompt,
                  "rewritten_text": s.rewritten_text}
        if pool.has_groups:
            record["group"] = s.group if s.group is not None else ""
        records.append(record)
    if suffix == ".jsonl":
        write_jsonl_atomic(out, records)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        write_text_atomic(out, buffer.getvalue())
    sidecar = write_json_atomic(provenance_path(out), provenance)
    return out, sidecar
