"""Hugging Face models on this machine: where a model is, what it is (its fingerprint), and whether an
adapter fits it. The one place for these, used by the embedders, the hf candidate, training and the
local rewrite model.

Locating. `locate_model(model)` turns what a user wrote into a local directory by asking
`MODEL_SOURCES` in turn: a local directory; a hub id ("org/name") in the local Hugging Face cache
(`models--org--name/snapshots/<rev>`, `refs/main` first), found by reading the filesystem, not by
asking huggingface_hub, whose cache location is frozen when it is first imported; and, only when the
caller passes `download=True`, a download from the hub; and GGUF files (`gguf:PATH`, a path ending in
.gguf, or `gguf-package:NAME`), converted once into a cached safetensors directory by
`harness.gguf_models`. Each source returns None for a model that is not its kind, so a new kind of model
is one more source in that tuple, placed before the hub.

Nothing here changes the process environment: whether the hub may be contacted is the caller's
argument (`download`; `hub_offline()` reads HF_HUB_OFFLINE for callers that follow it), and loaders
are given `local_files_only=True` for the directories returned here.

Fingerprints. `model_fingerprint(directory, settings)`: small files in full, large ones (weights) by
size plus their first and last MiB (`harness.hashing.update_with_file`), the values of config keys
that name a place on disk left out (so a moved or re-saved model keeps its cached results), and the
caller's settings mixed in.

Adapters. `check_adapter_fits` compares a peft adapter with the model it is about to be loaded on,
from config files and safetensors headers only, before any weight is read.

Importing this module imports neither torch, transformers nor huggingface_hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ModelUnavailableError
from harness.hashing import update_with_file

#: Files a model needs when it is downloaded (everything else in a hub repository is skipped).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
#: Config fields compared between the model and the adapter's declared base (see `check_adapter_fits`).
BASE_FIELDS = ("architectures", "hidden_size", "vocab_size", "num_hidden_layers")
#: Config keys whose value may name a place on disk rather than content (see `model_fingerprint`).
PATH_KEYS = frozenset({"_name_or_path", "name_or_path", "base_model_name_or_path"})
#: A hub repository id: "name" or "org/name".
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
                       r"(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$")
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")
#: JSON files up to this size are read as configs (path keys dropped); larger ones are hashed as data.
_CONFIG_LIMIT = 4 << 20


# -- names ---------------------------------------------------------------------------------------------------------
def looks_like_path(text: str) -> bool:
    """`text` is written as a filesystem path (absolute, ./, ../, ~ or with backslashes), never a hub id."""
    return text.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(text) or "\\" in text


def is_hub_id(text: str) -> bool:
    """`text` has the form of a hub repository id ("org/name" or "name") and is not written as a path."""
    return bool(text) and not looks_like_path(text) and _HUB_ID.fullmatch(text) is not None


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value, read now. For callers that let the
    user's environment decide whether `locate_model` may download; never written here."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


# -- the local Hugging Face cache ----------------------------------------------------------------------------------
def hf_cache_dirs() -> list[Path]:
    """The local Hugging Face caches to look in, read from the environment now: HF_HUB_CACHE,
    HUGGINGFACE_HUB_CACHE, then HF_HOME/hub (default ~/.cache/huggingface/hub), then
    SENTENCE_TRANSFORMERS_HOME. The first is where `locate_model` downloads to."""
    dirs = [Path(os.environ[v]).expanduser() for v in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if os.environ.get(v)]
    default_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    dirs.append(Path(os.environ.get("HF_HOME") or default_home).expanduser() / "hub")
    if os.environ.get("SENTENCE_TRANSFORMERS_HOME"):
        dirs.append(Path(os.environ["SENTENCE_TRANSFORMERS_HOME"]).expanduser())
    return list(dict.fromkeys(dirs))


def find_cached_snapshot(repo_id: str, *, markers: Sequence[str] = ("config.json",),
                         cache_dirs: Sequence[Path] | None = None) -> Path | None:
    """The snapshot directory of hub repository `repo_id` in a local cache that holds one of `markers`,
    or None. Looks at `refs/main`'s snapshot first, then the other snapshots (newest first), then
    sentence-transformers' old `org_name` layout. Pure filesystem: no network, no huggingface_hub."""
    folder = "models--" + repo_id.replace("/", "--")
    for cache in cache_dirs if cache_dirs is not None else hf_cache_dirs():
        repo_dir = cache / folder
        found: list[Path] = []
        ref = repo_dir / "refs" / "main"
        if ref.is_file():
            found.append(repo_dir / "snapshots" / ref.read_text().strip())
        if (repo_dir / "snapshots").is_dir():
            found.extend(sorted((repo_dir / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True))
        found.append(cache / repo_id.replace("/", "_"))
        for snapshot in found:
            if _has_marker(snapshot, markers):
                return snapshot
    return None


def _has_marker(directory: Path, markers: Sequence[str]) -> bool:
    return any((directory / marker).is_file() for marker in markers)


# -- locating ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocateRequest:
    """What a `ModelSource` is asked for.

    Attributes:
        where: who asks, for error messages ("candidate 'x' (kind hf)").
        markers: files of which a model directory holds at least one ("config.json" for transformers,
            "modules.json" for sentence-transformers).
        download: whether a source may fetch the model over the network.
    """

    where: str
    markers: tuple[str, ...]
    download: bool


#: A source returns the model's local directory, None when `model` is not its kind, or raises
#: ModelUnavailableError when it is its kind but cannot be used.
ModelSource = Callable[[str | Path, LocateRequest], Path | None]


def _local_directory(model: str | Path, request: LocateRequest) -> Path | None:
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    if not _has_marker(path, request.markers):
        raise ModelUnavailableError(f"{request.where}: {path} has no {' or '.join(request.markers)} "
                                    "(expected a model directory)")
    return path


def _hub_cache(model: str | Path, request: LocateRequest) -> Path | None:
    if isinstance(model, Path) or not is_hub_id(model):
        return None
    return find_cached_snapshot(model, markers=request.markers)


def _hub_download(model: str | Path, request: LocateRequest) -> Path | None:
    if not request.download or isinstance(model, Path) or not is_hub_id(model):
        return None
    from huggingface_hub import snapshot_download

    try:
        directory = Path(snapshot_download(model, allow_patterns=HUB_PATTERNS, cache_dir=hf_cache_dirs()[0]))
    except Exception as error:  # network, authentication, unknown repository, offline hub: all "not available"
        raise ModelUnavailableError(f"{request.where}: cannot download {model!r} from the Hugging Face hub: "
                                    f"{error}") from error
    if not _has_marker(directory, request.markers):
        raise ModelUnavailableError(f"{request.where}: the download of {model!r} has no "
                                    f"{' or '.join(request.markers)}: {directory}")
    return directory


def _gguf(model: str | Path, request: LocateRequest) -> Path | None:
    """A GGUF file or package, as its converted checkpoint (converted on first use; see harness.gguf_models)."""
    from harness.gguf_models import is_gguf_name, locate_gguf

    if not is_gguf_name(model):
        return None
    if "config.json" not in request.markers:
        raise ModelUnavailableError(f"{request.where}: {str(model)!r} is a GGUF file, which converts to a "
                                    f"transformers model, not a model with {' or '.join(request.markers)}")
    return locate_gguf(model, where=request.where)


#: Tried in order by `locate_model`. A new kind of model is a new source placed before `_hub_download`.
MODEL_SOURCES: tuple[ModelSource, ...] = (_local_directory, _gguf, _hub_cache, _hub_download)


def locate_model(model: str | Path, *, where: str = "model", markers: Sequence[str] = ("config.json",),
                 download: bool = False) -> Path:
    """The local directory of `model`.

    Args:
        model: a directory (a Path is always taken as one, never as a hub id), a hub id ("org/name")
            looked up in the local Hugging Face cache, or a GGUF (`gguf:PATH`, `PATH.gguf`,
            `gguf-package:NAME`), converted into the model cache on first use.
        where: who asks, the start of every error message.
        markers: files of which the directory must hold at least one.
        download: fetch a hub id that is not cached (model files only, into the first of
            `hf_cache_dirs()`). Off by default: nothing here reaches the network unless asked.

    Raises ModelUnavailableError saying what was tried and how to provide the model.
    """
    request = LocateRequest(where, tuple(markers), download)
    for source in MODEL_SOURCES:
        found = source(model, request)
        if found is not None:
            return found
    path = Path(model).expanduser()
    if isinstance(model, Path) or not is_hub_id(model):
        what = "is a file, not a model directory" if path.is_file() else "does not exist"
        raise ModelUnavailableError(f"{where}: model directory {path} {what}")
    looked = ", ".join(str(p) for p in hf_cache_dirs())
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "downloading was not requested"
    raise ModelUnavailableError(
        f"{where}: {model!r} is not a local directory and not in the local Hugging Face cache ({looked}), "
        f"and {why}. Copy the model to this machine (e.g. `hf download {model} --local-dir DIR` where "
        "there is internet) and give DIR instead.")


# -- fingerprints --------------------------------------------------------------------------------------------------
def model_fingerprint(location: str | Path, settings: Mapping[str, Any] | None = None) -> str:
    """A 16-hex-digit fingerprint of a model directory (every file below it) or a single model file, plus
    the `settings` that change its outputs.

    Each file counts by its path relative to the directory, its size and its content: in full up to
    4 MiB (configs, tokenizers), otherwise its first and last MiB (hashing gigabytes of weights on every
    run would cost seconds; another checkpoint differs there). JSON configs whose `PATH_KEYS` hold a
    place on disk rather than a hub id (`_name_or_path: "/tmp/run3/merged"`) are hashed without those
    values, so a moved or re-saved copy keeps its cached embeddings and predictions; other files,
    including configs without such values, are hashed as bytes. Hidden files and folders (a
    `--local-dir` download's .cache) and Markdown files do not count. A single file counts without its
    name, so a renamed copy is the same model.
    """
    location = Path(location)
    digest = hashlib.sha256(json.dumps(dict(settings or {}), sort_keys=True).encode())
    if location.is_file():
        size = location.stat().st_size
        digest.update(f":{size}".encode())
        update_with_file(digest, location, size)
        return digest.hexdigest()[:16]
    if not location.is_dir():
        raise ModelUnavailableError(f"cannot fingerprint {location}: no such file or directory")
    for file in sorted(p for p in location.rglob("*") if p.is_file()):
        relative = file.relative_to(location).as_posix()
        if relative.startswith(".") or "/." in relative or relative.lower().endswith(".md"):
            continue
        size = file.stat().st_size
        config = _config_without_places(file, size)
        if config is not None:  # its length, not the file's: a longer path must not count
            digest.update(f"{relative}:{len(config)}".encode())
            digest.update(config)
        else:
            digest.update(f"{relative}:{size}".encode())
            update_with_file(digest, file, size)
    return digest.hexdigest()[:16]


def _config_without_places(file: Path, size: int) -> bytes | None:
    """The canonical JSON of a config whose path keys name a place on disk, without those values;
    None for every other file (hashed as bytes)."""
    if file.suffix != ".json" or size > _CONFIG_LIMIT:
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cleaned = _without_places(value)
    return None if cleaned == value else json.dumps(cleaned, sort_keys=True).encode()


def _without_places(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_places(v) for k, v in value.items()
                if not (k in PATH_KEYS and isinstance(v, str) and not is_hub_id(v))}
    if isinstance(value, list):
        return [_without_places(v) for v in value]
    return value


# -- configs -------------------------------------------------------------------------------------------------------
def read_json_object(path: Path, where: str) -> dict[str, Any]:
    """A JSON file that must hold an object; ConfigError naming the file otherwise."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{where}: cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {path} is not a JSON object")
    return value


def read_model_config(model_dir: Path, where: str) -> dict[str, Any]:
    """config.json as a dict, after checking that the installed transformers can build the model from it
    and that the directory holds weights (imports transformers)."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailableError(f"{where}: cannot load the model config in {model_dir}: {error}") from None
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        raise ModelUnavailableError(f"{where}: {model_dir} has no weights (*.safetensors or *.bin)")
    return read_json_object(model_dir / "config.json", where)


def config_value(config: Mapping[str, Any], field: str) -> Any:
    """A field of a model config, looking into `text_config` for multimodal models."""
    if field in config:
        return config[field]
    text_config = config.get("text_config")
    return text_config.get(field) if isinstance(text_config, Mapping) else None


# -- adapter fit ---------------------------------------------------------------------------------------------------
def check_adapter_fits(adapter_dir: Path, model_dir: Path, model_config: Mapping[str, Any], *, where: str) -> None:
    """Raise ConfigError when the adapter was made for another model than `model_dir`.

    Two checks, each where it can be made. (1) The config of the adapter's declared base
    (`base_model_name_or_path`, a path or a cached hub id; the names may differ, a hub id here and a local
    path there) against the model's: `BASE_FIELDS`. (2) The LoRA matrices' shapes against the shapes of
    the model's weights, read from the safetensors headers (no weights loaded), and their layer indices
    against the model's layer count: this needs no declared base. When neither could be made, a warning.
    """
    adapter_config = read_json_object(adapter_dir / "adapter_config.json", where)
    declared = adapter_config.get("base_model_name_or_path")
    problems: list[str] = []
    declared_config = _declared_base_config(declared, adapter_dir) if isinstance(declared, str) and declared else None
    if declared_config is not None:
        for field in BASE_FIELDS:
            theirs, ours = config_value(declared_config, field), config_value(model_config, field)
            if theirs is not None and ours is not None and theirs != ours:
                problems.append(f"{field} is {theirs} in the adapter's base but {ours} in the model")
    shape_problems, checked = _lora_shape_problems(adapter_dir, model_dir, model_config)
    problems += shape_problems
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ConfigError(f"{where}: adapter {adapter_dir} was made for another model than {model_dir} "
                          f"(adapter base: {declared!r}): {shown}")
    if declared_config is None and not checked:
        warnings.warn(f"{where}: could not verify that adapter {adapter_dir} fits {model_dir}: its base "
                      f"{declared!r} is not on this machine and no LoRA weight could be matched to a model weight",
                      stacklevel=2)


def _declared_base_config(declared: str, adapter_dir: Path) -> dict[str, Any] | None:
    """config.json of the adapter's declared base if it is on this machine (never downloads)."""
    for candidate in (Path(declared).expanduser(), adapter_dir / declared):
        if (candidate / "config.json").is_file():
            return read_json_object(candidate / "config.json", f"adapter {adapter_dir}")
    if is_hub_id(declared):
        snapshot = find_cached_snapshot(declared)
        if snapshot is not None:
            return read_json_object(snapshot / "config.json", f"adapter {adapter_dir}")
    return None


def _lora_shape_problems(adapter_dir: Path, model_dir: Path, model_config: Mapping[str, Any]) -> tuple[list[str], int]:
    """(problems, number of LoRA matrices checked) comparing the adapter's LoRA matrices with the model's
    weights. lora_A is (r, in_features) and lora_B (out_features, r); a base weight is (out, in), or
    (in, out) for GPT-2 style Conv1D, so a dimension only has to appear in the base shape. Weights whose
    names the checkpoint does not have (renamed or fused at load time) and quantized checkpoints are
    skipped; modules in layers the model does not have are problems."""
    adapter_file = adapter_dir / "adapter_model.safetensors"
    if not adapter_file.is_file() or "quantization_config" in model_config:
        return [], 0
    base_shapes = checkpoint_shapes(model_dir)
    layers = config_value(model_config, "num_hidden_layers")
    problems: list[str] = []
    checked = 0
    for key, shape in safetensors_shapes(adapter_file).items():
        match = _LORA_KEY.match(key)
        if not match or len(shape) != 2:
            continue
        module, part = match.group("module"), match.group("part")
        layer = _LAYER_INDEX.search(f".{module}.")
        if isinstance(layers, int) and layer and int(layer.group(1)) >= layers:
            problems.append(f"{module} is in layer {layer.group(1)} but the model has {layers} layers")
            continue
        base = base_shapes.get(f"{module}.weight")
        if base is None or len(base) != 2:
            continue
        checked += 1
        dimension = shape[1] if part in ("lora_A", "lora_embedding_A") else shape[0]
        if dimension not in base:
            problems.append(f"{module}: {part} {tuple(shape)} does not fit the model's weight {tuple(base)}")
    return problems, checked


def checkpoint_shapes(model_dir: Path) -> dict[str, list[int]]:
    """Tensor name → shape for every top-level safetensors file of the model (headers only)."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        shapes.update(safetensors_shapes(file))
    return shapes


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Read a safetensors header (8-byte little-endian length, then JSON): name → shape, no tensor data.
    An unreadable or implausible header gives {} (the checks that need it are then skipped)."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 << 20:
                return {}
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return {}
    return {name: list(info.get("shape", [])) for name, info in header.items()
            if name != "__metadata__" and isinstance(info, dict)}
