"""evaluate's helpers: combinations, inline entity marks, the entity-type confusion pairs."""

from __future__ import annotations

import pytest

from healthner.ensemble.evaluate import error_counts, mark_entities, member_combinations
from healthner.ensemble.plots import MISSED, SPURIOUS, entity_pairs

MEMBERS = ["bert", "roberta", "electra", "albert"]


def test_all_combinations_are_every_non_empty_subset() -> None:
    combos = member_combinations(MEMBERS, "all")
    assert len(combos) == 2 ** len(MEMBERS) - 1 == len(set(combos))
    assert combos[0] == tuple(MEMBERS) and combos[-1] == ("albert",)


def test_listed_combinations_keep_members_order_and_reject_strangers() -> None:
    assert member_combinations(MEMBERS, [["albert", "bert"], ["roberta"]]) == [("bert", "albert"), ("roberta",)]
    with pytest.raises(ValueError, match="xlnet"):
        member_combinations(MEMBERS, [["xlnet"]])


def test_mark_entities_inline() -> None:
    chars = list("膽汁造成膽沙")
    tags = ["B-BODY", "I-BODY", "O", "O", "B-DISE", "I-DISE"]
    assert mark_entities(chars, tags) == "[膽汁]BODY造成[膽沙]DISE"
    assert mark_entities(list("痛痛"), ["O", "I-SYMP"]) == "痛[痛]SYMP"  # read as conlleval reads it


def test_entity_pairs_exact_span_matching() -> None:
    gold = [["B-BODY", "I-BODY", "O", "B-DISE", "I-DISE", "O", "B-DRUG"]]
    pred = [["B-BODY", "I-BODY", "O", "B-SYMP", "I-SYMP", "B-DRUG", "I-DRUG"]]
    # BODY exact and right; DISE span predicted as SYMP (type confusion); DRUG boundary wrong
    assert sorted(entity_pairs(gold, pred)) == sorted(
        [("BODY", "BODY"), ("DISE", "SYMP"), ("DRUG", MISSED), (SPURIOUS, "DRUG")]
    )
    assert error_counts(gold[0], pred[0]) == (2, 2)
