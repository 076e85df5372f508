"""LoRA fine-tuning that produces candidates (`prh train`): see docs/train.md.

Loss on the answer tokens only by default (prompt and answer formatted by `harness.prompting`, the code
the hf candidate uses at inference), checkpoints scored every N steps with the harness's own SCS and
bootstrap CI on a held-out suite, the best one by SCS kept (not the lowest loss), a training card, and a
candidates.toml entry so `pytest suites/ --candidate=NAME` scores the adapter at once. Importing this
package loads no model and no torch.

    from harness.train import TrainConfig, train_lora
    result = train_lora(TrainConfig(base="/models/Mistral-7B", lora_r=4, max_steps=200),
                        train_suite, eval_suite, choose_embedder("minilm").embedder, "runs/mistral-r4")
"""

from __future__ import annotations

from harness._lazy import lazy_exports
from harness.train.config import TrainConfig

#: imported on first use, so `prh --help` does not pay for numpy/scipy/matplotlib
_lazy_names, __getattr__, __dir__ = lazy_exports(__name__, {
    ".data": ("BatchPlan", "Example", "check_disjoint", "encode_examples"),
    ".history": ("EvalRecord", "History", "StepRecord"),
    ".loop": ("TrainingResult", "train_lora"),
    ".loss": ("summed_token_loss",),
})
__all__ = ["TrainConfig", *_lazy_names]
