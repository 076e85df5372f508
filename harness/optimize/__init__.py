"""Prompt optimisation and leaderboard calibration (docs/optimize.md).

- mean-prompt search against an embedder, over train-prompt words or the embedder's own tokens
  (`optimize_mean_prompt`, `search_mean_prompt`, `MeanScsObjective`, `build_vocabulary`,
  `build_token_space`, `GradientGuide`), with the oracle bound of the best constant (`oracle_bound`);
- instruction optimisers for a chat candidate's instruction or a mean prompt: an OPRO-style loop
  (`run_opro`), GEPA (`run_gepa`) and TextGrad (`run_textgrad`; both need the `optimizers` extra), on one
  shared layer (`OptimizationSession`, `Budget`: scoring, budgets, trajectory, held-out report), with
  targets, metering, trajectory log, plot and training-set export.

Calibration against known leaderboard scores lives in `harness.leaderboard`.

Every reported result is a held-out number (`compare_on_heldout`); train and dev numbers are labelled.
Names are re-exported lazily (PEP 562) so that `prh` loading this package's CLI imports nothing heavy.
"""

from __future__ import annotations

from harness._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".objective": ("MeanScsObjective", "DirectionObjective", "token_counter", "scoring_device"),
    ".tokens": ("TokenSpace", "build_token_space", "usable_tokens", "embedder_tokenizer"),
    ".guide": ("GradientGuide",),
    ".oracle": ("OracleBound", "oracle_bound", "oracle_for_prompts"),
    ".vocabulary": ("Vocabulary", "build_vocabulary", "read_token_list"),
    ".search": ("SearchSettings", "SearchResult", "SearchStep", "search_mean_prompt"),
    ".heldout": ("HeldoutComparison", "compare_on_heldout"),
    ".mean_prompt": ("MeanPromptReport", "optimize_mean_prompt", "PUBLIC_MEAN_PROMPT", "NearestString",
                     "OracleReport"),
    ".metering": ("MeteredChatClient",),
    ".targets": ("ChatInstructionTarget", "MeanPromptTarget", "InstructionTarget"),
    ".meta_prompt": ("build_meta_prompt", "parse_proposal", "ScoredInstruction"),
    ".opro": ("OproSettings", "Proposer", "run_opro"),
    ".session": ("Budget", "OptimizationResult", "OptimizationSession"),
    ".gepa_backend": ("GepaSettings", "run_gepa"),
    ".textgrad_backend": ("TextGradSettings", "run_textgrad"),
    ".trajectory": ("TrajectoryLog", "read_trajectory", "training_rows", "export_training_set", "plot_trajectory"),
})
