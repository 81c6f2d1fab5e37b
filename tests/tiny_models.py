"""Tiny model fixtures and helpers: a prepared folder built in tmp_path from a few real corpus sentences.

Imported by the conftest.py of tests/model and tests/ensemble, which re-export the fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from healthner.config import Params, load_params
from healthner.corpus.labels import TAGS as TAGS_FOR_FOREST
from healthner.corpus.labels import repair_bio
from healthner.corpus.prepare import tokenize_split
from healthner.corpus.readers import Sentence, read_conll, write_sentences
from healthner.corpus.vocab import CharVocab

REPO = Path(__file__).resolve().parents[1]
CORPUS_FILE = "rocling2023_multiner_FT.txt"
N_TRAIN, N_DEV = 160, 40
WINDOW, OVERLAP = 40, 8  # small, so that real sentences get cut into several windows
TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
TINY_EMBEDDING = {"embedding_size": 16}
FAMILIES = ("bert", "roberta", "electra", "albert")
TINY_TERMS = {"頭痛": "symptom", "發燒": "symptom", "糖尿病": "disease", "膽結石": "disease", "維生素": "ingredient"}


def tiny_lexicon(folder: Path) -> Path:
    """A small typed term list in the lexicon stage's format (the real one is built by its own tests)."""
    path = folder / "terms.tsv"
    path.write_text("".join(f"{term}\t{kind}\n" for term, kind in TINY_TERMS.items()), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_encoders(init: str = "scratch", checkpoint: str | None = None) -> dict[str, dict]:
    def config(family: str) -> dict:
        extra = TINY_EMBEDDING if family in ("electra", "albert") else {}
        return {**TINY_ENCODER, **extra}

    return {f: {"family": f, "init": init, "checkpoint": checkpoint, "config": config(f)} for f in FAMILIES}


@pytest.fixture(scope="session")
def real_sentences() -> list[Sentence]:
    path = REPO / load_params(REPO / "params.yaml").data.corpus_dir / CORPUS_FILE
    if not path.is_file():
        pytest.skip(f"{path} not available")
    sentences = read_conll(path, "FT").sentences[: N_TRAIN + N_DEV]
    for s in sentences:
        s.tags = repair_bio(s.tags)[0]
    return sentences


@pytest.fixture
def tiny_params(tmp_path: Path, real_sentences: list[Sentence]) -> Params:
    """Params for a tiny run whose prepared/ (bert slot only) and outputs all live in tmp_path."""
    params = load_params(REPO / "params.yaml").with_updates(
        prepare={"output_dir": tmp_path / "prepared", "window_chars": WINDOW, "window_overlap": OVERLAP},
        model={"lstm_hidden": 16},
        lexicon={"output": tiny_lexicon(tmp_path)},
        train={"output_dir": tmp_path / "models", "reports_dir": tmp_path / "reports", "epochs": 2,
               "batch_size": 16, "torch_threads": 1, "learning_rate": 5e-3, "patience": 2},
    )
    params = Params.model_validate({**params.model_dump(by_alias=True), "encoders": tiny_encoders()})
    write_prepared(params, "bert", real_sentences[:N_TRAIN], real_sentences[N_TRAIN:])
    return params


def write_prepared(params: Params, slot: str, train: list[Sentence], dev: list[Sentence]) -> None:
    """The files the prepare step writes for one slot, with its schema."""
    out = params.prepare.output_dir
    vocab = CharVocab.build((s.chars for s in train), params.prepare.min_char_freq)
    vocab.save(out / slot)
    write_sentences(dev, out / "dev.parquet")
    for name, group in (("train", train), ("dev", dev)):
        path = out / slot / f"{name}.parquet"
        tokenize_split(group, vocab, params.prepare.window_chars, params.prepare.window_overlap, path)


@pytest.fixture
def encoder_params() -> dict[str, dict]:
    """Tiny scratch encoder sections, one per family."""
    return tiny_encoders()


def untrained_ensemble(folder: Path, members: tuple[str, ...] = ("bert", "albert"), context: int = 0,
                       viterbi: bool = False, seed: int = 0) -> Path:
    """A real ensemble folder in seconds: tiny members with random weights and a forest fit on random
    features, so every code path of loading and tagging runs (and random tags give entities)."""
    from sklearn.ensemble import RandomForestClassifier

    from healthner.ensemble.combiner import n_features
    from healthner.ensemble.kinds import ForestKind
    from healthner.ensemble.shipped import save_ensemble
    from healthner.model.folder import Architecture, save_model
    from healthner.model.train import build_model
    from healthner.sections.ensemble import StackParams

    torch.manual_seed(seed)
    params = load_params(REPO / "params.yaml").with_updates(
        model={"lstm_hidden": 8, "use_lexicon": False, "use_lac": False},
        prepare={"window_chars": WINDOW, "window_overlap": OVERLAP},
    )
    params = Params.model_validate({**params.model_dump(by_alias=True), "encoders": tiny_encoders()})
    vocab = CharVocab.build([list("頭痛發燒咳嗽醫生病人糖尿病膽結石維生素。，")])
    member_dirs = {}
    for slot in members:
        model = build_model(params, slot, vocab).eval()
        member_dirs[slot] = save_model(folder / "members" / slot, model, vocab, Architecture.from_params(params.model),
                                       params.encoders[slot], WINDOW, OVERLAP)
    rng = np.random.default_rng(seed)
    width = n_features(len(members) * (2 if viterbi else 1), context)
    forest = RandomForestClassifier(n_estimators=3, random_state=seed).fit(
        rng.random((400, width), dtype=np.float32), rng.integers(0, len(TAGS_FOR_FOREST), 400)
    )
    kind = ForestKind(list(members), StackParams(context=context, viterbi_features=viterbi), forest)
    save_ensemble(folder / "ensemble", kind, member_dirs)
    return folder / "ensemble"
