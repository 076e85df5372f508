"""The model side of fine-tuning: device and dtype, loading the base with a LoRA adapter, merging.

Device and dtype are resolved as the hf candidate resolves them ("auto" = CUDA when available, bfloat16
on a GPU that supports it, float32 otherwise), so the candidate that scores the adapter later runs it as
it was trained. Training uses one device; QLoRA (`load_in_4bit`) loads the frozen base in NF4 with
bitsandbytes and prepares it with peft's `prepare_model_for_kbit_training` (norms and head in float32).
Requirements that can fail (CUDA, bitsandbytes) are checked by `preflight` before anything is loaded.
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ModelUnavailableError
from harness.train.config import ALL_LINEAR, TrainConfig

#: peft 0.21 calls a transformers API that v5 deprecates; nothing a user can act on.
_PEFT_DEPRECATION = "`is_gradient_checkpointing` is deprecated"


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when a GPU is available, else "cpu"; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """"auto" → bfloat16 on a CUDA device that supports it, else float32 (float16 is never chosen: it
    needs loss scaling)."""
    if dtype != "auto":
        return dtype
    if not device.startswith("cuda"):
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"


def preflight(config: TrainConfig) -> tuple[str, str]:
    """(device, dtype) after checking that this machine can run `config`; raises ConfigError otherwise."""
    device = resolve_device(config.device)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"training: device {device!r} but CUDA is not available on this machine")
        if device == "cuda":
            device = "cuda:0"  # training uses one GPU; naming it keeps tensors and model together
    dtype = resolve_dtype(config.dtype, device)
    if config.load_in_4bit:
        if not device.startswith("cuda"):
            raise ConfigError(f"training: --load-in-4bit (QLoRA) needs a CUDA GPU; the device here is {device}")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("training: --load-in-4bit (QLoRA) needs bitsandbytes: pip install -e '.[quant]'")
    if dtype == "bfloat16" and device == "cpu":
        warnings.warn("training in bfloat16 on the CPU is slow and imprecise; float32 is the CPU default",
                      stacklevel=2)
    return device, dtype


def lora_config(config: TrainConfig) -> Any:
    """The peft LoraConfig of `config` (bias never trained; causal-LM task)."""
    from peft import LoraConfig

    targets: str | list[str] = ALL_LINEAR if config.target_modules == (ALL_LINEAR,) else list(config.target_modules)
    return LoraConfig(r=config.lora_r, lora_alpha=config.alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


@contextmanager
def quiet_peft() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _PEFT_DEPRECATION, FutureWarning)
        yield


def load_tokenizer(model_dir: Path) -> Any:
    """The base's tokenizer, as the hf candidate loads it (the adapter ships none, so both use this one)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def load_for_training(config: TrainConfig, model_dir: Path, device: str, dtype: str) -> Any:
    """The base model from `model_dir` on `device` with a freshly initialised LoRA adapter (seeded by
    `config.seed`); only the adapter's parameters require gradients."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    options: dict[str, Any] = {"dtype": getattr(torch, dtype), "local_files_only": True}
    if config.load_in_4bit:
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, dtype),
            bnb_4bit_use_double_quant=True)
        options["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **options)
    except OSError as error:
        raise ModelUnavailableError(f"training: cannot load the base model from {model_dir}: {error}") from error
    if not config.load_in_4bit:
        model.to(device)
    checkpointing = {"use_reentrant": False}
    if config.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    torch.manual_seed(config.seed)  # the LoRA A matrices are random; B starts at zero
    with quiet_peft():
        try:
            model = get_peft_model(model, lora_config(config))
        except ValueError as error:  # e.g. target modules not found in the model
            raise ConfigError(f"training: cannot add LoRA to {model_dir}: {error}") from None
    return model


def autocast(device: str, dtype: str) -> Any:
    """bfloat16 autocast on CUDA (the float32 LoRA matrices then multiply in bfloat16 as well); a no-op
    in float32 or on the CPU."""
    if dtype != "bfloat16" or not device.startswith("cuda"):
        return nullcontext()
    import torch

    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def save_adapter(model: Any, directory: Path) -> None:
    """Only the LoRA matrices (no copy of embeddings or head, even when LoRA wraps the head)."""
    with quiet_peft():
        model.save_pretrained(directory, save_embedding_layers=False)


def merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path, *, dtype: str, device: str) -> Path:
    """Save the base with the adapter merged in (`merge_and_unload`) and the base's tokenizer in `out_dir`.

    The base is loaded unquantized in `dtype` even after QLoRA training: merging into 4-bit weights would
    round the adapter away. Written to a temporary folder and moved into place, so `out_dir` is complete
    or absent.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), local_files_only=True)
    base.to(device)
    with quiet_peft():
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    temporary = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    merged.save_pretrained(temporary)
    load_tokenizer(model_dir).save_pretrained(temporary)
    shutil.rmtree(out_dir, ignore_errors=True)
    temporary.rename(out_dir)
    return out_dir
