"""A local transformers chat model behind the generation runner's client interface.

For rewriting without a server (`prh generate rewrite --backend local --model DIR`): the runner only
needs `model`, `base_url`, `redact` and `complete_many`, so a model on this machine can stand where a
`harness.llm.ChatClient` stands. Conversations go through the tokenizer's chat template (Gemma's has
no system role: leave `--system` empty), in batches with left padding; greedy at temperature 0,
sampled above it. Token counts are the real ones. Nothing is loaded until the first request; the model
directory is checked when this object is built (`harness.hf_models.locate_model`: a directory, or a hub
id in the local cache, downloaded unless HF_HUB_OFFLINE is set).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.hf_models import hub_offline, locate_model
from harness.llm import ChatRequestError, ChatResult


class LocalChatModel:
    """A transformers causal LM answering chat conversations (see the module docstring).

    Args:
        model: a model directory or a hub id in the local Hugging Face cache.
        max_new_tokens: the completion cap when a request gives no max_tokens.
        batch_size: conversations per `generate` call.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    """

    def __init__(self, model: str | Path, *, max_new_tokens: int = 512, batch_size: int = 4, device: str = "auto") -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("local model: batch_size and max_new_tokens must be >= 1")
        self.model_dir = locate_model(model, where="local rewrite model", download=not hub_offline())
        self.model = str(model)
        self.base_url = f"local:{self.model_dir}"
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = device
        self._loaded: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"LocalChatModel(model={self.model!r}, batch_size={self.batch_size})"

    def preflight(self) -> None:
        """The directory was located when this object was built; loading happens on first use."""

    def redact(self, text: str) -> str:
        return text  # no key is involved

    def close(self) -> None:
        self._loaded = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.device if self.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype, local_files_only=True).to(device)
            model.eval()
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._loaded = (model, tokenizer)
        return self._loaded

    def _prompt(self, tokenizer, messages: Sequence[Mapping[str, Any]]) -> str:
        conversation = [{"role": m["role"], "content": str(m["content"])} for m in messages]
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in conversation) + "\n\n"

    def complete_many(self, requests: Iterable[Sequence[Mapping[str, Any]]], *, temperature: float = 0.0,
                      max_tokens: int | None = None, stop: Sequence[str] | None = None,
                      **_: Any) -> Iterator[tuple[int, ChatResult | Exception]]:
        """Answer each conversation, a batch at a time, yielding (index, ChatResult) in request order,
        with the finish reason a server would give ("stop" at EOS or a `stop` text, which is cut off,
        "length" at the token cap). `response_format` and other server options are ignored (a batch
        failure fails its rows)."""
        import torch

        model, tokenizer = self._load()
        conversations = list(requests)
        stop_ids = [i for i in {tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
                    if isinstance(i, int)]
        cap = max_tokens or self.max_new_tokens
        for start in range(0, len(conversations), self.batch_size):
            indices = range(start, min(start + self.batch_size, len(conversations)))
            started = time.perf_counter()
            try:
                prompts = [self._prompt(tokenizer, conversations[i]) for i in indices]
                encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                options: dict[str, Any] = {"max_new_tokens": cap,
                                           "do_sample": temperature > 0, "pad_token_id": tokenizer.pad_token_id,
                                           "eos_token_id": stop_ids or None}
                if temperature > 0:
                    options["temperature"] = temperature
                with torch.inference_mode():
                    output = model.generate(**encoded, **options)
            except Exception as error:  # one batch's failure (e.g. out of memory) fails its rows, not the run
                failure = ChatRequestError(f"local model {self.model}: {type(error).__name__}: {error}")
                for i in indices:
                    yield i, failure
                continue
            width = encoded["input_ids"].shape[1]
            seconds = time.perf_counter() - started
            for row, i in enumerate(indices):
                new = output[row, width:].tolist()
                length = next((k + 1 for k, t in enumerate(new) if t in stop_ids), len(new))
                text = tokenizer.decode(new[:length], skip_special_tokens=True)
                ended = (length > 0 and new[length - 1] in stop_ids) or len(new) < cap
                text, cut = cut_at_stop(text, stop or ())
                yield i, ChatResult(texts=[text], prompt_tokens=int(encoded["attention_mask"][row].sum()),
                                    completion_tokens=length, latency_s=seconds / len(indices),
                                    finish_reasons=["stop" if ended or cut else "length"])


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first occurrence of any `stop` text (as a server cuts it), and whether one occurred."""
    found = [position for position in (text.find(s) for s in stop if s) if position >= 0]
    return (text[:min(found)], True) if found else (text, False)
