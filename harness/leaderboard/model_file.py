"""Leaderboard model files: `baselines/<embedder>/<suite>.leaderboard.json`, one per (suite, embedder).

A reviewable JSON file beside the suite's baseline, so that a fresh clone predicts without refitting and a
reviewer sees in a diff what changed: the suite's and the embedder's fingerprints, the probe book and its
hash, the map's parameters, the leave-one-probe-out table, and every probe set aside with its reason. The
fitted probes' submissions are in the file too (and the per-row scores of those whose answers differ by
row), so predicting needs neither the book, nor a refit, nor embedding every row's answer again.

A model is used only for the suite and the embedder build it was fitted on (`mismatch` says why not);
writing one over another says old → new (`ModelUpdate.describe`), never silently.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.baselines import _safe_name
from harness.errors import DataError
from harness.files import write_json_atomic
from harness.leaderboard.model import FitSettings, LeaderboardFit, ScoreMap

FORMAT = "prh-leaderboard-model/1"
SUFFIX = ".leaderboard.json"


def model_path(directory: str | Path, embedder: str, suite: str) -> Path:
    """Where the model of (`suite`, `embedder`) lives: beside the suite's baseline."""
    return Path(directory) / _safe_name(embedder) / f"{_safe_name(suite)}{SUFFIX}"


@dataclass(frozen=True)
class StoredProbe:
    """A probe as a model file keeps it: enough to score it again and to review the fit."""

    probe: str
    kind: str
    submission: str
    leaderboard_score: float
    local_mean: float
    fitted: bool
    predicted: float
    low: float
    high: float
    extrapolating: bool = False
    rule: str = ""
    reason: str = ""
    #: per-row scores by row id, kept for fitted probes whose answers differ by row (templates, candidates):
    #: scoring them again would embed every row's answer (or need a file that may be gone); constants are
    #: re-scored with one embedding call instead
    row_scores: dict[str, float] | None = None


