"""The corpus layer's sections: the data files and where they come from, validate, split, prepare,
unlabeled and lexicon."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from healthner.sections.base import Count, NonNegative, Section, Seed

CorpusFormat = Literal["conll", "healthner_jsonl", "labelstudio_json"]  # corpus/formats.py reads each
GENRE_IN_RECORDS = ("healthner_jsonl",)  # formats whose records carry their own genre; the others take the file's


class PinnedFile(Section):
    """A file `healthner corpus fetch` downloads: its name on disk and its commit-pinned public source."""

    name: str
    # `healthner corpus fetch`: the file's path under fetch.base_url, commit-pinned (owner/repo/commit/path)
    source: str | None = None
    # pinned sha256 of the published file; None: recorded on first fetch in the folder's fetch.lock_name
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    enabled: bool = True  # false: an optional extra source, neither fetched nor read


class CorpusFile(PinnedFile):
    """One labeled file: its format and, for a format whose records carry no genre, the genre of all of it.

    The genre is stated here, never guessed from the file name, so any file name works."""

    format: CorpusFormat
    genre: str | None = None  # required for conll and labelstudio_json; healthner_jsonl records carry their own

    @model_validator(mode="after")
    def _one_owner_of_the_genre(self) -> CorpusFile:
        if self.format in GENRE_IN_RECORDS and self.genre is not None:
            raise ValueError(f"{self.name}: {self.format} records carry their own genre; remove `genre` from this entry")
        if self.format not in GENRE_IN_RECORDS and not self.genre:
            raise ValueError(
                f"{self.name}: a {self.format} file needs `genre` (one of validate.genres) in its data.files entry"
            )
        return self


class DataParams(Section):
    corpus_dir: Path = Path("../shared/data")
    files: list[CorpusFile]
    lexicon_dir: Path = Path("../shared/lexicons")
    lexicon_files: list[PinnedFile] = []  # what the lexicon stage reads from lexicon_dir (THUOCL)
    unlabeled_dir: Path = Path("../shared/unlabeled")
    unlabeled_files: list[PinnedFile] = []  # raw health text without tags

    def fetched_folders(self) -> list[tuple[str, Path, list[PinnedFile]]]:
        """(what, folder, enabled files) for each folder `healthner corpus fetch` fills."""
        groups = [("corpus", self.corpus_dir, self.files), ("lexicon", self.lexicon_dir, self.lexicon_files),
                  ("unlabeled", self.unlabeled_dir, self.unlabeled_files)]
        return [(what, folder, [f for f in files if f.enabled]) for what, folder, files in groups]

    @property
    def enabled_files(self) -> list[CorpusFile]:
        """The corpus files the pipeline fetches and reads (entries with `enabled: false` are skipped)."""
        return [f for f in self.files if f.enabled]


class FetchParams(Section):
    """`healthner corpus fetch`: where the corpus files come from and how they are downloaded."""

    base_url: str = "https://raw.githubusercontent.com"  # each file's `source` is a path under it
    timeout_s: float = Field(30.0, gt=0)  # connect and per-read timeout
    chunk_bytes: Count = 1 << 16  # bytes read, hashed and written per step
    lock_name: str = "sources.lock.json"  # beside the corpus: sha256 recorded on first fetch of unpinned files
    deadline_s: float = Field(1800.0, gt=0)  # whole download of one file, however slowly the bytes arrive
    max_bytes: Count = 256 << 20  # a body larger than this is refused (an endless body never fills the disk)
    min_bytes: NonNegative = 1024  # an unpinned file smaller than this is an error page, never recorded


class ValidateParams(Section):
    bio_repair: Literal["conlleval", "reject", "fail"] = "conlleval"
    max_examples: NonNegative = 20
    report: Path = Path("reports/validation.json")
    data_docs_dir: Path = Path("reports/data_docs")
    output: Path = Path("data/validated/corpus.parquet")
    flag_categories: list[str] = ["Cc", "Cf"]  # Unicode categories reported (kept as is) inside text
    genres: list[str] = ["FT", "SM", "WA"]  # every sentence's genre must be one of these


class SplitParams(Section):
    test_sources: list[str]
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: Seed = 13
    drop_test_duplicates: bool = True


class PrepareParams(Section):
    output_dir: Path = Path("data/prepared")
    window_chars: Count = 126
    window_overlap: NonNegative = 32
    min_char_freq: Count = 1

    @model_validator(mode="after")
    def _overlap_inside_window(self) -> PrepareParams:
        if self.window_overlap >= self.window_chars:
            raise ValueError(f"window_overlap ({self.window_overlap}) must be less than window_chars ({self.window_chars})")
        return self


class UnlabeledWarehouseParams(Section):
    """The `unlabeled` stage's second source, off by default: the text of the articles the nightly DAG
    published to a warehouse, over a range of days, so the model keeps learning from what it tagged."""

    enabled: bool = False
    warehouse_dir: str = "data/warehouse"  # a local folder or an s3:// URL, as nightly.warehouse_dir
    start: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")  # first day read; None: the first published
    end: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")  # last day read; None: the latest published

    @model_validator(mode="after")
    def _range_ordered(self) -> UnlabeledWarehouseParams:
        from datetime import date

        days = [date.fromisoformat(day) for day in (self.start, self.end) if day]  # a ValueError names a bad day
        if len(days) == 2 and days[0] > days[1]:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class UnlabeledParams(Section):
    """The `unlabeled` stage: raw health text -> Traditional-script sentences for a teacher to label."""

    opencc_config: str = "s2twp"  # Simplified -> Traditional, Taiwan usage and phrases, as the corpus
    min_chars: Count = 4  # shorter pieces ("好的。") teach a tagger nothing
    max_chars: Count = 500  # longer ones are lists or run-ons; the tagger's windows would cut them anyway
    output: Path = Path("data/unlabeled/sentences.parquet")
    report: Path = Path("reports/unlabeled.json")
    warehouse: UnlabeledWarehouseParams = UnlabeledWarehouseParams()

    @model_validator(mode="after")
    def _bounds_ordered(self) -> UnlabeledParams:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        return self


class LexiconParams(Section):
    sources: list[Literal["thuocl", "cmekg", "cccedict"]] = ["thuocl", "cmekg", "cccedict"]
    min_len: Count = 2  # characters per term
    max_len: Count = 10
    output: Path = Path("data/lexicon/terms.tsv")

    @model_validator(mode="after")
    def _lengths_in_order(self) -> LexiconParams:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must not exceed max_len ({self.max_len})")
        return self
