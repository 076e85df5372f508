"""An optimiser's trajectory (OPRO, GEPA, TextGrad): a JSONL log written as it happens, its plot, and its export as a training set.

One JSON object per line, each with a `type`:
- `run`: backend, settings, budget, split sizes, embedder, proposers (written first);
- `round`: what the proposer(s) of that round (OPRO), iteration (GEPA) or step (TextGrad) were sent;
- `proposal`: one proposal (or the start instruction): who proposed it, its status (`start`, `scored`,
  `rejected`, `invalid`, `duplicate`, `failed`, `over_budget`), its DEV-split score and CI when scored,
  the best dev score so far, the metric calls and the cumulative usage;
- `final`: the best dev instruction and its one HELD-OUT comparison with the start.
Lines are flushed as they are written: a run killed half way keeps everything it paid for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from harness.errors import DataError
from harness.files import write_jsonl_atomic, write_png_atomic
from harness.optimize.meta_prompt import EMPTY_INSTRUCTION

RECORD_TYPES = ("run", "round", "proposal", "final")
BACKEND_TITLES = {"opro": "OPRO", "gepa": "GEPA", "textgrad": "TextGrad"}


class TrajectoryLog:
    """Appends records to a JSONL file, one flushed line each. The file (and its folder) is created by the
    first record: a run refused before it starts leaves nothing behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None
        self._closed = False
        self.records: list[dict] = []

    def write(self, record: Mapping[str, Any]) -> None:
        if record.get("type") not in RECORD_TYPES:
            raise ValueError(f"trajectory record type must be one of {RECORD_TYPES}, got {record.get('type')!r}")
        data = dict(record)
        self.records.append(data)
        if self._handle is None and not self._closed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # closed by close()
        if self._handle is not None:
            self._handle.write(json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TrajectoryLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_trajectory(path: str | Path) -> list[dict]:
    """The records of a trajectory file; DataError names the line of anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "trajectory file not found")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise DataError(path, f"not JSON: {error}", line=number) from None
        if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
            raise DataError(path, f"expected an object with type one of {', '.join(RECORD_TYPES)}", line=number)
        records.append(record)
    if not any(r["type"] == "run" for r in records):
        raise DataError(path, "no 'run' record: this is not an optimiser's trajectory")
    return records


def training_rows(records: Sequence[Mapping[str, Any]], *, min_delta: float = 0.0,
                  improvements_only: bool = True) -> list[dict]:
    """Training rows for a model that writes better instructions (docs/optimize.md, "Training set").

    One row per scored proposal that beat the best dev score so far by more than `min_delta` (every scored
    proposal with `improvements_only=False`), in Kaggle fields so `harness.data` loads it as a suite:
    `original_text` = the meta-prompt the proposer was sent, `rewritten_text` = the best instruction at
    that moment, `rewrite_prompt` = the proposal; `group` = the run id, plus the scores (DEV split).
    """
    run = next(r for r in records if r["type"] == "run")
    meta_prompts = {r["round"]: r["meta_prompt"] for r in records if r["type"] == "round"}
    rows = []
    best: tuple[str, float] | None = None
    for record in records:
        if record["type"] != "proposal" or record.get("dev_score") is None:
            continue
        score = float(record["dev_score"])
        if record["status"] == "start" or best is None:
            best = (record["instruction"], score)
            continue
        improved = score > best[1] + min_delta
        if (improved or not improvements_only) and record["round"] in meta_prompts:
            rows.append({
                "id": f"{run['run_id']}-{record['index']}",
                "original_text": meta_prompts[record["round"]],
                "rewritten_text": best[0] or EMPTY_INSTRUCTION,
                "rewrite_prompt": record["instruction"],
                "group": run["run_id"],
                "score_before": best[1], "score_after": score, "improved": improved,
                "round": record["round"], "proposer": record.get("proposer"), "model": record.get("model"),
                "target": run.get("target"), "suite": run.get("suite"), "embedder": run.get("embedder"),
                "score_split": "dev",
            })
        if improved:
            best = (record["instruction"], score)
    return rows


def export_training_set(records: Sequence[Mapping[str, Any]], path: str | Path, **options: Any) -> int:
    """Write `training_rows(records, **options)` as JSONL to `path`; returns the number of rows."""
    rows = training_rows(records, **options)
    write_jsonl_atomic(path, rows)
    return len(rows)


def plot_trajectory(records: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """A PNG: each scored proposal's DEV score in evaluation order (colour = proposer), the best so far,
    the start as a dashed line, and, when the run finished, the final HELD-OUT score with its CI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = list(records)
    run = next(r for r in records if r["type"] == "run")
    scored = [r for r in records if r["type"] == "proposal" and r.get("dev_score") is not None]
    final = next((r for r in records if r["type"] == "final"), None)
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    proposers = list(dict.fromkeys(r.get("proposer") or "start" for r in scored))
    for index, proposer in enumerate(proposers):
        points = [(r["index"], r["dev_score"]) for r in scored if (r.get("proposer") or "start") == proposer]
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=28, label=proposer,
                   marker="*" if proposer == "start" else "o", color="black" if proposer == "start" else f"C{index}")
    if scored:
        xs, best, running = [], [], float("-inf")
        for r in scored:
            running = max(running, r["dev_score"])
            xs.append(r["index"])
            best.append(running)
        ax.step(xs, best, where="post", color="grey", linewidth=1.2, label="best so far (dev)")
        ax.axhline(scored[0]["dev_score"], color="black", linestyle="--", linewidth=0.8)
    if final is not None and final.get("heldout_score") is not None:
        x = (scored[-1]["index"] + 1) if scored else 0
        value = final["heldout_score"]
        ax.errorbar([x], [value], yerr=[[value - final["heldout_ci_low"]], [final["heldout_ci_high"] - value]],
                    fmt="D", color="firebrick", capsize=3, label="final, HELD-OUT (95% CI)")
        start = final["start_heldout_score"]
        ax.errorbar([x + 0.3], [start], yerr=[[start - final["start_heldout_ci_low"]],
                                              [final["start_heldout_ci_high"] - start]],
                    fmt="D", color="grey", markerfacecolor="none", capsize=3, label="start, HELD-OUT (95% CI)")
    ax.set_xlabel("proposal number (invalid and failed ones are not plotted)")
    ax.set_ylabel("mean SCS")
    backend = BACKEND_TITLES.get(run.get("backend", "opro"), str(run.get("backend")))
    title = f"{backend} on '{run.get('suite')}' ({run.get('target')}): dev-split scores, embedder {run.get('embedder')}"
    if not run.get("comparable_with_kaggle", False):
        title += "\n(not comparable with the Kaggle leaderboard)"
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return write_png_atomic(path, figure, dpi=110)
