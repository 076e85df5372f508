"""`prh optimize mean-prompt|opro|gepa|textgrad|export-training|plot`.

A thin shell over harness.optimize: parse, build, call, print. Importing this module imports nothing
heavy (no numpy, torch, openai, matplotlib): everything is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from harness.errors import ConfigError, print_warnings
from harness.files import write_json_atomic
from harness.options import add_workspace_paths, non_negative_float, resamples
from harness.workspace import Workspace

DEFAULT_START = ("Please improve this text using the writing style with maintaining the original meaning but "
                 "altering the tone.")


def add_commands(subparsers) -> None:
    """Register `optimize` (with its subcommands) on the `prh` parser."""
    optimize = subparsers.add_parser("optimize", help="optimise prompts: mean-prompt search, OPRO, GEPA, TextGrad")
    inner = optimize.add_subparsers(dest="optimize_command", required=True)

    mean = inner.add_parser("mean-prompt", help="search one constant prompt against the embedder (train split), "
                            "report it on the held-out split")
    _suite_options(mean, split="0.7,0,0.3")
    mean.add_argument("--start", default=DEFAULT_START, help="the prompt to start from (default: the public 0.63 one)")
    mean.add_argument("--space", choices=("words", "tokens"), default="words",
                      help="what the search edits: the train prompts' words, or the embedder's tokenizer "
                      "vocabulary (default: %(default)s, the winner of bench/optimize.py on MiniLM)")
    mean.add_argument("--guide", choices=("auto", "gradient", "none"), default="auto",
                      help="token space: draw each move's token among the top-k of the objective's gradient "
                      "(gradient) or from the prior (none); auto: gradient when the model allows it")
    mean.add_argument("--top-k", type=int, default=32, help="gradient guide: tokens kept per slot (default: %(default)s)")
    mean.add_argument("--explore-share", type=float, default=0.1, help="token space: probability of proposing a "
                      "token the train prompts lack (0 = their tokens only, 1 = uniform; default: %(default)s)")
    mean.add_argument("--budget-seconds", type=non_negative_float, default=600.0, help="wall-clock budget; 0 = none (default: %(default)s)")
    mean.add_argument("--max-evaluations", type=int, default=None, help="stop after this many distinct strings scored")
    mean.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (replays a run exactly)")
    mean.add_argument("--patience", type=int, default=None, help="stop after this many steps without improvement")
    mean.add_argument("--beam-width", type=int, default=4, help="prompts kept per step; 1 = greedy (default: %(default)s)")
    mean.add_argument("--candidates-per-step", type=int, default=256, help="strings scored per step, in one batch "
                      "(default: %(default)s; thousands pay on a GPU)")
    mean.add_argument("--max-tokens", type=int, default=128, help="length cap in embedder tokens (default: %(default)s, "
                      "sentence-t5's limit)")
    mean.add_argument("--tokens", default=None, help="a file of extra vocabulary tokens, one per line")
    mean.add_argument("--vocabulary-size", type=int, default=3000, help="most frequent train-prompt words kept")
    mean.add_argument("--nearest-seconds", type=non_negative_float, default=None, help="budget of the search for the string "
                      "nearest the train oracle's direction (default: a quarter of --budget-seconds; 0 = skip it)")
    mean.add_argument("--nearest-steps", type=int, default=None, help="steps of that search (default: --max-steps)")
    mean.add_argument("--name", default="searched-mean-prompt", help="name of the candidates.toml entry printed")
    mean.add_argument("--log", default=None, help="write every step (train scores) as JSONL here")
    mean.add_argument("--json", action="store_true", help="print one JSON object")
    mean.set_defaults(handler=cmd_mean_prompt)

    opro = inner.add_parser("opro", help="OPRO loop: proposer LLMs improve an instruction, scored on a dev split")
    _optimizer_options(opro, proposer_help="a chat candidate whose endpoint and model propose instructions "
                       "(give at least two)")
    opro.add_argument("--rounds", type=int, default=10)
    opro.add_argument("--proposals-per-proposer", type=int, default=1)
    opro.add_argument("--history", type=int, default=20, help="best instructions shown in the meta-prompt")
    opro.add_argument("--exemplars", type=int, default=3, help="train rows shown in the meta-prompt")
    opro.set_defaults(handler=cmd_opro)

    gepa = inner.add_parser("gepa", help="GEPA (reflective prompt evolution, Pareto selection; the gepa "
                            "package): a reflection LLM improves an instruction from per-row feedback")
    _optimizer_options(gepa, proposer_help="the chat candidate whose endpoint and model reflect (GEPA's reflection "
                       "model; one)")
    gepa.add_argument("--minibatch-size", type=int, default=3, help="train rows per reflection minibatch "
                      "(default: %(default)s)")
    gepa.add_argument("--feedback-rows", type=int, default=3, help="worst rows shown to the reflection model")
    gepa.add_argument("--candidate-selection", choices=("pareto", "current_best", "epsilon_greedy", "top_k_pareto"),
                      default="pareto", help="GEPA's candidate selection (default: %(default)s)")
    gepa.set_defaults(handler=cmd_gepa)

    textgrad = inner.add_parser("textgrad", help="TextGrad (textual gradients; the textgrad package): the "
                                "minibatch SCS as text feedback, a backward engine rewrites the instruction")
    _optimizer_options(textgrad, proposer_help="the chat candidate whose endpoint and model are TextGrad's backward "
                       "engine (one)")
    textgrad.add_argument("--steps", type=int, default=10, help="optimisation steps at most (default: %(default)s)")
    textgrad.add_argument("--minibatch-size", type=int, default=3, help="train rows per step's loss "
                          "(default: %(default)s)")
    textgrad.add_argument("--feedback-rows", type=int, default=3, help="worst rows shown in the loss text")
    textgrad.set_defaults(handler=cmd_textgrad)

    export = inner.add_parser("export-training", help="an optimiser's trajectory (OPRO, GEPA, TextGrad) as a training set (JSONL) for prh train")
    export.add_argument("--trajectory", required=True, help="trajectory.jsonl of an optimiser run")
    export.add_argument("--out", required=True, help="the JSONL file to write")
    export.add_argument("--all", action="store_true", help="every scored proposal, not only improvements")
    export.add_argument("--min-delta", type=float, default=0.0, help="an improvement must beat the best by more")
    export.set_defaults(handler=cmd_export_training)

    plot = inner.add_parser("plot", help="re-draw an optimiser's trajectory plot")
    plot.add_argument("--trajectory", required=True)
    plot.add_argument("--out", required=True, help="the PNG to write")
    plot.set_defaults(handler=cmd_plot)


def _suite_options(parser: argparse.ArgumentParser, *, split: str) -> None:
    parser.add_argument("--suite", required=True, help="a suite name from the suites file, or a Kaggle-format file")
    parser.add_argument("--embedder", default="auto", help="auto, st5, minilm or path:DIR (default: %(default)s)")
    parser.add_argument("--split", default=split, help="TRAIN,DEV,HELDOUT fractions (default: %(default)s)")
    parser.add_argument("--split-by", choices=("auto", "prompt", "group"), default="auto",
                        help="unit of the split; auto: group when the suite has groups (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=resamples, default=10_000, help="bootstrap resamples of held-out CIs "
                        "(at least 200)")
    add_workspace_paths(parser.add_argument, only=("--suites-file", "--candidates-file", "--store"))


def _optimizer_options(parser: argparse.ArgumentParser, *, proposer_help: str) -> None:
    """The options OPRO, GEPA and TextGrad share (the same idea, the same name and default)."""
    _suite_options(parser, split="0.2,0.4,0.4")
    parser.add_argument("--target", default="mean", help="a chat candidate's name (its instruction is optimised), "
                        "'mean' or 'mean:TEXT' (a mean prompt; default start: the public 0.63 one)")
    parser.add_argument("--slot", choices=("system", "user-prefix"), default="system",
                        help="for a chat target: where the instruction goes (default: %(default)s)")
    parser.add_argument("--proposer", action="append", default=[], required=True, help=proposer_help)
    parser.add_argument("--temperature", type=float, default=1.0, help="proposers' temperature (default: %(default)s)")
    parser.add_argument("--max-answer-tokens", type=int, default=1024,
                        help="cap on each proposer answer, in tokens (default: %(default)s; a base model never "
                        "stops before it)")
    parser.add_argument("--max-metric-calls", type=int, default=None, help="budget in rows scored (one "
                        "instruction on one dev or train row is one call; GEPA's unit: compare backends at equal "
                        "budget)")
    parser.add_argument("--max-total-tokens", type=int, default=None, help="token budget (proposers + target)")
    parser.add_argument("--max-cost", type=non_negative_float, default=None, help="budget in USD (needs --price for every model)")
    parser.add_argument("--max-seconds", type=non_negative_float, default=None, help="wall-clock budget (the final held-out "
                        "scoring is not counted)")
    parser.add_argument("--price", action="append", default=[],
                        help="NAME=IN,OUT: USD per million input/output tokens for a candidate or model name")
    parser.add_argument("--out", default=None, help="output folder, new or empty (default: reports/BACKEND/RUN_ID)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


# -- shared helpers ---------------------------------------------------------------------------------------
#: below this many held-out rows a bootstrap interval (and the Δ read from it) is too unstable to act on:
#: a percentile interval of a mean needs roughly 30 independent values before its coverage is near 95%
MIN_HELDOUT_ROWS = 30


def warn_small_heldout(n_rows: int) -> None:
    """Say, on stderr (JSON on stdout stays parseable), when the held-out split is too small to trust."""
    if n_rows < MIN_HELDOUT_ROWS:
        print_warnings([f"the held-out split has only {n_rows} rows (< {MIN_HELDOUT_ROWS}): its score, Δ and "
                        "intervals are too unstable to act on; use a larger suite or a larger held-out share "
                        "(--split)"])


def _split(args, workspace):
    from harness.splits import parse_fractions, split_suite

    suite = workspace.suite(args.suite)
    by = args.split_by if args.split_by != "auto" else ("group" if suite.has_groups else "prompt")
    return split_suite(suite, parse_fractions(args.split), by=by, seed=args.seed)


def _embedder(workspace, spec: str):
    choice = workspace.embedder(spec)
    print_warnings(choice.warnings)
    return choice.embedder


def _progress(enabled: bool):
    def say(text: str) -> None:
        if enabled:
            print(text, file=sys.stderr, flush=True)
    return say


def _print_json(data: dict) -> None:
    print(json.dumps(data, ensure_ascii=False, allow_nan=False))


# -- prh optimize mean-prompt -------------------------------------------------------------------------------
def cmd_mean_prompt(args) -> int:
    from harness.evaluation import BootstrapSettings
    from harness.optimize.mean_prompt import optimize_mean_prompt
    from harness.optimize.search import SearchSettings
    from harness.optimize.vocabulary import read_token_list

    settings = SearchSettings(beam_width=args.beam_width, candidates_per_step=args.candidates_per_step,
                              budget_seconds=args.budget_seconds if args.budget_seconds > 0 else None,
                              max_evaluations=args.max_evaluations,
                              max_steps=args.max_steps, patience=args.patience, seed=args.seed)
    if all(limit is None for limit in (settings.budget_seconds, settings.max_evaluations, settings.max_steps,
                                       settings.patience)):
        raise ConfigError("--budget-seconds 0 needs another stop: --max-steps, --max-evaluations or --patience")
    nearest = _nearest_settings(args, settings)
    workspace = Workspace.from_args(args)
    split = _split(args, workspace)
    tokens = read_token_list(args.tokens) if args.tokens else []
    embedder = _embedder(workspace, args.embedder)
    say = _progress(not args.json and sys.stderr.isatty())
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # closed in the finally below

    def on_step(step) -> None:
        if log is not None:
            log.write(json.dumps(step.to_dict(), ensure_ascii=False) + "\n")
            log.flush()
        if step.improved or step.step % 20 == 0:
            say(f"step {step.step}: train {step.best_train_score:.4f} ({step.evaluations} evaluated, "
                f"{step.elapsed_s:.0f} s) {step.best_prompt!r}")

    try:
        with workspace:
            report = optimize_mean_prompt(split, embedder, start=args.start, settings=settings, store=workspace.store(),
                                          extra_tokens=tokens, max_tokens=args.max_tokens,
                                          vocabulary_size=args.vocabulary_size, on_step=on_step, name=args.name,
                                          bootstrap=BootstrapSettings(n_resamples=args.resamples, seed=args.seed),
                                          space=args.space, explore_share=args.explore_share, nearest=nearest,
                                          guide=args.guide, top_k=args.top_k)
    finally:
        if log is not None:
            log.close()
    data = report.to_dict()
    warn_small_heldout(data["heldout_n"])
    if args.json:
        _print_json(data)
        return 0
    print(f"prompt ({data['space']}): {data['prompt']}")
    print(report.summary())
    print(f"held-out ({data['heldout_n']} rows of {split.source}, embedder {data['embedder']}): "
          f"{data['heldout_score']:.4f} [{data['heldout_ci_low']:.4f}, {data['heldout_ci_high']:.4f}]; "
          f"start {data['start_heldout_score']:.4f}; Δ {data['delta']:+.4f} "
          f"[{data['delta_ci_low']:+.4f}, {data['delta_ci_high']:+.4f}]")
    print(f"train (what the search optimised, not a result): {data['train_score']:.4f} "
          f"(start {data['start_train_score']:.4f}); {data['steps']} steps, {data['evaluations']} strings, "
          f"{data['seconds']:.0f} s, stopped by {data['stop_reason']}")
    print(f"oracle (best constant answer): train {data['oracle_train']:.4f} (train split), held-out "
          f"{data['oracle_heldout']:.4f}; the train optimum's direction on held-out "
          f"{data['oracle_train_direction_heldout']:.4f}")
    if "nearest_prompt" in data:
        print(f"nearest string to the train oracle's direction (cosine {data['nearest_cosine_train_oracle']:.3f}): "
              f"held-out {data['nearest_heldout_score']:.4f} [{data['nearest_heldout_ci_low']:.4f}, "
              f"{data['nearest_heldout_ci_high']:.4f}]: {data['nearest_prompt']}")
    if not data["comparable_with_kaggle"]:
        print("note: scores from this embedder are not comparable with the Kaggle leaderboard", file=sys.stderr)
    print("\n# candidates.toml\n" + data["candidates_toml"], end="")
    return 0


def _nearest_settings(args, settings):
    """Settings of the nearest-string search: the main search's, with its own (smaller) budget; None to skip."""
    from dataclasses import replace

    if args.nearest_seconds == 0:
        return None
    seconds = args.nearest_seconds if args.nearest_seconds is not None else (
        settings.budget_seconds / 4 if settings.budget_seconds else None)
    steps = args.nearest_steps if args.nearest_steps is not None else settings.max_steps
    if seconds is None and steps is None and settings.patience is None:
        raise ConfigError("the nearest-string search needs a stop: --nearest-seconds, --nearest-steps or "
                          "--max-steps (or --nearest-seconds 0 to skip it)")
    return replace(settings, budget_seconds=seconds, max_steps=steps, max_evaluations=None)


