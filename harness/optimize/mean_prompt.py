"""Mean-prompt optimisation end to end: split → search space and objective from the TRAIN split → the
train oracle → search → the string nearest the train oracle's direction → one held-out comparison with
the starting prompt → the held-out oracle → a candidates.toml entry.

Order matters for honesty: everything up to and including the nearest-string search reads the train
split only; the held-out rows are read after it, by `compare_on_heldout` and the held-out oracle. The
dev split is not used here (the search has no hyper-parameter it selects on); give it fraction 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.candidates.constant import ConstantCandidate
from harness.embedders import Embedder
from harness.embedding_cache import embed_texts
from harness.errors import ConfigError
from harness.evaluation import DEFAULT_BOOTSTRAP, BootstrapSettings
from harness.files import toml_table
from harness.metric import weighted_scs
from harness.optimize.guide import GradientGuide
from harness.optimize.heldout import HeldoutComparison, compare_on_heldout
from harness.optimize.objective import DirectionObjective, MeanScsObjective, scoring_device
from harness.optimize.oracle import OracleBound, distinct_truths, oracle_bound
from harness.optimize.search import SearchResult, SearchSettings, SearchStep, search_mean_prompt
from harness.optimize.tokens import build_token_space, embedder_tokenizer
from harness.optimize.vocabulary import build_vocabulary
from harness.splits import SuiteSplit
from harness.store import Store

#: Public leaderboard 0.63 (README); the default start and reference of every search.
PUBLIC_MEAN_PROMPT = ("Please improve this text using the writing style with maintaining the original meaning "
                      "but altering the tone.")
DEFAULT_SEARCH = SearchSettings()
#: sentence-t5-base reads 128 tokens; a longer mean prompt gains nothing on the leaderboard.
DEFAULT_MAX_TOKENS = 128
SPACES = ("tokens", "words")
#: Measured by bench/optimize.py (docs/optimize.md): on MiniLM and a CPU, word search wins at the same budget.
DEFAULT_SPACE = "words"
GUIDES = ("auto", "gradient", "none")


@dataclass(frozen=True)
class NearestString:
    """The best string found by a search aimed at the TRAIN oracle's direction (cosine objective), and
    what it is worth: `train_score` on the train split (labelled), `heldout` on the held-out rows."""

    search: SearchResult
    cosine: float
    train_score: float
    heldout: HeldoutComparison

    @property
    def prompt(self) -> str:
        return self.search.prompt


@dataclass(frozen=True)
class OracleReport:
    """The oracle bound on both splits. `train` is fitted on the train rows (a train number); `heldout`
    is the held-out split's own optimum, an upper bound for any constant there (no constant fitted on
    train can reach it); `train_direction_heldout` is the train optimum's vector scored on held-out."""

    train: OracleBound
    heldout: OracleBound
    train_direction_heldout: float


