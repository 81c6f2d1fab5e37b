"""The hub-checkpoint path (configs/paper.yaml) end to end, offline: four tiny checkpoints saved with
save_pretrained stand in for the paper's hub ids. prepare -> train (a few steps) -> stack -> evaluate,
then a prepared vocabulary that is not the checkpoint's own is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.labels import repair_bio
from healthner.corpus.prepare import prepare
from healthner.corpus.readers import Sentence, read_conll, write_sentences
from healthner.corpus.vocab import SOURCE_FILE, CharVocab, PreparedVocabMismatch
from healthner.ensemble.evaluate import evaluate
from healthner.ensemble.stack import fit_stack
from healthner.model.encoders import build_encoder
from healthner.model.train import train
from healthner.sections.base import SLOTS
from healthner.sections.model import EncoderParams

REPO = Path(__file__).resolve().parents[2]
FILES = {"rocling2023_multiner_FT.txt": ("FT", 80), "rocling2023_multiner_WA.txt": ("WA", 20)}  # WA: the test split
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
WINDOW = 40


def _sentences() -> list[Sentence]:
    corpus = REPO / load_params(REPO / "params.yaml").data.corpus_dir
    sentences = []
    for name, (genre, n) in FILES.items():
        if not (corpus / name).is_file():
            pytest.skip(f"{corpus / name} not available")
        sentences += read_conll(corpus / name, genre).sentences[:n]
    for s in sentences:
        s.tags = repair_bio(s.tags)[0]
    return sentences


def _tiny_checkpoint(folder: Path, family: str, vocab: CharVocab) -> str:
    """What a hub download holds: config.json, model.safetensors and the vocab.txt its ids follow."""
    config = {**TINY, **({"embedding_size": 16} if family in ("electra", "albert") else {})}
    encoder = build_encoder(EncoderParams(family=family, config=config), vocab, WINDOW + 2)
    encoder.save_pretrained(folder)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab.tokens), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> Params:
    """configs/paper.yaml with local tiny checkpoints, tiny training and every output under tmp."""
    root = tmp_path_factory.mktemp("paper")
    sentences = _sentences()
    vocab = CharVocab.build(s.chars for s in sentences[:40])  # some corpus characters are [UNK] to it
    paper = load_params(REPO / "configs" / "paper.yaml")
    encoders = {
        slot: {**enc.model_dump(), "checkpoint": _tiny_checkpoint(root / "hub" / slot, enc.family, vocab)}
        for slot, enc in paper.encoders.items()
    }
    params = Params.model_validate({**paper.model_dump(by_alias=True), "encoders": encoders}).with_updates(
        validate={"output": root / "validated.parquet"},
        split={"dev_fraction": 0.3},
        prepare={"output_dir": root / "prepared", "window_chars": WINDOW, "window_overlap": 8},
        train={"output_dir": root / "models", "reports_dir": root / "reports" / "train", "epochs": 1, "max_steps": 3,
               "batch_size": 16, "torch_threads": 1, "device": "cpu"},
        stack={"output_dir": root / "models" / "ensemble", "n_estimators": 5, "cv_folds": 2, "n_jobs": 1,
               "candidates": ["forest"], "selection_seeds": [13]},
        evaluate={"reports_dir": root / "reports", "combinations": [["bert"], list(SLOTS)], "error_examples": 5},
    )
    write_sentences(sentences, params.validation.output)
    return params


def test_the_paper_profile_runs_end_to_end_on_local_checkpoints(paper: Params) -> None:
    report = prepare(paper)
    assert set(report.vocab_sizes.values()) == {len(CharVocab.load(Path(paper.encoders["bert"].checkpoint)))}
    for slot in SLOTS:
        result = train(paper, slot)
        assert result.steps == 3
        config = json.loads((result.model_dir / "config.json").read_text())
        assert (config["init"], config["checkpoint"]) == ("pretrained", paper.encoders[slot].checkpoint)
    fit_stack(paper)
    metrics = evaluate(paper)
    assert set(SLOTS) < set(metrics["test"])  # each member, and what ships
    assert (paper.evaluate.reports_dir / "table2.md").is_file()


def test_a_vocabulary_prepared_for_another_checkpoint_is_refused(paper: Params, tmp_path: Path) -> None:
    other_vocab = CharVocab.build([list("完全不同的字")])
    other = _tiny_checkpoint(tmp_path / "other", "bert", other_vocab)
    prepare(paper)
    swapped = paper.with_updates(encoders={"bert": {"checkpoint": other}})
    with pytest.raises(PreparedVocabMismatch, match="re-run prepare"):
        train(swapped, "bert")
    scratch = paper.with_updates(encoders={"bert": {"init": "scratch", "checkpoint": None, "config": TINY}})
    prepare(scratch)  # a scratch vocabulary from the training split, then the paper's checkpoint again
    with pytest.raises(PreparedVocabMismatch, match="prepared for scratch"):
        train(paper, "bert")
    (paper.prepare.output_dir / "bert" / SOURCE_FILE).unlink()  # a folder prepared before the record existed
    with pytest.raises(PreparedVocabMismatch, match="re-run prepare"):
        train(paper, "bert")


def test_the_cli_says_so_in_one_line(paper: Params, tmp_path: Path) -> None:
    scratch = paper.with_updates(encoders={"roberta": {"init": "scratch", "checkpoint": None, "config": TINY}})
    prepare(scratch)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(paper.model_dump(by_alias=True, mode="json")), encoding="utf-8")  # JSON is YAML
    result = CliRunner().invoke(app, ["train", "roberta", "--params", str(params_file)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "re-run prepare" in lines[0], result.output
