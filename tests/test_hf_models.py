"""Locating and fingerprinting models (`harness.hf_models`) on a real tiny sentence model, in a plain
directory and in the Hugging Face cache layout, without network access."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hf_cache_layout import put_in_hf_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ModelUnavailableError
from harness.hf_models import (
    MODEL_SOURCES,
    find_cached_snapshot,
    hf_cache_dirs,
    is_hub_id,
    locate_model,
    looks_like_path,
    model_fingerprint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub(monkeypatch, tmp_path) -> Path:
    """An empty Hugging Face cache that huggingface_hub's own variables point at."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for variable in ("HUGGINGFACE_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME"):
        monkeypatch.delenv(variable, raising=False)
    return hub


# -- locating ------------------------------------------------------------------------------------------------------
def test_a_local_directory_is_itself(tiny_sentence_model_dir):
    assert locate_model(tiny_sentence_model_dir) == tiny_sentence_model_dir
    assert locate_model(str(tiny_sentence_model_dir), markers=("modules.json",)) == tiny_sentence_model_dir


def test_a_local_directory_without_the_marker_or_a_missing_one_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match=r"candidate 'x': .*empty has no modules.json or config.json"):
        locate_model(tmp_path / "empty", where="candidate 'x'", markers=("modules.json", "config.json"))
    with pytest.raises(ModelUnavailableError, match="model directory .*nowhere does not exist"):
        locate_model(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailableError, match="model directory .*nowhere does not exist"):
        locate_model(str(tmp_path / "nowhere"))  # written as a path: never looked up as a hub id
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ModelUnavailableError, match="is a file, not a model directory"):
        locate_model(tmp_path / "weights.bin")


def test_a_hub_id_is_found_in_the_hf_cache_layout_refs_main_first(hub, tiny_sentence_model_dir, tmp_path):
    snapshot = put_in_hf_cache(hub, "acme/tiny", tiny_sentence_model_dir, "abc123")
    assert (snapshot / "config.json").is_symlink()  # the real layout: snapshot files link to blobs
    assert locate_model("acme/tiny") == snapshot
    assert locate_model("acme/tiny", markers=("modules.json",)) == snapshot
    # A newer snapshot that refs/main does not name is not the one used.
    other = tmp_path / "other"
    shutil.copytree(tiny_sentence_model_dir, other)
    (other / "config.json").write_text("{}")
    newer = put_in_hf_cache(hub, "acme/tiny", other, "def456")
    (hub / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    assert newer.is_dir() and locate_model("acme/tiny") == snapshot
    # A Path is a directory, never a hub id, even when one of that name is cached.
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        locate_model(Path("acme/tiny"))


def test_the_cache_is_read_from_the_environment_at_call_time(hub, tiny_sentence_model_dir, tmp_path, monkeypatch):
    """huggingface_hub fixes its cache path at import; pointing HF_HUB_CACHE elsewhere later must still work."""
    import huggingface_hub  # noqa: F401  (imported first, as it is in any real process that loaded a model)

    assert find_cached_snapshot("acme/tiny") is None
    later = tmp_path / "later-hub"
    snapshot = put_in_hf_cache(later, "acme/tiny", tiny_sentence_model_dir, "r1")
    monkeypatch.setenv("HF_HUB_CACHE", str(later))
    assert hf_cache_dirs()[0] == later
    assert locate_model("acme/tiny") == snapshot


def test_an_uncached_hub_id_is_not_downloaded_unless_asked(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    before = dict(os.environ)
    with pytest.raises(ModelUnavailableError) as error:
        locate_model("acme/never-downloaded", where="training: --base")
    message = str(error.value)
    assert message.startswith("training: --base: 'acme/never-downloaded' is not a local directory")
    assert str(hub) in message and "downloading was not requested" in message
    assert "`hf download acme/never-downloaded --local-dir DIR`" in message
    assert dict(os.environ) == before
    assert not any(hub.iterdir())


def test_asking_to_download_reaches_the_hub_and_says_why_it_failed(hub):
    """With the hub offline (HF_HUB_OFFLINE=1 when huggingface_hub was imported, as in this test session),
    download=True goes to huggingface_hub, whose refusal becomes a ModelUnavailableError."""
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("the hub is not offline in this process: a download attempt could wait on the network")
    with pytest.raises(ModelUnavailableError, match="cannot download 'acme/never-downloaded' from the Hugging Face hub"):
        locate_model("acme/never-downloaded", download=True)


def test_sources_are_an_ordered_extension_point():
    names = [source.__name__ for source in MODEL_SOURCES]
    assert names == ["_local_directory", "_gguf", "_hub_cache", "_hub_download"]


@given(st.text(max_size=40))
def test_a_name_is_never_both_a_hub_id_and_a_path(text):
    assert not (is_hub_id(text) and looks_like_path(text))


@pytest.mark.parametrize(("text", "hub_id"), [
    ("sentence-transformers/sentence-t5-base", True), ("gpt2", True), ("org/name.v2", True),
    ("/abs/model", False), ("./model", False), ("~/model", False), ("a/b/c", False), ("", False),
    ("C:\\models\\x", False), ("org/na me", False),
])
def test_hub_ids_and_paths(text, hub_id):
    assert is_hub_id(text) is hub_id


def test_importing_hf_models_loads_no_heavy_library():
    code = ("import sys, harness.hf_models, harness.gguf_models; "
            "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub', 'sentence_transformers', 'gguf') "
            "if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert output.stdout.strip() == "[]"


# -- fingerprints --------------------------------------------------------------------------------------------------
def test_a_moved_copy_and_its_hf_cache_snapshot_have_the_same_fingerprint(hub, tiny_sentence_model_dir, tmp_path):
    original = model_fingerprint(tiny_sentence_model_dir)
    assert len(original) == 16
    moved = tmp_path / "elsewhere" / "renamed-model"
    shutil.copytree(tiny_sentence_model_dir, moved)
    assert model_fingerprint(moved) == original
    assert model_fingerprint(put_in_hf_cache(hub, "acme/tiny", tiny_sentence_model_dir, "abc")) == original


def test_changed_weights_or_settings_change_the_fingerprint(tiny_sentence_model_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    copy = tmp_path / "copy"
    shutil.copytree(tiny_sentence_model_dir, copy)
    original = model_fingerprint(copy)
    weights = load_file(copy / "model.safetensors")
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert model_fingerprint(copy) == original  # re-saved unchanged: the same model
    name = sorted(weights)[-1]
    weights[name] = weights[name] + 1e-3
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert model_fingerprint(copy) != original
    assert model_fingerprint(tiny_sentence_model_dir, {"max_seq_length": 64}) != \
        model_fingerprint(tiny_sentence_model_dir, {"max_seq_length": 128})
    # Files in module subfolders count (sentence-transformers reads them).
    pooling = copy / "1_Pooling" / "config.json"
    before = model_fingerprint(copy)
    pooling.write_text(pooling.read_text().replace("true", "false", 1))
    assert model_fingerprint(copy) != before


def test_readmes_and_hidden_files_do_not_count(tiny_sentence_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_sentence_model_dir, copy)
    original = model_fingerprint(copy)
    (copy / "README.md").write_text("edited model card")
    (copy / ".cache" / "huggingface").mkdir(parents=True)
    (copy / ".cache" / "huggingface" / "download.lock").write_text("x")
    assert model_fingerprint(copy) == original


def _config_with_name(directory: Path, name: str) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "_name_or_path": name}, indent=2))


def test_a_config_naming_its_old_place_on_disk_keeps_the_fingerprint(tiny_sentence_model_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_sentence_model_dir, a)
    shutil.copytree(tiny_sentence_model_dir, b)
    _config_with_name(a, "/scratch/run3/merged")
    _config_with_name(b, str(b))
    assert model_fingerprint(a) == model_fingerprint(b)
    # A hub id is a name, not a place: another base model is another model.
    _config_with_name(b, "acme/other-base")
    assert model_fingerprint(a) != model_fingerprint(b)
    # Content next to a path key still counts.
    config = json.loads((a / "config.json").read_text())
    (a / "config.json").write_text(json.dumps({**config, "hidden_size": config["hidden_size"] + 1}))
    _config_with_name(b, "/scratch/run3/merged")
    assert model_fingerprint(a) != model_fingerprint(b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.lists(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8),
                      min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)))