@dataclass(frozen=True)
class LeaderboardModel:
    """A fitted leaderboard model tied to one suite and one embedder build."""

    suite: str
    suite_fingerprint: str
    n_rows: int
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    target: str
    probe_book: str
    probe_book_hash: str
    label: str
    map: ScoreMap
    x_range: tuple[float, float]
    settings: FitSettings
    loo_mae: float
    loo_max_error: float
    loo_spearman: float | None
    loo_mae_all: float
    loo_mae_constant: float
    probes: tuple[StoredProbe, ...]
    set_aside: tuple[dict, ...]
    excluded: tuple[dict, ...] = ()
    created: str = ""

    @property
    def fitted(self) -> list[StoredProbe]:
        return [p for p in self.probes if p.fitted]

    def describe(self) -> str:
        """'linear map on 9 probes, LOO MAE 0.031 (max 0.070, Spearman +0.62)'"""
        spearman = "n/a" if self.loo_spearman is None else f"{self.loo_spearman:+.2f}"
        return (f"{self.map.kind} map on {len(self.fitted)} probes, LOO MAE {self.loo_mae:.3f} "
                f"(max {self.loo_max_error:.3f}, Spearman {spearman}; the probes' mean alone: "
                f"{self.loo_mae_constant:.3f})")

    def mismatch(self, suite_fingerprint: str, embedder_fingerprint: str) -> str | None:
        """Why this model must not predict for a result of that suite and embedder build, or None."""
        if self.embedder_fingerprint != embedder_fingerprint:
            return (f"the leaderboard model of suite '{self.suite}' was fitted with another build of embedder "
                    f"'{self.embedder}' (fingerprint {self.embedder_fingerprint}, now {embedder_fingerprint}); "
                    "not used: refit it with prh calibrate --write-model")
        if self.suite_fingerprint != suite_fingerprint:
            return (f"suite '{self.suite}' changed since its leaderboard model was fitted (fingerprint "
                    f"{self.suite_fingerprint}, now {suite_fingerprint}); not used: refit it with prh calibrate "
                    "--write-model")
        return None

    def to_dict(self) -> dict[str, Any]:
        def number(value):
            return None if value is None else round(float(value), 6)
        return {
            "format": FORMAT, "suite": self.suite, "suite_fingerprint": self.suite_fingerprint, "n_rows": self.n_rows,
            "embedder": self.embedder, "embedder_fingerprint": self.embedder_fingerprint,
            "comparable_with_kaggle": self.comparable_with_kaggle, "target": self.target,
            "probe_book": self.probe_book, "probe_book_hash": self.probe_book_hash, "created": self.created,
            "label": self.label, "map": self.map.to_dict(), "x_range": [number(v) for v in self.x_range],
            "settings": self.settings.to_dict(), "loo_mae": number(self.loo_mae),
            "loo_max_error": number(self.loo_max_error), "loo_spearman": number(self.loo_spearman),
            "loo_mae_all": number(self.loo_mae_all), "loo_mae_constant": number(self.loo_mae_constant),
            "probes": [{k: number(v) if isinstance(v, float) else v for k, v in p.__dict__.items()} for p in self.probes],
            "set_aside": list(self.set_aside), "excluded": list(self.excluded),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaderboardModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        settings = FitSettings(**{k: v for k, v in data["settings"].items() if k in FitSettings.__dataclass_fields__})
        probes = tuple(StoredProbe(**{k: v for k, v in p.items() if k in StoredProbe.__dataclass_fields__})
                       for p in data["probes"])
        return cls(suite=data["suite"], suite_fingerprint=data["suite_fingerprint"], n_rows=int(data["n_rows"]),
                   embedder=data["embedder"], embedder_fingerprint=data["embedder_fingerprint"],
                   comparable_with_kaggle=bool(data["comparable_with_kaggle"]), target=data["target"],
                   probe_book=data["probe_book"], probe_book_hash=data["probe_book_hash"], label=data.get("label", ""),
                   map=ScoreMap.from_dict(data["map"]), x_range=(float(data["x_range"][0]), float(data["x_range"][1])),
                   settings=settings, loo_mae=float(data["loo_mae"]), loo_max_error=float(data["loo_max_error"]),
                   loo_spearman=None if data["loo_spearman"] is None else float(data["loo_spearman"]),
                   loo_mae_all=float(data["loo_mae_all"]), loo_mae_constant=float(data["loo_mae_constant"]),
                   probes=probes, set_aside=tuple(data["set_aside"]),
                   excluded=tuple(data.get("excluded", ())), created=data.get("created", ""))


def model_from_fit(fit: LeaderboardFit, *, suite: str, suite_fingerprint: str, embedder: str,
                   embedder_fingerprint: str, comparable_with_kaggle: bool, target: str, probe_book: str,
                   probe_book_hash: str, submissions: dict[str, tuple[str, str]], label: str,
                   excluded: list[dict] | tuple[dict, ...] = (),
                   row_scores: dict[str, dict[str, float]] | None = None) -> LeaderboardModel:
    """Tie a fit to its suite, embedder and book; `submissions` maps each probe to (kind, submission), and
    `row_scores` the row-dependent probes to their per-row scores by row id (see StoredProbe.row_scores)."""
    row_scores = row_scores or {}
    probes = tuple(StoredProbe(p.probe, *submissions[p.probe], p.leaderboard_score, p.local_mean, p.fitted,
                               p.predicted, p.low, p.high, p.extrapolating, p.rule, p.reason,
                               ({i: round(float(v), 6) for i, v in row_scores[p.probe].items()}
                                if p.fitted and p.probe in row_scores else None))
                   for p in fit.probes)
    return LeaderboardModel(
        suite=suite, suite_fingerprint=suite_fingerprint, n_rows=fit.n_rows, embedder=embedder,
        embedder_fingerprint=embedder_fingerprint, comparable_with_kaggle=comparable_with_kaggle, target=target,
        probe_book=probe_book, probe_book_hash=probe_book_hash, label=label, map=fit.map, x_range=fit.x_range,
        settings=fit.settings, loo_mae=fit.loo_mae, loo_max_error=fit.loo_max_error, loo_spearman=fit.loo_spearman,
        loo_mae_all=fit.loo_mae_all, loo_mae_constant=fit.loo_mae_constant, probes=probes, set_aside=tuple(s.to_dict() for s in fit.set_aside),
        excluded=tuple(excluded), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def load_model(directory: str | Path, embedder: str, suite: str) -> LeaderboardModel | None:
    """The stored model, or None when there is none; a malformed file is a DataError naming it."""
    path = model_path(directory, embedder, suite)
    if not path.is_file():
        return None
    return read_model(path)


def read_model(path: str | Path) -> LeaderboardModel:
    path = Path(path)
    try:
        return LeaderboardModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise DataError(path, f"not a valid leaderboard model file ({type(exc).__name__}: {exc}); refit it with "
                              "prh calibrate --write-model") from None


@dataclass(frozen=True)
class ModelUpdate:
    """What writing a model did: the path, and the old model it replaced (if any)."""

    path: Path
    new: LeaderboardModel
    old: LeaderboardModel | None = None

    def describe(self) -> str:
        old = "none" if self.old is None else self.old.describe()
        return f"leaderboard model {self.new.suite} ({self.new.embedder}): {old} → {self.new.describe()} → {self.path}"


def write_model(directory: str | Path, model: LeaderboardModel) -> ModelUpdate:
    """Write `model` to its place (atomically), saying what it replaced."""
    path = model_path(directory, model.embedder, model.suite)
    old = None
    if path.is_file():
        try:
            old = read_model(path)
        except DataError:
            old = None
    write_json_atomic(path, model.to_dict())
    return ModelUpdate(path, model, old)
