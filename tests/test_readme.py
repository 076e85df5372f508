"""The README's quick start is what CI runs: the two commands must be the same lines in .ci/run."""

from __future__ import annotations

import re

from conftest import REPO_ROOT


def quickstart_commands() -> dict[str, str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- quickstart:(\w+) -->\s*```bash\n(.*?)\n```", readme, flags=re.S)
    return {name: body.strip() for name, body in blocks}


def test_readme_has_exactly_two_quickstart_commands_and_ci_runs_them_verbatim():
    commands = quickstart_commands()
    assert set(commands) == {"main", "tests"}
    assert all("\n" not in command for command in commands.values())
    assert "pytest suites/ --candidate=" in commands["main"] and "pip install torch==2.13.0" in commands["main"]
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands.values():
        assert command in ci_lines, f".ci/run does not run the README command: {command}"


def third_party_modules_imported_by(statement: str) -> set[str]:
    """The top-level non-standard-library packages that `statement` adds to a fresh interpreter: what an
    import costs, counted in modules rather than seconds (a shared machine's wall time says nothing)."""
    import subprocess
    import sys

    code = (f"import sys; before = set(sys.modules); {statement}; new = {{m.split('.')[0] for m in set(sys.modules) - "
            "before}; print(*sorted(new - set(sys.stdlib_module_names)))")
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_importing_the_package_is_cheap_and_loads_no_model():
    assert third_party_modules_imported_by("import harness") == {"harness"}
    # the command and the plugin bring pytest's own stack at most; scoring and reports numpy and tabulate
    pytest_stack = {"_pytest", "pytest", "pluggy", "iniconfig", "py", "pygments", "exceptiongroup", "tomli"}
    assert third_party_modules_imported_by("import harness.cli, harness.pytest_plugin") <= {"harness", *pytest_stack}
    heavy = third_party_modules_imported_by("import harness.evaluation, harness.cli, harness.pytest_plugin, harness.report")
    assert not heavy & {"torch", "sentence_transformers", "transformers", "scipy", "rich", "pydantic", "openai"}, heavy


def test_the_plugin_and_the_package_import_neither_torch_nor_scipy_nor_numpy():
    """Every pytest run of any project in the environment loads the plugin: it must cost nothing."""
    import subprocess
    import sys

    code = ("import sys, harness, harness.pytest_plugin; "
            "print(*[m in sys.modules for m in ('torch', 'scipy', 'numpy', 'sentence_transformers', 'rich')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False"] * 5


def test_the_public_names_are_the_objects_of_their_home_modules():
    """Each lazily exported name is the very object its home module defines, also after every submodule
    has been imported (a public name equal to a submodule's used to turn into that module: `evaluate`)."""
    import importlib
    import pkgutil

    import harness

    for info in pkgutil.walk_packages(harness.__path__, "harness."):
        if not info.name.startswith(("harness.integrations", "harness.optimize.gepa", "harness.optimize.textgrad")):
            importlib.import_module(info.name)
    for name in harness.__all__:
        exported = getattr(harness, name)
        assert not isinstance(exported, type(harness)), f"harness.{name} is a module"
        assert exported.__module__.startswith("harness"), name
    assert harness.Workspace.from_dir(REPO_ROOT).suite_names()[:2] == ["public", "leaked"]


def test_the_readme_works_from_a_clone():
    """Issue 9's README defects: a new user starts from `git clone … && cd …`; `../shared` is not in a clone,
    so nothing links there; the Hugging Face CLI is `hf` now; and the test command says how long it takes."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"git clone \S.* && cd \S", quick_start)
    assert not re.search(r"\]\(\.\./shared", readme) and "`../shared/DESIGN.md`" not in readme
    assert "huggingface-cli" not in readme
    tests_line = quick_start.split("<!-- quickstart:tests -->")[0].strip().rsplit("\n\n", 1)[-1]
    assert re.search(r"\d+ minutes", tests_line), tests_line
