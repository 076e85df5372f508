"""The review report: a random sample of generated rows, with their flags, for a person to read before
the rows join a suite.

Validators catch malformed answers; only a reader catches a rewrite that ignores half of a combined
instruction, or an original that gives the answer away. The report therefore shows a seeded random
sample in full (instruction, flags, both texts, provenance), preceded by counts that say where to look:
flags by kind, final failures by reason, rows per group and model, text lengths. Flags are recomputed
with the current rules (`harness.generate.validation.flags`) and merged with those stored in the row,
so files from other sources (a rewrite run, a hand-made CSV turned JSONL) are reviewed the same way.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from harness.generate.validation import FLAG_DESCRIPTIONS, flags, merge_flags, word_count

DEFAULT_SAMPLE = 25


def row_flags(row: Mapping[str, Any]) -> list[str]:
    stored = row.get("flags") if isinstance(row.get("flags"), list) else []
    return merge_flags([str(f) for f in stored], flags(str(row.get("original_text") or ""),
                                                       str(row.get("rewritten_text") or ""),
                                                       str(row.get("rewrite_prompt") or "")))


def _fence(text: str) -> list[str]:
    """A fenced block that no backtick run inside the text can close early."""
    longest = max((len(line.strip()) for line in text.split("\n") if set(line.strip()) == {"~"}), default=0)
    fence = "~" * max(3, longest + 1)
    return [fence + "text", text, fence]


def _provenance_line(row: Mapping[str, Any]) -> str:
    provenance = row.get("provenance") if isinstance(row.get("provenance"), Mapping) else {}
    keys = ("task", "model", "template_ids", "seed", "temperature", "requests", "prompt_tokens",
            "completion_tokens", "cost_usd", "created")
    parts = [f"{k}={provenance[k]}" for k in keys if provenance.get(k) is not None]
    return ", ".join(parts) if parts else "(no provenance)"


def _median(values: Sequence[int]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    middle = len(ordered) // 2
    return str(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2)


def review_markdown(rows: Sequence[Mapping[str, Any]], *, failures: Sequence[Mapping[str, Any]] = (),
                    sample: int = DEFAULT_SAMPLE, seed: int = 0, source: str = "") -> str:
    """The report (see the module docstring) for `rows` (and the failure log, if given)."""
    marked = [row_flags(row) for row in rows]
    flag_counts = Counter(f for row in marked for f in row)
    final_failures = [f for f in failures if f.get("final")]
    done_ids = {str(row.get("id")) for row in rows}
    open_failures = [f for f in final_failures if str(f.get("id")) not in done_ids]
    models = Counter(str((row.get("provenance") or {}).get("model", "(unknown)")) if isinstance(row.get("provenance"), Mapping)
                     else "(unknown)" for row in rows)
    groups = Counter(str(row.get("group") or "(none)") for row in rows)
    lines = [f"# Review of generated rows{f': `{source}`' if source else ''}", "",
             f"- rows: {len(rows)}; rows with at least one flag: {sum(1 for m in marked if m)}",
             f"- failures still open (final, no row since): {len(open_failures)}; rejected answers logged: "
             f"{len(failures)}",
             f"- models: {', '.join(f'{m} ({c})' for m, c in models.most_common())}",
             f"- groups: {len(groups)}; combined instructions: "
             f"{sum(1 for row in rows if '+' in str(row.get('group') or ''))}",
             f"- median words: original {_median([word_count(str(r.get('original_text') or '')) for r in rows])}, "
             f"rewritten {_median([word_count(str(r.get('rewritten_text') or '')) for r in rows])}", ""]
    if flag_counts:
        lines += ["## Flags", "", tabulate([[f, c, FLAG_DESCRIPTIONS.get(f, "")] for f, c in flag_counts.most_common()],
                                           headers=["flag", "rows", "meaning"], tablefmt="github"), ""]
    if open_failures:
        reasons = Counter(str(f.get("reason")) for f in open_failures)
        lines += ["## Open failures", "", tabulate(reasons.most_common(), headers=["reason", "items"], tablefmt="github"),
                  "", "Rerun the same command to retry them.", ""]
    lines += ["## Groups (top 15)", "", tabulate(groups.most_common(15), headers=["group", "rows"], tablefmt="github"), ""]
    chosen = sorted(random.Random(seed).sample(range(len(rows)), min(sample, len(rows))))
    lines += [f"## Sample: {len(chosen)} of {len(rows)} rows (seed {seed})", ""]
    for number, index in enumerate(chosen, start=1):
        row = rows[index]
        lines += [f"### {number}. `{row.get('id')}` — {row.get('group') or '(no group)'}", "",
                  f"**Instruction:** {row.get('rewrite_prompt')}", "",
                  f"**Flags:** {', '.join(marked[index]) or 'none'}", "",
                  f"**Original** ({word_count(str(row.get('original_text') or ''))} words):",
                  *_fence(str(row.get("original_text") or "")), "",
                  f"**Rewritten** ({word_count(str(row.get('rewritten_text') or ''))} words):",
                  *_fence(str(row.get("rewritten_text") or "")), "",
                  f"<sub>{_provenance_line(row)}</sub>", ""]
    return "\n".join(lines)
