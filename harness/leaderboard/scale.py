"""The map from an offline embedder's per-row scores to sentence-t5's (Kaggle's) scale, with an honest interval.

Offline, every number is on the embedder's own scale: a Mistral model's prompts score 0.117 under MiniLM
on rows where sentence-t5-base gives 0.618. Public files exist in which every row carries its real
sentence-t5 score. From them a per-row map is fitted, st5 ≈ b0 + b1·|cos|³ + b2·|cos| (|cos| read back
from the row's SCS score, so an estimate costs no embedding), and a result's mean on Kaggle's scale is
the mean of the mapped rows.

Honesty, in three parts:
- **Files with only high rows.** A file that kept only rows above a threshold (`kept_above`, e.g. the
  public Mistral predictions above 0.70) is fitted by truncated-normal likelihood: the density of each
  kept row given that it was kept. A least-squares fit on such rows flattens the map (rows below the
  threshold are missing for low |cos| only). Its rows are checked against E[st5 | features, st5 > threshold].
- **Between generators.** `cross_file_validation` fits on every file but one and checks the one left
  out: per-row Pearson, MAE and the error of the mean. The root mean square of those mean errors is the
  map's `shift_sd`: how far a new generator's mean may sit from the map. It needs at least two files.
- **The suite's rows.** The interval adds the sampling error of the suite's mean of st5 scores (the mapped
  rows' spread plus the map's residual spread, clustered by group when the suite has groups).

Domain (`domain_problem`): the maps underestimate constant "mean prompts" by 0.03–0.12 on the leaderboard
(sentence-t5 rates generic prompts closer to real prompts than other embedders do), and cannot see scorer
tricks (lucrarea, `</s>`), so those get no estimate, with the reason: scorer-specific strings (the rule of
`usable_probes`), a constant answer, a near-constant answer set (its diversity under `NEAR_CONSTANT_SHARE` of
the least diverse fitted file's), answers that are not prompts (their closeness to the true prompts'
centre under the same share of the least prompt-like fitted file's: the original texts as answers), or a
typical row unlike the fitted rows (mean |cos| outside the fitted files' 5th–95th percentiles).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, DataError

FORMAT = "prh-st5-scale/1"
#: per-row features after the intercept: |cos|³ (the row's SCS) and |cos|
FEATURES = ("cos3", "cos")
#: two-sided 95% normal quantile
Z95 = 1.959963984540054
#: a prediction set less diverse than this share of the least diverse fitted file's is near-constant
NEAR_CONSTANT_SHARE = 0.5
#: percentiles of the fitted rows' |cos| between which a candidate's mean |cos| must lie
FEATURE_PERCENTILES = (5.0, 95.0)
#: the maps underestimate constant mean prompts by this much on the leaderboard (issue 18's measurement)
CONSTANT_BIAS = "0.03–0.12"


# -- rows ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredRows:
    """One file's rows: the offline embedder's per-row SCS, the real sentence-t5 score, and the diversity of
    its prediction set (see `diversity`). `kept_above`: the file kept only rows whose st5 score exceeds it."""

    name: str
    scores: np.ndarray
    st5: np.ndarray
    diversity: float
    prompt_likeness: float
    kept_above: float | None = None
    file_hash: str = ""
    #: distinct answers per distinct true prompt
    distinct_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.scores.shape != self.st5.shape or self.scores.ndim != 1 or self.scores.size < 3:
            raise ValueError(f"{self.name}: need at least 3 rows with one score and one st5 score each")


def features(scores: np.ndarray) -> np.ndarray:
    """(n, 3): intercept, |cos|³ and |cos| of each row, from its (signed or unsigned) SCS score."""
    cube = np.abs(np.asarray(scores, dtype=np.float64))
    return np.column_stack([np.ones_like(cube), cube, np.cbrt(cube)])


def diversity(prediction_vectors: np.ndarray) -> float:
    """Mean cosine distance between two different predictions (unit vectors): 0 for a constant answer,
    about 1 − (typical cosine between unrelated prompts) for a varied one. n/(n−1)·(1 − ‖mean vector‖²)."""
    vectors = np.asarray(prediction_vectors, dtype=np.float64)
    n = vectors.shape[0]
    if n < 2:
        return 0.0
    return float(max(0.0, n / (n - 1) * (1.0 - float(np.sum(vectors.mean(axis=0) ** 2)))))


def distinct_ratio(predictions: Sequence[str], truths: Sequence[str]) -> float:
    """Distinct answers per distinct true prompt (a perfect recovery: 1; a constant: 1/distinct prompts)."""
    return len({p.strip() for p in predictions}) / max(1, len({t.strip() for t in truths}))


def prompt_likeness(prediction_vectors: np.ndarray, truth_vectors: np.ndarray) -> float:
    """How close the answers sit to the true prompts' centre, relative to the true prompts themselves:
    mean cos(answer, centre) / mean cos(truth, centre), with centre the normalised mean truth vector. About
    0.6–1.1 for recovered prompts, about 0.1–0.3 when the answers are the original texts (not prompts)."""
    truths = np.asarray(truth_vectors, dtype=np.float64)
    centre = truths.mean(axis=0)
    norm = float(np.linalg.norm(centre))
    if norm == 0 or len(prediction_vectors) == 0:
        return 0.0
    centre /= norm
    reference = float((truths @ centre).mean())
    return float((np.asarray(prediction_vectors, dtype=np.float64) @ centre).mean() / reference) if reference > 0 else 0.0


def read_scored_rows(path: str | Path, *, truth_column: str, prediction_column: str,
                     score_column: str) -> tuple[list[str], list[str], np.ndarray]:
    """(truths, predictions, st5 scores) of a table; errors name the file, row and column."""
    from harness.tables import field_text, read_table

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--rows file not found: {path}")
    table = read_table(path)
    for column in (truth_column, prediction_column, score_column):
        if column not in table.columns:
            raise DataError(path, f"no column {column!r} (columns: {', '.join(c for c in table.columns if c)}); "
                                  "name it with --truth-column, --prediction-column or --score-column")
    truths, predictions, scores = [], [], []
    for record in table.records:
        texts = []
        for column in (truth_column, prediction_column):
            text = field_text(path, record, column)
            if text is None or not text.strip():
                raise DataError(path, "empty text", row=record.row, line=record.line, column=column)
            texts.append(text)
        raw = field_text(path, record, score_column, numbers=True)
        try:
            value = float(raw) if raw is not None else math.nan
        except ValueError:
            value = math.nan
        if not (0.0 <= value <= 1.0):
            raise DataError(path, f"the sentence-t5 score must be a number in [0, 1], got {raw!r}", row=record.row,
                            line=record.line, column=score_column)
        truths.append(texts[0])
        predictions.append(texts[1])
        scores.append(value)
    if len(scores) < 3:
        raise DataError(path, f"only {len(scores)} rows: a scale map needs at least 3 per file")
    return truths, predictions, np.asarray(scores)


def embed_scored_rows(path: str | Path, embedder: Any, *, store: Any = None, truth_column: str = "gt_rewrite_prompt",
                      prediction_column: str = "rewrite_prompt", score_column: str = "score",
                      kept_above: float | None = None, on_progress: Any = None) -> ScoredRows:
    """A file's rows scored by `embedder` (through the store: a second fit embeds nothing)."""
    from harness.embedding_cache import embed_texts
    from harness.hashing import file_fingerprint
    from harness.metric import scs_rows

    truths, predictions, st5 = read_scored_rows(path, truth_column=truth_column, prediction_column=prediction_column,
                                                score_column=score_column)
    if kept_above is not None and not (st5 > kept_above).all():
        row = int(np.argmin(st5 > kept_above)) + 1
        raise DataError(path, f"the file is said to keep only rows above {kept_above:g}, but this row's score is "
                              f"{st5[row - 1]:g}", row=row, column=score_column)
    vectors = embed_texts(predictions + truths, embedder, store, on_progress=on_progress)
    answers, targets = vectors[:len(predictions)], vectors[len(predictions):]
    return ScoredRows(Path(path).name, scs_rows(answers, targets), st5, diversity(answers),
                      prompt_likeness(answers, targets), kept_above, file_fingerprint(path),
                      distinct_ratio(predictions, truths))


