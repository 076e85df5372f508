"""The training card: what was trained, on what, with which settings, and how it scored over steps.

One markdown file (`training_card.md`) and one PNG (`training_card.png`) per run, rewritten after every
evaluation, so an interrupted run still has a card that says how far it got. Formatting only: every
number comes from the run's `History` and the objects the loop hands over. Like the leaderboard, the card
names the embedder of every score and says loudly when it is not the Kaggle scorer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from harness.files import write_png_atomic, write_text_atomic
from harness.stats import ConfidenceInterval
from harness.train.config import TrainConfig
from harness.train.history import EvalRecord, History

CARD_NAME = "training_card.md"
PLOT_NAME = "training_card.png"
MISSING = "—"


@dataclass(frozen=True)
class SuiteFacts:
    name: str
    source: str
    rows: int
    fingerprint: str


@dataclass
class CardFacts:
    """Everything the card shows besides the history."""

    name: str
    config: TrainConfig
    base_dir: Path
    base_fingerprint: str
    device: str
    dtype: str
    train: SuiteFacts
    eval: SuiteFacts
    rows_used: int
    rows_too_long: list[str]
    examples_fingerprint: str
    label_tokens_per_epoch: int
    tokens_per_epoch: int
    embedder: str
    embedder_fingerprint: str
    comparable_with_kaggle: bool
    total_steps: int
    out_dir: Path
    adapter_dir: Path | None = None
    merged_dir: Path | None = None
    entry: str = ""
    best_vs_last: ConfidenceInterval | None = None
    interrupted: bool = False
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{digits}f}"


def _interval(record: EvalRecord) -> str:
    return f"{_num(record.scs)} [{_num(record.ci_low)}, {_num(record.ci_high)}]"


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", "\\n")


def render_card(facts: CardFacts, history: History) -> str:
    """The card as markdown."""
    config = facts.config
    best, lowest, last = history.best_by_scs(), history.lowest_eval_loss(), history.last_eval()
    done = history.steps[-1].step if history.steps else 0
    status = "finished" if done >= facts.total_steps else (
        f"interrupted at step {done} of {facts.total_steps}" if facts.interrupted else
        f"in progress: step {done} of {facts.total_steps}")
    loss_mode = "whole sequence (prompt and answer)" if config.full_sequence_loss else "answer tokens only"
    lines = [
        f"# Training card: {facts.name}",
        "",
        f"LoRA fine-tune of `{config.base}` for prompt recovery, by `prh train` "
        f"({facts.generated_at.isoformat(sep=' ', timespec='seconds').replace('+00:00', ' UTC')}). Status: **{status}**.",
        "",
        "## Result",
        "",
    ]
    confidence = f"{round(best.confidence * 100):g}%" if best else "95%"
    if best is None:
        lines += ["No evaluation yet.", ""]
    else:
        lines += [
            f"- **Selected checkpoint (highest mean SCS): step {best.step}**, SCS {_interval(best)} "
            f"({confidence} bootstrap CI) on eval suite `{facts.eval.name}` ({best.n} rows), embedder "
            f"`{facts.embedder}` (`{facts.embedder_fingerprint}`).",
        ]
        if lowest is not None:
            same = " (the same)" if lowest.step == best.step else ""
            lines.append(f"- Lowest eval loss: step {lowest.step} (loss {_num(lowest.eval_loss)}, SCS "
                         f"{_interval(lowest)}){same}.")
        if last is not None:
            lines.append(f"- Last evaluated checkpoint: step {last.step}, SCS {_interval(last)}.")
        if facts.best_vs_last is not None and last is not None and last.step != best.step:
            delta = facts.best_vs_last
            lines.append(f"- Selected − last, paired over the same rows: {delta.estimate:+.3f} "
                         f"[{delta.low:+.3f}, {delta.high:+.3f}].")
        if best.n_empty:
            lines.append(f"- ⚠ {best.n_empty} empty answers at the selected step (scored 0; Kaggle rejects them).")
        lines.append("")
    if not facts.comparable_with_kaggle:
        lines += [f"> **⚠ NOT COMPARABLE WITH THE KAGGLE LEADERBOARD.** `{facts.embedder}` is not the Kaggle "
                  "scorer's embedder (sentence-t5-base); its SCS scale is much lower. Compare these scores only "
                  "with each other.", ""]
    if facts.adapter_dir is not None:
        lines += [f"Adapter (selected checkpoint): `{facts.adapter_dir}`."]
        if facts.merged_dir is not None:
            lines += [f"Merged model: `{facts.merged_dir}`."]
        lines.append("")

    lines += ["## Scores over steps", ""]
    if history.evals:
        rows = [[e.step, _num(_epoch_at(history, e.step), 2), _num(e.train_loss), _num(e.eval_loss),
                 _interval(e), e.n_empty or "", ("**best**" if best and e.step == best.step else "")]
                for e in history.evals]
        headers = ["step", "epoch", "train loss", "eval loss", f"SCS [{confidence} CI]", "empty", ""]
        lines += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), "",
                  f"Train loss: mean over the steps since the previous evaluation ({loss_mode}). Eval loss: "
                  f"mean -log p of the eval suite's true prompts (answer tokens only, in every run).", "",
                  f"![scores over steps]({PLOT_NAME})", ""]
    else:
        lines += ["No evaluation yet.", ""]

    lines += [
        "## Data", "",
        tabulate([
            ["train suite", f"`{_md(facts.train.name)}` ({_md(facts.train.source)})"],
            ["train rows", f"{facts.rows_used} used of {facts.train.rows}"
             + (f"; {len(facts.rows_too_long)} longer than max_length left out: "
                f"{_md(', '.join(facts.rows_too_long[:10]))}" if facts.rows_too_long else "")],
            ["train suite hash (rows)", f"`{facts.train.fingerprint}`"],
            ["training data hash (token ids and labels)", f"`{facts.examples_fingerprint}`"],
            ["tokens per epoch (with loss)", f"{facts.tokens_per_epoch} ({facts.label_tokens_per_epoch})"],
            ["loss on", loss_mode],
            ["eval suite", f"`{_md(facts.eval.name)}` ({_md(facts.eval.source)}), {facts.eval.rows} rows, "
                           f"hash `{facts.eval.fingerprint}`"],
        ], headers=["", ""], tablefmt="github", disable_numparse=True), "",
        "## Base model", "",
        tabulate([
            ["base", f"`{_md(config.base)}`"],
            ["resolved directory", f"`{_md(facts.base_dir)}`"],
            ["fingerprint", f"`{facts.base_fingerprint}`"],
            ["device, dtype", f"{facts.device}, {facts.dtype}" + (", 4-bit NF4 (QLoRA)" if config.load_in_4bit else "")],
        ], headers=["", ""], tablefmt="github", disable_numparse=True), "",
        "## Hyper-parameters", "",
        tabulate([[key, f"`{_md(value)}`"] for key, value in config.to_dict().items()] + [
            ["optimizer steps", f"`{facts.total_steps}`"]],
            headers=["setting", "value"], tablefmt="github", disable_numparse=True), "",
        "## Time", "",
    ]
    total = history.train_seconds + history.eval_seconds + history.save_seconds
    rate = history.train_tokens / history.train_seconds if history.train_seconds > 0 else float("nan")
    lines += [
        f"Training {history.train_seconds:.1f} s ({history.train_tokens} tokens, {_num(rate, 0)} tokens/s), "
        f"evaluation {history.eval_seconds:.1f} s ({_share(history.eval_seconds, total)} of the total), "
        f"checkpoints {history.save_seconds:.1f} s.", "",
    ]
    if facts.entry:
        lines += ["## Candidate entry", "", "For candidates.toml (`pytest suites/ --candidate=NAME`):", "",
                  "```toml", facts.entry.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _epoch_at(history: History, step: int) -> float | None:
    for record in history.steps:
        if record.step == step:
            return record.epoch
    return None


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:.0f}%" if total > 0 else MISSING


def render_plot(history: History, path: Path, *, title: str = "", embedder: str = "") -> Path | None:
    """PNG: mean SCS with its CI per evaluation (selected checkpoint starred) above the training loss
    per step and the eval loss. None (nothing written) before the first step."""
    if not history.steps:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    evals = history.evals
    if evals:
        steps = [e.step for e in evals]
        means = [e.scs for e in evals]
        below = [max(e.scs - e.ci_low, 0.0) for e in evals]
        above = [max(e.ci_high - e.scs, 0.0) for e in evals]
        top.errorbar(steps, means, yerr=[below, above], fmt="o-", capsize=3, color="tab:blue", label="mean SCS (CI)")
        best = history.best_by_scs()
        if best is not None:
            top.plot([best.step], [best.scs], marker="*", markersize=16, color="tab:orange", linestyle="none",
                     label=f"selected: step {best.step}")
        top.legend(loc="lower right", fontsize="small")
    top.set_ylabel(f"SCS ({embedder})" if embedder else "SCS")
    top.grid(alpha=0.3)
    top.set_title(title)
    bottom.plot([s.step for s in history.steps], [s.loss for s in history.steps], color="tab:gray", linewidth=1,
                label="train loss per step")
    finite = [e for e in evals if math.isfinite(e.eval_loss)]
    if finite:
        bottom.plot([e.step for e in finite], [e.eval_loss for e in finite], "s-", color="tab:red", label="eval loss")
    bottom.set_xlabel("optimizer step")
    bottom.set_ylabel("loss")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper right", fontsize="small")
    return write_png_atomic(path, figure, dpi=100)


def write_card(facts: CardFacts, history: History) -> tuple[Path, Path | None]:
    """Write training_card.md and training_card.png into the run's folder; returns their paths."""
    plot = render_plot(history, facts.out_dir / PLOT_NAME, title=f"{facts.name} on {facts.eval.name}",
                       embedder=facts.embedder)
    card = write_text_atomic(facts.out_dir / CARD_NAME, render_card(facts, history))
    return card, plot

