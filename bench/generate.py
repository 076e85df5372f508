"""Benchmark `prh generate synth`'s request pipeline against a local stub endpoint.

Run from the repository root: ``python bench/generate.py``. The in-process stub server
(``tests/stub_openai_server.py``) answers every chat request with a valid JSON pair after a fixed
latency (100 ms); nothing leaves 127.0.0.1. It runs the real pipeline end to end (catalog expansion,
work items, `ChatClient.complete_many` at concurrency 32, validation, one appended JSONL row per answer,
provenance, cost accounting) for 1,000 items, and measures:

- wall seconds (claim: under ``--max-seconds``, 10 s), against the ideal ``ceil(n / K) × latency``;
- overhead per request: ``wall × K / n − latency``, the time each request slot spends beyond the
  server's own latency (client, HTTP, validation, the append, and the stub itself, which shares this
  process and its GIL: a real server would not);
- CPU seconds per request of this process (client and stub together);
- that the output holds exactly n distinct rows and the server saw at most K requests in flight;
- a rerun of the same command sends zero requests (resume).

Exits 1 when a check fails. The last line is ``synth_1000_requests_seconds: X``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the stub server lives with the tests that share it

from stub_openai_server import StubOpenAIServer  # noqa: E402
from tabulate import tabulate  # noqa: E402

from harness.generate.catalog import expand_catalog, load_catalog  # noqa: E402
from harness.generate.jsonl import AppendOnlyJsonl, read_jsonl  # noqa: E402
from harness.generate.runner import RunSettings, run_items  # noqa: E402
from harness.generate.synth import SynthAcceptor, example_answer, synth_items  # noqa: E402
from harness.llm import ChatClient  # noqa: E402
from harness.pricing import Price, PriceTable  # noqa: E402


def answer(request) -> str:
    """A valid, distinct pair per request (the user turn differs per item)."""
    tag = hashlib.sha1(request.last_user_text.encode()).hexdigest()[:10]
    return example_answer(f"The quarterly report for project {tag} is due on Friday at noon, please send drafts.",
                          f"Hear ye! The quarterly scroll of project {tag} must reach us by Friday's noon bell.")


def run_once(server: StubOpenAIServer, items, out: Path, concurrency: int):
    client = ChatClient(server.base_url, "stub-model", max_concurrency=concurrency, timeout=30.0)
    client.preflight()  # as the CLI does; untimed (it imports the SDK)
    prices = PriceTable({"stub-model": Price(1.0, 2.0)}, "bench")
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    with AppendOnlyJsonl(out) as rows, AppendOnlyJsonl(out.with_suffix(".failures.jsonl"), unique=False) as failures:
        summary = run_items(items, client, SynthAcceptor(), rows, failures, settings=RunSettings(json_mode="on"),
                            task="synth", prices=prices)
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    client.close()
    return summary, wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    args = parser.parse_args()
    n, k, latency = args.requests, args.concurrency, args.latency_ms / 1000
    catalog = load_catalog(ROOT / "fixtures" / "prompt_catalog.toml")
    items = synth_items(expand_catalog(catalog, n, seed=0), model="stub-model", temperature=0.9)
    failures: list[str] = []
    with StubOpenAIServer(latency=latency, handler=answer) as server, \
            tempfile.TemporaryDirectory(prefix="prh-bench-generate-") as folder:
        out = Path(folder) / "synth.jsonl"
        summary, wall, cpu = run_once(server, items, out, k)
        peak = server.max_in_flight
        rows = read_jsonl(out)
        server.reset()
        rerun, rerun_wall, _ = run_once(server, items, out, k)
        rerun_requests = server.chat_hits
    ideal = math.ceil(n / k) * latency
    overhead_ms = (wall * k / n - latency) * 1000
    print(f"{n} synth items, stub latency {args.latency_ms:g} ms, concurrency {k}")
    print(tabulate([
        ["wall seconds", f"{wall:.2f}", f"claim < {args.max_seconds:g}; ideal {ideal:.2f} (ceil(n/K) x latency)"],
        ["requests/s", f"{n / wall:.0f}", f"ideal {n / ideal:.0f}"],
        ["overhead per request (ms)", f"{overhead_ms:.1f}", "wall x K / n - latency"],
        ["CPU ms per request", f"{cpu / n * 1000:.2f}", "this process: client + stub server"],
        ["rows written / distinct ids", f"{len(rows)} / {len({r['id'] for r in rows})}", f"expected {n}"],
        ["server peak in flight", str(peak), f"expected <= {k}"],
        ["running cost (USD, $1/$2 per M)", f"{summary.usage.cost_usd:.6f}", f"{summary.usage.prompt_tokens} + {summary.usage.completion_tokens} tokens"],
        ["rerun: requests sent", str(rerun_requests), f"expected 0 ({rerun.skipped} skipped in {rerun_wall:.2f} s)"],
    ], headers=["measure", "value", "note"], tablefmt="github"))
    if wall >= args.max_seconds:
        failures.append(f"{n} requests took {wall:.2f} s, the claim is < {args.max_seconds:g} s")
    if len(rows) != n or len({r["id"] for r in rows}) != n or summary.written != n:
        failures.append(f"expected {n} distinct rows, found {len(rows)} ({summary.failed} failed)")
    if peak > k:
        failures.append(f"the server saw {peak} requests in flight, more than the concurrency {k}")
    if rerun_requests:
        failures.append(f"the rerun sent {rerun_requests} requests, expected 0")
    if any(json.loads(json.dumps(r))["provenance"]["model"] != "stub-model" for r in rows[:5]):
        failures.append("rows lack provenance")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"synth_{n}_requests_seconds: {wall:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
