"""The OPRO loop against stub OpenAI-compatible servers: proposers (one of them returning garbage), a real
ChatCandidate target, budgets, the trajectory log, its plot and its export as a training set."""

from __future__ import annotations

import itertools
import json
import re
import threading

import pytest
from optimize_helpers import BagOfWordsEmbedder, family_suite
from stub_openai_server import Reply, StubOpenAIServer

from harness.candidates.chat import ChatCandidate
from harness.data import SuiteSpec, load_suite
from harness.errors import ConfigError, LearnedFromSuiteError
from harness.evaluation import BootstrapSettings
from harness.llm import ChatClient
from harness.optimize import (
    Budget,
    ChatInstructionTarget,
    MeanPromptTarget,
    MeteredChatClient,
    OproSettings,
    Proposer,
    ScoredInstruction,
    TrajectoryLog,
    build_meta_prompt,
    export_training_set,
    parse_proposal,
    plot_trajectory,
    read_trajectory,
    run_opro,
)
from harness.optimize.meta_prompt import history_table
from harness.pricing import Price
from harness.splits import split_suite

FAST_CI = BootstrapSettings(n_resamples=500, method="percentile")
GOOD_PROPOSALS = ["Rewrite the text.", "Rewrite the text as a poem.", "Make the text more formal.",
                  "Rewrite the text as a formal poem.", "Rewrite the story as a poem.", "Make the text a poem."]


def good_handler():
    counter = itertools.count()
    lock = threading.Lock()

    def handle(request):
        with lock:
            k = next(counter)
        return f"Let me think about the scores.\n<INS>{GOOD_PROPOSALS[k % len(GOOD_PROPOSALS)]}</INS>"
    return handle


def garbage_handler():
    answers = iter([Reply.answer("Sure! A better prompt would be: Rewrite it."), Reply.malformed(),
                    Reply.answer("<INS>   </INS>"), Reply.answer("<INS>" + "x" * 3000 + "</INS>")])
    return lambda request: next(answers, Reply.answer("no idea"))


@pytest.fixture
def proposer_servers():
    with StubOpenAIServer(models=["model-a"], handler=good_handler()) as good, \
            StubOpenAIServer(models=["model-b"], handler=garbage_handler()) as bad:
        yield good, bad


def proposers_for(good, bad, price: Price | None = None):
    price = price or Price()
    return [Proposer("good", MeteredChatClient(good.base_url, "model-a", max_retries=0, timeout=5, price=price)),
            Proposer("garbage", MeteredChatClient(bad.base_url, "model-b", max_retries=0, timeout=5, price=price))]


@pytest.fixture
def split():
    return split_suite(family_suite(), (0.34, 0.33, 0.33), seed=0)


def test_opro_for_a_mean_prompt_logs_everything_and_reports_heldout(proposer_servers, split, tmp_path):
    good, bad = proposer_servers
    target = MeanPromptTarget("Hello there.")
    settings = OproSettings(rounds=4, exemplars=2, seed=3)
    with TrajectoryLog(tmp_path / "trajectory.jsonl") as log:
        result = run_opro(target, split, proposers_for(good, bad), BagOfWordsEmbedder(), settings=settings,
                          log=log, heldout_bootstrap=FAST_CI)
    records = read_trajectory(tmp_path / "trajectory.jsonl")
    assert [r["type"] for r in records][:3] == ["run", "proposal", "round"] and records[-1]["type"] == "final"
    proposals = [r for r in records if r["type"] == "proposal"]
    statuses = [(r["proposer"], r["status"]) for r in proposals]
    assert statuses[0] == (None, "start")
    assert [s for p, s in statuses if p == "good"] == ["scored"] * 4
    assert [s for p, s in statuses if p == "garbage"] == ["invalid", "failed", "invalid", "invalid"]
    assert all(r["dev_score"] is None and r["problem"] for r in proposals if r["proposer"] == "garbage")
    assert result.stop_reason == "rounds" and result.rounds_completed == 4
    # the winner is the best dev score, reported on the held-out split with a paired CI against the start
    scored = [r for r in proposals if r["dev_score"] is not None]
    assert result.best_dev_score == max(r["dev_score"] for r in scored) > result.start_dev_score
    assert result.best_instruction in GOOD_PROPOSALS
    final = records[-1]
    assert final["heldout_n"] == len(split.heldout) and final["heldout_suite"].endswith(":heldout")
    assert final["heldout_ci_low"] <= final["heldout_score"] <= final["heldout_ci_high"]
    assert final["delta"] == pytest.approx(final["heldout_score"] - final["start_heldout_score"])
    # the meta-prompts: history ascending, exemplars from train only, nothing of dev or held-out
    rounds = [r for r in records if r["type"] == "round"]
    train_ids = set(split.train.ids)
    for round_record in rounds:
        assert set(round_record["exemplar_ids"]) <= train_ids and len(round_record["exemplar_ids"]) == 2
        shown = [float(x) for x in re.findall(r"score:\n([0-9.]+)", round_record["meta_prompt"])]
        assert shown == sorted(shown) and len(shown) >= 1
    sent = [r.last_user_text for r in good.chat_requests + bad.chat_requests]
    assert sent and all(s in {r["meta_prompt"] for r in rounds} for s in sent)
    hidden = (set(split.dev.prompts) | set(split.heldout.prompts)) - set(GOOD_PROPOSALS)  # proposals are shown
    assert hidden
    assert not any(prompt in text for prompt in hidden for text in sent)
    # usage: the stub reports 11 + 7 tokens per answer; failed requests report nothing
    assert result.usage.tokens == 18 * (len(good.chat_requests) + len(bad.chat_requests) - 1)


