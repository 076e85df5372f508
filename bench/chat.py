"""Benchmark the chat candidate's concurrency and its prediction cache against a local stub endpoint.

Run from the repository root: ``python bench/chat.py``. The in-process stub server
(``tests/stub_openai_server.py``) answers every chat request after a fixed latency (200 ms, like a
small model on a busy server); nothing leaves 127.0.0.1. On 200 rows it measures:

1. wall time of the chat candidate at ``max_concurrency`` 1 and 16 (no cache): the ratio must be at
   least ``--min-speedup`` (10), the server's measured peak of requests in flight must be 16;
2. a cold run at concurrency 16 through the prediction cache (a Store in a temporary folder), then a
   warm rerun by a concurrency-1 candidate, which has the same fingerprint (concurrency does not change
   answers) and must make zero requests.

Exits 1 when a check fails. The last line is ``speedup_concurrency16_vs_1: X``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the stub server lives with the tests that share it

from stub_openai_server import StubOpenAIServer  # noqa: E402

from harness.candidates.cache import predict_with_cache  # noqa: E402
from harness.candidates.chat import ChatCandidate  # noqa: E402
from harness.data import Sample  # noqa: E402
from harness.llm import ChatClient  # noqa: E402
from harness.store import Store  # noqa: E402


def make_samples(count: int) -> list[Sample]:
    return [Sample(f"row-{i}", f"The meeting moved to Tuesday (note {i}).",
                   f"Ahoy! The meetin' be moved to Tuesday, matey (note {i}).", "Rewrite as a pirate.")
            for i in range(count)]


def candidate(server: StubOpenAIServer, concurrency: int) -> ChatCandidate:
    client = ChatClient(server.base_url, "stub-model", max_concurrency=concurrency, timeout=30.0)
    return ChatCandidate(f"bench-c{concurrency}", client)


def timed(action) -> tuple[float, list[str]]:
    started = time.perf_counter()
    predictions = action()
    return time.perf_counter() - started, predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--min-speedup", type=float, default=10.0)
    args = parser.parse_args()
    samples = make_samples(args.rows)
    failures: list[str] = []

    with StubOpenAIServer(latency=args.latency_ms / 1000) as server:
        server.handler = lambda request: "Sure, here is the prompt: **Rewrite the text as a pirate.**"
        print(f"rows: {args.rows}, stub latency per answer: {args.latency_ms:g} ms, endpoint {server.base_url}")

        serial, parallel = candidate(server, 1), candidate(server, args.concurrency)
        for each in (serial, parallel):  # as evaluate does: imports the SDK and checks the endpoint, untimed
            each.preflight()
        serial_s, predictions = timed(lambda: serial.predict(samples))
        print(f"concurrency 1:  {serial_s:7.2f} s  ({args.rows / serial_s:6.1f} rows/s), "
              f"server max in flight: {server.max_in_flight}")
        if any(p != "Rewrite the text as a pirate." for p in predictions):
            failures.append("concurrency 1 returned unexpected predictions")

        server.reset()
        parallel_s, predictions = timed(lambda: parallel.predict(samples))
        print(f"concurrency {args.concurrency}: {parallel_s:7.2f} s  ({args.rows / parallel_s:6.1f} rows/s), "
              f"server max in flight: {server.max_in_flight}")
        if any(p != "Rewrite the text as a pirate." for p in predictions):
            failures.append(f"concurrency {args.concurrency} returned unexpected predictions")
        if server.max_in_flight != args.concurrency:
            failures.append(f"server saw {server.max_in_flight} requests in flight, expected {args.concurrency}")

        with tempfile.TemporaryDirectory(prefix="prh-bench-chat-") as folder, Store(Path(folder) / "store.sqlite") as store:
            server.reset()
            cold_s, _ = timed(lambda: predict_with_cache(parallel, samples, store))
            cold_requests = server.chat_hits
            server.reset()
            warm_s, warm_predictions = timed(lambda: predict_with_cache(serial, samples, store))
            warm_requests = server.chat_hits
        print(f"cache, cold (concurrency {args.concurrency}): {cold_s:7.2f} s, requests: {cold_requests}")
        print(f"cache, warm rerun (concurrency 1, same fingerprint: {serial.fingerprint == parallel.fingerprint}): "
              f"{warm_s:7.3f} s, requests: {warm_requests}")
        if warm_requests != 0:
            failures.append(f"the warm rerun made {warm_requests} requests, expected 0")
        if warm_predictions != predictions:
            failures.append("the warm rerun's predictions differ from the cold run's")

    speedup = serial_s / parallel_s
    ideal = args.rows / math.ceil(args.rows / args.concurrency)  # rows answered in waves of `concurrency`
    print(f"ideal speedup for {args.rows} rows in waves of {args.concurrency}: {ideal:.2f}x; "
          f"reached {speedup / ideal:.0%} of it")
    if speedup < args.min_speedup:
        failures.append(f"speedup {speedup:.1f}x is below the required {args.min_speedup:g}x")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"speedup_concurrency{args.concurrency}_vs_1: {speedup:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
