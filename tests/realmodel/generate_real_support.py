"""Helpers of the real-model tier's generation and OPRO tests: the llama.cpp server serving the tier's
Gemma-3-270m GGUF, `prh` runs whose printed summary is read back as numbers, and a transcript of the
commands with what they printed (the walkthrough's "generate hard data with Gemma" is pasted from it:
set PRH_TRANSCRIPT_DIR to keep it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llamacpp_server import MODEL_ALIAS, LlamaServer, llamacpp_server

from harness.cli import main

#: a second name of the same GGUF with other settings: "two differently configured endpoints" (OPRO needs two)
SECOND_ALIAS = f"{MODEL_ALIAS}-ctx1024"
GEMMA_ALIASES = {MODEL_ALIAS: {}, SECOND_ALIAS: {"n_ctx": 1024}}

#: what a run prints at its end (harness.generate.runner.RunSummary.lines)
_ITEMS = re.compile(r"items: (\d+) planned, (\d+) already done, (\d+) written, (\d+) failed")
_REQUESTS = re.compile(r"requests: (\d+) \((\d+) answers rejected; reasons: ([^)]*)\)")


@contextmanager
def gemma_server(gguf: Path, aliases: Mapping[str, Mapping[str, Any]] | None, log_dir: Path) -> Iterator[LlamaServer]:
    """The tier's GGUF behind llama-cpp-python's server (skips without `llama-cpp-python[server]`)."""
    pytest.importorskip("llama_cpp", reason='real-model tier: pip install "llama-cpp-python[server]"')
    with llamacpp_server(gguf, aliases, log_dir=log_dir) as server:
        yield server


def wait_until_idle(server: LlamaServer, model: str) -> None:
    """Return once the server has finished what it was doing (e.g. the request of a killed client): it
    answers one request at a time, so a one-token request queued behind that one ends after it."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=600).read()
    time.sleep(0.5)  # the access log line of that request is written just after its answer


@dataclass(frozen=True)
class RunOutcome:
    """One `prh generate` run: exit code, what it printed, and its summary as numbers."""

    code: int
    out: str
    err: str
    planned: int
    skipped: int
    written: int
    failed: int
    requests: int
    rejected: int
    reasons: dict[str, int]
    seconds: float


class Transcript:
    """Commands and what they printed, as markdown (kept under $PRH_TRANSCRIPT_DIR when it is set)."""

    def __init__(self, name: str, paths: Mapping[Path, str] = {}) -> None:  # noqa: B006 - never mutated
        self.name = name
        self.paths = {str(path): shown for path, shown in paths.items()}  # temporary folders as readers see them
        self.parts: list[str] = []

    def _shown(self, text: str) -> str:
        for path, shown in sorted(self.paths.items(), key=lambda item: -len(item[0])):
            text = text.replace(path, shown)
        return text

    def add(self, args: Sequence[str], printed: str, seconds: float, note: str = "") -> None:
        shown = " ".join(_quoted(a) for a in ["prh", *args])
        self.parts.append(self._shown(f"```console\n$ {shown}\n{printed.rstrip()}\n```\n({seconds:.0f} s{note})\n"))

    def save(self) -> None:
        folder = os.environ.get("PRH_TRANSCRIPT_DIR")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{self.name}.md").write_text("\n".join(self.parts))


def _quoted(argument: str) -> str:
    """`argument` as a shell reads it; newlines as bash's $'\\n'."""
    if "\n" in argument:
        return "$'" + argument.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return shlex.quote(argument)


def run_prh(args: Sequence[str], capsys, transcript: Transcript | None = None, note: str = "") -> RunOutcome:
    """`prh ARGS` in this process; its printed summary parsed (zeros where a line is missing)."""
    started = time.perf_counter()
    code = main(list(args))
    seconds = time.perf_counter() - started
    printed = capsys.readouterr()
    if transcript is not None:
        transcript.add(args, printed.out + printed.err, seconds, note)
    items = _ITEMS.search(printed.out)
    requests = _REQUESTS.search(printed.out)
    planned, skipped, written, failed = (int(g) for g in items.groups()) if items else (0, 0, 0, 0)
    reasons: dict[str, int] = {}
    if requests and requests.group(3) != "none":
        for part in requests.group(3).split(", "):
            reason, count = part.rsplit(" ×", 1)
            reasons[reason] = int(count)
    return RunOutcome(code, printed.out, printed.err, planned, skipped, written, failed,
                      int(requests.group(1)) if requests else 0, int(requests.group(2)) if requests else 0,
                      reasons, seconds)


def write_optimizer_candidates(path: Path, base_url: str) -> Path:
    """Two proposers (one per model name) and the target: a chat candidate answering in one short line.
    No system message: Gemma has no system role (llama.cpp's Gemma format drops it), so the instruction
    goes before the user turn (--slot user-prefix). Used by the OPRO, GEPA and TextGrad cases and by
    bench/optimizers.py."""
    entry = ('[candidates.{name}]\nkind = "chat"\nbase_url = "{url}"\nmodel = "{model}"\nsystem = ""\n'
             "max_tokens = {max_tokens}\nmax_concurrency = 1\ntimeout = 300\n\n")
    path.write_text(entry.format(name="gemma-proposer", url=base_url, model=MODEL_ALIAS, max_tokens=64)
                    + entry.format(name="gemma-proposer-b", url=base_url, model=SECOND_ALIAS, max_tokens=64)
                    + entry.format(name="gemma-chat", url=base_url, model=MODEL_ALIAS, max_tokens=16))
    return path


def leaked_rows_file(folder: Path, rows: slice) -> Path:
    """Rows `rows` of the shipped `leaked` suite as a Kaggle-format CSV of their own (the optimizer cases
    split it)."""
    import csv

    from harness.data import load_suite, spec_for_file

    leaked = load_suite(spec_for_file(Path(__file__).resolve().parents[2] / "fixtures" / "leaked.csv"))
    path = folder / f"leaked-{rows.start}-{rows.stop}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "original_text", "rewrite_prompt", "rewritten_text"])
        writer.writerows([s.id, s.original_text, s.rewrite_prompt, s.rewritten_text] for s in leaked.samples[rows])
    assert len(load_suite(spec_for_file(path))) == len(leaked.samples[rows])
    return path


def optimizer_result(out: Path) -> dict:
    """An optimizer run's result.json, once its files are checked: trajectory, plot, training set, and a
    held-out score inside its CI with the Δ against the start (OPRO, GEPA and TextGrad alike)."""
    for name in ("trajectory.jsonl", "trajectory.png", "training.jsonl", "result.json"):
        assert (out / name).is_file(), name
    result = json.loads((out / "result.json").read_text())
    for key in ("backend", "metric_calls", "heldout_score", "heldout_ci_low", "heldout_ci_high", "start_heldout_score",
                "heldout_delta", "heldout_delta_ci", "best_instruction", "usage", "heldout_n", "embedder",
                "comparable_with_kaggle", "candidates_toml"):
        assert key in result, key
    assert result["embedder"] == "minilm"
    assert result["heldout_ci_low"] <= result["heldout_score"] <= result["heldout_ci_high"]
    assert result["heldout_delta"] == pytest.approx(result["heldout_score"] - result["start_heldout_score"])
    assert result["heldout_delta_ci"] == [result["delta_ci_low"], result["delta_ci_high"]]
    return result
