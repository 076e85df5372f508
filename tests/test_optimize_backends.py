"""GEPA and TextGrad beside OPRO, against stub OpenAI-compatible servers: held-out isolation (the honesty
test, for all three backends), metric-call and token accounting, unusable proposer answers, the CLI with
its shared options and outputs, refusal to reuse an output folder, and a missing extra.

GEPA and TextGrad cases skip, saying so, where the `optimizers` extra is not installed."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import threading

import pytest
from conftest import REPO_ROOT
from optimize_helpers import BagOfWordsEmbedder, RecordingSamples, family_suite
from stub_openai_server import Reply, StubOpenAIServer
from test_optimize_cli import bow, in_repo, run_json, write_suite_csv  # noqa: F401  (fixtures)

from harness.candidates.chat import ChatCandidate
from harness.data import Suite
from harness.errors import ConfigError
from harness.evaluation import BootstrapSettings
from harness.llm import ChatClient
from harness.optimize import (
    Budget,
    ChatInstructionTarget,
    MeanPromptTarget,
    MeteredChatClient,
    read_trajectory,
)
from harness.optimize.extras import require
from harness.splits import SuiteSplit, split_suite

FAST_CI = BootstrapSettings(n_resamples=300, method="percentile")
INSTALL = "optimizers extra: pip install -e '.[optimizers]'"
PROPOSALS = ["Rewrite the text as a poem.", "Make the text more formal.", "Rewrite the story as a poem.",
             "Make the text a formal poem.", "Rewrite the text as a formal poem.", "Turn the text into a poem."]


def needs(module: str) -> None:
    """Skip unless `module` is installed. Found, not imported: textgrad's import opens a log file in the
    current folder unless the backend points it elsewhere (it does, when it imports it)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed ({INSTALL})")


def proposer_handler():
    """Answers in the format each backend asks for: OPRO's <INS> tags, TextGrad's <IMPROVED_VARIABLE>
    tags (and a textual gradient), GEPA's ``` block; a new instruction each time."""
    counter, lock = itertools.count(), threading.Lock()

    def handle(request):
        with lock:
            k = next(counter)
        text = PROPOSALS[k % len(PROPOSALS)]
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        if "<IMPROVED_VARIABLE>" in system:
            return f"<IMPROVED_VARIABLE>{text}</IMPROVED_VARIABLE>"
        if "gradient" in system.lower():
            return "The instruction should ask for the kind of rewrite, e.g. a poem."
        if "<INS>" in request.last_user_text:
            return f"<INS>{text}</INS>"
        return f"Here it is:\n```\n{text}\n```"
    return handle


def target_handler(request):
    system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
    return system if "poem" in system.lower() or "formal" in system.lower() else "Hello there friend."


def run_backend(backend: str, target, split, servers, **options):
    """Run `backend` with the stub proposer server(s) in `servers`."""
    clients = [(f"p{i}", MeteredChatClient(s.base_url, s.models[0], max_retries=0, timeout=5))
               for i, s in enumerate(servers)]
    common = {"heldout_bootstrap": FAST_CI, **options}
    if backend == "opro":
        from harness.optimize import OproSettings, Proposer, run_opro

        return run_opro(target, split, [Proposer(n, c) for n, c in clients], BagOfWordsEmbedder(),
                        settings=OproSettings(rounds=3, exemplars=2), **common)
    if backend == "gepa":
        needs("gepa")
        from harness.optimize.gepa_backend import run_gepa

        return run_gepa(target, split, clients[0], BagOfWordsEmbedder(), **common)
    needs("textgrad")
    from harness.optimize.textgrad_backend import TextGradSettings, run_textgrad

    return run_textgrad(target, split, clients[0], BagOfWordsEmbedder(), settings=TextGradSettings(steps=3), **common)


@pytest.fixture
def proposer_servers():
    with StubOpenAIServer(models=["model-a"], handler=proposer_handler()) as a, \
            StubOpenAIServer(models=["model-b"], handler=proposer_handler()) as b:
        yield a, b


