"""A model fed lexicon flags: it needs them, keeps its term list, and tags the same after reloading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from healthner.corpus.labels import TAGS
from healthner.corpus.lexicon import FEATURES_PER_CHAR, Lexicon
from healthner.corpus.vocab import CharVocab
from healthner.model.encoders import build_encoder
from healthner.model.features import CharFeaturizer, FeatureSpec
from healthner.model.folder import Architecture, save_model
from healthner.model.network import NerTagger
from healthner.model.predict import SlotPredictor
from healthner.sections.model import EncoderParams


def test_a_lexicon_model_saves_its_term_list_and_tags_after_reloading(tmp_path: Path, encoder_params: dict) -> None:
    terms = tmp_path / "terms.tsv"
    terms.write_text("頭痛\tsymptom\n發燒\tsymptom\n", encoding="utf-8")
    vocab = CharVocab.build([list("病人發燒頭痛")])
    torch.manual_seed(0)
    arch = Architecture(len(TAGS), True, 8, 1, 0.1, True, FEATURES_PER_CHAR)
    encoder = build_encoder(EncoderParams(**encoder_params["bert"]), vocab, max_positions=10)
    model = NerTagger(encoder, **arch.__dict__).eval()
    with pytest.raises(ValueError, match="character features"):
        model(torch.tensor([[vocab.cls_id, vocab.sep_id, vocab.sep_id]]), torch.ones(1, 3, dtype=torch.long))
    spec = FeatureSpec(lexicon=True)
    folder = save_model(tmp_path / "slot", model, vocab, arch, EncoderParams(**encoder_params["bert"]), 8, 2, spec, terms)
    assert (folder / "lexicon.tsv").read_text(encoding="utf-8") == terms.read_text(encoding="utf-8")
    newer = tmp_path / "newer.tsv"
    newer.write_text("頭痛\tsymptom\n", encoding="utf-8")
    save_model(folder, model, vocab, arch, EncoderParams(**encoder_params["bert"]), 8, 2, spec, newer)
    assert (folder / "lexicon.tsv").read_text(encoding="utf-8") == newer.read_text(encoding="utf-8")  # never stale
    save_model(folder, model, vocab, arch, EncoderParams(**encoder_params["bert"]), 8, 2, spec, terms)
    sentence = list("病人發燒頭痛發燒頭痛病人")  # longer than one window
    before = SlotPredictor(model, vocab, 8, 2, featurizer=CharFeaturizer(spec, Lexicon.load(terms))).marginals([sentence])[0]
    after = SlotPredictor.load(folder).marginals([sentence])[0]
    np.testing.assert_allclose(before, after, atol=1e-5)
    emissions = SlotPredictor.load(folder).emissions([sentence])[0]
    without = SlotPredictor(model, vocab, 8, 2, featurizer=CharFeaturizer(spec, Lexicon({}))).emissions([sentence])[0]
    assert not np.allclose(emissions, without)  # the flags reach the model
