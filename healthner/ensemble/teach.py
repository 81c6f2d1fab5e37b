"""teach: a shipped model (the teacher) labels the unlabeled sentences; what it says is the silver data.

The teacher is any folder `healthner stack` writes (`teach.teacher`: one member, or a combiner over
members), loaded and run exactly as `healthner tag` runs it. Per sentence it gives its tags and a
probability per character and tag: the kind's own (`Prediction.probs`): a member's CRF marginals;
the vote's and mean_emissions' CRF marginals averaged over the members (the vote's tags come from
the entity vote, its probabilities from the members' mean); the forest's and logistic's classifier
probabilities. Those probabilities are the soft targets. A sentence's confidence is the mean
probability the teacher gives its own tags: a sentence where it hesitates anywhere scores lower.

Which confidence is enough is chosen on dev: the teacher labels the dev sentences too, and the
report gives, for each threshold in `teach.thresholds`, the share of dev sentences at or above it
and the teacher's entity F1 on them. (A combiner fit on dev scores itself optimistically there:
compare thresholds with each other, not with the members.) The student stage applies
`teach.min_confidence`, so a new threshold retrains students without relabelling. The release
(release.py) relabels the same sentences with a release teacher through `write_silver`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from healthner.config import Params
from healthner.corpus.labels import TAG_TO_ID
from healthner.corpus.readers import read_sentences
from healthner.ensemble.combiner import Prediction
from healthner.ensemble.shipped import Ensemble, read_manifest
from healthner.io import write_json
from healthner.model.metrics import score
from healthner.model.silver import SILVER_SCHEMA

DEV_SPLIT = "dev.parquet"


@dataclass
class TeachReport:
    teacher: dict  # path, kind, members, model_version
    unlabeled_sentences: int  # in data/unlabeled
    labelled: int  # written to the silver file (teach.max_sentences caps it)
    mean_confidence: float
    dev_thresholds: list[dict]  # per threshold: dev sentences kept, their share, the teacher's F1 on them
    sha256: str  # of the silver file

    def __str__(self) -> str:
        rows = ", ".join(f">={t['threshold']}: F1 {t['f1']:.4f} on {t['share']:.0%}" for t in self.dev_thresholds)
        return (f"teacher {self.teacher['kind']} of {', '.join(self.teacher['members'])} labelled {self.labelled:,} of "
                f"{self.unlabeled_sentences:,} sentences (mean confidence {self.mean_confidence:.3f}); dev: {rows}")


def confidence(prediction: Prediction) -> float:
    """Mean probability the teacher gives its own tag, over the sentence's characters (1.0 when empty)."""
    if not prediction.tags:
        return 1.0
    ids = np.fromiter((TAG_TO_ID[t] for t in prediction.tags), dtype=np.int64, count=len(prediction.tags))
    return float(prediction.probs[np.arange(len(ids)), ids].mean())


def teacher_record(folder: Path) -> dict:
    """What names the teacher in reports and in a student's ensemble.json."""
    manifest = read_manifest(folder)
    return {"path": str(folder), "kind": manifest["kind"], "members": manifest["members"],
            "model_version": manifest["model_version"]}


def load_teacher(params: Params, folder: Path) -> Ensemble:
    """The teacher in `folder`, run as `healthner tag` runs it (tag.device and its batch sizes)."""
    from healthner.model.devices import tag_device

    device = tag_device(params.tag)
    return Ensemble.load(folder, device=device, **params.tag.batches_for(device))


def label(teacher: Ensemble, texts: list[str], batch: int) -> list[Prediction]:
    """The teacher's predictions, `batch` sentences per call."""
    out: list[Prediction] = []
    for start in tqdm(range(0, len(texts), batch), desc="teach", unit="batch", disable=None):
        out += teacher.predict([list(t) for t in texts[start : start + batch]])
    return out


def dev_thresholds(teacher: Ensemble, params: Params) -> list[dict]:
    """The teacher's entity F1 on the dev sentences at or above each candidate threshold."""
    dev = read_sentences(params.prepare.output_dir / DEV_SPLIT)
    predictions = label(teacher, [s.text for s in dev], params.teach.batch_sentences)
    scores = np.asarray([confidence(p) for p in predictions])
    rows = []
    for threshold in sorted({0.0, *params.teach.thresholds}):
        kept = [k for k in range(len(dev)) if scores[k] >= threshold]
        f1 = score([dev[k].tags for k in kept], [predictions[k].tags for k in kept]).f1 if kept else 0.0
        rows.append({"threshold": threshold, "sentences": len(kept), "share": len(kept) / max(len(dev), 1), "f1": f1})
    return rows


def write_silver(params: Params, teacher: Ensemble, output: Path) -> tuple[int, list[float]]:
    """The teacher's labels of the unlabeled sentences (the first teach.max_sentences) as the silver file
    `output`; returns how many unlabeled sentences there are and each labelled sentence's confidence."""
    cfg = params.teach
    source = params.unlabeled.output
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not found; run the unlabeled stage first (dvc repro unlabeled)")
    table = pq.read_table(source, columns=["sentence_id", "text", "source"])
    total = table.num_rows
    if cfg.max_sentences is not None:
        table = table.slice(0, cfg.max_sentences)
    predictions = label(teacher, table.column("text").to_pylist(), cfg.batch_sentences)
    confidences = [confidence(p) for p in predictions]
    silver = pa.table(
        {
            "sentence_id": table.column("sentence_id"),
            "text": table.column("text"),
            "source": table.column("source"),
            "tags": pa.array([p.tags for p in predictions], pa.list_(pa.string())),
            "marginals": _marginals_array(predictions),
            "confidence": pa.array(confidences, pa.float32()),
        },
        schema=SILVER_SCHEMA,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(silver, output)
    return total, confidences


def teach(params: Params) -> TeachReport:
    """The DVC `teach` stage: data/unlabeled in, the teacher's silver labels (data/silver) and its report out."""
    cfg = params.teach
    teacher = load_teacher(params, cfg.teacher)
    total, confidences = write_silver(params, teacher, cfg.output)
    report = TeachReport(
        teacher_record(cfg.teacher), total, len(confidences), float(np.mean(confidences)) if confidences else 0.0,
        dev_thresholds(teacher, params), hashlib.sha256(cfg.output.read_bytes()).hexdigest(),
    )
    write_json(cfg.report, asdict(report))
    return report


def _marginals_array(predictions: list[Prediction]) -> pa.Array:
    """Each sentence's (n_chars, n_tags) probabilities as list<list<float32>>, built from flat numpy buffers."""
    width = len(TAG_TO_ID)
    rows = [p.probs.astype(np.float32, copy=False).reshape(-1, width) for p in predictions]
    values = np.concatenate(rows).reshape(-1) if rows else np.zeros(0, np.float32)
    lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
    chars = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), width).cast(pa.list_(pa.float32()))
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, chars)