@pytest.mark.parametrize("backend", ["opro", "gepa", "textgrad"])
def test_no_backend_sees_the_heldout_split_before_the_final_scoring(backend, proposer_servers, tmp_path):
    """The honesty test, for every backend: no read of the held-out rows, no held-out text in any request
    and no held-out prompt shown to a proposer before the final held-out scoring; after it, exactly the two
    held-out evaluations (best and start) and nothing else."""
    base = split_suite(family_suite(repeats=2), (0.34, 0.33, 0.33), seed=1)
    log: list[str] = []
    # their contents are logged, not their count: it is read up front to refuse an empty split
    heldout = Suite(base.heldout.name, RecordingSamples(base.heldout.samples, log, log_length=False))
    split = SuiteSplit(base.train, base.dev, heldout, base.by, base.seed, base.fractions, base.source)
    with StubOpenAIServer(models=["target-model"], handler=target_handler) as target_server:
        candidate = ChatCandidate("target", ChatClient(target_server.base_url, "target-model", max_retries=0),
                                  system="Answer with a greeting.")
        target = ChatInstructionTarget(candidate, MeteredChatClient.like(candidate.client))
        servers = proposer_servers if backend == "opro" else proposer_servers[:1]
        result = run_backend(backend, target, split, servers, budget=Budget(max_metric_calls=60),
                             on_record=lambda record: log.append(record["type"]))
        requests = target_server.chat_requests
    assert log.index("heldout") > max(i for i, event in enumerate(log) if event in ("proposal", "round"))
    assert log[-1] == "final" and "proposal" not in log[log.index("heldout"):]
    n_heldout = len(base.heldout)
    heldout_texts = {s.original_text for s in base.heldout.samples}
    before, after = requests[:-2 * n_heldout], requests[-2 * n_heldout:]
    assert len(before) == result.metric_calls  # no cache here: one target request per row scored
    assert not any(t in r.last_user_text for t in heldout_texts for r in before)
    assert all(any(t in r.last_user_text for t in heldout_texts) for r in after)
    sent = [r.last_user_text + json.dumps(r.messages) for s in servers for r in s.chat_requests]
    hidden = ({s.rewrite_prompt for s in base.heldout.samples} | heldout_texts) - set(PROPOSALS)  # proposals are shown
    assert hidden and sent and not any(h in text for h in hidden for text in sent)
    assert result.heldout.found.n == n_heldout and result.best_dev_score >= result.start_dev_score
    assert result.best_instruction in PROPOSALS  # the target answers with a poem instruction: a real gain


@pytest.mark.parametrize("backend", ["opro", "gepa", "textgrad"])
def test_metric_calls_and_tokens_are_counted_and_the_budget_is_never_exceeded(backend, proposer_servers):
    split = split_suite(family_suite(), (0.34, 0.33, 0.33), seed=0)
    servers = proposer_servers if backend == "opro" else proposer_servers[:1]
    result = run_backend(backend, MeanPromptTarget("Hello there."), split, servers,
                         budget=Budget(max_metric_calls=50))
    n_dev = len(split.dev)
    proposals = result.proposals
    rows_scored = [r["metric_calls"] for r in proposals]
    assert rows_scored == sorted(rows_scored) and rows_scored[0] == n_dev  # the start, on every dev row
    assert result.metric_calls <= 50 and result.stop_reason.startswith(("max_metric_calls", "rounds", "steps"))
    scored = [r for r in proposals if r["status"] == "scored"]
    assert scored and all(r["dev_n"] == n_dev for r in scored)
    # every metric call is a dev row of a scored instruction or a train row of a minibatch
    minibatch = result.metric_calls - n_dev * (1 + len(scored))
    if backend == "opro":
        assert minibatch == 0  # OPRO scores on dev only
    else:  # minibatches of 3 train rows: GEPA's parent and child per iteration, TextGrad's loss per step
        assert minibatch > 0 and minibatch % 3 == 0
    if backend == "textgrad":
        assert minibatch == 3 * result.rounds_completed
    # tokens: the stub reports 11 + 7 per answer; only the proposers talk to a model here
    requests = sum(len(s.chat_requests) for s in servers)
    assert result.usage.requests == requests and result.usage.tokens == 18 * requests
    data = result.to_dict()
    assert data["backend"] == backend and data["metric_calls"] == result.metric_calls
    assert data["heldout_delta"] == pytest.approx(data["heldout_score"] - data["start_heldout_score"])
    assert data["heldout_delta_ci"] == [data["delta_ci_low"], data["delta_ci_high"]]
    assert data["candidates_toml"].startswith("[candidates.optimised-mean-prompt]")


