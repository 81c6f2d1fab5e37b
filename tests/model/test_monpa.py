"""monpa's ALBERT extracted into a Hugging Face folder (`healthner checkpoint monpa`): the same encoder.

Skipped unless the optional, non-commercial `monpa` extra is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from healthner.corpus.readers import Sentence
from healthner.corpus.vocab import pretrained_vocab
from healthner.model.checkpoints import MONPA_CONFIG, MONPA_PREFIX, MONPA_VOCAB, MONPA_WEIGHTS, extract_monpa, monpa_folder
from healthner.model.encoders import build_encoder
from healthner.sections.model import EncoderParams

pytest.importorskip("monpa")
N_SENTENCES = 6


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    return extract_monpa(tmp_path_factory.mktemp("monpa"))


def _monpa_encoder():
    """monpa's own AlbertModel (its modeling code, not transformers'), with the wheel's weights."""
    from monpa.configuration_albert import AlbertConfig
    from monpa.modeling_albert import AlbertModel

    folder = monpa_folder()
    model = AlbertModel(AlbertConfig.from_pretrained(str(folder / MONPA_CONFIG)))
    state = torch.load(folder / MONPA_WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict({k[len(MONPA_PREFIX) :]: v for k, v in state.items() if k.startswith(MONPA_PREFIX)}, strict=False)
    return model.eval()


def test_our_vocabulary_gives_monpas_own_ids(extracted: Path, real_sentences: list[Sentence]) -> None:
    from monpa.tokenization import load_vocab

    theirs = load_vocab(str(monpa_folder() / MONPA_VOCAB))
    ours = pretrained_vocab(str(extracted))
    assert ours.index == {tok: i for tok, i in theirs.items()}
    chars = [c for s in real_sentences[:N_SENTENCES] for c in s.chars if c in theirs]
    assert ours.encode(chars)[0] == [theirs[c] for c in chars]


def test_the_extracted_checkpoint_computes_what_monpas_encoder_computes(
    extracted: Path, real_sentences: list[Sentence]
) -> None:
    vocab = pretrained_vocab(str(extracted))
    ours = build_encoder(EncoderParams(family="albert", init="pretrained", checkpoint=str(extracted)), vocab, 128).eval()
    theirs = _monpa_encoder()
    windows = [[vocab.cls_id, *vocab.encode(s.chars[:126])[0], vocab.sep_id] for s in real_sentences[:N_SENTENCES]]
    longest = max(len(w) for w in windows)
    ids = torch.tensor([w + [vocab.pad_id] * (longest - len(w)) for w in windows])
    mask = (torch.arange(longest)[None, :] < torch.tensor([len(w) for w in windows])[:, None]).long()
    with torch.inference_mode():
        got = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        expected = theirs(input_ids=ids, attention_mask=mask)[0]
    for row, w in enumerate(windows):
        torch.testing.assert_close(got[row, : len(w)], expected[row, : len(w)], atol=1e-4, rtol=1e-4)
    assert (extracted / "LICENSE.txt").read_text().count("NonCommercial") == 1
