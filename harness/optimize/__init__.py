"""Prompt optimisation and leaderboard calibration (docs/optimize.md).

- mean-prompt search against an embedder, over train-prompt words or the embedder's own tokens
  (`optimize_mean_prompt`, `search_mean_prompt`, `MeanScsObjective`, `build_vocabulary`,
  `build_token_space`, `GradientGuide`), with the oracle bound of the best constant (`oracle_bound`);
- an OPRO-style loop for a chat candidate's instruction or a mean prompt (`run_opro`, targets, metering,
  trajectory log, plot and training-set export).

Calibration against known leaderboard scores lives in `harness.leaderboard`.

Every reported result is a held-out number (`compare_on_heldout`); train and dev numbers are labelled.
Names are re-exported lazily (PEP 562) so that `prh` loading this package's CLI imports nothing heavy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MeanScsObjective": "objective", "DirectionObjective": "objective", "token_counter": "objective",
    "scoring_device": "objective",
    "TokenSpace": "tokens", "build_token_space": "tokens", "usable_tokens": "tokens", "embedder_tokenizer": "tokens",
    "GradientGuide": "guide",
    "OracleBound": "oracle", "oracle_bound": "oracle", "oracle_for_prompts": "oracle",
    "Vocabulary": "vocabulary", "build_vocabulary": "vocabulary", "read_token_list": "vocabulary",
    "SearchSettings": "search", "SearchResult": "search", "SearchStep": "search", "search_mean_prompt": "search",
    "HeldoutComparison": "heldout", "compare_on_heldout": "heldout",
    "MeanPromptReport": "mean_prompt", "optimize_mean_prompt": "mean_prompt", "PUBLIC_MEAN_PROMPT": "mean_prompt",
    "NearestString": "mean_prompt", "OracleReport": "mean_prompt",
    "MeteredChatClient": "metering", "Price": "metering", "Usage": "metering", "parse_price": "metering",
    "ChatInstructionTarget": "targets", "MeanPromptTarget": "targets", "InstructionTarget": "targets",
    "build_meta_prompt": "meta_prompt", "parse_proposal": "meta_prompt", "ScoredInstruction": "meta_prompt",
    "OproSettings": "opro", "OproResult": "opro", "Proposer": "opro", "run_opro": "opro",
    "TrajectoryLog": "trajectory", "read_trajectory": "trajectory", "training_rows": "trajectory",
    "export_training_set": "trajectory", "plot_trajectory": "trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.optimize.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.optimize' has no attribute {name!r}")
