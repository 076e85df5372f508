"""`prh train` end to end on a tiny Llama built here: train from a JSONL file, register the printed entry,
score it with `prh score`, and the refusals that keep the eval split out of training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from tiny_models import (
    HELD_OUT_ROWS,
    MEMORIZE_ROWS,
    TINY_LORA_TARGETS,
    TINY_PROMPT,
    build_tiny_llama,
    one_torch_thread,
    write_rows_jsonl,
)

from harness.cli import main
from harness.tomlfile import tomllib


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    write_rows_jsonl(tmp_path / "memorise.jsonl", MEMORIZE_ROWS, ids=False)  # the format: no id column
    write_rows_jsonl(tmp_path / "held.jsonl", HELD_OUT_ROWS, ids=True)
    (tmp_path / "suites.toml").write_text('[suites.mem]\npath = "memorise.jsonl"\ncolumns = { id = "" }\n\n'
                                          '[suites.held]\npath = "held.jsonl"\n')
    return tmp_path


def train_args(workspace, *extra: str) -> list[str]:
    return ["train", "--base", str(workspace / "base"), "--train", str(workspace / "memorise.jsonl"),
            "--eval", "held", "--suites-file", str(workspace / "suites.toml"), "--out", str(workspace / "run"),
            "--embedder", "minilm", "--system", TINY_PROMPT["system"], "--user", TINY_PROMPT["user_template"],
            "--target-modules", ",".join(TINY_LORA_TARGETS), "--lora-dropout", "0", "--learning-rate", "5e-3",
            "--lr-schedule", "constant", "--warmup-ratio", "0", "--batch-size", "3", "--gradient-accumulation", "1",
            "--eval-max-new-tokens", "12", *extra]


def test_train_from_a_file_register_and_score_the_candidate(workspace, capsys):
    build_tiny_llama(workspace / "base")
    candidates = workspace / "candidates.toml"
    code = main(train_args(workspace, "--max-steps", "8", "--eval-steps", "4", "--lora-r", "4", "--name", "tiny-ft",
                           "--register", str(candidates)))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    entry = tomllib.loads(captured.out)["candidates"]["tiny-ft"]  # stdout is exactly the entry
    assert entry["kind"] == "hf" and entry["adapter"] == str((workspace / "run" / "adapter").resolve())
    assert entry["train_suites"] == ["mem"]  # the file is suite 'mem' of the suites file
    assert entry["system"] == TINY_PROMPT["system"] and entry["user"] == TINY_PROMPT["user_template"]
    served = tomllib.loads(captured.out)["candidates"]["tiny-ft-vllm"]  # the same adapter, served by vLLM
    assert served["kind"] == "chat" and served["model"] == "tiny-ft" and served["max_tokens"] == 12
    assert served["base_url"] == "http://localhost:8000/v1" and served["train_suites"] == ["mem"]
    assert f"--lora-modules tiny-ft={entry['adapter']}" in served["description"]
    assert f"'tiny-ft-vllm': vllm serve {workspace / 'base'}" in " ".join(captured.err.split())
    assert set(tomllib.loads(candidates.read_text())["candidates"]) == {"tiny-ft", "tiny-ft-vllm"}
    assert "step 8/8: SCS" in captured.err and "train_tokens_per_s" not in captured.out
    assert (workspace / "run" / "training_card.md").is_file() and (workspace / "run" / "training_card.png").is_file()
    run = json.loads((workspace / "run" / "run.json").read_text())
    assert run["config"]["lora_r"] == 4 and run["config"]["full_sequence_loss"] is False

    score = ["score", "--candidates-file", str(candidates), "--suites-file", str(workspace / "suites.toml"),
             "--candidate", "tiny-ft", "--embedder", "minilm", "--resamples", "1000", "--json"]
    assert main([*score, "--suite", "held"]) == 0
    scored = json.loads(capsys.readouterr().out)
    best_line = [line for line in (workspace / "run" / "training_card.md").read_text().splitlines()
                 if line.startswith("- **Selected checkpoint")][0]
    assert f"SCS {scored['mean']:.3f}" in best_line  # the harness scores it as training did
    assert main([*score, "--suite", "mem"]) == 2
    assert "learned from suite 'mem'" in capsys.readouterr().err

    # the same command again: the finished run is resumed at its end, nothing retrained
    assert main(train_args(workspace, "--max-steps", "8", "--eval-steps", "4", "--lora-r", "4",
                           "--name", "tiny-ft")) == 0
    assert "resuming from" in capsys.readouterr().err


def test_eval_suite_that_is_or_overlaps_the_training_suite_is_refused(workspace, capsys):
    args = train_args(workspace)
    args[args.index("--eval") + 1] = "mem"  # the suite the --train file is
    assert main(args) == 2
    assert "training suite" in capsys.readouterr().err
    overlapping = write_rows_jsonl(workspace / "overlap.jsonl", [*HELD_OUT_ROWS, MEMORIZE_ROWS[0]], ids=True)
    args[args.index("--eval") + 1] = str(overlapping)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: 1 of 3 rows of eval suite '{overlapping.as_posix()}'") and "eval row 'm0' = train row '1'" in err
    assert not (workspace / "run").exists()  # refused before anything was written


def test_bad_settings_are_one_line_errors(workspace, capsys):
    assert main(train_args(workspace, "--lora-r", "0")) == 2
    assert "lora_r must be a positive integer" in capsys.readouterr().err
    import torch

    if torch.cuda.is_available():
        return  # (on a GPU machine the hardware options below are valid)
    build_tiny_llama(workspace / "base")
    assert main(train_args(workspace, "--device", "cuda")) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert main(train_args(workspace, "--load-in-4bit")) == 2
    assert "QLoRA) needs a CUDA GPU" in capsys.readouterr().err


def test_the_train_command_imports_no_torch():
    code = ("import sys; from harness.cli import build_parser; p = build_parser(); "
            "p.parse_args(['train', '--base', 'b', '--train', 't', '--eval', 'e', '--out', 'o']); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_base_may_name_an_hf_candidate_and_the_entry_names_gguf_sources_absolutely(tmp_path, monkeypatch):
    from harness.commands.train import base_model
    from harness.errors import ConfigError
    from harness.train.loop import entry_model
    from harness.workspace import Workspace

    (tmp_path / "candidates.toml").write_text(
        '[candidates.small]\nkind = "hf"\nmodel = "gguf-package:some-gguf"\n'
        '[candidates.local]\nkind = "hf"\nmodel = "models/base"\n'
        '[candidates.fixed]\nkind = "constant"\nprompt = "Improve it."\n')
    (tmp_path / "models" / "base").mkdir(parents=True)
    workspace = Workspace.from_dir(tmp_path)
    assert base_model("small", workspace) == "gguf-package:some-gguf"
    assert base_model("local", workspace) == str(tmp_path / "models" / "base")
    assert base_model("/elsewhere/model", workspace) == "/elsewhere/model"
    with pytest.raises(ConfigError, match="candidate 'fixed' is of kind 'constant'"):
        base_model("fixed", workspace)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    converted = tmp_path / "cache"
    assert entry_model("gguf:m.gguf", converted) == f"gguf:{tmp_path / 'm.gguf'}"
    assert entry_model("m.gguf", converted) == str(tmp_path / "m.gguf")
    assert entry_model("gguf-package:some-gguf", converted) == "gguf-package:some-gguf"
    assert entry_model("models/base", converted) == str(converted.resolve())
    assert entry_model("org/model", converted) == "org/model"