def test_any_absolute_place_in_name_or_path_gives_the_same_fingerprint(place, tmp_path):
    directory = tmp_path / "m"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"_name_or_path": place, "hidden_size": 32}))
    (directory / "model.safetensors").write_bytes(b"weights")
    first = model_fingerprint(directory)
    (directory / "config.json").write_text(json.dumps({"hidden_size": 32, "_name_or_path": "/elsewhere"}))
    assert model_fingerprint(directory) == first


def test_large_files_count_by_size_and_their_first_and_last_mib(tmp_path):
    directory = tmp_path / "m"
    directory.mkdir()
    data = bytearray(os.urandom(6 << 20))
    (directory / "model.safetensors").write_bytes(data)
    original = model_fingerprint(directory)
    data[3 << 20] ^= 0xFF  # the middle is not read: the documented price of not hashing gigabytes
    (directory / "model.safetensors").write_bytes(data)
    assert model_fingerprint(directory) == original
    data[-1] ^= 0xFF
    (directory / "model.safetensors").write_bytes(data)
    assert model_fingerprint(directory) != original


def test_a_single_model_file_keeps_its_fingerprint_when_renamed(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF" + bytes(100))
    (tmp_path / "b.gguf").write_bytes(b"GGUF" + bytes(100))
    assert model_fingerprint(tmp_path / "a.gguf") == model_fingerprint(tmp_path / "b.gguf")
    (tmp_path / "b.gguf").write_bytes(b"GGUF" + bytes(99) + b"\x01")
    assert model_fingerprint(tmp_path / "a.gguf") != model_fingerprint(tmp_path / "b.gguf")
    with pytest.raises(ModelUnavailableError, match="no such file or directory"):
        model_fingerprint(tmp_path / "missing")
