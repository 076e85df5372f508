"""Leaderboard model files: `baselines/<embedder>/<suite>.leaderboard.json`, one per (suite, embedder).

A reviewable JSON file beside the suite's baseline, so that a fresh clone predicts without refitting and a
reviewer sees in a diff what changed: the suite's and the embedder's fingerprints, the probe book and its
hash, the map's parameters, the leave-one-probe-out table, and every probe set aside with its reason. The
fitted probes' submissions are in the file too (and the per-row scores of those whose answers differ by
row), so predicting needs neither the book, nor a refit, nor embedding every row's answer again.

A model is used only for the suite and the embedder build it was fitted on (`mismatch` says why not);
writing one over another says old → new (`ModelUpdate.describe`), never silently.

The file names its format (`"format": "prh-leaderboard-model/2"`). Every older format stays readable:
`/1` (the shipped baselines until issue 17) called the leaderboard noise `noise_sd`; `_READERS` turns each
into the current one, so a fresh clone keeps predicting from a file written before the change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from harness.baselines import _safe_name
from harness.errors import DataError
from harness.files import write_json_atomic
from harness.leaderboard.model import FitSettings, LeaderboardFit, ProbeFit, ScoreMap
from harness.leaderboard.usable_probes import SetAside

T = TypeVar("T")
FORMAT = "prh-leaderboard-model/2"
SUFFIX = ".leaderboard.json"
#: the stored order of a probe's fields (the order of the /1 files, so a diff shows only what changed)
_PROBE_FIELDS = ("probe", "kind", "submission", "leaderboard_score", "local_mean", "fitted", "predicted", "low",
                 "high", "extrapolating", "rule", "reason", "row_scores")


def model_path(directory: str | Path, embedder: str, suite: str) -> Path:
    """Where the model of (`suite`, `embedder`) lives: beside the suite's baseline."""
    return Path(directory) / _safe_name(embedder) / f"{_safe_name(suite)}{SUFFIX}"