@dataclass(frozen=True)
class MeanPromptReport:
    """A finished search: the train-split trajectory, the held-out comparison and the oracle bound."""

    name: str
    search: SearchResult
    heldout: HeldoutComparison
    split: dict
    vocabulary_size: int
    settings: SearchSettings
    space: str = "words"
    space_info: dict | None = None
    oracle: OracleReport | None = None
    nearest: NearestString | None = None
    device: str = "cpu"
    guide: str = "none"

    @property
    def prompt(self) -> str:
        return self.search.prompt

    def headroom_share(self) -> float | None:
        """How much of the held-out headroom over the start the prompt took: (found − start) /
        (held-out oracle − start). None without an oracle or without headroom."""
        if self.oracle is None:
            return None
        room = self.oracle.heldout.value - self.heldout.start.mean
        return (self.heldout.found.mean - self.heldout.start.mean) / room if room > 0 else None

    def candidates_entry(self) -> str:
        h = self.heldout
        description = (f"mean-prompt search ({self.space}) on '{self.split['suite']}' (train split, seed "
                       f"{self.settings.seed}, embedder {h.found.embedder}): held-out {h.found.mean:.4f} "
                       f"[{h.found.interval.low:.4f}, {h.found.interval.high:.4f}], "
                       f"vs start {h.delta.estimate:+.4f} [{h.delta.low:+.4f}, {h.delta.high:+.4f}]")
        if self.oracle is not None:
            description += f"; best possible constant {self.oracle.heldout.value:.4f}"
        return toml_table("candidates", self.name, {"kind": "constant", "prompt": self.search.prompt,
                                                      "description": description or None})

    def summary(self) -> str:
        """One sentence: the prompt's held-out score against the bound and the start."""
        text = f"prompt {self.heldout.found.mean:.3f} held-out (start {self.heldout.start.mean:.3f})"
        if self.oracle is not None:
            text += f"; best possible constant {self.oracle.heldout.value:.3f}"
            share = self.headroom_share()
            if share is not None:
                text += f"; you are at {share:.0%} of the headroom over the start"
        return text

    def to_dict(self) -> dict:
        """The JSON `prh optimize mean-prompt --json` prints. `train_*` and `oracle_train` numbers are
        labelled as such; every other score is on the held-out split."""
        seconds = self.search.seconds
        data = {
            "prompt": self.search.prompt,
            "start": self.search.start_prompt,
            "space": self.space,
            "train_score": self.search.train_score,
            "start_train_score": self.search.start_train_score,
            **self.heldout.to_dict(),
            "split": self.split,
            "seed": self.settings.seed,
            "steps": self.search.steps[-1].step,
            "evaluations": self.search.evaluations,
            "strings_evaluated": self.search.evaluations,
            "strings_per_second": self.search.evaluations / seconds if seconds > 0 else None,
            "rejected_over_length_cap": self.search.rejected,
            "seconds": seconds,
            "stop_reason": self.search.stop_reason,
            "vocabulary_size": self.vocabulary_size,
            **{k: v for k, v in (self.space_info or {}).items() if k != "vocabulary_size"},
            "moves": list(self.settings.moves) if self.settings.moves else None,
            "beam_width": self.settings.beam_width,
            "candidates_per_step": self.settings.candidates_per_step,
            "guide": self.guide,
            "device": self.device,
        }
        if self.oracle is not None:
            data.update({
                "oracle_train": self.oracle.train.value,
                "oracle_heldout": self.oracle.heldout.value,
                "oracle_train_direction_heldout": self.oracle.train_direction_heldout,
                "mean_direction_heldout": self.oracle.heldout.mean_direction_value,
                "headroom_share": self.headroom_share(),
            })
        if self.nearest is not None:
            n = self.nearest.heldout
            data.update({
                "nearest_prompt": self.nearest.prompt,
                "nearest_cosine_train_oracle": self.nearest.cosine,
                "nearest_train_score": self.nearest.train_score,
                "nearest_heldout_score": n.found.mean,
                "nearest_heldout_ci_low": n.found.interval.low, "nearest_heldout_ci_high": n.found.interval.high,
                "nearest_delta": n.delta.estimate, "nearest_delta_ci_low": n.delta.low,
                "nearest_delta_ci_high": n.delta.high,
                "nearest_evaluations": self.nearest.search.evaluations, "nearest_steps": self.nearest.search.steps[-1].step,
                "nearest_seconds": self.nearest.search.seconds,
            })
        data["candidates_toml"] = self.candidates_entry()
        return data


def resolve_space(space: str, tokenizer: Any | None) -> str:
    """Check `space`: 'tokens' needs the embedder's tokenizer."""
    if space not in SPACES:
        raise ConfigError(f"unknown search space {space!r}: expected {', '.join(SPACES)}")
    if space == "tokens" and tokenizer is None:
        raise ConfigError("--space tokens needs an embedder with a tokenizer (st5, minilm or a local "
                          "sentence-transformers model); use --space words")
    return space