# -- prh optimize opro ------------------------------------------------------------------------------------
def _prices(args) -> dict:
    from harness.pricing import parse_price

    return dict(parse_price(text) for text in args.price)


def _price_for(prices: dict, name: str, model: str, *, needed: bool):
    from harness.pricing import Price

    for key in (name, model):
        if key in prices:
            return prices[key]
    if needed:
        raise ConfigError(f"--max-cost needs a price for every model: give --price {name}=IN,OUT (USD per million "
                          f"input and output tokens) for '{name}' (model {model!r})")
    return Price()


def _chat_candidate(name: str, workspace, what: str):
    from harness.candidates.chat import ChatCandidate

    candidate = workspace.candidate(name)
    if not isinstance(candidate, ChatCandidate):
        raise ConfigError(f"{what} '{name}' must be a candidate of kind chat (an OpenAI-compatible endpoint)")
    return candidate


def cmd_opro(args) -> int:
    from harness.optimize.opro import OproSettings, Proposer, run_opro

    settings = OproSettings(rounds=args.rounds, proposals_per_proposer=args.proposals_per_proposer,
                            temperature=args.temperature, history_limit=args.history, exemplars=args.exemplars,
                            seed=args.seed, max_answer_tokens=args.max_answer_tokens)
    return _run_optimizer(args, "opro", lambda target, split, proposers, embedder, **options: run_opro(
        target, split, [Proposer(name, client) for name, client in proposers], embedder, settings=settings,
        **options))


