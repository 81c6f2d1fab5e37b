"""NerTagger: encoders of every family, the masked BiLSTM, valid BIO decoding.

CRF inference itself (marginals and Viterbi against brute force): tests/code/test_crf.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from healthner.corpus.labels import OUTSIDE, TAGS, is_valid_transition
from healthner.corpus.vocab import CharVocab, slot_vocab
from healthner.model.encoders import build_encoder, encoder_from_config_dict
from healthner.model.network import MaskedBiLSTM, NerTagger
from healthner.sections.model import EncoderParams

CHARS = list("病人發燒頭痛咳嗽三天")


def _vocab() -> CharVocab:
    return CharVocab.build([CHARS])


def _batch(vocab: CharVocab, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(lengths) + 2
    ids = torch.full((len(lengths), longest), vocab.pad_id)
    for row, n in enumerate(lengths):
        ids[row, : n + 2] = torch.tensor([vocab.cls_id, *vocab.encode(CHARS[:n])[0], vocab.sep_id])
    return ids, (ids != vocab.pad_id).long()


def _tagger(family_params: dict, use_crf: bool = True, use_bilstm: bool = True) -> tuple[NerTagger, CharVocab]:
    torch.manual_seed(0)
    vocab = _vocab()
    encoder = build_encoder(EncoderParams(**family_params), vocab, max_positions=16)
    return NerTagger(encoder, len(TAGS), use_bilstm, 8, 1, 0.1, use_crf), vocab


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "albert"])
def test_every_family_builds_from_scratch_and_runs(family: str, encoder_params: dict) -> None:
    model, vocab = _tagger(encoder_params[family])
    model.eval()
    ids, mask = _batch(vocab, [10, 7])
    emissions = model(ids, mask)
    assert emissions.shape == (2, 10, len(TAGS))  # [CLS] and [SEP] stripped
    assert torch.isfinite(emissions).all()
    rebuilt = encoder_from_config_dict(model.encoder.config.to_dict())
    assert rebuilt.state_dict().keys() == model.encoder.state_dict().keys()


def test_padding_does_not_change_a_sentences_emissions(encoder_params: dict) -> None:
    model, vocab = _tagger(encoder_params["bert"])
    model.eval()
    alone = model(*_batch(vocab, [6]))[0]
    padded = model(*_batch(vocab, [10, 6]))[1, :6]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)


def _assert_valid_bio(paths: list[list[int]]) -> None:
    for path in paths:
        tags = [OUTSIDE] + [TAGS[i] for i in path]
        assert all(is_valid_transition(a, b) for a, b in itertools.pairwise(tags)), tags


def test_crf_viterbi_is_valid_bio_even_after_training_steps(encoder_params: dict) -> None:
    model, vocab = _tagger(encoder_params["bert"])
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, weight_decay=0.5)
    for _ in range(3):  # wild steps and heavy decay try to move the pinned scores
        ids, mask = _batch(vocab, [10, 4])
        emissions = model(ids, mask)
        (emissions.pow(2).mean() - model.crf.transitions.sum() - model.crf.start_transitions.sum()).backward()
        opt.step()
        opt.zero_grad()
        model.enforce_constraints()
    torch.manual_seed(2)
    emissions = torch.randn(64, 12, len(TAGS)) * 5  # arbitrary scores, I- tags often winning locally
    mask = torch.ones(64, 12, dtype=torch.bool)
    mask[::2, 7:] = False
    _assert_valid_bio(model.decode(emissions, mask))
    marg = model.marginals(emissions, mask)
    torch.testing.assert_close(marg[mask].sum(-1), torch.ones(int(mask.sum())))


def test_without_crf_marginals_are_softmax_and_decode_is_argmax(encoder_params: dict) -> None:
    model, _ = _tagger(encoder_params["bert"], use_crf=False, use_bilstm=False)
    emissions = torch.randn(2, 5, len(TAGS))
    mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2]).bool()
    torch.testing.assert_close(model.marginals(emissions, mask), emissions.softmax(-1))
    paths = model.decode(emissions, mask)
    assert paths[0] == emissions[0].argmax(-1).tolist() and paths[1] == emissions[1, :3].argmax(-1).tolist()


def test_pretrained_slot_loads_a_local_checkpoint_offline(tmp_path: Path, encoder_params: dict) -> None:
    """init: pretrained with a local folder (what a hub download holds): its vocab.txt and weights."""
    vocab = _vocab()
    source = build_encoder(EncoderParams(**encoder_params["bert"]), vocab, max_positions=16)
    source.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab.tokens), encoding="utf-8")
    params = EncoderParams(family="bert", init="pretrained", checkpoint=str(tmp_path))
    loaded_vocab = slot_vocab(params, [list("無關")], min_freq=1)
    assert loaded_vocab.tokens == vocab.tokens
    loaded = build_encoder(params, loaded_vocab, max_positions=16)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert not list(tmp_path.glob("*.bin"))


def test_masked_bilstm_equals_a_packed_bidirectional_lstm() -> None:
    torch.manual_seed(3)
    ours = MaskedBiLSTM(6, 5, num_layers=2)
    packed = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer, (fwd, bwd) in enumerate(zip(ours.forward_layers, ours.backward_layers)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(packed, f"{name}_l{layer}").copy_(getattr(fwd, f"{name}_l0"))
                getattr(packed, f"{name}_l{layer}_reverse").copy_(getattr(bwd, f"{name}_l0"))
    x, lengths = torch.randn(3, 7, 6), torch.tensor([7, 4, 1])
    expected, _ = packed(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    expected, _ = pad_packed_sequence(expected, batch_first=True, total_length=7)
    got = ours(x, lengths)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(got[row, :n], expected[row, :n], atol=1e-6, rtol=1e-5)


def test_bigram_embeddings_see_each_characters_neighbours(encoder_params: dict) -> None:
    torch.manual_seed(0)
    vocab = _vocab()
    encoder = build_encoder(EncoderParams(**encoder_params["bert"]), vocab, max_positions=16)
    model = NerTagger(encoder, len(TAGS), True, 8, 1, 0.0, True, bigram_buckets=101, bigram_dim=4).eval()
    ids, mask = _batch(vocab, [10, 6])
    features = model.bigrams(ids)
    assert features.shape == (2, 10, 8)  # left and right bigram per character
    torch.testing.assert_close(features[0, :4], features[1, :4])  # same characters, same neighbours
    assert not torch.allclose(features[0, 5, 4:], features[1, 5, 4:])  # right neighbour: 咳 vs [SEP]
    torch.testing.assert_close(features[0, 5, :4], features[1, 5, :4])  # left neighbour the same
    assert model(ids, mask).shape == (2, 10, len(TAGS))
