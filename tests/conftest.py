"""Shared test fixtures: real (tiny) models built locally, never mocks.

`tiny_sentence_model_dir` builds a genuine sentence-transformers model directory from a config: a
2-layer BERT with a word-level tokenizer trained here, mean pooling and normalisation. It exercises the
same loading code as sentence-t5-base without downloading anything.

Speed (issue 9: `pytest tests/` on a 2-core machine): models are loaded once per session (`minilm`), and
the MiniLM embeddings of the shipped suites are computed once per session (`shipped_store`) and copied into
each end-to-end project (`copy_shipped_project`, `prh_store`): embedding is what costs (about 10 ms of CPU
per short prompt, ten times that for a rewritten text), and every e2e test used to pay for the same texts.
The vectors in that store are the model's own, computed in this session by the same embedder, so a test
reads exactly what it would have computed. Torch runs on one thread (OMP_NUM_THREADS=1 unless set): these
models are small, and on a shared machine two OpenMP threads waiting for each other cost twice the CPU time
for the same work. Slow end-to-end cases are marked `e2e` and run by `.ci/run` as their own tier.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Before torch is imported (and inherited by the subprocesses tests start): see the module docstring.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]

CORPUS = [
    "rewrite the text as a poem", "make the email more formal", "turn this memo into a pirate shanty",
    "improve the text to this", "please improve this text using the writing style",
    "convert the recipe into a haiku", "the quick brown fox jumps over the lazy dog",
    "shorten the story and add a twist", "write it as if the author is exhausted",
] * 3


def _st_modules():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Normalize, Pooling, Transformer
    return Transformer, Pooling, Normalize


def build_tiny_sentence_model(directory: Path, *, max_position_embeddings: int = 512) -> Path:
    """Build and save a tiny sentence-transformers model; returns its directory."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")),
                                                 ("[SEP]", tokenizer.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=max_position_embeddings)
    hf_dir = directory / "hf"
    BertModel(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    Transformer, Pooling, Normalize = _st_modules()
    transformer = Transformer(str(hf_dir), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension() if hasattr(transformer, "get_embedding_dimension")
                      else transformer.get_word_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    out = directory / "sentence-model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_sentence_model_dir(tmp_path_factory) -> Path:
    return build_tiny_sentence_model(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def minilm():
    """The packaged offline embedder, loaded once per test session (about 4 s)."""
    from harness.embedders import make_minilm

    embedder = make_minilm()
    embedder.load()
    return embedder


def import_heavy_modules_outside_pytester() -> None:
    """pytester's in-process runs drop modules first imported inside them from sys.modules; torch
    cannot be imported twice in one process (it crashes), and matplotlib classes re-imported that way
    stop matching their old instances, so tests using pytester import the heavy stack out here first.
    hypothesis too: its pytest plugin imports it at the end of every in-process run, and a module dropped
    after each run is imported (and assertion-rewritten) again by the next, about 2 s of CPU each time."""
    import hypothesis  # noqa: F401
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import matplotlib.gridspec  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401


# -- the shipped project, its MiniLM embeddings paid for once per session --------------------------------------
SHIPPED_FILES = ("suites.toml", "candidates.toml")
SHIPPED_FOLDERS = ("fixtures", "baselines", "suites")
#: Inline candidates the e2e tests score besides the candidates file's (`--candidate='mean:banana'`).
EXTRA_PROMPTS = ("banana",)


def shipped_texts(*fields: str) -> list[str]:
    """The texts in `fields` (Sample attributes) of every shipped suite, then the answers of every shipped
    candidate that needs no model (constants and ensembles of constants) and `EXTRA_PROMPTS`."""
    from harness.candidates import CandidateContext, load_candidate_registry, resolve_candidate
    from harness.data import load_suite, load_suite_specs
    from harness.errors import HarnessError

    suites = [load_suite(spec) for spec in load_suite_specs(REPO_ROOT / "suites.toml").values()]
    texts = [getattr(sample, field) for suite in suites for sample in suite.samples for field in fields]
    registry = load_candidate_registry(REPO_ROOT / "candidates.toml")
    row = suites[0].samples[:1]
    for name in registry.names():
        if registry.entries[name].get("kind") not in ("constant", "ensemble"):
            continue
        try:
            texts.extend(resolve_candidate(name, registry, CandidateContext(base_dir=REPO_ROOT)).predict(row))
        except HarnessError:  # an ensemble with a member that needs suites or a model
            continue
    return [*texts, *EXTRA_PROMPTS]


def _store_with(path: Path, texts: list[str], embedder, start_from: Path | None = None) -> Path:
    import shutil

    from harness.embedding_cache import embed_texts
    from harness.store import Store

    if start_from is not None:
        shutil.copyfile(start_from, path)
    with Store(path) as store:  # closing checkpoints the WAL: the file alone is the whole store
        embed_texts(texts, embedder, store)
    return path


@pytest.fixture(scope="session")
def shipped_store(minilm, tmp_path_factory) -> Path:
    """A store (never written to: copy it) with the MiniLM embeddings of every true prompt of the shipped
    suites and every shipped model-free candidate's answer: what scoring them on the shipped suites embeds."""
    return _store_with(tmp_path_factory.mktemp("shipped-store") / "store.sqlite",
                       shipped_texts("rewrite_prompt"), minilm)


@pytest.fixture(scope="session")
def shipped_store_with_rewritten(shipped_store, minilm, tmp_path_factory) -> Path:
    """`shipped_store` plus every shipped rewritten text (what the retrieval candidate embeds). Rewritten
    texts are long: this costs about ten times `shipped_store`, so only retrieval tests ask for it."""
    return _store_with(tmp_path_factory.mktemp("shipped-store-rewritten") / "store.sqlite",
                       shipped_texts("rewritten_text"), minilm, start_from=shipped_store)


def copy_store(store: Path, destination: Path) -> Path:
    """Copy a session store to `destination` (a store path) for one test to write into."""
    import shutil

    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store, destination)
    return destination


def copy_shipped_project(destination: Path, store: Path | None = None) -> Path:
    """The user-facing project layout (suites, candidates, fixtures, baselines, suites/ checks) copied into
    `destination`; with `store`, a copy of it as the project's `.prh/store.sqlite`."""
    import shutil

    for name in SHIPPED_FILES:
        shutil.copy(REPO_ROOT / name, destination / name)
    for folder in SHIPPED_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__"))
    if store is not None:
        copy_store(store, destination / ".prh" / "store.sqlite")
    return destination


@pytest.fixture
def bare_project(tmp_path, monkeypatch) -> Path:
    """The shipped suites, candidates and fixtures copied into tmp_path (no baselines, no leaderboard models:
    a test fits its own), the current directory and $PRH_STORE set there."""
    import shutil

    for name in ("suites.toml", "candidates.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "fixtures", tmp_path / "fixtures")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRH_STORE", str(tmp_path / "store.sqlite"))
    return tmp_path


@pytest.fixture
def shipped_project(pytester, shipped_store, minilm):
    """pytester in a copy of the shipped project (suites, candidates, baselines, fixtures), its store already
    holding the shipped suites' MiniLM embeddings (`shipped_store`: paid once per session), with the heavy
    modules imported before pytester's in-process runs (see import_heavy_modules_outside_pytester)."""
    import_heavy_modules_outside_pytester()
    copy_shipped_project(pytester.path, shipped_store)
    return pytester


@pytest.fixture
def prh_store(shipped_store, tmp_path, monkeypatch) -> Path:
    """$PRH_STORE set to a copy of `shipped_store` in tmp_path, for `prh` commands run in the repository."""
    path = copy_store(shipped_store, tmp_path / "store.sqlite")
    monkeypatch.setenv("PRH_STORE", str(path))
    return path


# -- embedders given to the harness, not patched into it ------------------------------------------------------
def embedder_factory(embedder, by_spec: dict | None = None):
    """A Workspace `embedder_factory`: `by_spec[spec]` where given, else `embedder`, for every spec."""
    from harness.embedders import EmbedderChoice

    return lambda spec: EmbedderChoice((by_spec or {}).get(spec, embedder))


def prh_with(embedder, by_spec: dict | None = None):
    """`prh` (harness.cli.main) with every embedder its Workspace builds replaced (see embedder_factory)."""
    from harness.cli import main

    factory = embedder_factory(embedder, by_spec)
    return lambda argv: main(list(argv), embedder_factory=factory)