def cmd_gepa(args) -> int:
    from harness.optimize.gepa_backend import GepaSettings, run_gepa

    settings = GepaSettings(minibatch_size=args.minibatch_size, temperature=args.temperature,
                            max_answer_tokens=args.max_answer_tokens, feedback_rows=args.feedback_rows,
                            candidate_selection=args.candidate_selection, seed=args.seed)
    _one_proposer(args, "GEPA's reflection model")
    return _run_optimizer(args, "gepa", lambda target, split, proposers, embedder, **options: run_gepa(
        target, split, proposers[0], embedder, settings=settings, **options))


def cmd_textgrad(args) -> int:
    from harness.optimize.textgrad_backend import TextGradSettings, run_textgrad

    settings = TextGradSettings(steps=args.steps, minibatch_size=args.minibatch_size, feedback_rows=args.feedback_rows,
                                temperature=args.temperature, max_answer_tokens=args.max_answer_tokens, seed=args.seed)
    _one_proposer(args, "TextGrad's backward engine")
    return _run_optimizer(args, "textgrad", lambda target, split, proposers, embedder, log_dir, **options:
                          run_textgrad(target, split, proposers[0], embedder, settings=settings, log_dir=log_dir,
                                       **options))


def _one_proposer(args, what: str) -> None:
    if len(args.proposer) != 1:
        raise ConfigError(f"{what} is one model: give --proposer once (got {len(args.proposer)})")


