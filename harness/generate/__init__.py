"""Synthetic and mined data for prompt recovery (`prh generate …`; docs/generate.md).

One module per job:
- `catalog`: prompt templates with placeholders, expanded with a seed, combined 2-3 at a time;
- `synth`: an LLM writes (original, rewritten) pairs as JSON for each expanded prompt;
- `rewrite`: another model rewrites existing rows; `gemma_style`: Gemma-like post-processing;
  `local`: a transformers model standing in for an endpoint;
- `validation`: parsing answers, rejecting bad ones, flagging doubtful rows;
- `runner`: concurrent requests through `harness.llm.ChatClient`, rows appended as they arrive, resume;
- `jsonl`: the append-only output; derived files are written atomically by `harness.files`;
- `cost_estimate`, `progress`: what a run would cost (prices: `harness.pricing`), the running cost;
- `dedup`: exact and embedding near-duplicates; `mining`: hard rows for the current candidates;
  `review`: a markdown sample for a human reader.

Names are re-exported lazily (PEP 562): `prh` imports `harness.commands.generate` to build its parser, and
that must not pay for numpy or tabulate.
"""

from __future__ import annotations

from harness._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".catalog": ("Catalog", "ExpandedPrompt", "PromptTemplate", "expand_catalog", "load_catalog"),
    ".dedup": ("Duplicate", "find_duplicates"),
    ".gemma_style": ("gemma_postprocess",),
    ".jsonl": ("AppendOnlyJsonl", "read_jsonl"),
    ".mining": ("Mining", "mine", "mined_rows", "mining_report"),
    ".cost_estimate": ("Estimate", "estimate"),
    ".review": ("review_markdown",),
    ".rewrite": ("RewriteAcceptor", "RewriteSettings", "rewrite_items"),
    ".runner": ("RunSettings", "RunSummary", "WorkItem", "run_items"),
    ".synth": ("SynthAcceptor", "SynthPrompts", "synth_items"),
    ".validation": ("InvalidGeneration", "check_pair", "flags", "parse_pair"),
})