# -- the fit -----------------------------------------------------------------------------------------------
def fit_coefficients(files: Sequence[ScoredRows]) -> tuple[np.ndarray, float]:
    """(coefficients, residual sd) of st5 ≈ features·b + N(0, sd²): least squares when every file is complete;
    with a file that kept only rows above a threshold, the truncated-normal maximum likelihood (each kept
    row's density given that it was kept), started from least squares."""
    x = np.vstack([features(f.scores) for f in files])
    y = np.concatenate([f.st5 for f in files])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    sd = float(np.std(y - x @ coef, ddof=min(x.shape[1], y.size - 1)))
    if all(f.kept_above is None for f in files):
        return coef, sd
    from scipy import optimize, special

    floors = np.concatenate([np.full(f.st5.size, -np.inf if f.kept_above is None else f.kept_above) for f in files])
    truncated = np.isfinite(floors)

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """−Σ log(φ(r)/σ / P(kept)), r = (y − μ)/σ, P(kept) = 1 − Φ(α), α = (floor − μ)/σ; and its gradient."""
        scale = math.exp(theta[-1])
        mean = x @ theta[:-1]
        r = (y - mean) / scale
        alpha = np.where(truncated, (floors - mean) / scale, 0.0)
        log_kept = np.where(truncated, special.log_ndtr(-alpha), 0.0)
        mills = np.where(truncated, np.exp(-0.5 * alpha ** 2 - 0.5 * math.log(2 * math.pi) - log_kept), 0.0)
        value = float(np.sum(0.5 * r ** 2 + theta[-1] + log_kept))
        gradient = np.r_[x.T @ ((mills - r) / scale), np.sum(1.0 - r ** 2 + mills * alpha)]
        return value, gradient

    start = np.r_[coef, math.log(max(sd, 1e-4))]
    found = optimize.minimize(negative_log_likelihood, start, jac=True, method="BFGS")
    return found.x[:-1], float(math.exp(found.x[-1]))


