"""The hf candidate: a local transformers causal LM, optionally with a peft LoRA adapter, answers each row.

Prompts come from `harness.prompting`, the module LoRA fine-tuning uses too, so an adapter sees at
inference exactly the text it was trained on. Generation is batched with left padding; only the new
tokens are decoded, then cleaned by `harness.candidates.postprocess`. It is a streaming candidate: each
batch's answers are yielded (and cached by the harness) as soon as the batch finishes. Longest prompts go
first, so a batch too large for the GPU fails at once; on out-of-memory a batch is split in halves and
retried, and a single row that still does not fit is answered "" (reported as an empty prediction).

Base models (not instruction-tuned, no chat template) are asked with few-shot rows (`few_shot_suite`,
`few_shot_k`: solved rows asked and answered before each row, from a suite the candidate is then never
scored on) and stop at a stop string (`stop = ["\n"]`: one line, where a base model would otherwise go on
to invent the next example).

Nothing is loaded when the candidate is built. `preflight()` checks, before any row, that the model is
on this machine (a directory, a hub id in the local Hugging Face cache, downloaded when not cached
unless HF_HUB_OFFLINE is set, or a GGUF converted once by `harness.gguf_models`), that 4-bit loading has CUDA and bitsandbytes, and that the adapter fits
the model (`harness.hf_models.check_adapter_fits`). The model and tokenizer are loaded by the first
prediction.

The fingerprint covers what changes answers: the model's files (`harness.hf_models.model_fingerprint`:
configs, tokenizer and generation config in full; weights by size and first and last MiB; places on
disk named in configs left out), the adapter's files likewise, the prompt format
(templates, truncation, few-shot rows, `PROMPT_FORMAT_VERSION`), generation parameters (max_new_tokens,
temperature, stop strings; top_p and seed only when sampling), the resolved dtype, 4-bit quantization and post-processing. Not the device
or batch size. Strictly, both can move numbers: another device runs other kernels, and a padded batch
gives matrix products other shapes, so in bfloat16 a near-tie between two tokens can flip a greedy answer
between batch 1 and 16 (in float32 this is very rare). We accept that: cached answers stay valid when only
throughput settings change.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.candidates.base import CandidateContext
from harness.candidates.chat import _few_shot as few_shot_examples
from harness.candidates.postprocess import MODES, POSTPROCESS_VERSION
from harness.candidates.postprocess import postprocess as postprocess_answer
from harness.data import Sample
from harness.errors import ConfigError, ModelUnavailableError
from harness.gguf_models import GGUF_PREFIX, PACKAGE_PREFIX, is_gguf_name
from harness.hashing import json_fingerprint
from harness.hf_models import (
    check_adapter_fits,
    hub_offline,
    locate_model,
    looks_like_path,
    model_fingerprint,
    read_model_config,
)
from harness.prompting import (
    ADD_SPECIAL_TOKENS,
    DEFAULT_MAX_CHARS,
    DEFAULT_SYSTEM,
    DEFAULT_USER,
    PROMPT_FORMAT_VERSION,
    check_user_template,
    format_prompt,
)

log = logging.getLogger(__name__)

#: Keys of a `[candidates.NAME]` entry of kind "hf".
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


class HFCandidate:
    """A transformers causal LM (plus optional LoRA adapter) that recovers prompts; see the module docstring.

    Args:
        name: the candidate's name in reports.
        model: a local model directory (a Path, or a str that is a directory or looks like a path), or a hub
            id found in the local Hugging Face cache (downloaded only when HF_HUB_OFFLINE is not set).
        adapter: a peft adapter directory (adapter_config.json + weights), or None.
        dtype: "auto" (bfloat16 on CUDA when supported, float16 on older CUDA GPUs, float32 on CPU),
            "float32", "bfloat16" or "float16". With 4-bit loading it is the compute dtype.
        device: "auto" (CUDA when available), "cpu", "cuda" (all GPUs, layers spread by accelerate) or "cuda:N".
        batch_size: rows per `generate` call.
        max_new_tokens: answer length limit.
        temperature: 0 means greedy decoding; above 0, sampling with `top_p`, seeded by `seed`.
        system, user_template, max_text_chars: the prompt (see `harness.prompting`).
        examples: few-shot rows put before each question (`harness.prompting.format_prompt`); the suites
            they come from belong in `train_suites`.
        stop: strings that end an answer (generation stops there, and the answer is cut before the
            first one): ["\n"] makes a base model that continues a few-shot pattern answer one line.
        load_in_4bit: quantize the weights to NF4 with bitsandbytes (CUDA only) at load time.
        postprocess: a `harness.candidates.postprocess` mode ("auto", "json", "last_line", "raw").
        train_suites: suites the adapter was trained on (or the examples come from); scoring on them is refused.
        adapter_command: the command that writes the adapter, quoted when the adapter does not exist yet.
    """

    def __init__(self, name: str, model: str | Path, *, adapter: str | Path | None = None, dtype: str = "auto",
                 device: str = "auto", batch_size: int = 8, max_new_tokens: int = 48, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, system: str = DEFAULT_SYSTEM, user_template: str = DEFAULT_USER,
                 max_text_chars: int = DEFAULT_MAX_CHARS, examples: Sequence[Sample] = (), stop: Sequence[str] = (),
                 load_in_4bit: bool = False, postprocess: str = "auto", train_suites: Sequence[str] = (),
                 adapter_command: str | None = None, spec: str | None = None, where: str | None = None) -> None:
        where = where or f"candidate '{name}' (kind hf)"
        if dtype not in DTYPES:
            raise ConfigError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if device != "auto" and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
            raise ConfigError(f"{where}: device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {device!r}")
        if postprocess not in MODES:
            raise ConfigError(f"{where}: postprocess must be one of {', '.join(MODES)}, got {postprocess!r}")
        for key, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens),
                           ("max_text_chars", max_text_chars)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
        if not 0.0 <= temperature <= 2.0:
            raise ConfigError(f"{where}: temperature must be between 0 and 2, got {temperature:g}")
        if not 0.0 < top_p <= 1.0:
            raise ConfigError(f"{where}: top_p must be in (0, 1], got {top_p:g}")
        if any(not isinstance(text, str) or not text for text in stop):
            raise ConfigError(f"{where}: stop must be a list of non-empty strings, got {list(stop)!r}")
        try:
            check_user_template(user_template)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        self.name, self.spec = name, spec or name
        self.model = model
        self.adapter = Path(adapter) if adapter is not None else None
        self.dtype, self.device = DTYPES[dtype], device
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), int(seed)
        self.prompt_options = {"system": system, "user_template": user_template, "max_chars": max_text_chars}
        self.examples = tuple(examples)
        self.stop = tuple(stop)
        self.adapter_command = adapter_command
        self.load_in_4bit, self.postprocess = bool(load_in_4bit), postprocess
        self.train_suites = frozenset(train_suites)
        self._where = where
        self._checked = False
        self._loaded: tuple[Any, Any] | None = None
        #: tokens generated so far (each answer up to and including its stop token), for throughput reports
        self.generated_tokens = 0
        #: rows answered by the model so far (not from a cache): a rerun served by the cache leaves it at 0
        self.generated_rows = 0

    def __repr__(self) -> str:
        adapter = str(self.adapter) if self.adapter else None
        return (f"HFCandidate(name={self.name!r}, model={str(self.model)!r}, adapter={adapter!r}, "
                f"dtype={self.dtype!r}, load_in_4bit={self.load_in_4bit})")

    # -- what it is -------------------------------------------------------------------------------------------
    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def generation_settings(self) -> dict[str, Any]:
        """The parameters that change answers (top_p and seed matter only when sampling)."""
        settings: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature}
        if self.sampling:
            settings.update(top_p=self.top_p, seed=self.seed)
        if self.stop:
            settings["stop"] = list(self.stop)
        return settings

    @cached_property
    def model_dir(self) -> Path:
        """The model's local directory (`harness.hf_models.locate_model`): a hub id not in the local cache is
        downloaded unless HF_HUB_OFFLINE is set, as the hub's own tools do."""
        return locate_model(self.model, where=self._where, download=not hub_offline())

    @cached_property
    def adapter_dir(self) -> Path | None:
        if self.adapter is None:
            return None
        if not (self.adapter / "adapter_config.json").is_file():
            what = "does not exist" if not self.adapter.exists() else "has no adapter_config.json"
            how = (f"; make it with:\n    {self.adapter_command}" if self.adapter_command
                   else " (expected a peft adapter saved with save_pretrained)")
            raise ModelUnavailableError(f"{self._where}: adapter directory {self.adapter} {what}{how}")
        return self.adapter

    @cached_property
    def fingerprint(self) -> str:
        """Computed on first use (it reads the model's files): see the module docstring for what it covers."""
        return json_fingerprint({
            "kind": "hf",
            "model": model_fingerprint(self.model_dir),
            "adapter": model_fingerprint(self.adapter_dir) if self.adapter_dir else None,
            "prompt": {**self.prompt_options, "format": PROMPT_FORMAT_VERSION,
                       **({"examples": [[e.original_text, e.rewritten_text, e.rewrite_prompt] for e in self.examples]}
                          if self.examples else {})},
            "generation": self.generation_settings(),
            "dtype": self.resolved_dtype(),
            "load_in_4bit": self.load_in_4bit,
            "postprocess": [self.postprocess, POSTPROCESS_VERSION],
        })

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        if not self.resolved_device().startswith("cuda"):
            return "float32"
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"

    # -- before any row ---------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check everything that can fail before a row is processed, without loading weights: device and
        4-bit requirements, the model's presence and config, the adapter's fit. Raises a HarnessError."""
        if self._checked:
            return
        device = self.resolved_device()
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"{self._where}: device {device!r} but CUDA is not available on this machine")
        if self.load_in_4bit:
            if not device.startswith("cuda"):
                raise ConfigError(f"{self._where}: load_in_4bit needs a CUDA GPU (device here: {device}); "
                                  "set load_in_4bit = false to run unquantized")
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ConfigError(f"{self._where}: load_in_4bit needs the bitsandbytes package: pip install bitsandbytes")
        # The adapter first: a missing adapter's message gives the command that makes it, and that command
        # says what the base model needs (on a fresh clone both are missing).
        adapter_dir = self.adapter_dir
        config = read_model_config(self.model_dir, self._where)
        if adapter_dir is not None:
            check_adapter_fits(self.adapter_dir, self.model_dir, config, where=self._where)
        self._checked = True

    # -- loading ----------------------------------------------------------------------------------------------
    def load(self) -> tuple[Any, Any]:
        """Load (once) and return (model, tokenizer): the model in eval mode on its device, the tokenizer
        padding on the left with a pad token (falling back to EOS)."""
        if self._loaded is not None:
            return self._loaded
        self.preflight()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype = self.resolved_device(), getattr(torch, self.resolved_dtype())
        # Everything is read from the resolved local directory: the hub is never contacted here.
        options: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
        if self.load_in_4bit:
            from transformers import BitsAndBytesConfig

            options["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True)
        if device.startswith("cuda"):
            options["device_map"] = "auto" if device == "cuda" else {"": device}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.model_dir, **options)
        except OSError as error:
            raise ModelUnavailableError(f"{self._where}: cannot load the model from {self.model_dir}: {error}") from error
        if "device_map" not in options:
            model.to(device)
        if self.adapter_dir is not None:
            from peft import PeftModel

            with warnings.catch_warnings():  # peft 0.21 calls an API transformers 5 deprecates; not actionable here
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                model = PeftModel.from_pretrained(model, str(self.adapter_dir), is_trainable=False)
        model.eval()
        # An adapter may ship its own tokenizer (added tokens, a chat template set during training).
        tokenizer_dir = self.adapter_dir if self.adapter_dir and (self.adapter_dir / "tokenizer_config.json").is_file() \
            else self.model_dir
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(f"{self._where}: the tokenizer in {tokenizer_dir} has neither a pad nor an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        self._loaded = (model, tokenizer)
        return self._loaded

    # -- answering --------------------------------------------------------------------------------------------
    def predict(self, samples: Sequence[Sample]) -> list[str]:
        predictions = [""] * len(samples)
        for index, prediction in self.predict_stream(samples):
            predictions[index] = prediction
        return predictions

    def predict_stream(self, samples: Sequence[Sample]) -> Iterator[tuple[int, str]]:
        """Yield (index, answer) batch by batch, longest prompts first. When sampling, torch's generator is
        seeded with `seed` once per call, so a sampled answer also depends on which rows are asked together."""
        samples = list(samples)
        if not samples:
            return
        model, tokenizer = self.load()
        prompts = [self.prompt(tokenizer, s) for s in samples]
        order = sorted(range(len(samples)), key=lambda i: -len(prompts[i]))
        if self.sampling:
            import torch

            torch.manual_seed(self.seed)
        for start in range(0, len(order), self.batch_size):
            yield from self._generate_splitting(order[start:start + self.batch_size], prompts, model, tokenizer)

    def prompt(self, tokenizer: Any, sample: Sample) -> str:
        """The text the model continues for `sample` (tokenized without special tokens: it has its own)."""
        return format_prompt(tokenizer, sample.original_text, sample.rewritten_text, examples=self.examples,
                             **self.prompt_options)

    def _generate_splitting(self, indices: list[int], prompts: list[str], model, tokenizer) -> Iterator[tuple[int, str]]:
        """Answers for `indices`; on CUDA out-of-memory, the halves separately, down to single rows."""
        import torch

        try:
            texts = self._generate([prompts[i] for i in indices], model, tokenizer)
        except torch.OutOfMemoryError:
            texts = None  # retried below, outside the handler: its traceback holds the failed batch's tensors
        if texts is not None:
            yield from zip(indices, texts)
            return
        torch.cuda.empty_cache()
        if len(indices) == 1:
            log.warning("%s: row %d does not fit in GPU memory even alone; answered ''", self._where, indices[0])
            yield indices[0], ""
            return
        half = len(indices) // 2
        yield from self._generate_splitting(indices[:half], prompts, model, tokenizer)
        yield from self._generate_splitting(indices[half:], prompts, model, tokenizer)

    def _generate(self, prompts: list[str], model, tokenizer) -> list[str]:
        import torch

        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=ADD_SPECIAL_TOKENS)
        encoded = encoded.to(model.device)
        stop_ids = _stop_ids(model, tokenizer)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.sampling,
                                   "pad_token_id": tokenizer.pad_token_id, "eos_token_id": stop_ids}
        if self.sampling:
            options.update(temperature=self.temperature, top_p=self.top_p)
        if self.stop:  # transformers stops each row at the first stop string (it needs the tokenizer for that)
            options.update(stop_strings=list(self.stop), tokenizer=tokenizer)
        with torch.inference_mode():
            output = model.generate(**encoded, **options)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        self.generated_tokens += _answer_token_count(new_tokens, stop_ids, tokenizer.pad_token_id)
        self.generated_rows += len(prompts)
        answers = [cut_at_stop(answer, self.stop)
                   for answer in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        return [postprocess_answer(answer, self.postprocess) for answer in answers]


def cut_at_stop(answer: str, stop: Sequence[str]) -> str:
    """`answer` up to the first occurrence of any stop string (leading whitespace skipped first, so an
    answer that opens with a newline is not cut to nothing)."""
    text = answer.lstrip()
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def _answer_token_count(new_tokens, stop_ids: list[int], pad_id: int | None) -> int:
    """Generated tokens in a batch: each row up to and including its first stop token; a row that ended
    at a stop string or the length limit counts its tokens other than the padding after it."""
    import torch

    stops = torch.isin(new_tokens, torch.tensor(stop_ids, device=new_tokens.device))
    unpadded = (new_tokens != pad_id).sum(dim=1) if pad_id is not None else torch.full_like(stops[:, 0], new_tokens.shape[1], dtype=torch.long)
    lengths = torch.where(stops.any(dim=1), stops.int().argmax(dim=1) + 1, unpadded)
    return int(lengths.sum())


def _stop_ids(model, tokenizer) -> list[int]:
    """EOS of the tokenizer (what fine-tuning ends answers with) plus those of the model's generation config
    (e.g. an end-of-turn token)."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, configured):
        for token_id in (value if isinstance(value, list) else [value]):
            if token_id is not None and token_id not in ids:
                ids.append(int(token_id))
    return ids


