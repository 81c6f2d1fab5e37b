"""The Table 3 ablation: rows are params overrides, trained by the real train step on a tiny slice."""

from __future__ import annotations

import json

from safetensors import safe_open

from healthner.config import Params, deep_merge
from healthner.corpus.readers import Sentence, write_sentences
from healthner.ensemble.ablate import ablate, folder_name, row_params
from healthner.model.folder import MODEL_FILE
from healthner.model.scoring import score_model


def test_deep_merge_keeps_untouched_nested_fields() -> None:
    base = {"loss": {"focal": {"enabled": True, "gamma": 2.0}, "rdrop": {"enabled": True}}, "seed": 1}
    merged = deep_merge(base, {"loss": {"focal": {"enabled": False}}})
    assert merged == {"loss": {"focal": {"enabled": False, "gamma": 2.0}, "rdrop": {"enabled": True}}, "seed": 1}
    assert base["loss"]["focal"]["enabled"] is True


def test_with_updates_merges_nested_sections(tiny_params: Params) -> None:
    updated = tiny_params.with_updates(loss={"rdrop": {"enabled": False}})
    assert updated.loss.rdrop.enabled is False and updated.loss.rdrop.alpha == tiny_params.loss.rdrop.alpha
    assert updated.loss.focal == tiny_params.loss.focal


def test_every_configured_row_is_a_valid_params_change(tiny_params: Params) -> None:
    for name, overrides in tiny_params.ablation.rows.items():
        params = row_params(tiny_params, name)
        assert params.train.epochs == tiny_params.ablation.epochs
        assert params.train.output_dir == tiny_params.ablation.output_dir / folder_name(name)
        if "model" in overrides:
            assert params.model.use_crf == overrides["model"].get("use_crf", True)
    assert folder_name("BiLSTM+CRF+R-Drop+focal") == "bilstm-crf-r-drop-focal"


def test_ablate_trains_each_row_and_writes_table3(tiny_params: Params, real_sentences: list[Sentence], tmp_path) -> None:
    params = tiny_params.with_updates(
        ablation={"epochs": 1, "output_dir": tmp_path / "ablation", "reports_dir": tmp_path / "reports" / "ablation"},
        train={"max_steps": 6},
    )
    write_sentences(real_sentences[:30], params.prepare.output_dir / "test.parquet")
    rows = ablate(params, only=["softmax+CE", "BiLSTM+CRF+R-Drop+focal"])
    assert [r.name for r in rows] == ["softmax+CE", "BiLSTM+CRF+R-Drop+focal"]
    assert all(0.0 <= r.dev_f1 <= 1.0 and r.epochs_run == 1 for r in rows)
    for row in rows:  # each row's kept model, scored on test
        model = params.ablation.output_dir / folder_name(row.name) / "bert"
        assert row.test_f1 == score_model(row_params(params, row.name), model, "test")["f1"]
    table = json.loads((tmp_path / "reports" / "ablation" / "table3.json").read_text())
    assert [r["row"] for r in table] == [r.name for r in rows]
    assert "| softmax+CE |" in (tmp_path / "reports" / "ablation" / "table3.md").read_text()
    for row, has_crf in (("softmax-ce", False), ("bilstm-crf-r-drop-focal", True)):
        with safe_open(str(tmp_path / "ablation" / row / "bert" / MODEL_FILE), "pt") as weights:
            assert any(k.startswith("crf.") for k in weights.keys()) == has_crf  # noqa: SIM118 - safe_open has keys(), no iteration
