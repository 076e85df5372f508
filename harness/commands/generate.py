"""`prh generate …`: synth, rewrite, dedup, mine, review, expand.

Registered by `harness.cli` through `add_commands(subparsers)`. Importing this module imports nothing
but argparse: every handler imports what it needs, so `prh --help` stays instant and never loads
torch or the openai SDK.

Exit codes (scriptable): 0 done; 1 some items failed for good (rows written are kept: rerun the same
command to retry only those); 2 bad input or configuration (one line on stderr, from `harness.cli`);
130 interrupted (rows written are kept: rerun to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.options import add_workspace_paths, resamples

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_SYNTH_MODEL = "gpt-4o"
EXIT_FAILED_ITEMS = 1
EXIT_INTERRUPTED = 130


def add_commands(subparsers) -> None:
    """Register `prh generate` and its subcommands on the `prh` subparsers."""
    generate = subparsers.add_parser("generate", help="synthetic data: synth, rewrite, dedup, mine, review, expand",
                                     description="Generate, review and mine prompt-recovery data (docs/generate.md).")
    commands = generate.add_subparsers(dest="generate_command", required=True)

    synth = commands.add_parser("synth", help="an LLM writes (original, rewritten) pairs for catalog prompts")
    synth.add_argument("--catalog", required=True, help="prompt catalog (.toml, .yaml or .csv)")
    synth.add_argument("--n", type=int, required=True, help="items to generate (a rerun skips finished ones)")
    synth.add_argument("--out", required=True, help="output JSONL (appended to; a rerun resumes)")
    synth.add_argument("--seed", type=int, default=0, help="expansion seed; another seed grows the set (default: 0)")
    synth.add_argument("--combine-fraction", type=float, default=None,
                       help="share of items combining 2-3 prompts (default: the catalog's combine.fraction)")
    synth.add_argument("--max-words", type=int, default=200, help="word limit of the original text (default: 200)")
    _add_endpoint(synth, base_url=OPENAI_BASE_URL, model=DEFAULT_SYNTH_MODEL, temperature=0.9, json_mode="auto")
    synth.set_defaults(handler=cmd_synth)

    rewrite = commands.add_parser("rewrite", help="another model rewrites existing (original, prompt) rows")
    rewrite.add_argument("--in", dest="input", required=True, help="a suite name or a data file (CSV/JSONL/parquet)")
    add_workspace_paths(rewrite.add_argument, only=("--suites-file",))
    rewrite.add_argument("--out", required=True, help="output JSONL (appended to; a rerun resumes)")
    rewrite.add_argument("--limit", type=int, default=None, help="only the first N rows of the input")
    rewrite.add_argument("--user-template", default=None,
                         help="user turn with {rewrite_prompt} and {original_text} (default: prompt, blank line, text)")
    rewrite.add_argument("--system", default="", help="system message (default: none; Gemma has no system role)")
    rewrite.add_argument("--postprocess", choices=("none", "strip", "plain"), default="strip",
                         help="Gemma-like post-processing of the answer (default: strip)")
    rewrite.add_argument("--backend", choices=("chat", "local"), default="chat",
                         help="chat: an OpenAI-compatible endpoint; local: a transformers model directory given as --model")
    _add_endpoint(rewrite, base_url=None, model=None, temperature=0.0, json_mode="off")
    rewrite.set_defaults(handler=cmd_rewrite)

    dedup = commands.add_parser("dedup", help="drop exact and near-duplicate rows (embedding cosine)")
    dedup.add_argument("--in", dest="input", required=True, help="generated JSONL")
    dedup.add_argument("--out", required=True, help="deduplicated JSONL (written anew)")
    dedup.add_argument("--dropped", default=None, help="also write the dropped rows' ids and reasons (JSONL)")
    dedup.add_argument("--fields", default="original_text,rewrite_prompt",
                       help="fields that must all match (default: %(default)s)")
    dedup.add_argument("--threshold", type=float, default=0.95, help="near-duplicate cosine (default: %(default)s)")
    dedup.add_argument("--embedder", default="minilm", help="auto, st5, minilm, path:DIR or none (exact only)")
    add_workspace_paths(dedup.add_argument, only=("--store",))
    dedup.set_defaults(handler=cmd_dedup)

    mine = commands.add_parser("mine", help="keep the rows the candidates score worst on, as a new suite")
    mine.add_argument("--pool", required=True, help="a suite name or a data file to mine")
    mine.add_argument("--candidate", action="append", required=True, help="candidate (repeatable): name or spec")
    mine.add_argument("--threshold", type=float, default=None, help="keep rows whose best score is below this")
    mine.add_argument("--quantile", type=float, default=None,
                      help="keep rows in this bottom quantile of best scores (default 0.25 when no threshold)")
    mine.add_argument("--out", required=True, help="output JSONL of the mined suite (written anew)")
    mine.add_argument("--suite-name", default=None, help="name of the new suite (default: the output's stem)")
    mine.add_argument("--register", action="store_true",
                      help="append the suite's entry to --suites-file (otherwise it is written beside --out)")
    mine.add_argument("--report", default=None, help="markdown report (default: the output with .md)")
    mine.add_argument("--embedder", default="auto", help="auto, st5, minilm or path:DIR (default: %(default)s)")
    add_workspace_paths(mine.add_argument, only=("--suites-file", "--candidates-file", "--store"))
    mine.add_argument("--resamples", type=resamples, default=2000, help="bootstrap resamples per candidate (default: 2000)")
    mine.set_defaults(handler=cmd_mine)

    review = commands.add_parser("review", help="a markdown report of a random sample of rows, with flags")
    review.add_argument("--in", dest="input", required=True, help="generated JSONL")
    review.add_argument("--failures", default=None, help="failure log (default: the input's .failures.jsonl, if any)")
    review.add_argument("--sample", type=int, default=25, help="rows shown in full (default: %(default)s)")
    review.add_argument("--seed", type=int, default=0)
    review.add_argument("--out", default=None, help="markdown file (default: print)")
    review.set_defaults(handler=cmd_review)

    expand = commands.add_parser("expand", help="print the instructions a catalog expands to (no requests)")
    expand.add_argument("--catalog", required=True)
    expand.add_argument("--n", type=int, default=20)
    expand.add_argument("--seed", type=int, default=0)
    expand.add_argument("--combine-fraction", type=float, default=None)
    expand.add_argument("--json", action="store_true", help="one JSON object per item")
    expand.set_defaults(handler=cmd_expand)


def _add_endpoint(parser: argparse.ArgumentParser, *, base_url: str | None, model: str | None, temperature: float,
                  json_mode: str) -> None:
    parser.add_argument("--base-url", default=base_url,
                        help=f"OpenAI-compatible API root (default: {base_url or 'none; required for --backend chat'})")
    parser.add_argument("--model", required=model is None, default=model, help=f"model name (default: {model})")
    parser.add_argument("--api-key-env", default=None,
                        help="NAME of the environment variable holding the key (default: OPENAI_API_KEY for "
                             "api.openai.com, none otherwise); the key itself is never accepted on the command line")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
    parser.add_argument("--temperature", type=float, default=temperature, help=f"(default: {temperature:g})")
    parser.add_argument("--max-tokens", type=int, default=1024, help="completion cap per request (default: 1024)")
    parser.add_argument("--invalid-retries", type=int, default=2,
                        help="times an invalid answer is asked again before the item fails (default: 2)")
    parser.add_argument("--json-mode", choices=("auto", "on", "off", "schema"), default=json_mode,
                        help="send response_format json_object (auto: fall back if refused; schema: with the "
                             "answer's JSON schema, for servers that constrain decoding to it, e.g. llama.cpp; "
                             f"default: {json_mode})")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="end each answer at TEXT (repeatable, at most 4; e.g. a newline for a base model, "
                             "which never ends its turn)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt (default: 120)")
    parser.add_argument("--max-retries", type=int, default=5, help="retries on 429/5xx/timeouts (default: 5)")
    parser.add_argument("--prices", default=None, help="price table TOML (default: fixtures/prices.toml)")
    parser.add_argument("--failures", default=None, help="failure log (default: OUT with .failures.jsonl)")
    parser.add_argument("--dry-run", action="store_true", help="print requests and cost estimate; send nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- helpers -----------------------------------------------------------------------------------------
def failures_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name[:-len(out.suffix)] + ".failures.jsonl" if out.suffix else out.name + ".failures.jsonl")


def _api_key_env(args) -> str | None:
    from urllib.parse import urlsplit

    if args.api_key_env:
        return args.api_key_env
    return "OPENAI_API_KEY" if (urlsplit(args.base_url or "").hostname or "") == "api.openai.com" else None


def _settings(args, json_schema=None):
    from harness.generate.runner import RunSettings

    return RunSettings(temperature=args.temperature, max_tokens=args.max_tokens, json_mode=args.json_mode,
                       invalid_retries=args.invalid_retries, stop=tuple(args.stop), json_schema=json_schema)


def _prices(args):
    from harness.pricing import default_prices_path, load_prices

    return load_prices(args.prices if args.prices else default_prices_path())


def _chat_client(args):
    from harness.errors import ConfigError
    from harness.llm import ChatClient

    if not args.base_url:
        raise ConfigError("--base-url is required (the OpenAI-compatible API root, e.g. http://127.0.0.1:8080/v1)")
    return ChatClient(args.base_url, args.model, _api_key_env(args), timeout=args.timeout,
                      max_retries=args.max_retries, max_concurrency=args.concurrency)


def _dry_run(items, out: Path, model: str, args) -> int:
    from harness.generate.cost_estimate import estimate
    from harness.generate.jsonl import existing_keys

    done = existing_keys(out)
    todo = [item for item in items if item.id not in done]
    result = estimate([list(item.messages) for item in todo], [item.typical_completion_tokens for item in todo],
                      args.max_tokens, model, _prices(args))
    print(f"dry run: {len(items)} items planned, {len(items) - len(todo)} already in {out}; nothing is sent")
    for line in result.lines(model):
        print(line)
    print(f"(retries of rejected answers, at most {args.invalid_retries} per item, come on top)")
    return 0


def _run(items, client, acceptor, args, *, task: str, settings) -> int:
    from harness.generate.jsonl import AppendOnlyJsonl
    from harness.generate.progress import generation_progress
    from harness.generate.runner import run_items

    out = Path(args.out)
    prices = _prices(args)
    client.preflight()
    failures = Path(args.failures) if args.failures else failures_path(out)
    try:
        with AppendOnlyJsonl(out) as rows, AppendOnlyJsonl(failures, unique=False) as failed:
            todo = sum(1 for item in items if item.id not in rows)
            with generation_progress(task, todo, False if args.no_progress else None) as progress:
                summary = run_items(items, client, acceptor, rows, failed, settings=settings, task=task,
                                    prices=prices, on_progress=progress)
    except KeyboardInterrupt:
        print(f"interrupted: the rows written so far are in {out}; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    for line in summary.lines():
        print(line)
    print(f"rows: {out} ({summary.skipped + summary.written} of {summary.planned} items done)"
          + (f"; failures: {failures}" if summary.reasons else ""))
    if summary.failed:
        print(f"error: {summary.failed} items failed for good (see {failures}); rerun the same command to retry "
              "them", file=sys.stderr)
        return EXIT_FAILED_ITEMS
    return 0


# -- handlers ----------------------------------------------------------------------------------------
def cmd_synth(args) -> int:
    from harness.generate.catalog import expand_catalog, load_catalog
    from harness.generate.synth import PAIR_SCHEMA, SynthAcceptor, synth_items

    _check_positive(args, "n", allow_zero=True)
    _check_positive(args, "concurrency")
    _check_positive(args, "max_words")
    settings = _settings(args, json_schema=PAIR_SCHEMA)
    catalog = load_catalog(args.catalog)
    expanded = expand_catalog(catalog, args.n, args.seed, combine_fraction=args.combine_fraction)
    items = synth_items(expanded, model=args.model, temperature=args.temperature, max_words=args.max_words)
    if args.dry_run:
        return _dry_run(items, Path(args.out), args.model, args)
    return _run(items, _chat_client(args), SynthAcceptor(max_words=args.max_words), args, task="synth",
                settings=settings)


def cmd_rewrite(args) -> int:
    from harness.generate.rewrite import DEFAULT_REWRITE_USER, RewriteAcceptor, RewriteSettings, rewrite_items

    _check_positive(args, "concurrency")
    run_settings = _settings(args)
    from harness.workspace import Workspace

    suite = Workspace.from_args(args).suite(args.input)
    samples = list(suite.samples[:args.limit] if args.limit is not None else suite.samples)
    settings = RewriteSettings(user=args.user_template or DEFAULT_REWRITE_USER, system=args.system,
                               postprocess=args.postprocess)
    model_name = args.model
    if args.backend == "local":
        from harness.generate.local import LocalChatModel

        client = LocalChatModel(args.model, max_new_tokens=args.max_tokens)
        model_name = client.model
    items = rewrite_items(samples, model=model_name, temperature=args.temperature, settings=settings)
    if args.dry_run:
        return _dry_run(items, Path(args.out), model_name, args)
    if args.backend == "chat":
        client = _chat_client(args)
    return _run(items, client, RewriteAcceptor(args.postprocess), args, task="rewrite", settings=run_settings)


def cmd_dedup(args) -> int:
    from harness.errors import ConfigError
    from harness.files import write_jsonl_atomic
    from harness.generate.dedup import find_duplicates
    from harness.generate.jsonl import read_jsonl

    source, out = Path(args.input), Path(args.out)
    if source.resolve() == out.resolve():
        raise ConfigError("--out must differ from --in: the generated file is append-only, never rewritten")
    rows = read_jsonl(source)
    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    embedder = store = None
    if args.embedder != "none":
        from harness.errors import print_warnings
        from harness.workspace import Workspace

        workspace = Workspace.from_args(args)
        choice = workspace.embedder(args.embedder)
        print_warnings(choice.warnings)
        embedder, store = choice.embedder, workspace.store()
    try:
        duplicates = find_duplicates(rows, fields=fields, embedder=embedder, store=store, threshold=args.threshold)
    finally:
        if store is not None:
            store.close()
    drop = {d.id for d in duplicates}
    kept = [row for row in rows if str(row.get("id")) not in drop]
    write_jsonl_atomic(out, kept)
    if args.dropped:
        write_jsonl_atomic(Path(args.dropped), [d.__dict__ for d in duplicates])
    exact = sum(1 for d in duplicates if d.kind == "exact")
    print(f"{len(rows)} rows: kept {len(kept)}, dropped {exact} exact and {len(duplicates) - exact} near duplicates "
          f"(fields {', '.join(fields)}; cosine >= {args.threshold:g}"
          + (f", embedder {embedder.name}" if embedder else ", exact only") + f") → {out}")
    return 0


def cmd_mine(args) -> int:
    from harness.errors import ConfigError, print_warnings
    from harness.evaluation import BootstrapSettings
    from harness.files import append_toml_table, write_jsonl_atomic, write_text_atomic
    from harness.generate.mining import mine, mined_rows, mining_report, source_records, suite_entry
    from harness.workspace import Workspace

    out = Path(args.out)
    suite_name = args.suite_name or out.stem
    workspace = Workspace.from_args(args)
    suites_file = workspace.suites_file
    if args.register and workspace.is_named_suite(suite_name):
        raise ConfigError(f"{suites_file} already has a suite '{suite_name}'; choose another --suite-name")
    pool = workspace.suite(args.pool)
    pool_path = Path(pool.source)
    choice = workspace.embedder(args.embedder)
    print_warnings(choice.warnings)
    with workspace:
        candidates = [workspace.candidate(spec) for spec in args.candidate]
        mining = mine(pool, candidates, choice.embedder, store=workspace.store(), threshold=args.threshold,
                      quantile=args.quantile, bootstrap=BootstrapSettings(n_resamples=args.resamples))
    write_jsonl_atomic(out, mined_rows(mining, source_records(pool_path)))
    description = f"Hard rows mined from '{pool.name}': {mining.rule}, best of {', '.join(r.candidate for r in mining.results)} ({mining.embedder})."
    if args.register:
        append_toml_table(suites_file, "suites", suite_name, suite_entry(suite_name, out, suites_file, description),
                          what="suite")
        where = f"registered as suite '{suite_name}' in {suites_file}"
    else:
        snippet = out.with_name(out.stem + ".suite.toml")
        write_text_atomic(snippet, suite_entry(suite_name, out, snippet, description))
        where = f"suites.toml entry in {snippet} (or rerun with --register)"
    report = Path(args.report) if args.report else out.with_suffix(".md")
    write_text_atomic(report, mining_report(mining, out_path=out, suite_name=suite_name))
    print(f"kept {int(mining.kept.sum())} of {len(pool)} rows ({mining.rule}) → {out}; {where}; report {report}")
    return 0


def cmd_review(args) -> int:
    from harness.files import write_text_atomic
    from harness.generate.jsonl import read_jsonl
    from harness.generate.review import review_markdown

    source = Path(args.input)
    rows = read_jsonl(source)
    failures_file = Path(args.failures) if args.failures else failures_path(source)
    failures = read_jsonl(failures_file) if failures_file.is_file() else []
    text = review_markdown(rows, failures=failures, sample=args.sample, seed=args.seed, source=str(source))
    if args.out:
        write_text_atomic(Path(args.out), text)
        print(f"review of {min(args.sample, len(rows))} of {len(rows)} rows → {args.out}")
    else:
        print(text)
    return 0


def cmd_expand(args) -> int:
    import json

    from harness.generate.catalog import expand_catalog, load_catalog

    catalog = load_catalog(args.catalog)
    for item in expand_catalog(catalog, args.n, args.seed, combine_fraction=args.combine_fraction):
        if args.json:
            print(json.dumps({"index": item.index, "instruction": item.instruction, "group": item.group,
                              "template_ids": item.template_ids, "text_kind": item.text_kind, "topic": item.topic,
                              "template_hash": item.template_hash}, ensure_ascii=False))
        else:
            print(f"{item.index:5d}  [{item.group}]  {item.instruction}")
    return 0


def _check_positive(args, name: str, *, allow_zero: bool = False) -> None:
    from harness.errors import ConfigError

    value = getattr(args, name)
    if value < (0 if allow_zero else 1):
        raise ConfigError(f"--{name.replace('_', '-')} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
