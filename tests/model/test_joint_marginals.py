"""Several members' CRF marginals and Viterbi paths in one batched pass equal each member's own."""

from __future__ import annotations

import numpy as np
import torch

from healthner.corpus.labels import TAGS
from healthner.corpus.vocab import CharVocab
from healthner.model.encoders import build_encoder
from healthner.model.network import NerTagger
from healthner.model.predict import SlotPredictor, joint_outputs
from healthner.sections.model import EncoderParams

SENTENCES = [list("病人發燒頭痛咳嗽三天"), [], list("服用阿斯匹靈"), list("血壓" * 30)]


def _predictor(seed: int, family: str, encoder_params: dict, vocab: CharVocab, use_crf: bool = True) -> SlotPredictor:
    torch.manual_seed(seed)
    encoder = build_encoder(EncoderParams(**encoder_params[family]), vocab, max_positions=18)
    model = NerTagger(encoder, len(TAGS), True, 8, 1, 0.1, use_crf).eval()
    with torch.no_grad():  # random transitions, so members really differ
        if use_crf:
            model.crf.transitions.normal_()
            model.enforce_constraints()
    return SlotPredictor(model, vocab, window_chars=16, window_overlap=4, batch_chars=64)


def test_joint_equals_separate_including_empty_and_windowed_sentences(encoder_params: dict) -> None:
    vocab = CharVocab.build(SENTENCES)
    members = [
        _predictor(seed, family, encoder_params, vocab)
        for seed, family in ((0, "bert"), (1, "albert"), (2, "roberta"))
    ]
    joint, paths = joint_outputs(members, SENTENCES, paths=True)
    for member, probs, tags in zip(members, joint, paths):
        for alone, together, chars in zip(member.marginals(SENTENCES), probs, SENTENCES):
            assert together.shape == (len(chars), len(TAGS))
            np.testing.assert_allclose(together, alone, atol=1e-5)
        assert tags == member.decode(SENTENCES)
        assert [len(t) for t in tags] == [len(s) for s in SENTENCES]


def test_joint_viterbi_equals_pytorch_crf_decode(encoder_params: dict) -> None:
    vocab = CharVocab.build(SENTENCES)
    members = [_predictor(seed, "bert", encoder_params, vocab) for seed in (3, 4)]
    _, paths = joint_outputs(members, SENTENCES, paths=True)
    for member, tags in zip(members, paths):
        for emissions, chars, found in zip(member.emissions(SENTENCES), [s for s in SENTENCES if s], [t for t in tags if t]):
            scores = torch.from_numpy(emissions)[None]
            reference = member.model.crf.decode(scores, mask=torch.ones(scores.shape[:2], dtype=torch.bool))[0]
            assert found == [TAGS[i] for i in reference], "".join(chars)


def test_a_member_without_crf_falls_back_to_its_own_marginals(encoder_params: dict) -> None:
    vocab = CharVocab.build(SENTENCES)
    members = [_predictor(0, "bert", encoder_params, vocab), _predictor(1, "bert", encoder_params, vocab, use_crf=False)]
    marginals, paths = joint_outputs(members, SENTENCES, paths=True)
    for member, probs, tags in zip(members, marginals, paths):
        for alone, together in zip(member.marginals(SENTENCES), probs):
            np.testing.assert_allclose(together, alone, atol=1e-6)
        assert tags == member.decode(SENTENCES)


def test_one_member_averaged_is_that_member_and_a_constraint_is_obeyed(encoder_params: dict) -> None:
    from healthner.corpus.labels import is_valid_transition
    from healthner.model.crf import CrfScores
    from healthner.model.predict import averaged_outputs

    vocab = CharVocab.build(SENTENCES)
    member = _predictor(0, "bert", encoder_params, vocab)
    probs, tags = averaged_outputs([member], SENTENCES)
    assert tags == member.decode(SENTENCES)
    for alone, mean in zip(member.marginals(SENTENCES), probs):
        np.testing.assert_allclose(mean, alone, atol=1e-5)
    strict = torch.tensor([[0.0 if is_valid_transition(p, t) else -float("inf") for t in TAGS] for p in TAGS])
    start = torch.tensor([0.0 if is_valid_transition("O", t) else -float("inf") for t in TAGS])
    members = [member, _predictor(1, "albert", encoder_params, vocab), _predictor(2, "roberta", encoder_params, vocab)]
    _, constrained = averaged_outputs(members, SENTENCES, CrfScores(start, strict, torch.zeros(len(TAGS))))
    for sentence in constrained:
        assert all(is_valid_transition(p, t) for p, t in zip(["O", *sentence], sentence))
