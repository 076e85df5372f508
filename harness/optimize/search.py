"""Mean-prompt search: beam (or greedy, beam width 1) local search over edits in a search space.

A space is either words of the train prompts (`Vocabulary`, `--space words`) or the embedder's tokens
(`TokenSpace`, `--space tokens`): it says how a prompt splits into units, which entries a move may
insert, and how units are joined back into the text that is scored. Each step proposes edits of every
prompt in the beam (append or insert an entry, replace a unit by one, delete a unit), scores all new
strings in one batch (`objective.score`: one encode call and one matrix product), and keeps the best
`beam_width` strings among the old beam and the new ones. The old beam competes, so the best train score
never goes down. Randomness (which edits are proposed) comes from one seeded generator and scoring is
deterministic, so a seed and a number of steps fix the whole trajectory; a time budget only decides
after how many steps it stops (each `SearchStep` records where it was, so a run can be replayed with
`max_steps`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from harness.errors import ConfigError
from harness.optimize.objective import REJECTED

MOVES = ("append", "insert", "replace", "delete")


class SearchSpace(Protocol):
    """What the search edits: `Vocabulary` (words) or `TokenSpace` (the embedder's tokens)."""

    name: str
    default_moves: tuple[str, ...]
    probabilities: np.ndarray

    def __len__(self) -> int: ...
    def normalise(self, text: str) -> str: ...
    def units(self, text: str) -> list[Any]: ...
    def item(self, index: int) -> list[Any]: ...
    def join(self, units: list[Any]) -> str | None: ...


class Guide(Protocol):
    """Proposes edits of a prompt's units (`harness.optimize.guide.GradientGuide`); `prepare` sees the
    whole beam first, so its work for a step can be one batch."""

    def prepare(self, prompts: list[list[Any]], rng: np.random.Generator) -> None: ...

    def edits(self, units: list[Any], moves: tuple[str, ...], attempts: int,
              rng: np.random.Generator) -> list[list[Any]]: ...


class Objective(Protocol):
    """Batched, memoised scores of texts (`MeanScsObjective`, `DirectionObjective`)."""

    evaluations: int
    rejected: int
    max_tokens: int | None

    def score(self, texts: Sequence[str]) -> np.ndarray: ...
    def seen(self, text: str) -> bool: ...


@dataclass(frozen=True)
class SearchSettings:
    """How the search runs and when it stops (whichever limit comes first; None = no such limit).

    Args:
        beam_width: prompts kept between steps; 1 is greedy (best sampled neighbour, if it is better).
        candidates_per_step: new strings proposed and scored per step, over the whole beam (one batch).
        budget_seconds: wall-clock budget, checked between steps.
        max_evaluations: distinct strings scored, the start included (exact: the last batch is cut).
        max_steps: steps (one batch each).
        patience: stop after this many steps without a better best prompt.
        moves: which edits to propose (None: the space's default; words: insert, replace, delete;
            tokens: append as well).
        seed: seeds the edit proposals.
    """

    beam_width: int = 4
    candidates_per_step: int = 256
    budget_seconds: float | None = 600.0
    max_evaluations: int | None = None
    max_steps: int | None = None
    patience: int | None = None
    moves: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("beam_width", "candidates_per_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("budget_seconds", "max_evaluations", "max_steps", "patience"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.moves is not None:
            unknown = set(self.moves) - set(MOVES)
            if unknown or not self.moves:
                raise ConfigError(f"moves must be a non-empty subset of {', '.join(MOVES)}, "
                                  f"got {', '.join(self.moves)}")


@dataclass(frozen=True)
class SearchStep:
    """The state after one step (step 0: the start prompt alone). Scores are TRAIN-split scores."""

    step: int
    best_prompt: str
    best_train_score: float
    evaluations: int
    new_candidates: int
    improved: bool
    elapsed_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """What the search found. Every score here is on the TRAIN split (the search sees nothing else)."""

    prompt: str
    train_score: float
    start_prompt: str
    start_train_score: float
    steps: tuple[SearchStep, ...]
    beam: tuple[tuple[str, float], ...]
    evaluations: int
    rejected: int
    seconds: float
    stop_reason: str


def search_mean_prompt(objective: Objective, space: SearchSpace, start: str,
                       settings: SearchSettings = SearchSettings(), *,
                       on_step: Callable[[SearchStep], None] | None = None,
                       clock: Callable[[], float] = time.perf_counter, guide: Guide | None = None) -> SearchResult:
    """Search for the constant prompt with the highest `objective`, starting from `start`, with the moves
    of `space` (a word `Vocabulary` or a `TokenSpace`).

    `on_step(step)` is called after every step (for progress and logs). `guide` (token space only, see
    `harness.optimize.guide`) proposes the tokens of each move instead of the space's prior. Raises
    ConfigError when the start prompt is empty or over the objective's length cap.
    """
    started = clock()
    start = space.normalise(start)
    if not start:
        raise ConfigError("the start prompt is empty")
    moves = settings.moves or space.default_moves
    start_score = float(objective.score([start])[0])
    if start_score == REJECTED:
        raise ConfigError(f"the start prompt is longer than the length cap of {objective.max_tokens} tokens")
    rng = np.random.default_rng(settings.seed)
    beam: list[tuple[str, float]] = [(start, start_score)]
    steps = [SearchStep(0, start, start_score, objective.evaluations, 1, False, clock() - started)]
    if on_step:
        on_step(steps[0])
    stale = 0
    stop_reason = ""
    while not stop_reason:
        stop_reason = _limit_reached(settings, steps[-1].step, objective.evaluations, stale, clock() - started)
        if stop_reason:
            break
        texts = _neighbours(beam, space, moves, settings.candidates_per_step, rng, objective, guide)
        if settings.max_evaluations is not None:
            texts = texts[:max(0, settings.max_evaluations - objective.evaluations)]
        if not texts:
            stop_reason = "exhausted"
            break
        scores = objective.score(texts)
        pool = beam + [(t, float(s)) for t, s in zip(texts, scores) if s != REJECTED]
        pool.sort(key=lambda item: -item[1])  # stable: on a tie the incumbent stays ahead
        beam = list(dict(pool).items())[:settings.beam_width]  # a text's score is the same wherever it occurs
        improved = beam[0][1] > steps[-1].best_train_score
        stale = 0 if improved else stale + 1
        steps.append(SearchStep(steps[-1].step + 1, beam[0][0], beam[0][1], objective.evaluations, len(texts),
                                improved, clock() - started))
        if on_step:
            on_step(steps[-1])
    return SearchResult(prompt=beam[0][0], train_score=beam[0][1], start_prompt=start, start_train_score=start_score,
                        steps=tuple(steps), beam=tuple(beam), evaluations=objective.evaluations,
                        rejected=objective.rejected, seconds=clock() - started, stop_reason=stop_reason)


def _limit_reached(settings: SearchSettings, step: int, evaluations: int, stale: int, elapsed: float) -> str:
    if settings.max_steps is not None and step >= settings.max_steps:
        return "max_steps"
    if settings.max_evaluations is not None and evaluations >= settings.max_evaluations:
        return "max_evaluations"
    if settings.patience is not None and stale >= settings.patience and step > 0:
        return "patience"
    if settings.budget_seconds is not None and elapsed >= settings.budget_seconds:
        return "budget_seconds"
    return ""


def _neighbours(beam: Sequence[tuple[str, float]], space: SearchSpace, moves: tuple[str, ...], limit: int,
                rng: np.random.Generator, objective: Objective, guide: Guide | None = None) -> list[str]:
    """New strings one edit away from the beam's prompts: at most `limit`, none seen before."""
    per_prompt = math.ceil(limit / len(beam))
    found: dict[str, None] = {}
    if guide is not None:
        guide.prepare([space.units(prompt) for prompt, _ in beam], rng)
    for prompt, _ in beam:
        units = space.units(prompt)
        attempts = 4 * per_prompt  # near a local optimum most edits were tried already: give up, not loop
        added = 0
        for edited in (guide.edits(units, moves, attempts, rng) if guide is not None
                       else _sampled_edits(units, space, moves, attempts, rng)):
            if added >= per_prompt or len(found) >= limit:
                break
            text = space.join(edited) if edited is not None else None
            if text is None or text in found or objective.seen(text):
                continue
            found[text] = None
            added += 1
    return list(found)


def _sampled_edits(units: list, space: SearchSpace, moves: tuple[str, ...], attempts: int,
                   rng: np.random.Generator):
    """Edits with moves, positions and entries drawn from the space's prior (None for a no-op edit)."""
    move_codes = rng.integers(0, len(moves), size=attempts)
    positions = rng.random(attempts)
    choices = rng.choice(len(space), size=attempts, p=space.probabilities)
    for move_code, position, choice in zip(move_codes, positions, choices):
        yield _apply(units, moves[move_code], position, space.item(choice))


def _apply(units: list, move: str, position: float, item: list) -> list | None:
    """One edit of `units`; None when it is a no-op (replacing a unit by itself, deleting the last one)."""
    if move == "append":
        return units + item
    if move == "insert":
        at = int(position * (len(units) + 1))
        return units[:at] + item + units[at:]
    at = int(position * len(units))
    if move == "replace":
        if units[at:at + 1] == item:
            return None
        return units[:at] + item + units[at + 1:]
    if len(units) == 1:
        return None
    return units[:at] + units[at + 1:]
