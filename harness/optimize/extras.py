"""Optional libraries (the `optimizers` and `deepeval` extras): imported only by the code that uses them,
and a missing one is one line saying how to install it (a ConfigError: `prh` exits 2, no traceback)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from harness.errors import ConfigError

#: module → (pip distribution, extra of this project that pins it)
EXTRAS = {"gepa": ("gepa", "optimizers"), "textgrad": ("textgrad", "optimizers"), "deepeval": ("deepeval", "deepeval")}


def require(module: str, *, what: str) -> ModuleType:
    """`import module`, or ConfigError naming the install command when it is not installed.

    textgrad and gepa pull in litellm, whose import fetches a price list from the internet (retried for
    seconds, then a warning) unless told to use its bundled copy: the harness never needs it (prices are
    `--price`), so it is told."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # the library is there but one of ITS imports is broken: show that, not an install hint
        distribution, extra = EXTRAS[module.split(".")[0]]
        raise ConfigError(f"{what} needs the '{distribution}' package: pip install -e \".[{extra}]\" "
                          f"(or pip install {distribution})") from None
