"""How numbers, verdicts and texts are written, the same way in every output (markdown, HTML, terminal)."""

from __future__ import annotations

from datetime import datetime, timezone

from harness.report.model import MISSING, CandidateRow, Section, is_number
from harness.store import RunRecord
from harness.verdict import Comparison, PredictedScore, St5Estimate

VERDICTS: dict[str | None, str] = {
    "regression": "❌ regression",
    "improvement": "✅ better",
    "no-difference": "≈ no significant difference",
    "no-baseline": "no baseline",
    "stale": "⚠ stale baseline",
    "not-judged": "not judged (embedder blind to it)",
    None: f"{MISSING} not compared",
}
#: the same verdicts in a few characters, for narrow terminals
SHORT_VERDICTS: dict[str | None, str] = {
    "regression": "❌ regression",
    "improvement": "✅ better",
    "no-difference": "≈ no diff.",
    "no-baseline": "no baseline",
    "stale": "⚠ stale",
    "not-judged": "not judged",
    None: MISSING,
}
VERDICT_STYLES = {"regression": "bold red", "improvement": "bold green", "stale": "yellow"}


def fmt(value: object, signed: bool = False, digits: int = 3) -> str:
    if not is_number(value):
        return MISSING
    rounded = round(float(value), digits) + 0.0  # + 0.0 turns -0.0 into 0.0, so no "-0.000"
    return f"{rounded:+.{digits}f}" if signed else f"{rounded:.{digits}f}"


def fmt_interval(mean: object, low: object, high: object, signed: bool = False) -> str:
    if not is_number(mean):
        return MISSING
    if not (is_number(low) and is_number(high)):
        return fmt(mean, signed)
    return f"{fmt(mean, signed)} [{fmt(low, signed)}, {fmt(high, signed)}]"


def fmt_p(value: object) -> str:
    if not is_number(value):
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def verdict(comparison: Comparison | None) -> str:
    status = comparison.status if comparison else None
    return VERDICTS.get(status, str(status))


def plain_verdict(comparison: Comparison | None, *, raw: bool = False) -> str:
    """The verdict without its emoji (for HTML, where colour carries it and emoji fonts may be missing)."""
    status = (comparison.raw_status if raw else comparison.status) if comparison else None
    return VERDICTS.get(status, str(status)).lstrip("❌✅⚠ ").replace("better", "significantly better")


def raw_verdict_note(comparison: Comparison | None) -> str:
    """"" unless the multiple-suite correction changed the verdict; then what the suite alone said."""
    if comparison is None or not comparison.raw_status or comparison.raw_status == comparison.status:
        return ""
    return f"{VERDICTS.get(comparison.raw_status, comparison.raw_status)} before {comparison.correction or 'correction'}"


def p_values(comparison: Comparison | None) -> str:
    """"p 0.012 → 0.036 (holm)": the suite's one-sided p-value and, when corrected, the adjusted one."""
    if comparison is None or not is_number(comparison.p_regression):
        return MISSING
    text = fmt_p(comparison.p_regression)
    if comparison.correction and comparison.correction != "none" and is_number(comparison.p_adjusted):
        text += f" → {fmt_p(comparison.p_adjusted)} ({comparison.correction})"
    return text


def win_tie_loss(comparison: Comparison | None) -> str:
    if comparison is None or comparison.wins is None:
        return MISSING
    return f"{comparison.wins}/{comparison.ties}/{comparison.losses}"


def design_effect(comparison: Comparison | None) -> str:
    return fmt(comparison.design_effect, digits=2) if comparison is not None else MISSING


def mde(comparison: Comparison | None) -> str:
    return fmt(comparison.minimum_detectable_effect) if comparison is not None else MISSING


def empty_flag(record: RunRecord) -> str:
    return f"⚠ INCOMPLETE: {record.n_empty}/{record.n} empty" if record.n_empty > 0 else ""


def predicted(score: PredictedScore | None) -> str:
    """"0.612 [0.598, 0.627] ±0.011 LOO": the estimate, its interval and the model's leave-one-out error."""
    if score is None:
        return MISSING
    text = f"{fmt_interval(score.estimate, score.low, score.high)} ±{fmt(score.loo_mae)} LOO"
    return text + "".join(predicted_flags(score))


def predicted_flags(score: PredictedScore) -> list[str]:
    """What makes a predicted score weaker than it looks: a model no better than the probes' mean (it
    carries no information about the leaderboard), and an estimate outside the probes' range."""
    flags = []
    if score.informative is False:
        flags.append(f" ⚠ no better than the probes' mean (±{fmt(score.loo_mae_mean_alone)})")
    if score.extrapolating:
        flags.append(" ⚠ extrapolated")
    return flags


#: how an st5 estimate is labelled wherever it is shown: an estimate, on Kaggle's scale, never a measurement
ST5_LABEL = "Kaggle-scale est."


def st5_estimate(score: St5Estimate | None) -> str:
    """"Kaggle-scale est. 0.612 [0.530, 0.694]", or "Kaggle-scale est.: none (constant)" out of the map's
    domain; "" without a map."""
    if score is None:
        return ""
    if not score.in_domain or score.estimate is None:
        reason = score.note.removeprefix("no estimate on Kaggle's scale: ").split(":")[0]
        return f"{ST5_LABEL}: none ({reason})"
    return f"{ST5_LABEL} {fmt_interval(score.estimate, score.low, score.high)}"


ST5_NOTE = ("Kaggle-scale est.: the mean estimated on sentence-t5-base's (Kaggle's) scale from this embedder's "
            "per-row scores through its st5 scale map, with a 95% interval covering the shift between generators "
            "(cross-file validation) and the suite's row sampling; information, never a verdict. No estimate "
            "for constant or near-constant answers and scorer tricks (the map underestimates those).")


def mean_header(section: Section) -> str:
    """The ranking column's header: which suites its mean is over, when not all of the section's."""
    if section.ranked_suites == section.suites:
        return "mean over suites"
    return f"mean over {', '.join(section.ranked_suites) or 'no suite'}"


def suite_header(section: Section, suite: str, size: str = "") -> str:
    """A suite's column header: its name, its size when given, and "not ranked" when the ranking leaves it out."""
    header = f"{suite} ({size})" if size else suite
    return f"{header} (not ranked)" if suite in section.left_out else header


def mean_cell(row: CandidateRow) -> str:
    """A row's ranking mean, or why it has none (the ranked suites it misses)."""
    if row.mean_over_suites is not None:
        return fmt(row.mean_over_suites)
    missing = row.missing
    return f"{MISSING} (misses {', '.join(missing)})" if missing else MISSING


def timestamp(moment: datetime) -> str:
    text = moment.isoformat(sep=" ", timespec="seconds")
    return text.replace("+00:00", " UTC")


def run_date(record: RunRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters: whitespace runs flattened, an ellipsis where cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"
