"""A wheelhouse: the project and its runtime dependencies as wheel files, for an offline install.

Kaggle code competitions run notebooks without internet. Attached as a dataset, a wheelhouse installs with

    pip install --no-index --find-links DIR prompt-recovery-harness

It is built in three pip steps, all through pip itself (no resolver of our own):
1. `pip wheel --no-deps` of this checkout: the project's own wheel;
2. `pip install --dry-run --ignore-installed --report` of that wheel: pip resolves the dependencies, pinned
   (`--constraint`) to the versions installed here, i.e. the versions the gate ran with;
3. `pip wheel --no-deps` (or `pip download --no-deps` for another Python or platform) of exactly the files
   pip chose.

torch is left out unless asked for (`with_torch`): a Kaggle GPU notebook already has a CUDA build of torch,
and installing the one from here (a CPU build on a machine without a GPU) would replace it. Without torch,
its CUDA, triton and cuda-* companions are left out too; its small pure-Python dependencies (sympy,
networkx, …) stay, as other packages may need them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from urllib.parse import unquote

from harness.errors import ConfigError, HarnessError

PROJECT_NAME = "prompt-recovery-harness"
#: what a Kaggle GPU image already provides, left out unless `with_torch`
TORCH_FAMILY = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    wheels: tuple[str, ...]
    left_out: tuple[str, ...]
    replaced: tuple[str, ...]
    total_bytes: int

    def describe(self) -> str:
        lines = [f"{self.directory}: {len(self.wheels)} wheels, {self.total_bytes / 2**20:.0f} MiB"]
        if self.replaced:
            lines.append(f"replaced {len(self.replaced)} wheel(s) of the same name already there: "
                         f"{', '.join(self.replaced[:5])}{' …' if len(self.replaced) > 5 else ''}")
        if self.left_out:
            lines.append(f"left out (the notebook must already have them; --with-torch adds them): "
                         f"{', '.join(self.left_out)}")
        lines.append(f"install offline: pip install --no-index --find-links {self.directory} {PROJECT_NAME}")
        return "\n".join(lines)


def project_dir() -> Path:
    """The checkout this `harness` package was imported from (the wheelhouse is built from source)."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or f'name = "{PROJECT_NAME}"' not in pyproject.read_text(encoding="utf-8"):
        raise ConfigError(f"prh wheelhouse builds from the project's source checkout, and {root} is not one "
                          "(run it where you cloned the project)")
    return root


def environment_constraints() -> list[str]:
    """`name==version` of every distribution installed here except the project: the versions tested."""
    pins: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != PROJECT_NAME:
            pins.setdefault(canonical(name), f"{name}=={dist.version}")
    return sorted(pins.values())


def _run(command: Sequence[str], what: str) -> None:
    finished = subprocess.run(list(command), capture_output=True, text=True)
    if finished.returncode != 0:
        tail = "\n".join((finished.stderr or finished.stdout).strip().splitlines()[-15:])
        raise HarnessError(f"{what} failed (pip exit {finished.returncode}):\n{tail}")


def build_wheelhouse(out: Path, *, with_torch: bool = False, extras: Sequence[str] = (),
                     python_version: str | None = None, platforms: Sequence[str] | None = None,
                     log: Callable[[str], None] = print, pip: Sequence[str] | None = None,
                     source: Path | None = None) -> Wheelhouse:
    """Fill `out` with the project's wheel and every runtime dependency's (see the module docstring).

    `python_version`/`platforms` target another interpreter or machine (binary wheels only); `pip` is the
    pip command (default: this interpreter's); `source` the checkout (default: this package's).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    pip = list(pip or [sys.executable, "-m", "pip"])
    source = source or project_dir()
    cross = python_version is not None or bool(platforms)
    target_options = ["--only-binary=:all:"] if cross else []
    if python_version:
        target_options += ["--python-version", python_version]
    for platform in platforms or ():
        target_options += ["--platform", platform]
    out.mkdir(parents=True, exist_ok=True)
    before = {path.name for path in out.glob("*.whl")}
    with tempfile.TemporaryDirectory(prefix="prh-wheelhouse-") as temporary:
        scratch = Path(temporary)
        log(f"building the project's wheel from {source}")
        _run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(scratch / "project"), str(source)],
             "building the project's wheel")
        [project_wheel] = (scratch / "project").glob("*.whl")
        constraints = scratch / "constraints.txt"
        constraints.write_text("\n".join(environment_constraints()) + "\n", encoding="utf-8")
        requirement = f"{project_wheel}[{','.join(extras)}]" if extras else str(project_wheel)
        log("resolving its dependencies, pinned to the versions installed here (pip install --dry-run --report)")
        report = scratch / "report.json"
        _run([*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
              "--constraint", str(constraints), *target_options,
              *(["--target", str(scratch / "target")] if cross else []), requirement], "resolving the dependencies")
        chosen = json.loads(report.read_text(encoding="utf-8"))["install"]
        urls, left_out = [], []
        for item in chosen:
            name = canonical(item["metadata"]["name"])
            if name == PROJECT_NAME:
                continue
            if not with_torch and TORCH_FAMILY.match(name):
                left_out.append(f"{item['metadata']['name']}=={item['metadata']['version']}")
                continue
            urls.append(item["download_info"]["url"])
        log(f"collecting {len(urls)} dependency wheels into {out}")
        if cross:
            _run([*pip, "download", "--no-deps", "--quiet", "--dest", str(out), *target_options, *urls],
                 "downloading the dependencies")
        else:
            _run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), *urls], "collecting the dependencies")
        shutil.copy2(project_wheel, out / project_wheel.name)
        names = {project_wheel.name, *(unquote(url.rsplit("/", 1)[-1]) for url in urls)}
    wheels = sorted(path.name for path in out.glob("*.whl"))
    replaced = sorted(before & names)
    return Wheelhouse(out, tuple(wheels), tuple(sorted(left_out)), tuple(replaced),
                      sum((out / name).stat().st_size for name in wheels))
