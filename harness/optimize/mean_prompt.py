"""Mean-prompt optimisation end to end: split → vocabulary and objective from the TRAIN split → search →
one held-out comparison with the starting prompt → a candidates.toml entry.

The dev split is not used here (the search has no hyper-parameter it selects on); give it fraction 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.candidates.constant import ConstantCandidate
from harness.embedders import Embedder
from harness.evaluate import DEFAULT_BOOTSTRAP, BootstrapSettings
from harness.files import toml_table
from harness.optimize.heldout import HeldoutComparison, compare_on_heldout
from harness.optimize.objective import MeanScsObjective
from harness.optimize.search import SearchResult, SearchSettings, SearchStep, search_mean_prompt
from harness.optimize.vocabulary import build_vocabulary
from harness.splits import SuiteSplit
from harness.store import Store

#: Public leaderboard 0.63 (README); the default start and reference of every search.
PUBLIC_MEAN_PROMPT = ("Please improve this text using the writing style with maintaining the original meaning "
                      "but altering the tone.")
DEFAULT_SEARCH = SearchSettings()
#: sentence-t5-base reads 128 tokens; a longer mean prompt gains nothing on the leaderboard.
DEFAULT_MAX_TOKENS = 128


@dataclass(frozen=True)
class MeanPromptReport:
    """A finished search: the train-split trajectory and the held-out comparison."""

    name: str
    search: SearchResult
    heldout: HeldoutComparison
    split: dict
    vocabulary_size: int
    settings: SearchSettings

    @property
    def prompt(self) -> str:
        return self.search.prompt

    def candidates_entry(self) -> str:
        h = self.heldout
        description = (f"mean-prompt search on '{self.split['suite']}' (train split, seed {self.settings.seed}, "
                       f"embedder {h.found.embedder}): held-out {h.found.mean:.4f} "
                       f"[{h.found.interval.low:.4f}, {h.found.interval.high:.4f}], "
                       f"vs start {h.delta.estimate:+.4f} [{h.delta.low:+.4f}, {h.delta.high:+.4f}]")
        return toml_table("candidates", self.name, {"kind": "constant", "prompt": self.search.prompt,
                                                      "description": description or None})

    def to_dict(self) -> dict:
        """The JSON `prh optimize mean-prompt --json` prints. `train_*` numbers are labelled as such;
        every other score is on the held-out split."""
        return {
            "prompt": self.search.prompt,
            "start": self.search.start_prompt,
            "train_score": self.search.train_score,
            "start_train_score": self.search.start_train_score,
            **self.heldout.to_dict(),
            "split": self.split,
            "seed": self.settings.seed,
            "steps": self.search.steps[-1].step,
            "evaluations": self.search.evaluations,
            "rejected_over_length_cap": self.search.rejected,
            "seconds": self.search.seconds,
            "stop_reason": self.search.stop_reason,
            "vocabulary_size": self.vocabulary_size,
            "beam_width": self.settings.beam_width,
            "candidates_per_step": self.settings.candidates_per_step,
            "candidates_toml": self.candidates_entry(),
        }


def optimize_mean_prompt(split: SuiteSplit, embedder: Embedder, *, start: str = PUBLIC_MEAN_PROMPT,
                         settings: SearchSettings = DEFAULT_SEARCH, store: Store | None = None,
                         extra_tokens: Sequence[str] = (), max_tokens: int | None = DEFAULT_MAX_TOKENS,
                         vocabulary_size: int = 3000, bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
                         on_step: Callable[[SearchStep], None] | None = None,
                         name: str = "searched-mean-prompt") -> MeanPromptReport:
    """Search a mean prompt on `split.train` and report it on `split.heldout` against `start`.

    The search (vocabulary, objective, every candidate scored) reads the train split only; the held-out
    split is read once, by `compare_on_heldout`, after the search has stopped.
    """
    train_prompts = split.train.prompts
    vocabulary = build_vocabulary(train_prompts, extra_tokens, max_words=vocabulary_size)
    objective = MeanScsObjective(train_prompts, embedder, store, max_tokens=max_tokens)
    result = search_mean_prompt(objective, vocabulary, start, settings, on_step=on_step)
    comparison = compare_on_heldout(ConstantCandidate(name, result.prompt), ConstantCandidate("start", start),
                                    split.heldout, embedder, store=store, bootstrap=bootstrap)
    return MeanPromptReport(name=name, search=result, heldout=comparison, split=split.describe(),
                            vocabulary_size=len(vocabulary), settings=settings)
