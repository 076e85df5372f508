"""What the OPRO loop optimises: an instruction, and how an instruction becomes a real candidate.

- `ChatInstructionTarget`: the instruction of a chat candidate (its system message, or a preamble put
  before its user template for models without a system role). Every proposal is evaluated as a real
  `ChatCandidate` (same endpoint, model, templates, few-shot examples, sampling, post-processing) through
  `harness.evaluation`, so its cached predictions are ordinary prediction-cache entries.
- `MeanPromptTarget`: a mean prompt; a proposal is a `ConstantCandidate`.

Proposals are text from a model, never templates: their braces are escaped before they are put into a
template, so a proposal cannot inject `{original_text}` or break the template check.
"""

from __future__ import annotations

from typing import Protocol

from harness.candidates.base import Candidate
from harness.candidates.chat import ChatCandidate
from harness.candidates.constant import ConstantCandidate
from harness.errors import ConfigError
from harness.files import toml_table
from harness.hashing import json_fingerprint
from harness.optimize.metering import MeteredChatClient

SLOTS = ("system", "user-prefix")

_METRIC = ("Answers are scored by sharpened cosine similarity: the cube of the cosine between the sentence "
           "embeddings of the answer and of the true prompt, averaged over rows (0 to 1, higher is better).")


class InstructionTarget(Protocol):
    """An instruction to optimise: its start, the task a proposer is told about, and its candidate."""

    kind: str
    name: str
    start: str
    task_description: str

    def candidate(self, instruction: str) -> Candidate:
        """The candidate that answers with (or is steered by) `instruction`."""
        ...

    def candidates_entry(self, instruction: str, *, description: str = "") -> str:
        """A ready-to-paste `candidates.toml` table of the candidate with `instruction`."""
        ...


def escape_braces(text: str) -> str:
    """`text` as a literal inside a chat template ({ and } doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def unescape_braces(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


class ChatInstructionTarget:
    """The instruction of chat candidate `base`, in slot "system" (its system message) or "user-prefix"
    (a paragraph before its user template; the start is then "", i.e. the candidate unchanged).

    `client` is the metered client every proposal's candidate uses (built like `base.client`)."""

    kind = "chat"

    def __init__(self, base: ChatCandidate, client: MeteredChatClient, *, slot: str = "system") -> None:
        if slot not in SLOTS:
            raise ConfigError(f"slot must be one of {', '.join(SLOTS)}, got {slot!r}")
        self.base = base
        self.name = base.name
        self.client = client
        self.slot = slot
        self.start = unescape_braces(base.system) if slot == "system" else ""
        where = ("as its system message" if slot == "system"
                 else "as a paragraph before each question")
        self.task_description = (
            "A chat model recovers prompts. Another model (Gemma) was given an original text and a rewrite "
            "prompt and rewrote the text; the chat model sees the original and the rewritten text and must "
            f"answer with the rewrite prompt. The chat model receives an INSTRUCTION {where}. {_METRIC} "
            "Write a better INSTRUCTION: one that makes the chat model's answers score higher.")

    def candidate(self, instruction: str) -> ChatCandidate:
        base = self.base
        system, user = base.system, base.user
        if self.slot == "system":
            system = escape_braces(instruction)
        elif instruction.strip():
            user = f"{escape_braces(instruction)}\n\n{base.user}"
        return ChatCandidate(f"{base.name}@{json_fingerprint(instruction, 8)}", self.client, system=system,
                             user=user, examples=base.examples, train_suites=base.train_suites,
                             temperature=base.temperature, n=base.n, max_tokens=base.max_tokens, seed=base.seed,
                             postprocess=base.postprocess, spec=f"{base.spec} (optimised instruction)")

    def candidates_entry(self, instruction: str, *, description: str = "") -> str:
        """The base candidate's endpoint and settings with `instruction` in its slot. Few-shot examples
        cannot be written back from the loaded rows: the description says to copy the base's keys."""
        candidate, base, client = self.candidate(instruction), self.base, self.base.client
        if base.examples:
            description += f"; copy few_shot_suite and few_shot_k from '{base.name}'"
        return toml_table("candidates", f"{base.name}-optimised", {
            "kind": "chat", "base_url": client.base_url, "model": client.model, "api_key_env": client.api_key_env,
            "system": candidate.system, "user": candidate.user, "temperature": base.temperature,
            "n": base.n, "max_tokens": base.max_tokens, "seed": base.seed, "postprocess": base.postprocess,
            "description": description or None})


class MeanPromptTarget:
    """A mean prompt: one constant answer for every row."""

    kind = "mean-prompt"

    def __init__(self, start: str) -> None:
        if not start.strip():
            raise ConfigError("the start mean prompt is empty")
        self.name = "mean-prompt"
        self.start = start
        self.task_description = (
            "Prompt recovery: a model (Gemma) was given an original text and a rewrite prompt and rewrote the "
            "text; the task is to recover the rewrite prompt. Here the answer is ONE fixed sentence, the same "
            f"for every row (a 'mean prompt'). {_METRIC} Write a better mean prompt: a single instruction as "
            "close as possible, on average, to all the true rewrite prompts (examples of true prompts below).")

    def candidate(self, instruction: str) -> ConstantCandidate:
        return ConstantCandidate(f"mean@{json_fingerprint(instruction, 8)}", instruction)

    def candidates_entry(self, instruction: str, *, description: str = "") -> str:
        return toml_table("candidates", "optimised-mean-prompt", {"kind": "constant", "prompt": instruction,
                                                                   "description": description or None})
