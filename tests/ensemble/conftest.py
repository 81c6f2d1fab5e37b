"""Fixtures of tests/tiny_models.py (tiny params over real sentences, one torch thread per test) and
shipped folders of every kind."""

import pytest

from healthner.config import Params
from healthner.corpus.readers import Sentence
from healthner.sections.base import SLOTS
from tests.tiny_models import _one_thread, encoder_params, real_sentences, tiny_params  # noqa: F401


@pytest.fixture(scope="session")
def tiny_member_folders(tiny_repo, tmp_path_factory) -> dict:
    """Shipped folders of three kinds (one member, a vote, mean emissions) over the tiny pipeline's members."""
    from healthner.ensemble.kinds import MemberKind, VoteKind, make_kind
    from healthner.ensemble.shipped import save_ensemble
    from healthner.sections.ensemble import StackParams

    dirs = {slot: tiny_repo / "models" / slot for slot in ("bert", "roberta")}
    root = tmp_path_factory.mktemp("kinds")
    kinds = [MemberKind(["bert"]), VoteKind(list(dirs), 1), make_kind("mean_emissions", list(dirs), StackParams())]
    for kind in kinds:
        save_ensemble(root / kind.name, kind, dirs)
    return {kind.name: root / kind.name for kind in kinds}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, real_sentences: list[Sentence]) -> Params:  # noqa: F811
    """Four tiny slots trained for a few steps on real sentences, then the stack fit on dev."""
    from healthner.config import load_params
    from healthner.corpus.readers import write_sentences
    from healthner.ensemble.stack import fit_stack
    from healthner.model.train import train
    from tests.tiny_models import N_TRAIN, OVERLAP, REPO, WINDOW, tiny_encoders, tiny_lexicon, write_prepared

    root = tmp_path_factory.mktemp("stack")
    params = load_params(REPO / "params.yaml").with_updates(
        prepare={"output_dir": root / "prepared", "window_chars": WINDOW, "window_overlap": OVERLAP},
        model={"lstm_hidden": 16},
        lexicon={"output": tiny_lexicon(root)},
        train={"output_dir": root / "models", "reports_dir": root / "reports" / "train", "epochs": 2,
               "batch_size": 16, "torch_threads": 1, "learning_rate": 5e-3, "max_steps": 4},
        stack={"n_estimators": 8, "cv_folds": 2, "n_jobs": 1, "output_dir": root / "models" / "ensemble", "kind": "forest"},
        evaluate={"reports_dir": root / "reports", "combinations": [["bert"], ["bert", "albert"], list(SLOTS)],
                  "error_examples": 5},
    )
    params = Params.model_validate({**params.model_dump(by_alias=True), "encoders": tiny_encoders()})
    train_part, dev_part = real_sentences[:N_TRAIN], real_sentences[N_TRAIN:]
    for slot in SLOTS:
        write_prepared(params, slot, train_part, dev_part)
        train(params, slot)
    write_sentences(train_part, params.prepare.output_dir / "train.parquet")  # what the crossfit step folds
    write_sentences(real_sentences[:20], params.prepare.output_dir / "test.parquet")
    fit_stack(params)
    return params
