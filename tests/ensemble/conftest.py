"""Fixtures of tests/tiny_models.py (tiny params over real sentences, one torch thread per test) and shipped folders of every kind."""

import pytest  # noqa: E402

from tests.tiny_models import _one_thread, encoder_params, real_sentences, tiny_params  # noqa: F401


@pytest.fixture(scope="session")
def tiny_member_folders(tiny_repo, tmp_path_factory) -> dict:
    """Shipped folders of three kinds (one member, a vote, mean emissions) over the tiny pipeline's members."""
    from healthner.config import StackParams
    from healthner.ensemble.kinds import MemberKind, VoteKind, make_kind
    from healthner.ensemble.shipped import save_ensemble

    dirs = {slot: tiny_repo / "models" / slot for slot in ("bert", "roberta")}
    root = tmp_path_factory.mktemp("kinds")
    kinds = [MemberKind(["bert"]), VoteKind(list(dirs), 1), make_kind("mean_emissions", list(dirs), StackParams())]
    for kind in kinds:
        save_ensemble(root / kind.name, kind, dirs)
    return {kind.name: root / kind.name for kind in kinds}