def expected_st5(coef: np.ndarray, sd: float, scores: np.ndarray, kept_above: float | None = None) -> np.ndarray:
    """Each row's expected st5 score under the map; for a file that kept only rows above a threshold, the
    expectation given that the row was kept (what its rows can be checked against)."""
    mean = features(scores) @ coef
    if kept_above is None or sd <= 0:
        return mean
    from scipy import stats

    alpha = (kept_above - mean) / sd
    return mean + sd * np.exp(stats.norm.logpdf(alpha) - stats.norm.logsf(alpha))


@dataclass(frozen=True)
class FileCheck:
    """One file held out: the map fitted on the others, checked on its rows."""

    held_out: str
    rows: int
    pearson: float
    mae: float
    mean_error: float
    predicted_mean: float
    observed_mean: float
    kept_above: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def check_file(coef: np.ndarray, sd: float, held_out: ScoredRows) -> FileCheck:
    predicted = expected_st5(coef, sd, held_out.scores, held_out.kept_above)
    pearson = float(np.corrcoef(predicted, held_out.st5)[0, 1]) if np.std(predicted) > 0 else 0.0
    return FileCheck(held_out.name, int(held_out.st5.size), pearson, float(np.mean(np.abs(predicted - held_out.st5))),
                     float(predicted.mean() - held_out.st5.mean()), float(predicted.mean()), float(held_out.st5.mean()),
                     held_out.kept_above)


def cross_file_validation(files: Sequence[ScoredRows]) -> list[FileCheck]:
    """Leave one file out, for every file (at least two files)."""
    if len(files) < 2:
        raise ConfigError("cross-file validation needs at least two --rows files: with one, nothing measures how "
                          "far a new generator's predictions sit from the map")
    checks = []
    for index, held_out in enumerate(files):
        coef, sd = fit_coefficients([f for j, f in enumerate(files) if j != index])
        checks.append(check_file(coef, sd, held_out))
    return checks


def shift_sd(checks: Sequence[FileCheck]) -> float:
    """Root mean square of the held-out files' errors of the mean: the spread of a new generator's mean."""
    return math.sqrt(sum(c.mean_error ** 2 for c in checks) / len(checks))


# -- the stored map --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSummary:
    """What the map keeps of a fitted file: enough to review it, and the domain's reference points."""

    name: str
    rows: int
    file_hash: str
    kept_above: float | None
    st5_mean: float
    score_mean: float
    cos_low: float
    cos_high: float
    diversity: float
    prompt_likeness: float
    distinct_ratio: float = 1.0

    @classmethod
    def of(cls, rows: ScoredRows) -> FileSummary:
        cos = np.cbrt(np.abs(rows.scores))
        low, high = np.percentile(cos, FEATURE_PERCENTILES)
        return cls(rows.name, int(rows.st5.size), rows.file_hash, rows.kept_above, float(rows.st5.mean()),
                   float(rows.scores.mean()), float(low), float(high), float(rows.diversity),
                   float(rows.prompt_likeness), float(rows.distinct_ratio))


