"""Tiny but real causal language models and LoRA adapters, built locally in seconds (never mocks).

- `build_tiny_tokenizer`: a byte-level BPE tokenizer trained here with `tokenizers` (special tokens
  `<pad>`, `<s>`, `</s>` and chat role tokens), wrapped as a transformers fast tokenizer with a small
  Jinja chat template (or none, to exercise the plain prompt fallback);
- `build_tiny_llama`: a 2-layer `LlamaForCausalLM` plus that tokenizer, saved with `save_pretrained`;
- `build_other_tiny_model`: the same with another hidden size, for adapter/base mismatch checks;
- `train_tiny_lora`: a LoRA adapter trained with peft on `MEMORIZE_ROWS`, formatted through
  `harness.prompting.encode_training_example` exactly as LoRA fine-tuning does; 80 full-batch
  steps memorise the three answers (greedy decoding reproduces them) in under a second on one CPU thread;
- `HELD_OUT_ROWS`, `TINY_LORA_TARGETS`, `tiny_train_config`: a held-out suite and a `harness.train`
  configuration that trains the tiny Llama the same way (`prh train` tests).

Build, train and run these models on one torch thread (`one_torch_thread`, used by the builders here):
their matrices are too small to gain from more, and on a busy machine OpenMP threads waiting for each
other make a step 10-100x slower.

Byte-level BPE decodes exactly what it encoded, so a memorised answer comes back character for character.
Shared by the hf candidate tests, its benchmark and LoRA-training tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.data import Sample
from harness.prompting import DEFAULT_SYSTEM, DEFAULT_USER, encode_training_example

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: A memorisation set: distinct answers with distinct first words, so the adapter must read the row.
MEMORIZE_ROWS = (
    Sample("m0", "The cat sat on the mat.", "A feline reposed upon the rug.", "Rewrite it more formally."),
    Sample("m1", "Meet me at noon by the docks.", "Arr, meet me at noon by the docks, matey!",
           "Make it sound like a pirate."),
    Sample("m2", "I like the rain in spring.", "Soft spring rain falls / I like it so / grey sky song",
           "Turn this into a haiku."),
)
#: Short prompts keep training on a CPU fast (the default system prompt triples the sequence length).
#: An hf candidate for an adapter trained with these must declare them: system = ..., user = ...
TINY_PROMPT = {"system": "Recover the prompt.", "user_template": "{original_text}\n=>\n{rewritten_text}"}
CORPUS = [
    *(text for s in MEMORIZE_ROWS for text in (s.original_text, s.rewritten_text, s.rewrite_prompt)),
    DEFAULT_SYSTEM, DEFAULT_USER, *TINY_PROMPT.values(),
    "Please improve this text using the writing style with maintaining the original meaning.",
    "Convert the recipe into a poem. Shorten the story and add a twist at the end.",
    "Dear team, the quarterly report is attached. Best regards, Ann.",
]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_tiny_tokenizer(*, chat_template: str | None = CHAT_TEMPLATE, vocab_size: int = 500):
    """A trained byte-level BPE tokenizer as a transformers fast tokenizer (BOS/EOS/PAD set)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tiny_llama(directory: str | Path, *, hidden_size: int = 48, num_layers: int = 2, seed: int = 0,
                     chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Save a randomly initialised (seeded) 2-layer Llama and its tokenizer in `directory`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    tokenizer = build_tiny_tokenizer(chat_template=chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    with one_torch_thread():
        LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_other_tiny_model(directory: str | Path) -> Path:
    """A tiny Llama whose hidden size differs from `build_tiny_llama`'s: adapters of one don't fit the other."""
    return build_tiny_llama(directory, hidden_size=64, seed=1)


@dataclass(frozen=True)
class TrainedAdapter:
    path: Path
    #: training loss at every step (full batch), first to last
    losses: list[float]


def train_tiny_lora(base_dir: str | Path, out_dir: str | Path, *, rows: Sequence[Sample] = MEMORIZE_ROWS,
                    steps: int = 80, r: int = 8, learning_rate: float = 5e-3, seed: int = 0,
                    prompt_options: dict | None = None) -> TrainedAdapter:
    """Train a LoRA adapter on `rows` (loss on the answer tokens only) and save it in `out_dir`.

    `prompt_options` (system, user_template, max_chars; default `TINY_PROMPT`) go to
    `harness.prompting`, as for inference.
    LoRA wraps every projection and the LM head: the random base's LM head is too flat for attention
    and MLP adapters alone to lower the loss visibly in a few steps.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                        "down_proj", "lm_head"])
    with warnings.catch_warnings():  # peft calls a transformers API that v5 deprecates; not ours to fix
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        model = get_peft_model(model, config)
    options = TINY_PROMPT if prompt_options is None else prompt_options
    examples = [encode_training_example(tokenizer, row, **options) for row in rows]
    width = max(len(e["input_ids"]) for e in examples)
    pad = tokenizer.pad_token_id

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([e[key] + [fill] * (width - len(e[key])) for e in examples])

    input_ids, labels = padded("input_ids", pad), padded("labels", -100)
    attention_mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    model.train()
    losses = []
    with one_torch_thread():
        for _ in range(steps):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    # save_embedding_layers=False: keep only the LoRA matrices, not a copy of the base's LM head
    model.save_pretrained(out_dir, save_embedding_layers=False)
    return TrainedAdapter(out_dir, losses)


# -- LoRA fine-tuning (harness.train) -----------------------------------------------------------------------
#: Held-out rows for `MEMORIZE_ROWS`: other texts (no row shared), the same kinds of rewrite.
HELD_OUT_ROWS = (
    Sample("h0", "The dog ran across the yard.", "The canine traversed the grounds.", "Rewrite it more formally."),
    Sample("h1", "Hello, see you at the market.", "Ahoy, see ye at the market, matey!", "Make it sound like a pirate."),
)
#: LoRA on every projection and the LM head, as `train_tiny_lora` does (a random base's head is too flat
#: for attention and MLP adapters alone to lower the loss visibly in a few steps).
TINY_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")


def write_rows_jsonl(path: str | Path, rows: Sequence[Sample], *, ids: bool = True) -> Path:
    """`rows` as a suite file (JSONL with original_text, rewritten_text, rewrite_prompt, and id unless
    `ids` is False); returns the path."""
    import json

    path = Path(path)
    lines = []
    for row in rows:
        record = {"original_text": row.original_text, "rewritten_text": row.rewritten_text,
                  "rewrite_prompt": row.rewrite_prompt}
        lines.append(json.dumps({"id": row.id, **record} if ids else record))
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_train_config(base_dir: str | Path, **overrides):
    """A `harness.train.TrainConfig` that trains the tiny Llama in about a second: full batch of the three
    `MEMORIZE_ROWS`, the short `TINY_PROMPT`, learning rate 5e-3, no warmup, answers of 12 tokens."""
    from harness.train import TrainConfig

    settings = dict(base=str(base_dir), lora_r=8, lora_dropout=0.0, target_modules=TINY_LORA_TARGETS,
                    learning_rate=5e-3, lr_schedule="constant", warmup_ratio=0.0, batch_size=3,
                    gradient_accumulation=1, max_steps=12, eval_steps=4, eval_max_new_tokens=12,
                    system=TINY_PROMPT["system"], user_template=TINY_PROMPT["user_template"])
    settings.update(overrides)
    return TrainConfig(**settings)