def test_a_token_budget_stops_gepa_and_textgrad_before_the_next_request(proposer_servers):
    split = split_suite(family_suite(), (0.34, 0.33, 0.33), seed=0)
    for backend in ("gepa", "textgrad"):
        proposer_servers[0].reset()
        result = run_backend(backend, MeanPromptTarget("Hello there."), split, proposer_servers[:1],
                             budget=Budget(max_tokens=30))
        # 18 tokens per answer: two GEPA reflections, or one TextGrad step (a gradient and an update), pass 30;
        # the budget is checked before each iteration or step, so nothing is asked after that
        assert result.stop_reason.startswith("max_tokens"), backend
        assert len(proposer_servers[0].chat_requests) == 2 and result.usage.tokens == 36


def unusable_handler(good: str):
    """A failed request, then an empty instruction, then answers without the backend's format, then `good`."""
    replies = iter([Reply.server_error(), Reply.answer("```\n   \n```"), Reply.answer("<IMPROVED_VARIABLE> </IMPROVED_VARIABLE>")])
    return lambda request: next(replies, good)


@pytest.mark.parametrize("backend", ["gepa", "textgrad"])
def test_unusable_answers_are_recorded_and_cost_no_metric_calls(backend):
    needs(backend)
    split = split_suite(family_suite(), (0.34, 0.33, 0.33), seed=0)
    good = ("```\nRewrite the text as a poem.\n```" if backend == "gepa"
            else "<IMPROVED_VARIABLE>Rewrite the text as a poem.</IMPROVED_VARIABLE>")
    with StubOpenAIServer(models=["m"], handler=unusable_handler(good)) as server:
        result = run_backend(backend, MeanPromptTarget("Hello there."), split, [server],
                             budget=Budget(max_metric_calls=80))
    statuses = [r["status"] for r in result.proposals]
    assert statuses[0] == "start" and "failed" in statuses and "invalid" in statuses
    for previous, record in zip(result.proposals, result.proposals[1:]):
        if record["status"] in ("failed", "invalid"):
            assert record["dev_score"] is None and record["problem"]
            if backend == "gepa":  # a GEPA iteration's parent minibatch is paid before the reflection
                assert record["metric_calls"] - previous["metric_calls"] <= 3
    assert "Rewrite the text as a poem." in [r["instruction"] for r in result.proposals if r["status"] == "scored"]
    failed = next(r for r in result.proposals if r["status"] == "failed")
    assert "HTTP 500" in failed["problem"]


def write_candidates(path, server_urls):
    path.write_text("".join(f'[candidates.{name}]\nkind = "chat"\nbase_url = "{url}"\nmodel = "{model}"\n'
                            "max_retries = 0\n\n" for name, url, model in server_urls))
    return path


