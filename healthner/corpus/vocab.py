"""Character vocabularies: one id per character, so tags align 1:1 with tokens."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from healthner.errors import HealthnerError
from healthner.io import write_json
from healthner.sections.model import EncoderParams

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
VOCAB_FILE = "vocab.txt"
SOURCE_FILE = "vocab_source.json"  # beside a prepared slot's vocab.txt: where its vocabulary came from


def _lookup_forms(char: str) -> Iterable[str]:
    """Forms tried in order when looking a character up; the text itself is never changed."""
    yield char
    folded = unicodedata.normalize("NFKC", char)
    yield folded
    yield folded.lower()


class CharVocab:
    def __init__(self, tokens: Sequence[str]):
        missing = [s for s in SPECIALS if s not in tokens]
        if missing:
            raise ValueError(f"vocabulary lacks special tokens {missing}")
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self.pad_id, self.unk_id = self.index[PAD], self.index[UNK]
        self.cls_id, self.sep_id, self.mask_id = self.index[CLS], self.index[SEP], self.index[MASK]

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_freq: int = 1) -> CharVocab:
        """From the training split: specials first, then characters by falling frequency."""
        counts = Counter(ch for chars in sentences for ch in chars)
        kept = sorted((c for c, n in counts.items() if n >= min_freq and c not in SPECIALS), key=lambda c: (-counts[c], c))
        return cls(list(SPECIALS) + kept)

    def char_id(self, char: str) -> int:
        for form in _lookup_forms(char):
            if form in self.index:
                return self.index[form]
        return self.unk_id

    def encode(self, chars: Sequence[str]) -> tuple[list[int], int]:
        """Ids of the characters (no specials) and how many were unknown."""
        ids = [self.char_id(c) for c in chars]
        return ids, sum(i == self.unk_id for i in ids)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / VOCAB_FILE
        # One token a line; a token that is itself a line break is stored escaped.
        path.write_text("".join(_escape(t) + "\n" for t in self.tokens), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> CharVocab:
        path = Path(directory) / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: vocabulary not found")
        return cls.parse(path.read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> CharVocab:
        """A vocabulary from the text of its vocab.txt (one escaped token a line)."""
        return cls([_unescape(t) for t in text.split("\n")[:-1]])


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}


def _escape(token: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in token)


def _unescape(token: str) -> str:
    out, i = [], 0
    reverse = {v[1]: k for k, v in _ESCAPES.items()}
    while i < len(token):
        if token[i] == "\\" and i + 1 < len(token) and token[i + 1] in reverse:
            out.append(reverse[token[i + 1]])
            i += 2
        else:
            out.append(token[i])
            i += 1
    return "".join(out)


def slot_vocab(enc: EncoderParams, train_chars: Iterable[Sequence[str]], min_freq: int) -> CharVocab:
    """Scratch: characters of the training split; pretrained: the checkpoint's own vocabulary."""
    if enc.init == "scratch":
        return CharVocab.build(train_chars, min_freq=min_freq)
    return pretrained_vocab(checkpoint_of(enc))


def pretrained_vocab(checkpoint: str) -> CharVocab:
    """The checkpoint's tokens ordered by id (ids must stay those the embeddings were trained with).

    BERT-style Chinese checkpoints ship a vocab.txt, read directly (clue/albert_chinese_tiny has no
    AutoTokenizer mapping); anything else goes through AutoTokenizer.get_vocab().
    """
    tokens = _vocab_txt_tokens(checkpoint)
    if tokens is None:
        from transformers import AutoTokenizer

        mapping = AutoTokenizer.from_pretrained(checkpoint).get_vocab()
        tokens = [tok for tok, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
    missing = [s for s in SPECIALS if s not in tokens]
    if missing:
        raise ValueError(f"{checkpoint}: vocabulary lacks {missing}; only BERT-style vocabularies are supported")
    return CharVocab(tokens)


def _vocab_txt_tokens(checkpoint: str) -> list[str] | None:
    local = Path(checkpoint) / VOCAB_FILE
    if local.is_file():
        path: str | None = str(local)
    else:
        from transformers.utils import cached_file

        path = cached_file(checkpoint, VOCAB_FILE, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return None
    return [line.rstrip("\r") for line in Path(path).read_text(encoding="utf-8").split("\n")[:-1]]


def checkpoint_of(enc: EncoderParams) -> str:
    if not enc.checkpoint:
        raise ValueError(f"encoder family {enc.family}: init pretrained needs a checkpoint (hub id or folder)")
    return enc.checkpoint


class PreparedVocabMismatch(HealthnerError, ValueError):
    """A prepared slot folder whose vocabulary is not the one the slot's encoder needs."""


def vocab_digest(vocab: CharVocab) -> str:
    """sha256 of the tokens in id order: two vocabularies with the same digest give every token the same id."""
    return hashlib.sha256("\n".join(vocab.tokens).encode("utf-8")).hexdigest()


def write_vocab_source(directory: Path, enc: EncoderParams, vocab: CharVocab) -> Path:
    """Record, beside the prepared vocabulary, the init and checkpoint it was made for and its digest."""
    source = {"init": enc.init, "checkpoint": enc.checkpoint if enc.init == "pretrained" else None,
              "tokens": len(vocab), "sha256": vocab_digest(vocab)}
    return write_json(Path(directory) / SOURCE_FILE, source, ascii_only=True)


def check_vocab_source(directory: Path, enc: EncoderParams, vocab: CharVocab) -> None:
    """Refuse a prepared vocabulary made for another init or checkpoint, or (pretrained) one that is not
    the checkpoint's own: a pretrained encoder's embeddings are indexed by its own token ids."""
    path = Path(directory) / SOURCE_FILE
    rerun = "re-run prepare (dvc repro prepare)"
    if not path.is_file():
        if enc.init == "pretrained":
            raise PreparedVocabMismatch(
                f"{directory}: no {SOURCE_FILE}, so its vocabulary may not be {enc.checkpoint}'s; {rerun}"
            )
        return
    source = json.loads(path.read_text(encoding="utf-8"))
    wanted = (enc.init, enc.checkpoint if enc.init == "pretrained" else None)
    if (source["init"], source["checkpoint"]) != wanted:
        made = source["checkpoint"] or source["init"]
        raise PreparedVocabMismatch(
            f"{directory}: vocabulary prepared for {made}, but the slot is {wanted[1] or wanted[0]}; {rerun}"
        )
    digest = vocab_digest(vocab)
    if digest != source["sha256"] or (
        enc.init == "pretrained" and digest != vocab_digest(pretrained_vocab(checkpoint_of(enc)))
    ):
        raise PreparedVocabMismatch(f"{directory}: vocabulary differs from {wanted[1] or 'the one prepared'}'s; {rerun}")