def _output_folder(args, backend: str, run_id: str) -> Path:
    """--out, which must be new or empty: a run never appends to or overwrites another run's files (there
    is no resume: start a new run, its cached predictions make the repeated part free)."""
    out = Path(args.out) if args.out else Path("reports") / backend / run_id
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} already holds files (an earlier run?); runs are not resumed or "
                          "overwritten: give a new folder (cached predictions make a rerun's repeated part free)")
    return out


def _run_optimizer(args, backend: str, run) -> int:
    """Everything the backends share on the command line: workspace, split, embedder, target, metered
    proposers, budget, the trajectory, plot, training set, result.json and the printed report."""
    from harness.evaluation import BootstrapSettings
    from harness.optimize.metering import MeteredChatClient
    from harness.optimize.session import Budget
    from harness.optimize.targets import ChatInstructionTarget, MeanPromptTarget
    from harness.optimize.trajectory import TrajectoryLog, export_training_set, plot_trajectory

    budget = Budget(max_metric_calls=args.max_metric_calls, max_tokens=args.max_total_tokens,
                    max_cost_usd=args.max_cost, max_seconds=args.max_seconds)
    prices = _prices(args)
    needed = args.max_cost is not None
    run_id = uuid.uuid4().hex[:12]
    out = _output_folder(args, backend, run_id)
    workspace = Workspace.from_args(args)
    split = _split(args, workspace)
    embedder = _embedder(workspace, args.embedder)
    say = _progress(not args.json)
    with workspace:
        store = workspace.store()
        proposers = []
        for name in args.proposer:
            client = _chat_candidate(name, workspace, "--proposer").client
            proposers.append((name, MeteredChatClient.like(client, _price_for(prices, name, client.model,
                                                                              needed=needed))))
        if args.target == "mean" or args.target.startswith("mean:"):
            target = MeanPromptTarget(args.target[len("mean:"):] if args.target.startswith("mean:") else DEFAULT_START)
        else:
            base = _chat_candidate(args.target, workspace, "--target")
            target = ChatInstructionTarget(base, MeteredChatClient.like(
                base.client, _price_for(prices, args.target, base.client.model, needed=needed)), slot=args.slot)

        def on_record(record: dict) -> None:
            if record["type"] == "proposal":
                score = record["dev_score"]
                shown = f"dev {score:.4f}" if score is not None else (record.get("problem") or "")
                say(f"{backend} round {record['round']} · {record['proposer'] or 'start'} · {record['status']}: "
                    f"{shown} ({record['metric_calls']} metric calls)")

        options = {"log_dir": out / "textgrad-logs"} if backend == "textgrad" else {}
        with TrajectoryLog(out / "trajectory.jsonl") as log:
            result = run(target, split, proposers, embedder, store=store, budget=budget, log=log,
                         heldout_bootstrap=BootstrapSettings(n_resamples=args.resamples, seed=args.seed),
                         run_id=run_id, on_record=on_record, **options)
            records = log.records
    plot = plot_trajectory(records, out / "trajectory.png")
    n_training = export_training_set(records, out / "training.jsonl")
    data = {**result.to_dict(), "out": str(out), "trajectory": str(out / "trajectory.jsonl"), "plot": str(plot),
            "training_set": str(out / "training.jsonl"), "training_rows": n_training}
    write_json_atomic(out / "result.json", data)
    warn_small_heldout(data["heldout_n"])
    if args.json:
        _print_json(data)
        return 0
    h = data
    print(f"{backend} instruction: {result.best_instruction}")
    print(f"held-out ({h['heldout_n']} rows, embedder {h['embedder']}): {h['heldout_score']:.4f} "
          f"[{h['heldout_ci_low']:.4f}, {h['heldout_ci_high']:.4f}]; start {h['start_heldout_score']:.4f}; "
          f"Δ {h['delta']:+.4f} [{h['delta_ci_low']:+.4f}, {h['delta_ci_high']:+.4f}]")
    print(f"dev (selection, not a result): {result.best_dev_score:.4f} (start {result.start_dev_score:.4f}); "
          f"{result.rounds_completed} rounds, {result.metric_calls} metric calls, stopped by {result.stop_reason}; "
          f"{result.usage.tokens} tokens, ${result.usage.cost_usd:.4f}, {result.seconds:.0f} s")
    print(f"trajectory, plot, training set ({n_training} rows): {out}")
    print("\n# candidates.toml\n" + data["candidates_toml"], end="")
    return 0


def cmd_export_training(args) -> int:
    from harness.optimize.trajectory import export_training_set, read_trajectory

    count = export_training_set(read_trajectory(args.trajectory), args.out, min_delta=args.min_delta,
                                improvements_only=not args.all)
    print(f"{count} rows → {args.out}")
    return 0


def cmd_plot(args) -> int:
    from harness.optimize.trajectory import plot_trajectory, read_trajectory

    print(plot_trajectory(read_trajectory(args.trajectory), args.out))
    return 0
