"""Focal loss, symmetric KL and the combined objective (every Table 3 row is a params change)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from healthner.corpus.labels import TAG_TO_ID, TAGS
from healthner.corpus.vocab import CharVocab
from healthner.model.encoders import build_encoder
from healthner.model.losses import Objective, alpha_vector, focal_loss, soft_target_loss, symmetric_kl, window_labels
from healthner.model.network import NerTagger
from healthner.sections.model import EncoderParams, LossParams


def _emissions() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    emissions = torch.randn(3, 7, len(TAGS)) * 3
    labels = torch.randint(0, len(TAGS), (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    return emissions, labels, mask


def test_focal_with_gamma_0_and_alpha_1_is_cross_entropy() -> None:
    emissions, labels, mask = _emissions()
    focal = focal_loss(emissions, labels, mask, gamma=0.0, alpha=alpha_vector(1.0))
    expected = F.cross_entropy(emissions[mask], labels[mask])
    torch.testing.assert_close(focal, expected)


def test_focal_down_weights_easy_characters() -> None:
    emissions, labels, mask = _emissions()
    ce = focal_loss(emissions, labels, mask, 0.0, alpha_vector(1.0))
    assert focal_loss(emissions, labels, mask, 2.0, alpha_vector(1.0)) < ce


def test_alpha_mapping_weights_named_tags_only() -> None:
    alpha = alpha_vector({"B-DISE": 2.0, "O": 0.5})
    assert alpha[TAG_TO_ID["B-DISE"]] == 2.0 and alpha[TAG_TO_ID["O"]] == 0.5 and alpha[TAG_TO_ID["I-TIME"]] == 1.0
    with pytest.raises(ValueError, match="unknown tags"):
        alpha_vector({"B-NOPE": 1.0})


def test_symmetric_kl_is_zero_for_equal_and_symmetric_otherwise() -> None:
    emissions, _, mask = _emissions()
    other = emissions.flip(0)
    assert symmetric_kl(emissions, emissions, mask).abs() < 1e-6
    kl = symmetric_kl(emissions, other, mask)
    assert kl > 0
    torch.testing.assert_close(kl, symmetric_kl(other, emissions, mask))


def test_leading_inside_tag_of_a_window_reads_as_begin() -> None:
    ids = [TAG_TO_ID[t] for t in ("I-DISE", "I-DISE", "O")]
    assert [TAGS[i] for i in window_labels(ids)] == ["B-DISE", "I-DISE", "O"]


def _tiny_tagger(
    encoder_params: dict, use_bilstm: bool, use_crf: bool, dropout: float = 0.1
) -> tuple[NerTagger, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    chars = list("病人發燒頭痛咳嗽")
    vocab = CharVocab.build([chars])
    encoder = build_encoder(EncoderParams(**encoder_params["bert"]), vocab, max_positions=12)
    model = NerTagger(encoder, len(TAGS), use_bilstm, 8, 1, dropout, use_crf)
    short = [vocab.cls_id, 5, 6, 7, vocab.sep_id] + [vocab.pad_id] * 5
    ids = torch.tensor([[vocab.cls_id, *vocab.encode(chars)[0], vocab.sep_id], short])
    gold = ("O", "O", "B-SYMP", "I-SYMP", "B-SYMP", "I-SYMP", "O", "O")
    labels = torch.tensor([[TAG_TO_ID[t] for t in gold], [0] * 8])
    return model, ids, (ids != vocab.pad_id).long(), labels


TABLE_3 = {  # row: (use_bilstm, use_crf, focal, rdrop)
    "softmax+CE": (False, False, False, False),
    "softmax+focal": (False, False, True, False),
    "BiLSTM+focal": (True, False, True, False),
    "BiLSTM+CRF+focal": (True, True, True, False),
    "BiLSTM+CRF+R-Drop+focal": (True, True, True, True),
}


@pytest.mark.parametrize("row", TABLE_3)
def test_every_table_3_row_is_a_params_change(row: str, encoder_params: dict) -> None:
    use_bilstm, use_crf, focal, rdrop = TABLE_3[row]
    model, ids, mask, labels = _tiny_tagger(encoder_params, use_bilstm, use_crf)
    params = LossParams.model_validate({"focal": {"enabled": focal}, "rdrop": {"enabled": rdrop}})
    parts = Objective(params, use_crf)(model, ids, mask, labels)
    parts.total.backward()
    assert torch.isfinite(parts.total)
    assert (parts.crf != 0) == use_crf and (parts.kl != 0) == rdrop and parts.token != 0
    assert model.classifier.weight.grad is not None


def test_rdrop_kl_is_zero_without_dropout(encoder_params: dict) -> None:
    model, ids, mask, labels = _tiny_tagger(encoder_params, True, True)
    model.eval()
    parts = Objective(LossParams(), use_crf=True)(model, ids, mask, labels)
    assert abs(parts.kl) < 1e-6
    model, ids, mask, labels = _tiny_tagger(encoder_params, True, True, dropout=0.0)
    model.train()
    for module in model.modules():  # attention dropout reads its nn.Dropout's p too
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    assert abs(Objective(LossParams(), use_crf=True)(model, ids, mask, labels).kl) < 1e-6


def test_soft_targets_equal_to_the_students_distribution_cost_nothing() -> None:
    emissions, _, mask = _emissions()
    teacher = emissions.softmax(-1)
    assert soft_target_loss(emissions, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_target_loss_on_a_hand_computed_two_class_case() -> None:
    # student p = (0.8, 0.2) from emissions (log 4, 0); teacher (0.5, 0.5):
    # KL = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = 0.5 ln(0.625) + 0.5 ln(2.5) = 0.5 ln(1.5625) = 0.2231...
    emissions = torch.tensor([[[float(torch.log(torch.tensor(4.0))), 0.0]]])
    teacher = torch.tensor([[[0.5, 0.5]]])
    loss = soft_target_loss(emissions, teacher, torch.ones(1, 1, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.5 * float(torch.log(torch.tensor(1.5625))), rel=1e-5)
    assert loss.item() == pytest.approx(0.22314, abs=1e-4)


def test_one_hot_soft_targets_are_cross_entropy_and_padding_is_ignored() -> None:
    emissions, labels, mask = _emissions()
    one_hot = F.one_hot(labels, len(TAGS)).float()
    expected = F.cross_entropy(emissions[mask], labels[mask])
    assert soft_target_loss(emissions, one_hot, mask).item() == pytest.approx(expected.item(), rel=1e-5)
    noise = torch.rand_like(one_hot).softmax(-1)
    padded = torch.where(mask.unsqueeze(-1), one_hot, noise)
    assert soft_target_loss(emissions, padded, mask).item() == pytest.approx(expected.item(), rel=1e-5)