def optimize_mean_prompt(split: SuiteSplit, embedder: Embedder, *, start: str = PUBLIC_MEAN_PROMPT,
                         settings: SearchSettings = DEFAULT_SEARCH, store: Store | None = None,
                         extra_tokens: Sequence[str] = (), max_tokens: int | None = DEFAULT_MAX_TOKENS,
                         vocabulary_size: int = 3000, bootstrap: BootstrapSettings = DEFAULT_BOOTSTRAP,
                         on_step: Callable[[SearchStep], None] | None = None,
                         name: str = "searched-mean-prompt", space: str = DEFAULT_SPACE, tokenizer: Any | None = None,
                         explore_share: float = 0.1, nearest: SearchSettings | None = None,
                         on_nearest_step: Callable[[SearchStep], None] | None = None,
                         oracle: bool = True, device: str | None = "auto", guide: str = "auto",
                         top_k: int = 32) -> MeanPromptReport:
    """Search a mean prompt on `split.train` and report it on `split.heldout` against `start`.

    Args (beyond the obvious):
        space: "words" (train-prompt words; the default, as measured) or "tokens" (the embedder's
            tokenizer vocabulary).
        tokenizer: the tokenizer of the token space (default: the embedder's own).
        explore_share: token space: probability mass on tokens the train prompts lack.
        nearest: settings of the search for the string nearest the train oracle's direction (None: skip).
        oracle: compute the oracle bound on train and held-out.
        device: where scores are computed: "auto" (the embedder's device when it is an accelerator),
            None (numpy), or a torch device.
        guide: token space: "gradient" (each move's token among the top_k of the objective's gradient,
            `harness.optimize.guide`), "none" (drawn from the prior), "auto" (gradient when the embedder's
            model allows it).

    The search (vocabulary, objective, oracle, every candidate scored) reads the train split only; the
    held-out split is read once the searches have stopped.
    """
    if nearest is not None and not oracle:
        raise ConfigError("the nearest-string search aims at the oracle direction: it needs oracle=True")
    train_prompts = split.train.prompts
    tokenizer = tokenizer if tokenizer is not None else (embedder_tokenizer(embedder) if space == "tokens" else None)
    space = resolve_space(space, tokenizer)
    if space == "tokens":
        searched = build_token_space(tokenizer, train_prompts, extra_tokens, explore_share=explore_share,
                                     max_tokens=max_tokens)
    else:
        searched = build_vocabulary(train_prompts, extra_tokens, max_words=vocabulary_size)
    device = scoring_device(embedder) if device == "auto" else device
    objective = MeanScsObjective(train_prompts, embedder, store, max_tokens=max_tokens, device=device)
    start_vector = embed_texts([searched.normalise(start)], embedder, store)[0] if oracle else None
    train_oracle = (oracle_bound(objective.truth_vectors, objective.weights, extra_starts=[start_vector],
                                 seed=settings.seed) if oracle else None)
    guide = resolve_guide(guide, space, embedder)
    result = search_mean_prompt(objective, searched, start, settings, on_step=on_step,
                                guide=_guide(guide, embedder, searched, objective, top_k))
    nearest_search = None
    if nearest is not None:
        aim = DirectionObjective(train_oracle.direction, embedder, store, max_tokens=max_tokens, device=device)
        first = max((result.prompt, result.start_prompt), key=lambda text: float(aim.score([text])[0]))
        nearest_search = search_mean_prompt(aim, searched, first, nearest, on_step=on_nearest_step,
                                            guide=_guide(guide, embedder, searched, aim, top_k))
        nearest_train = float(objective.score([nearest_search.prompt])[0])
    # -- the held-out split is read from here on --------------------------------------------------------
    start_candidate = ConstantCandidate("start", start)
    comparison = compare_on_heldout(ConstantCandidate(name, result.prompt), start_candidate,
                                    split.heldout, embedder, store=store, bootstrap=bootstrap)
    nearest_report = None
    if nearest_search is not None:
        nearest_report = NearestString(
            search=nearest_search, cosine=nearest_search.train_score, train_score=nearest_train,
            heldout=compare_on_heldout(ConstantCandidate(f"{name}-nearest", nearest_search.prompt), start_candidate,
                                       split.heldout, embedder, store=store, bootstrap=bootstrap))
    oracle_report = None
    if oracle:
        compared = [result.prompt, start] + ([nearest_search.prompt] if nearest_search is not None else [])
        oracle_report = _oracle_report(train_oracle, objective.n_rows, split.heldout.prompts, compared, embedder,
                                       store, seed=settings.seed)
    return MeanPromptReport(name=name, search=result, heldout=comparison, split=split.describe(),
                            vocabulary_size=len(searched), settings=replace(settings, moves=settings.moves or
                                                                            searched.default_moves),
                            space=space, space_info=searched.describe(), oracle=oracle_report,
                            nearest=nearest_report, device=device or "cpu", guide=guide)


def _oracle_report(train_oracle: OracleBound, n_train_rows: int, heldout_prompts: Sequence[str],
                   compared: Sequence[str], embedder: Embedder, store: Store | None, *, seed: int) -> OracleReport:
    """The held-out oracle (its starts include the compared prompts' embeddings and the train optimum, so
    it is never below any of them) beside the train one."""
    extra = [*embed_texts(list(compared), embedder, store), train_oracle.direction]
    truths, weights = distinct_truths(heldout_prompts, embedder, store)
    bound = oracle_bound(truths, weights, extra_starts=extra, seed=seed)
    return OracleReport(train=replace(train_oracle, n_rows=n_train_rows),
                        heldout=replace(bound, n_rows=len(heldout_prompts)),
                        train_direction_heldout=float(weighted_scs(train_oracle.direction[None], truths, weights)[0]))


def resolve_guide(guide: str, space: str, embedder: Embedder) -> str:
    """'auto' → 'gradient' in the token space when the embedder's model exposes its input embeddings."""
    if guide not in GUIDES:
        raise ConfigError(f"unknown guide {guide!r}: expected {', '.join(GUIDES)}")
    if guide == "none" or space != "tokens":
        if guide == "gradient" and space != "tokens":
            raise ConfigError("--guide gradient works in the token space only (--space tokens)")
        return "none"
    load = getattr(embedder, "load", None)
    usable = callable(load) and GradientGuide.available(load())
    if guide == "gradient" and not usable:
        raise ConfigError(f"--guide gradient needs a transformers model with input embeddings; embedder "
                          f"'{embedder.name}' has none (use --guide none)")
    return "gradient" if usable else "none"


def _guide(guide: str, embedder: Embedder, space, objective, top_k: int):
    if guide != "gradient":
        return None
    return GradientGuide(embedder.load(), space, objective.torch_values, top_k=top_k)
