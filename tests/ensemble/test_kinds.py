"""The kinds that can ship (one member, forest, logistic, vote, mean emissions) and the shipping rule,
on hand-made member outputs where the right answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from healthner.corpus.labels import TAG_TO_ID, TAGS
from healthner.ensemble.kinds import KINDS, MemberOutputs, VoteKind, make_kind, out_of_fold, voted_tags
from healthner.ensemble.shipping import KindScore, choose
from healthner.model.metrics import score
from healthner.sections.ensemble import StackParams

PARAMS = StackParams(members=["bert", "roberta", "electra"], n_estimators=8, cv_folds=3, n_jobs=1, context=0,
                     viterbi_features=True, selection_seeds=[1, 2])


def one_hot(tags: list[str], sure: float = 0.9) -> np.ndarray:
    out = np.full((len(tags), len(TAGS)), (1 - sure) / (len(TAGS) - 1), dtype=np.float32)
    out[np.arange(len(tags)), [TAG_TO_ID[t] for t in tags]] = sure
    return out


def sentences(n: int, rng: np.random.Generator) -> list[list[str]]:
    """Gold sentences of 8 characters with one DISE or BODY entity somewhere."""
    gold = []
    for _ in range(n):
        tags, start, kind = ["O"] * 8, int(rng.integers(0, 6)), str(rng.choice(["DISE", "BODY"]))
        tags[start : start + 2] = [f"B-{kind}", f"I-{kind}"]
        gold.append(tags)
    return gold


def outputs_of(paths: dict[str, list[list[str]]]) -> MemberOutputs:
    return MemberOutputs({m: [one_hot(t) for t in p] for m, p in paths.items()}, paths)


def test_vote_keeps_what_enough_members_predict_without_overlaps() -> None:
    a = ["B-DISE", "I-DISE", "O", "O"]
    b = ["B-DISE", "I-DISE", "O", "B-BODY"]
    c = ["O", "B-SYMP", "I-SYMP", "B-BODY"]
    probs = np.mean([one_hot(a), one_hot(b), one_hot(c)], axis=0)
    assert voted_tags([a, b, c], probs, 2) == ["B-DISE", "I-DISE", "O", "B-BODY"]
    assert voted_tags([a, b, c], probs, 3) == ["O"] * 4
    assert voted_tags([a, b, c], probs, 1) == ["B-DISE", "I-DISE", "O", "B-BODY"]  # SYMP overlaps the stronger DISE


def test_vote_chooses_min_votes_on_dev_and_round_trips(tmp_path: Path) -> None:
    gold = sentences(30, np.random.default_rng(0))
    wrong = [["O"] * 8 for _ in gold]
    kind = VoteKind(["bert", "roberta", "electra"]).fit(outputs_of({"bert": gold, "roberta": gold, "electra": wrong}), gold)
    assert kind.min_votes == 2  # two right members outvote the silent one; 1 would also be right, 2 is stricter
    loaded = VoteKind.load(tmp_path, kind.members, kind.save(tmp_path))
    assert loaded.min_votes == 2


@pytest.mark.parametrize("name", ["forest", "logistic"])
def test_a_learned_combiner_follows_the_member_that_is_right(name: str) -> None:
    rng = np.random.default_rng(1)
    gold = sentences(90, rng)
    noise = [list(rng.choice(["O", "B-TIME", "I-TIME"], size=8)) for _ in gold]
    shuffled = [gold[k] for k in rng.permutation(len(gold))]  # right tags, wrong sentences
    outputs = outputs_of({"bert": gold, "roberta": noise, "electra": shuffled})
    tags = out_of_fold(name, PARAMS.members, PARAMS, outputs, gold, seed=3)
    assert score(gold, tags).f1 > 0.95
    assert all(TAGS.index(t) >= 0 for sentence in tags for t in sentence)


def test_mean_emissions_and_member_kinds_read_what_they_are_given() -> None:
    gold = sentences(4, np.random.default_rng(2))
    outputs = outputs_of({"bert": gold, "roberta": [["O"] * 8 for _ in gold]})
    outputs.averaged = ([one_hot(t) for t in gold], gold)
    assert [p.tags for p in make_kind("mean_emissions", ["bert", "roberta"], PARAMS).predict(outputs)] == gold
    assert [p.tags for p in make_kind("member", ["roberta"], PARAMS).predict(outputs)] == [["O"] * 8] * 4
    with pytest.raises(ValueError, match="mean-emission"):
        make_kind("mean_emissions", ["bert"], PARAMS).predict(outputs_of({"bert": gold}))


def test_the_rule_ships_a_combiner_only_when_it_earns_min_gain() -> None:
    members = {"bert": 0.70, "roberta": 0.72, "electra": 0.69}
    wins = choose(members, {"forest": KindScore([0.735, 0.732]), "vote": KindScore([0.71, 0.71])}, PARAMS)
    assert (wins.kind, wins.members, wins.best_member) == ("forest", PARAMS.members, "roberta")
    assert "beats roberta alone by +0.0135" in wins.reason
    close = choose(members, {"forest": KindScore([0.728, 0.729]), "vote": KindScore([0.71, 0.70])}, PARAMS)
    assert (close.kind, close.members, close.dev_f1) == ("member", ["roberta"], 0.72)
    assert "no combiner beats roberta alone by 0.01" in close.reason
    forced = choose(members, {"vote": KindScore([0.5, 0.5])}, PARAMS.model_copy(update={"kind": "vote"}))
    assert forced.kind == "vote" and forced.reason == "stack.kind is vote"


def test_every_kind_is_known_by_its_name() -> None:
    assert set(KINDS) == {"member", "forest", "logistic", "vote", "mean_emissions"}
    with pytest.raises(ValueError, match="unknown kind"):
        make_kind("boosting", ["bert"], PARAMS)


def test_either_kind_of_folder_loads_and_tags(tiny_member_folders: dict[str, Path]) -> None:
    from healthner.ensemble.shipped import Ensemble

    for name, folder in tiny_member_folders.items():
        manifest = json.loads((folder / "ensemble.json").read_text())
        ensemble = Ensemble.load(folder)
        assert ensemble.kind.name == manifest["kind"] == name
        predictions = ensemble.predict([list("病人發燒頭痛三天"), []])
        assert [len(p.tags) for p in predictions] == [8, 0]
        if name == "member":
            (slot,) = manifest["members"]
            assert predictions[0].tags == ensemble.predictors[slot].decode([list("病人發燒頭痛三天")])[0]
            assert {p.name for p in folder.iterdir()} == {slot, "ensemble.json"}