@dataclass(frozen=True)
class LeaderboardModel:
    """A fitted leaderboard model (`fit`) tied to one suite, one embedder build and one probe book."""

    suite: str
    suite_fingerprint: str
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    target: str
    probe_book: str
    probe_book_hash: str
    label: str
    fit: LeaderboardFit
    excluded: tuple[dict, ...] = ()
    created: str = ""

    def describe(self) -> str:
        return self.fit.describe()

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
        fit = self.fit
        return {
            "format": FORMAT, "suite": self.suite, "suite_fingerprint": self.suite_fingerprint, "n_rows": fit.n_rows,
            "embedder": self.embedder, "embedder_fingerprint": self.embedder_fingerprint,
            "comparable_with_kaggle": self.comparable_with_kaggle, "target": self.target,
            "probe_book": self.probe_book, "probe_book_hash": self.probe_book_hash, "created": self.created,
            "label": self.label, "map": fit.map.to_dict(), "x_range": [number(v) for v in fit.x_range],
            "settings": fit.settings.to_dict(), "loo_mae": number(fit.loo_mae),
            "loo_max_error": number(fit.loo_max_error), "loo_spearman": number(fit.loo_spearman),
            "loo_mae_all": number(fit.loo_mae_all), "loo_mae_constant": number(fit.loo_mae_constant),
            "probes": [{k: number(v) if isinstance(v, float) else v for k, v in
                        ((k, getattr(p, k)) for k in _PROBE_FIELDS)} for p in fit.probes],
            "set_aside": [s.to_dict() for s in fit.set_aside], "excluded": list(self.excluded),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeaderboardModel:
        """Read a model file's data in the current format or any older one (`_READERS`)."""
        if data.get("format") not in _READERS:
            raise ValueError(f"format is {data.get('format')!r}, expected one of {', '.join(_READERS)}")
        data = _READERS[data["format"]](data)
        settings = FitSettings(**{k: v for k, v in data["settings"].items() if k in FitSettings.__dataclass_fields__})
        probes = tuple(ProbeFit(**{k: v for k, v in p.items() if k in ProbeFit.__dataclass_fields__})
                       for p in data["probes"])
        fit = LeaderboardFit(
            map=ScoreMap.from_dict(data["map"]), probes=probes,
            set_aside=tuple(SetAside(s["probe"], s["rule"], s["reason"]) for s in data["set_aside"]),
            x_range=(float(data["x_range"][0]), float(data["x_range"][1])), settings=settings,
            loo_mae=float(data["loo_mae"]), loo_max_error=float(data["loo_max_error"]),
            loo_spearman=None if data["loo_spearman"] is None else float(data["loo_spearman"]),
            loo_mae_all=float(data["loo_mae_all"]), n_rows=int(data["n_rows"]),
            loo_mae_constant=float(data["loo_mae_constant"]))
        return cls(suite=data["suite"], suite_fingerprint=data["suite_fingerprint"], embedder=data["embedder"],
                   embedder_fingerprint=data["embedder_fingerprint"],
                   comparable_with_kaggle=bool(data["comparable_with_kaggle"]), target=data["target"],
                   probe_book=data["probe_book"], probe_book_hash=data["probe_book_hash"], label=data.get("label", ""),
                   fit=fit, excluded=tuple(data.get("excluded", ())), created=data.get("created", ""))


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """/1 → /2: the settings' `noise_sd` is now `leaderboard_noise` (one name with the calibration's)."""
    settings = dict(data["settings"])
    if "noise_sd" in settings:
        settings["leaderboard_noise"] = settings.pop("noise_sd")
    return {**data, "format": FORMAT, "settings": settings}


#: each readable format → a function turning its data into the current format's
_READERS = {FORMAT: lambda data: data, "prh-leaderboard-model/1": _from_v1}


def model_from_fit(fit: LeaderboardFit, *, suite: str, suite_fingerprint: str, embedder: str,
                   embedder_fingerprint: str, comparable_with_kaggle: bool, target: str, probe_book: str,
                   probe_book_hash: str, submissions: dict[str, tuple[str, str]], label: str,
                   excluded: list[dict] | tuple[dict, ...] = (),
                   row_scores: dict[str, dict[str, float]] | None = None) -> LeaderboardModel:
    """Tie a fit to its suite, embedder and book; `submissions` maps each probe to (kind, submission), and
    `row_scores` the row-dependent probes to their per-row scores by row id (see ProbeFit.row_scores)."""
    row_scores = row_scores or {}
    probes = tuple(replace(p, kind=submissions[p.probe][0], submission=submissions[p.probe][1],
                           row_scores=({i: round(float(v), 6) for i, v in row_scores[p.probe].items()}
                                       if p.fitted and p.probe in row_scores else None))
                   for p in fit.probes)
    return LeaderboardModel(
        suite=suite, suite_fingerprint=suite_fingerprint, embedder=embedder, embedder_fingerprint=embedder_fingerprint,
        comparable_with_kaggle=comparable_with_kaggle, target=target, probe_book=probe_book,
        probe_book_hash=probe_book_hash, label=label, fit=replace(fit, probes=probes), excluded=tuple(excluded),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def load_model(directory: str | Path, embedder: str, suite: str) -> LeaderboardModel | None:
    """The stored model, or None when there is none; a malformed file is a DataError naming it."""
    path = model_path(directory, embedder, suite)
    if not path.is_file():
        return None
    return read_model(path)


def read_model(path: str | Path) -> LeaderboardModel:
    return read_fitted_file(path, LeaderboardModel.from_dict, what="leaderboard model file",
                            refit="prh calibrate --write-model")


def read_fitted_file(path: str | Path, parse: Callable[[dict[str, Any]], T], *, what: str, refit: str) -> T:
    """A fitted file (leaderboard model, st5 scale map) parsed by `parse`; anything malformed is a DataError
    naming the file and the command that rewrites it."""
    path = Path(path)
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise DataError(path, f"not a valid {what} ({type(exc).__name__}: {exc}); refit it with {refit}") from None


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
