"""The OPRO meta-prompt, and reading a proposal back out of a proposer's answer.

As in OPRO (Yang et al., 2023): the task description, then the best instructions tried so far with
their scores sorted *ascending* (the best comes last, nearest to where the model starts writing), then a
few exemplars of the task, then the request for one new instruction that differs from all of them,
between <INS> and </INS>. The instructions of the history are shown between the same tags: a weak model
imitates the format it sees far more readily than one it is told about (Gemma-3-270m wrote the tags in
none of 10 answers when only the closing request showed them). Anything else a proposer returns (no
tags, empty, too long, a copy) is an invalid proposal: recorded in the trajectory, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.data import Sample

OPEN, CLOSE = "<INS>", "</INS>"
_TAGGED = re.compile(r"<INS>(.*?)</INS>", re.DOTALL | re.IGNORECASE)
_QUOTES = "\"'“”‘’`"
EMPTY_INSTRUCTION = "(no instruction)"


@dataclass(frozen=True)
class ScoredInstruction:
    instruction: str
    score: float


@dataclass(frozen=True)
class Proposal:
    """A parsed answer: `instruction` when usable, else `problem` says why not."""

    instruction: str | None
    problem: str | None = None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def history_table(history: Sequence[ScoredInstruction], *, limit: int = 20) -> str:
    """The `limit` best instructions, ascending by score (ties: the earlier one first), one block each,
    each instruction between the tags a proposal must use."""
    ranked = sorted(enumerate(history), key=lambda item: (item[1].score, -item[0]))[-limit:]
    blocks = [f"text:\n{OPEN}{item.instruction or EMPTY_INSTRUCTION}{CLOSE}\nscore:\n{item.score:.4f}"
              for _, item in ranked]
    return "\n\n".join(blocks)


def build_meta_prompt(task_description: str, history: Sequence[ScoredInstruction], exemplars: Sequence[Sample], *,
                      history_limit: int = 20, exemplar_chars: int = 300, show_texts: bool = True) -> str:
    """The message sent to every proposer in a round. `show_texts=False` shows only the exemplars' true
    prompts (for mean prompts, where the texts do not matter)."""
    parts = [task_description.strip(), "",
             "Below are instructions tried so far, with their scores, from worst to best "
             "(higher scores are better):", "", history_table(history, limit=history_limit), ""]
    if exemplars:
        parts += ["Examples of the task (the true prompt is what a perfect answer would say):", ""]
        for number, sample in enumerate(exemplars, start=1):
            if show_texts:
                parts += [f"Example {number}:", f"Original text: {_clip(sample.original_text, exemplar_chars)}",
                          f"Rewritten text: {_clip(sample.rewritten_text, exemplar_chars)}",
                          f"True prompt: {sample.rewrite_prompt}", ""]
            else:
                parts.append(f"True prompt {number}: {sample.rewrite_prompt}")
        parts.append("")
    parts.append("Write one new instruction that is different from all the instructions above and scores higher "
                 f"than all of them. Think briefly if you like, then give the instruction between {OPEN} and "
                 f"{CLOSE}, like {OPEN}your instruction{CLOSE}.")
    return "\n".join(parts)


def check_instruction(text: str | None, *, max_chars: int = 2000) -> str | None:
    """Why a proposed instruction is unusable (None when it is usable): the one rule every backend (OPRO,
    GEPA, TextGrad) applies before it spends metric calls on a proposal."""
    if text is None or not text.strip():
        return "empty instruction"
    if len(text) > max_chars:
        return f"instruction of {len(text)} characters (limit {max_chars})"
    return None


def parse_proposal(answer: str, *, max_chars: int = 2000) -> Proposal:
    """The instruction in the last <INS>…</INS> of `answer` (models that think first quote the tags early).
    Surrounding quotes and whitespace are stripped."""
    if not isinstance(answer, str) or not answer.strip():
        return Proposal(None, "empty answer")
    found = _TAGGED.findall(answer)
    if not found:
        return Proposal(None, f"no {OPEN}…{CLOSE} in the answer")
    instruction = found[-1].strip().strip(_QUOTES).strip()
    if instruction.lower() in ("your instruction", EMPTY_INSTRUCTION):
        instruction = ""
    problem = check_instruction(instruction, max_chars=max_chars)
    if problem is not None:
        return Proposal(None, f"{problem} between {OPEN} and {CLOSE}" if not instruction else problem)
    return Proposal(instruction)
