"""Every hyper-parameter of a LoRA fine-tuning run, in one frozen dataclass.

Nothing about a run is implicit: the training card prints every field, and a resumed run must have the
same values for every field that changes the weights or the model selection (`resume_identity`), so a
checkpoint is never continued under other settings by accident. Validation happens here, before any
model is loaded, and names the field and the value that is wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from harness.errors import ConfigError
from harness.prompting import DEFAULT_MAX_CHARS, DEFAULT_SYSTEM, DEFAULT_USER, check_user_template

#: Learning-rate schedules (names of `transformers.get_scheduler`) that need nothing beyond warmup.
SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
#: Training dtypes. float16 is left out on purpose: it needs loss scaling, which this loop does not do.
TRAIN_DTYPES = ("auto", "float32", "bfloat16")
#: peft's shorthand for "every linear layer except the output head".
ALL_LINEAR = "all-linear"
#: Fields that may differ when a run is resumed: they change speed, bookkeeping or what is written at the
#: end, not the weights of any checkpoint or which checkpoint is best. (`base` is how the model is named,
#: a path or a hub id; the run compares the model's files instead, so a moved model still resumes.)
RESUMABLE_CHANGES = frozenset({"base", "device", "eval_batch_size", "keep_checkpoints", "merge", "name",
                               "vllm_base_url"})
#: Where `vllm serve` listens by default; the chat entry written for the adapter points there.
VLLM_BASE_URL = "http://localhost:8000/v1"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one `prh train` run (see docs/train.md for the reasoning behind each default).

    Attributes:
        base: the base model: a local directory or a hub id (resolved as the hf candidate resolves it).
        lora_r, lora_alpha, lora_dropout, target_modules: the LoRA adapter. `lora_alpha` None means 2 * r.
            `target_modules` are module-name suffixes, or ("all-linear",) for every linear layer but the head.
        full_sequence_loss: False (default) puts the loss on the answer tokens only (labels -100 on the
            prompt); True trains on prompt and answer alike, to compare the two.
        epochs, max_steps: training length; `max_steps` (optimizer steps), when given, wins over `epochs`.
        learning_rate, lr_schedule, warmup_ratio, weight_decay, max_grad_norm: the AdamW optimizer and its
            schedule; warmup is a share of all steps.
        batch_size, gradient_accumulation: rows per forward pass, and passes per optimizer step.
        max_length: token limit per training row; longer rows are left out (with a warning naming them),
            never cut, because a cut row would teach a prompt the model never sees at inference.
        seed: LoRA initialisation, data order and dropout.
        system, user_template, max_text_chars: the prompt (`harness.prompting`), shared with inference.
        eval_steps: generate on the eval suite and score it every this many optimizer steps (and at the end).
        eval_batch_size, eval_max_new_tokens: generation settings of that evaluation; the candidate entry
            written at the end uses the same `max_new_tokens`, so its scores reproduce.
        keep_checkpoints: how many recent checkpoints to keep besides the best one.
        dtype: "auto" = bfloat16 on a CUDA GPU that supports it, else float32.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". Training uses one device.
        load_in_4bit: QLoRA: the frozen base in 4-bit NF4 (CUDA and bitsandbytes only).
        gradient_checkpointing: trade compute for activation memory (long rows, large models).
        merge: also save the base with the best adapter merged in (`merge_and_unload`).
        name: the candidate's name in the entry written at the end ("" = the output folder's name).
        vllm_base_url: the API root of the vLLM server in the second entry (`NAME-vllm`, kind chat).
    """

    base: str
    lora_r: int = 4
    lora_alpha: float | None = None
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = (ALL_LINEAR,)
    full_sequence_loss: bool = False
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 2e-4
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 4
    gradient_accumulation: int = 4
    max_length: int = 2048
    seed: int = 0
    system: str = DEFAULT_SYSTEM
    user_template: str = DEFAULT_USER
    max_text_chars: int = DEFAULT_MAX_CHARS
    eval_steps: int = 50
    eval_batch_size: int = 8
    eval_max_new_tokens: int = 48
    keep_checkpoints: int = 2
    dtype: str = "auto"
    device: str = "auto"
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    merge: bool = False
    name: str = ""
    vllm_base_url: str = VLLM_BASE_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        self._validate()

    @property
    def alpha(self) -> float:
        """The LoRA scaling numerator actually used (2 * r unless given)."""
        return float(self.lora_alpha) if self.lora_alpha is not None else 2.0 * self.lora_r

    @property
    def prompt_options(self) -> dict[str, Any]:
        """Keyword arguments of `harness.prompting` (the same ones the hf candidate passes)."""
        return {"system": self.system, "user_template": self.user_template, "max_chars": self.max_text_chars}

    def to_dict(self) -> dict[str, Any]:
        """Every hyper-parameter, JSON-ready, with `lora_alpha` resolved."""
        data = asdict(self)
        data["lora_alpha"] = self.alpha
        data["target_modules"] = list(self.target_modules)
        return data

    def resume_identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_CHANGES}

    def _validate(self) -> None:
        def fail(name: str, expected: str) -> None:
            raise ConfigError(f"training: {name} must be {expected}, got {getattr(self, name)!r}")

        if not isinstance(self.base, str) or not self.base.strip():
            fail("base", "a model directory or a hub id")
        for name in ("lora_r", "batch_size", "gradient_accumulation", "max_length", "eval_steps",
                     "eval_batch_size", "eval_max_new_tokens", "max_text_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(name, "a positive integer")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            fail("max_steps", "a positive integer (or None to train for `epochs`)")
        if not self.epochs > 0:
            fail("epochs", "positive")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            fail("lora_alpha", "positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            fail("lora_dropout", "in [0, 1)")
        if not self.target_modules or not all(isinstance(m, str) and m.strip() for m in self.target_modules):
            fail("target_modules", "one or more module names (or 'all-linear')")
        if ALL_LINEAR in self.target_modules and len(self.target_modules) > 1:
            fail("target_modules", "either 'all-linear' alone or a list of module names")
        if not self.learning_rate > 0:
            fail("learning_rate", "positive")
        if self.lr_schedule not in SCHEDULES:
            fail("lr_schedule", f"one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            fail("warmup_ratio", "in [0, 1)")
        if self.weight_decay < 0:
            fail("weight_decay", ">= 0")
        if self.max_grad_norm < 0:
            fail("max_grad_norm", ">= 0 (0 switches clipping off)")
        if not isinstance(self.keep_checkpoints, int) or self.keep_checkpoints < 1:
            fail("keep_checkpoints", "a positive integer")
        if self.dtype not in TRAIN_DTYPES:
            fail("dtype", f"one of {', '.join(TRAIN_DTYPES)} (float16 would need loss scaling)")
        if self.device != "auto" and not (self.device == "cpu" or self.device == "cuda"
                                          or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            fail("device", "'auto', 'cpu', 'cuda' or 'cuda:N'")
        try:
            check_user_template(self.user_template)
        except ConfigError as error:
            raise ConfigError(f"training: {error}") from None


def config_fields() -> list[str]:
    """Names of the hyper-parameters, in declaration order (for the training card's table)."""
    return [f.name for f in fields(TrainConfig)]
