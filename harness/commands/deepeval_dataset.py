"""`prh deepeval-dataset`: a suite as a DeepEval dataset (a JSON list of goldens).

The mapping is direct: a row's `input` is its original and rewritten texts, `expected_output` its
rewrite prompt (what `SCSMetric` compares a model's answer with), `name` its id, and
`additional_metadata` its group. `EvaluationDataset().add_goldens_from_json_file(PATH)` reads the file.
Writing it needs no DeepEval. Importing this module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

from harness.files import write_json_atomic
from harness.options import add_workspace_paths
from harness.workspace import Workspace


def add_commands(subparsers) -> None:
    """Register `deepeval-dataset` on the `prh` parser."""
    parser = subparsers.add_parser("deepeval-dataset", help="write a suite as a DeepEval dataset (JSON goldens)")
    parser.add_argument("--suite", required=True, help="a suite name from the suites file, or a Kaggle-format file")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    add_workspace_paths(parser.add_argument, only=("--suites-file",))
    parser.set_defaults(handler=cmd_deepeval_dataset)


def golden_rows(suite) -> list[dict]:
    """One golden per row (see the module docstring)."""
    return [{"name": s.id, "input": f"Original text:\n{s.original_text}\n\nRewritten text:\n{s.rewritten_text}",
             "expected_output": s.rewrite_prompt,
             "additional_metadata": {"suite": suite.name, **({"group": s.group} if s.group else {})}}
            for s in suite.samples]


def cmd_deepeval_dataset(args) -> int:
    workspace = Workspace.from_dir(".", suites_file=args.suites_file, store=":memory:")
    with workspace:
        suite = workspace.suite(args.suite)
    out = Path(args.out)
    existed = out.exists()
    write_json_atomic(out, golden_rows(suite))
    print(f"{len(suite)} goldens of '{suite.name}' → {out}{' (replaced the file there)' if existed else ''}")
    return 0