# -- from candidates.toml ----------------------------------------------------------------------------------------
def from_config(name: str, entry: Mapping[str, Any], context: CandidateContext) -> HFCandidate:
    """Build an hf candidate from its `[candidates.NAME]` entry (keys: `schema.HfEntry`, see docs/hf.md).
    Relative paths (model, adapter) are read from the candidates file's folder."""
    from harness.candidates.schema import HfEntry, validate_entry
    from harness.candidates.schema import where as entry_where

    where = f"{entry_where(context.source, name)} (kind hf)"
    settings = validate_entry(HfEntry, entry, where)
    model = settings.model.strip()
    if model.startswith(GGUF_PREFIX):  # a GGUF file: relative to the candidates file, like other paths
        gguf = Path(model[len(GGUF_PREFIX):]).expanduser()
        model = GGUF_PREFIX + str(gguf if gguf.is_absolute() else context.base_dir / gguf)
    elif not model.startswith(PACKAGE_PREFIX):
        path = Path(model).expanduser()
        local = path if path.is_absolute() else context.base_dir / path
        if local.is_dir() or looks_like_path(model) or is_gguf_name(model):
            model = local  # a Path: never mistaken for a hub id
    adapter = None
    if settings.adapter is not None:
        adapter_path = Path(settings.adapter).expanduser()
        adapter = adapter_path if adapter_path.is_absolute() else context.base_dir / adapter_path
    train_suites = list(settings.train_suites)
    examples, example_suites = few_shot_examples(settings, context, where)
    return HFCandidate(
        name, model, adapter=adapter, dtype=settings.dtype, device=settings.device, batch_size=settings.batch_size,
        max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p,
        seed=settings.seed, system=DEFAULT_SYSTEM if settings.system is None else settings.system,
        user_template=DEFAULT_USER if settings.user is None else settings.user,
        max_text_chars=DEFAULT_MAX_CHARS if settings.max_text_chars is None else settings.max_text_chars,
        examples=examples, stop=settings.stop, load_in_4bit=settings.load_in_4bit, postprocess=settings.postprocess,
        train_suites=[*train_suites, *(s for s in example_suites if s not in train_suites)],
        adapter_command=settings.adapter_command, where=where)


