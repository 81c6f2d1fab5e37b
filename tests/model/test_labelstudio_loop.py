"""Corrections come back as training data: a reviewed Label Studio export of real corpus sentences
is validated, prepared and trains a tiny model, and what it trains on is the reviewer's labels."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from healthner.config import Params, load_params
from healthner.corpus.labels import Span, spans
from healthner.corpus.prepare import prepare
from healthner.corpus.readers import Sentence
from healthner.corpus.validate import validate
from healthner.model.folder import MODEL_FILE
from healthner.model.predict import SlotPredictor
from healthner.model.train import train
from tests.labelstudio_export import annotation, task, write_export
from tests.tiny_models import REPO, tiny_encoders, tiny_lexicon

EXPORT = "corrections.json"


def model_draft(found: list[Span]) -> list[Span]:
    """What a model proposed before review: the last entity missed, the first one of the wrong type."""
    draft = list(found[:-1])
    if draft:
        draft[0] = draft[0]._replace(type="DISE" if draft[0].type != "DISE" else "SYMP")
    return draft


def reviewed_export(sentences: list[Sentence], path: Path) -> dict[str, list[str]]:
    """An export of the sentences, each pre-annotated with a flawed draft and corrected by a reviewer,
    plus a task nobody reviewed and one the reviewer skipped; returns the corrected tags by sent_id."""
    tasks, corrected = [], {}
    for number, sentence in enumerate(sentences, start=1):
        found = spans(sentence.tags)
        review = annotation(sentence.text, found, number)
        tasks.append(task(number, sentence.text, [review], predicted=model_draft(found), article_id=f"a{number}"))
        corrected[f"{path.stem}:{number}"] = sentence.tags
    first = sentences[0]
    tasks.append(task(len(tasks) + 1, first.text, None, predicted=spans(first.tags)))
    tasks.append(task(len(tasks) + 1, first.text, [annotation(first.text, [], 0, was_cancelled=True)]))
    write_export(path, tasks)
    return corrected


def loop_params(tmp_path: Path) -> Params:
    """The real params.yaml with the export as the only corpus file and every output in tmp_path."""
    params = load_params(REPO / "params.yaml").with_updates(
        data={"corpus_dir": tmp_path / "corpus", "files": [{"name": EXPORT, "format": "labelstudio_json", "genre": "FT"}]},
        validate={"report": tmp_path / "validation.json", "data_docs_dir": tmp_path / "data_docs",
                  "output": tmp_path / "validated.parquet"},
        split={"test_sources": [], "dev_fraction": 0.2},
        prepare={"output_dir": tmp_path / "prepared", "window_chars": 40, "window_overlap": 8},
        evaluate={"reports_dir": tmp_path / "reports"},
        lexicon={"output": tiny_lexicon(tmp_path)},
        model={"lstm_hidden": 16},
        train={"output_dir": tmp_path / "models", "reports_dir": tmp_path / "reports" / "train", "epochs": 2,
               "max_steps": 12, "batch_size": 16, "torch_threads": 1, "learning_rate": 5e-3, "export_onnx": False},
    )
    return Params.model_validate({**params.model_dump(by_alias=True), "encoders": tiny_encoders()})


def test_a_reviewed_export_validates_prepares_and_trains(tmp_path: Path, real_sentences: list[Sentence]) -> None:
    (tmp_path / "corpus").mkdir()
    with_entities = [s for s in real_sentences if spans(s.tags)][:120]
    corrected = reviewed_export(with_entities, tmp_path / "corpus" / EXPORT)
    params = loop_params(tmp_path)

    report = validate(params)
    totals = report.totals
    assert (totals["sentences_in"], totals["sentences_out"], totals["sentences_rejected"]) == (122, 120, 2)
    assert report.checks["unreviewed_task"]["count"] == report.checks["cancelled_task"]["count"] == 1

    prepared = prepare(params)
    assert prepared.splits["train"].sentences + prepared.splits["dev"].sentences == 120
    assert prepared.splits["dev"].sentences > 0
    assert prepared.splits["train"].genres == {"FT": prepared.splits["train"].sentences}
    for split in ("train", "dev"):
        rows = pq.read_table(params.prepare.output_dir / f"{split}.parquet").to_pylist()
        assert rows and all(row["tags"] == corrected[row["sent_id"]] for row in rows)  # the review, not the draft

    result = train(params, "bert")
    assert result.steps == 12 and 0.0 <= result.best_dev_f1 <= 1.0
    assert (result.model_dir / MODEL_FILE).is_file()
    tagged = SlotPredictor.load(result.model_dir).decode([list(with_entities[0].text)])
    assert len(tagged[0]) == len(with_entities[0].text)