@dataclass(frozen=True)
class ScaleMap:
    """A fitted map for one embedder build (`embedder_fingerprint`), with its cross-file validation."""

    embedder: str
    embedder_fingerprint: str
    coefficients: tuple[float, ...]
    residual_sd: float
    shift_sd: float
    files: tuple[FileSummary, ...]
    validation: tuple[FileCheck, ...]
    features: tuple[str, ...] = FEATURES
    near_constant_share: float = NEAR_CONSTANT_SHARE
    created: str = ""
    command: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def min_diversity(self) -> float:
        """Below this a prediction set is near-constant: a share of the least diverse fitted file's."""
        return self.near_constant_share * min(f.diversity for f in self.files)

    @property
    def min_distinct_ratio(self) -> float:
        """Below this a prediction set is near-constant: a share of the least varied fitted file's distinct
        answers per distinct true prompt, counted at most as 1 (what a perfect recovery gives)."""
        return self.near_constant_share * min(1.0, *(f.distinct_ratio for f in self.files))

    @property
    def min_prompt_likeness(self) -> float:
        """Below this the answers are not prompts: a share of the least prompt-like fitted file's."""
        return self.near_constant_share * min(f.prompt_likeness for f in self.files)

    @property
    def cos_range(self) -> tuple[float, float]:
        return min(f.cos_low for f in self.files), max(f.cos_high for f in self.files)

    def describe(self) -> str:
        """'st5 ≈ 0.427 + 0.418·|cos| − 0.041·|cos|³ on 2 files (1,449 rows), cross-file mean error ±0.041'"""
        b0, b_cube, b_cos = self.coefficients
        rows = sum(f.rows for f in self.files)
        return (f"st5 ≈ {b0:.3f} {'+' if b_cos >= 0 else '−'} {abs(b_cos):.3f}·|cos| {'+' if b_cube >= 0 else '−'} "
                f"{abs(b_cube):.3f}·|cos|³ on {len(self.files)} files ({rows:,} rows), cross-file error of the "
                f"mean ±{self.shift_sd:.3f} (RMS), MAE {np.mean([c.mae for c in self.validation]):.3f}")

    def mismatch(self, embedder_fingerprint: str) -> str | None:
        if embedder_fingerprint != self.embedder_fingerprint:
            return (f"the st5 scale map of embedder '{self.embedder}' was fitted with another build of it "
                    f"(fingerprint {self.embedder_fingerprint}, now {embedder_fingerprint}); not used: refit it "
                    "with prh calibrate scale --write")
        return None

    def predict_rows(self, scores: np.ndarray, kept_above: float | None = None) -> np.ndarray:
        """Each row's expected st5 score (given that it was kept, for checking a file kept above a threshold)."""
        return np.clip(expected_st5(np.asarray(self.coefficients), self.residual_sd, scores, kept_above), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        def number(value: float | None) -> float | None:
            return None if value is None else round(float(value), 6)
        return {
            "format": FORMAT, "embedder": self.embedder, "embedder_fingerprint": self.embedder_fingerprint,
            "created": self.created, "command": self.command, "describe": self.describe(),
            "features": list(self.features), "coefficients": [number(c) for c in self.coefficients],
            "residual_sd": number(self.residual_sd), "shift_sd": number(self.shift_sd),
            "near_constant_share": self.near_constant_share,
            "files": [{k: number(v) if isinstance(v, float) else v for k, v in f.__dict__.items()} for f in self.files],
            "validation": [c.to_dict() for c in self.validation], "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScaleMap:
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"features {data['features']} are not this version's {list(FEATURES)}")
        return cls(embedder=data["embedder"], embedder_fingerprint=data["embedder_fingerprint"],
                   coefficients=tuple(float(c) for c in data["coefficients"]),
                   residual_sd=float(data["residual_sd"]), shift_sd=float(data["shift_sd"]),
                   files=tuple(FileSummary(**f) for f in data["files"]),
                   validation=tuple(FileCheck(**c) for c in data["validation"]),
                   near_constant_share=float(data.get("near_constant_share", NEAR_CONSTANT_SHARE)),
                   created=data.get("created", ""), command=data.get("command", ""),
                   notes=tuple(data.get("notes", ())))


def fit_scale_map(files: Sequence[ScoredRows], *, embedder: str, embedder_fingerprint: str, command: str = "",
                  notes: Sequence[str] = ()) -> ScaleMap:
    """Fit on every file, validate across files, and keep what predicting and the domain rule need."""
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ConfigError(f"the same file is given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    checks = cross_file_validation(files)
    coef, sd = fit_coefficients(files)
    return ScaleMap(embedder=embedder, embedder_fingerprint=embedder_fingerprint,
                    coefficients=tuple(float(c) for c in coef), residual_sd=sd, shift_sd=shift_sd(checks),
                    files=tuple(FileSummary.of(f) for f in files), validation=tuple(checks),
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), command=command, notes=tuple(notes))


# -- estimating ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    sampling_se: float
    shift_sd: float


def estimate_mean(scale: ScaleMap, scores: np.ndarray, *, groups: Sequence[Any] | None = None,
                  confidence_z: float = Z95, kept_above: float | None = None) -> Interval:
    """The mean st5 score of the rows' population, with a 95% interval: z·√(sampling SE² + shift sd²).
    `kept_above` is for checking the map on a file that kept only rows above a threshold (bench)."""
    from harness.stats import standard_error_of_mean

    mapped = scale.predict_rows(np.asarray(scores, dtype=np.float64), kept_above)
    n = mapped.size
    spread = standard_error_of_mean(mapped, groups=groups) if n > 1 else 0.0
    spread = 0.0 if not math.isfinite(spread) else spread
    if groups is not None:  # the residuals cluster like the rows: inflate them by the mapped rows' design effect
        plain = standard_error_of_mean(mapped) if n > 1 else 0.0
        effect = (spread / plain) ** 2 if plain > 0 else 1.0
    else:
        effect = 1.0
    sampling = math.sqrt(spread ** 2 + effect * scale.residual_sd ** 2 / n)
    half = confidence_z * math.sqrt(sampling ** 2 + scale.shift_sd ** 2)
    centre = float(mapped.mean())
    return Interval(centre, max(0.0, centre - half), min(1.0, centre + half), sampling, scale.shift_sd)


def domain_problem(scale: ScaleMap, scores: np.ndarray, predictions: Sequence[str], prediction_vectors: np.ndarray,
                   truth_vectors: np.ndarray, *, truths: Sequence[str] = (), declared: Sequence[str] = ()) -> str | None:
    """Why the map must not estimate this prediction set (None: it may). Rules in order: scorer-specific
    strings, empty answers, a constant answer, a near-constant set, answers that are not prompts, a typical
    row unlike the fitted rows. `prediction_vectors`: the (non-empty) answers' unit vectors; `truth_vectors`:
    the true prompts'."""
    from harness.leaderboard.usable_probes import describe_hits, scorer_specific_hits

    n = len(predictions)
    hits = scorer_specific_hits(predictions, declared)
    if hits:
        return (f"scorer trick: its answers contain {describe_hits(hits, n)}, which only Kaggle's scorer reads as it "
                "does; the map was fitted on plain prompts")
    empty = sum(not p.strip() for p in predictions)
    if empty:
        return f"{empty} of {n} answers are empty (Kaggle's scorer rejects such a submission)"
    distinct = len({p.strip() for p in predictions})
    constant_reason = (f"the maps underestimate constant mean prompts on the leaderboard by {CONSTANT_BIAS} "
                       "(sentence-t5 rates generic prompts closer to real prompts than other embedders do)")
    if distinct == 1 and n > 1:
        return f"constant: one answer for every row; {constant_reason}"
    ratio = distinct_ratio(predictions, truths) if truths else math.inf
    if ratio < scale.min_distinct_ratio:
        return (f"near-constant: {distinct} distinct answers for {len({t.strip() for t in truths})} distinct true "
                f"prompts ({ratio:.2f} per prompt, under {scale.min_distinct_ratio:.2f}: {scale.near_constant_share:g} "
                f"× the least varied fitted file's, at most 1); {constant_reason}")
    spread = diversity(prediction_vectors)
    if spread < scale.min_diversity:
        least = min(scale.files, key=lambda f: f.diversity)
        return (f"near-constant: its answers' diversity is {spread:.3f} ({distinct} distinct of {n}), under "
                f"{scale.near_constant_share:g} × {least.diversity:.3f} of the least diverse fitted file "
                f"({least.name}); {constant_reason}")
    likeness = prompt_likeness(prediction_vectors, truth_vectors)
    if likeness < scale.min_prompt_likeness:
        least = min(scale.files, key=lambda f: f.prompt_likeness)
        return (f"not prompts: its answers sit {likeness:.2f} as close to the true prompts' centre as the true prompts "
                f"do, under {scale.near_constant_share:g} × {least.prompt_likeness:.2f} of the least prompt-like "
                f"fitted file ({least.name}); the map was fitted on recovered prompts")
    low, high = scale.cos_range
    typical = float(np.mean(np.cbrt(np.abs(scores))))
    if not low <= typical <= high:
        return (f"unlike the fitted rows: its mean |cos| {typical:.3f} lies outside the fitted rows' "
                f"{FEATURE_PERCENTILES[0]:g}th–{FEATURE_PERCENTILES[1]:g}th percentiles [{low:.3f}, {high:.3f}]")
    return None
