"""Whether a candidate passed the regression gate, read from the run history.

A *gate run* is one `pytest suites/ --candidate=NAME` session: the runs the plugin recorded under one session
id (pytest-xdist workers share their controller's). `prh score` records under the session "cli" and library
calls under "" by default: single scorings, never a gate. Only unsigned runs of named suites count (ad-hoc
files have no baseline).

The candidate is matched by fingerprint (spec, model, adapter, templates, settings, file contents), never by
name: a candidate edited since its gate run has another fingerprint, and so was never gated.

A gate run *passed* when every suite it judged passed the no-regression check and no suite had empty
predictions (the plugin's two checks). Suites it could not judge (no baseline, or an embedder that cannot
see what the answers rely on) are listed but decide nothing; a gate run that judged no suite at all did
not pass: nothing was checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from harness.store import RunRecord
from harness.verdict import NO_BASELINE, NOT_JUDGED

#: sessions that are not gate runs: `prh score`/`prh baseline` ("cli") and library calls ("")
NOT_GATE_SESSIONS = frozenset({"", "cli"})
#: verdicts that judged nothing: the suite passes or fails on them alone
UNJUDGED = (NO_BASELINE, NOT_JUDGED)


def utc_text(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class GateRun:
    """The runs of one gate session of one candidate fingerprint, oldest first."""

    session: str
    runs: tuple[RunRecord, ...]

    @property
    def created(self) -> float:
        return max(run.created for run in self.runs)

    @property
    def when(self) -> str:
        return utc_text(self.created)

    @property
    def embedder(self) -> str:
        return ", ".join(dict.fromkeys(run.embedder for run in self.runs))

    @property
    def suites(self) -> list[str]:
        return [run.suite for run in self.runs]

    @property
    def run_ids(self) -> tuple[int, ...]:
        return tuple(run.run_id for run in self.runs if run.run_id is not None)

    def judged(self) -> list[RunRecord]:
        return [run for run in self.runs if run.baseline is not None and run.baseline.status not in UNJUDGED]

    def failures(self) -> list[str]:
        """One phrase per failed suite: which, how (the regression with Δ and its CI, a stale baseline,
        empty predictions)."""
        found = []
        for run in self.runs:
            if run.n_empty:
                found.append(f"suite '{run.suite}' had {run.n_empty} empty prediction(s)")
            verdict = run.baseline
            if verdict is None or not verdict.fails:
                continue
            if verdict.delta is not None and verdict.delta_low is not None and verdict.delta_high is not None:
                found.append(f"suite '{run.suite}' regressed by {verdict.delta:+.4f} "
                             f"[{verdict.delta_low:+.4f}, {verdict.delta_high:+.4f}] against "
                             f"{verdict.baseline_candidate} ({verdict.status})")
            else:
                found.append(f"suite '{run.suite}': {verdict.status} ({verdict.message})")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures() and bool(self.judged())

    def summary(self) -> str:
        """One line: when, embedder, and each suite's verdict with its Δ."""
        parts = []
        for run in self.runs:
            verdict = run.baseline
            status = verdict.status if verdict is not None else "no verdict"
            # + 0.0 turns a rounded -0.0 into 0.0: an unchanged candidate reads "Δ +0.0000", not "-0.0000"
            delta = (f" Δ {round(verdict.delta, 4) + 0.0:+.4f}" if verdict is not None and verdict.delta is not None
                     else "")
            parts.append(f"{run.suite} {status}{delta}")
        return f"gate run of {self.when} ({self.embedder}): {'; '.join(parts)}"


def latest_gate_run(records: Sequence[RunRecord], candidate_fingerprint: str) -> GateRun | None:
    """The newest gate session holding runs of exactly this fingerprint (None: never gated)."""
    sessions: dict[str, list[RunRecord]] = {}
    for run in records:
        if (run.candidate_fingerprint == candidate_fingerprint and run.session not in NOT_GATE_SESSIONS
                and run.suite_kind == "named" and not run.signed):
            sessions.setdefault(run.session, []).append(run)
    if not sessions:
        return None
    session, runs = max(sessions.items(), key=lambda item: max(run.created for run in item[1]))
    return GateRun(session, tuple(sorted(runs, key=lambda run: run.created)))


def refusal(gate: GateRun | None, candidate: str) -> str | None:
    """The one line that says why this candidate may not be submitted, or None when its latest gate run
    passed."""
    command = f"pytest suites/ --candidate={candidate}"
    if gate is None:
        return (f"candidate '{candidate}' was never gated: no `{command}` run of this exact candidate "
                "(same fingerprint) is in the store; run it first, or pass --force")
    failures = gate.failures()
    if failures:
        return f"candidate '{candidate}' failed its latest gate run ({gate.when}, {gate.embedder}): {'; '.join(failures)}"
    if not gate.judged():
        statuses = ", ".join(f"{run.suite} {run.baseline.status if run.baseline else 'no verdict'}" for run in gate.runs)
        return (f"candidate '{candidate}': its latest gate run ({gate.when}, {gate.embedder}) judged no suite "
                f"({statuses}); nothing was checked against a baseline")
    return None