@pytest.mark.parametrize("backend", ["gepa", "textgrad"])
def test_cli_end_to_end_same_options_and_outputs_as_opro(backend, in_repo, capsys, bow, proposer_servers):  # noqa: F811
    needs(backend)
    suite_path = write_suite_csv(in_repo / "families.csv", family_suite())
    candidates = write_candidates(in_repo / "candidates.toml", [("p1", proposer_servers[0].base_url, "model-a"),
                                                                ("p2", proposer_servers[1].base_url, "model-b")])
    out = in_repo / backend
    args = ["optimize", backend, "--suite", str(suite_path), "--target", "mean:Hello there.", "--proposer", "p1",
            "--max-metric-calls", "45", "--resamples", "300", "--seed", "2", "--price", "p1=1,2",
            "--max-cost", "1", "--candidates-file", str(candidates), "--out", str(out)]
    code, data = run_json(bow, capsys, *args, "--json")
    assert code == 0
    for key in ("backend", "metric_calls", "heldout_score", "start_heldout_score", "heldout_delta",
                "heldout_delta_ci", "best_instruction", "usage", "out", "candidates_toml"):
        assert key in data, key
    assert data["backend"] == backend and data["out"] == str(out) and 0 < data["metric_calls"] <= 45
    assert data["usage"]["cost_usd"] == pytest.approx(data["usage"]["requests"] * (11 * 1 + 7 * 2) / 1e6)
    for name in ("trajectory.jsonl", "trajectory.png", "training.jsonl", "result.json"):
        assert (out / name).is_file(), name
    records = read_trajectory(out / "trajectory.jsonl")
    assert records[0]["backend"] == backend and records[0]["budget"]["max_metric_calls"] == 45
    assert bow(["optimize", "export-training", "--trajectory", str(out / "trajectory.jsonl"), "--out",
                 str(in_repo / "rows.jsonl"), "--all"]) == 0
    capsys.readouterr()
    # the same folder again: refused, the first run's files untouched (no resume, no overwrite)
    before = (out / "trajectory.jsonl").read_bytes()
    code = bow(args)
    err = capsys.readouterr().err
    assert code == 2 and "already holds files" in err and "Traceback" not in err
    assert (out / "trajectory.jsonl").read_bytes() == before
    # GEPA and TextGrad take one proposer model
    code = bow([*args[:6], "--proposer", "p2", *args[6:-1], str(in_repo / "two")])
    assert code == 2 and "give --proposer once" in capsys.readouterr().err
    assert not (in_repo / "two").exists()
    # the human-readable report ends with a ready-to-paste entry
    assert bow([*args[:-1], str(in_repo / "again")]) == 0
    printed = capsys.readouterr().out
    assert f"{backend} instruction:" in printed and "[candidates.optimised-mean-prompt]" in printed


def test_gepa_without_a_budget_is_refused_before_any_request(proposer_servers):
    needs("gepa")
    split = split_suite(family_suite(), (0.34, 0.33, 0.33), seed=0)
    with pytest.raises(ConfigError, match="GEPA needs a stop"):
        run_backend("gepa", MeanPromptTarget("Hello."), split, proposer_servers[:1])
    assert proposer_servers[0].chat_hits == 0


def test_a_missing_extra_is_one_line_saying_how_to_install_it(monkeypatch, in_repo, capsys, bow):  # noqa: F811
    for module in ("gepa", "textgrad"):
        monkeypatch.setitem(sys.modules, module, None)  # what `import` meets when it is not installed
        with pytest.raises(ConfigError, match=r"pip install -e \"\.\[optimizers\]\""):
            require(module, what=f"prh optimize {module}")
    suite_path = write_suite_csv(in_repo / "families.csv", family_suite())
    candidates = write_candidates(in_repo / "candidates.toml", [("p1", "http://127.0.0.1:9/v1", "m")])
    code = bow(["optimize", "gepa", "--suite", str(suite_path), "--proposer", "p1", "--max-metric-calls", "10",
                 "--candidates-file", str(candidates), "--out", str(in_repo / "g")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install -e \".[optimizers]\"" in err and len(err.strip().splitlines()) == 1


def test_neither_import_harness_nor_the_plugin_nor_the_cli_loads_an_optional_library():
    code = ("import sys, harness, harness.pytest_plugin, harness.cli, harness.optimize; harness.cli.build_parser(); "
            "import harness.optimize.session, harness.optimize.opro; "
            "print(sorted(m for m in ('gepa', 'textgrad', 'deepeval', 'litellm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