def test_training_export_and_plot(proposer_servers, split, tmp_path):
    good, bad = proposer_servers
    with TrajectoryLog(tmp_path / "t.jsonl") as log:
        run_opro(MeanPromptTarget("Hello there."), split, proposers_for(good, bad), BagOfWordsEmbedder(),
                 settings=OproSettings(rounds=4), log=log, heldout_bootstrap=FAST_CI, run_id="run1")
    records = read_trajectory(tmp_path / "t.jsonl")
    count = export_training_set(records, tmp_path / "train.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert count == len(rows) >= 1
    assert all(r["score_after"] > r["score_before"] and r["improved"] for r in rows)
    assert rows[0]["rewritten_text"] == "Hello there." and rows[0]["rewrite_prompt"] in GOOD_PROPOSALS
    assert all(r["original_text"].startswith("Prompt recovery") and r["group"] == "run1" for r in rows)
    suite = load_suite(SuiteSpec("opro-training", tmp_path / "train.jsonl"))  # loads as a suite for prh train
    assert len(suite) == count and suite.has_groups
    every = export_training_set(records, tmp_path / "all.jsonl", improvements_only=False)
    assert every == sum(1 for r in records if r["type"] == "proposal" and r["status"] == "scored")
    png = plot_trajectory(records, tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_opro_for_a_chat_instruction_goes_through_the_real_candidate(proposer_servers, split):
    good, bad = proposer_servers

    def target_answer(request):
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        return "Rewrite the text as a poem." if "rewrite" in system.lower() else "Hello there friend."

    with StubOpenAIServer(models=["target-model"], handler=target_answer) as target_server:
        base = ChatCandidate("target", ChatClient(target_server.base_url, "target-model", max_retries=0),
                             system="Answer with a greeting.")
        target = ChatInstructionTarget(base, MeteredChatClient.like(base.client, Price(1.0, 2.0)))
        result = run_opro(target, split, proposers_for(good, bad), BagOfWordsEmbedder(),
                          settings=OproSettings(rounds=2), heldout_bootstrap=FAST_CI)
        requests = target_server.chat_requests
    assert result.start_instruction == "Answer with a greeting."
    assert result.best_instruction.lower().startswith(("rewrite", "make")) and result.best_dev_score > result.start_dev_score
    systems = {next(m["content"] for m in r.messages if m["role"] == "system") for r in requests}
    assert result.best_instruction in systems  # the proposal really was the candidate's system message
    # dev rows for the start and each scored proposal; held-out rows only at the end, twice (best and start)
    n_dev, n_heldout = len(split.dev), len(split.heldout)
    scored = sum(1 for r in result.proposals if r["status"] in ("start", "scored"))
    assert len(requests) == scored * n_dev + 2 * n_heldout
    heldout_texts = {s.original_text for s in split.heldout.samples}
    assert not any(any(t in r.last_user_text for t in heldout_texts) for r in requests[:-2 * n_heldout])
    assert all(any(t in r.last_user_text for t in heldout_texts) for r in requests[-2 * n_heldout:])
    # proposers saw exemplar texts from train only
    hidden_texts = {s.original_text for s in split.dev.samples + split.heldout.samples}
    meta_prompts = [r.last_user_text for r in good.chat_requests]
    assert meta_prompts and not any(t in m for t in hidden_texts for m in meta_prompts)
    assert any(s.original_text in m for s in split.train.samples for m in meta_prompts)
    # the target's own requests are metered too (at its price)
    assert target.client.usage.requests == len(requests)
    assert target.client.usage.cost_usd == pytest.approx(len(requests) * (11 * 1.0 + 7 * 2.0) / 1e6)


def test_budget_in_tokens_and_money_stops_the_loop(proposer_servers, split):
    good, bad = proposer_servers
    by_tokens = run_opro(MeanPromptTarget("Hello there."), split, proposers_for(good, bad), BagOfWordsEmbedder(),
                         settings=OproSettings(rounds=10), budget=Budget(max_tokens=40), heldout_bootstrap=FAST_CI)
    # round 1 spends 18 + 18 tokens (< 40): its proposal is scored; round 2 passes 40: not evaluated
    assert by_tokens.stop_reason.startswith("max_tokens") and by_tokens.rounds_completed == 2
    assert [r["status"] for r in by_tokens.proposals if r["proposer"] == "good"] == ["scored", "over_budget"]
    by_money = run_opro(MeanPromptTarget("Hello there."), split, proposers_for(good, bad, Price(1.0, 1.0)),
                        BagOfWordsEmbedder(), settings=OproSettings(rounds=10), budget=Budget(max_cost_usd=1e-5),
                        heldout_bootstrap=FAST_CI)
    assert by_money.stop_reason.startswith("max_cost_usd") and by_money.rounds_completed == 1
    assert by_money.best_instruction == "Hello there."  # nothing could be evaluated: the start stands
    assert by_money.heldout.delta.estimate == 0.0


def test_configuration_errors_before_any_request(proposer_servers, split):
    good, bad = proposer_servers
    target = MeanPromptTarget("Hello.")
    pair = proposers_for(good, bad)
    with pytest.raises(ConfigError, match="two different proposer models"):
        run_opro(target, split, pair[:1], BagOfWordsEmbedder())
    same = [pair[0], Proposer("again", MeteredChatClient(good.base_url, "model-a"))]
    with pytest.raises(ConfigError, match="two different proposer models"):
        run_opro(target, split, same, BagOfWordsEmbedder())
    no_dev = split_suite(family_suite(), (0.5, 0.0, 0.5))
    with pytest.raises(ConfigError, match="dev split is empty"):
        run_opro(target, no_dev, pair, BagOfWordsEmbedder())
    learned = ChatCandidate("fs", ChatClient(good.base_url, "model-a"), train_suites=("families",))
    with pytest.raises(LearnedFromSuiteError):
        run_opro(ChatInstructionTarget(learned, MeteredChatClient.like(learned.client)), split, pair,
                 BagOfWordsEmbedder())
    assert good.chat_hits == 0 and bad.chat_hits == 0


def test_instructions_are_literal_text_in_templates():
    base = ChatCandidate("t", ChatClient("http://127.0.0.1:9/v1", "m"), system="Be brief.")
    sample = family_suite().samples[0]
    system_target = ChatInstructionTarget(base, MeteredChatClient.like(base.client))
    messages = system_target.candidate("Use {original_text} and }{").messages(sample)
    assert messages[0] == {"role": "system", "content": "Use {original_text} and }{"}
    prefix_target = ChatInstructionTarget(base, MeteredChatClient.like(base.client), slot="user-prefix")
    assert prefix_target.start == ""
    user = prefix_target.candidate("Think {step}.").messages(sample)[-1]["content"]
    assert user.startswith("Think {step}.\n\n") and sample.original_text in user
    assert prefix_target.candidate("").messages(sample) == base.messages(sample)


def test_meta_prompt_and_proposal_parsing():
    history = [ScoredInstruction("b", 0.3), ScoredInstruction("a", 0.1), ScoredInstruction("c", 0.2),
               ScoredInstruction("", 0.05)]
    table = history_table(history, limit=3)
    assert table.index("text:\n<INS>a</INS>") < table.index("text:\n<INS>c</INS>") < table.index("text:\n<INS>b</INS>")
    assert "(no instruction)" not in table
    prompt = build_meta_prompt("Task.", history, family_suite().samples[:1])
    assert prompt.startswith("Task.") and "True prompt:" in prompt and prompt.rstrip().endswith("</INS>.")
    assert parse_proposal("x <INS>first</INS> then <INS> \"Second.\" </INS>").instruction == "Second."
    assert parse_proposal("").problem == "empty answer"
    assert parse_proposal("no tags").instruction is None
    assert parse_proposal("<INS>your instruction</INS>").instruction is None
    assert parse_proposal("<ins>multi\nline</ins>").instruction == "multi\nline"


# -- what a real weak model (Gemma-3-270m behind llama.cpp, tests/realmodel) exposed ----------------------
def test_two_endpoints_with_the_same_weights_get_different_seeds_each_round(split):
    """Two aliases of one model sampled with one seed propose the same text every round (the second is
    always a duplicate): every (round, proposer) gets its own seed, the same on a rerun."""
    with StubOpenAIServer(models=["gemma", "gemma-b"], handler=good_handler()) as server:
        def run():
            server.reset()
            proposers = [Proposer(name, MeteredChatClient(server.base_url, name, max_retries=0, timeout=5))
                         for name in ("gemma", "gemma-b")]
            run_opro(MeanPromptTarget("Hello there."), split, proposers, BagOfWordsEmbedder(),
                     settings=OproSettings(rounds=3, exemplars=1, seed=2), heldout_bootstrap=FAST_CI)
            return sorted((r.body["model"], r.body["seed"]) for r in server.chat_requests)

        seeds = run()
        assert len(seeds) == 6 and len({seed for _, seed in seeds}) == 6
        assert run() == seeds


def test_the_history_shows_instructions_in_the_answer_format():
    prompt = build_meta_prompt("Task.", [ScoredInstruction("Rewrite it.", 0.2)], [])
    assert "text:\n<INS>Rewrite it.</INS>\nscore:\n0.2000" in prompt
    # a proposer that copies the history and then proposes: the last tagged text is the proposal
    assert parse_proposal(prompt + "\n<INS>Rewrite it as a poem.</INS>").instruction == "Rewrite it as a poem."
