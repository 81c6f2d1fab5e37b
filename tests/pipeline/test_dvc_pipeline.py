"""The real pipeline under real DVC, on the tiny profile (see tests/conftest.py)."""

import json

import yaml

from tests.conftest import dvc

STAGES = ["validate", "prepare", "train@bert", "train@roberta", "train@electra", "train@albert", "crossfit", "stack", "evaluate"]


def test_repro_ran_every_stage(tiny_repo):
    log = (tiny_repo / "repro.log").read_text()
    for stage in STAGES:
        assert f"Running stage '{stage}'" in log, stage
    for slot in ("bert", "roberta", "electra", "albert"):
        files = {p.name for p in (tiny_repo / "models" / slot).iterdir()}
        assert "model.safetensors" in files
        assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)


def test_dag_lists_the_stages(tiny_repo):
    result = dvc(tiny_repo, "dag", "--md")
    assert result.returncode == 0, result.stderr
    for stage in STAGES:
        assert stage in result.stdout


def test_metrics_file_has_every_model_on_dev_and_test(tiny_repo, tiny_metrics):
    for split in ("dev", "test"):
        for model in ("bert", "roberta", "electra", "albert", "shipped"):
            entry = tiny_metrics[split][model]
            assert {"precision", "recall", "f1", "per_type"} <= set(entry)
            assert 0.0 <= entry["f1"] <= 1.0
    shown = dvc(tiny_repo, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "shipped" in shown.stdout


def test_plots_show_renders_every_declared_plot(tiny_repo, tmp_path):
    result = dvc(tiny_repo, "plots", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["data"]
    assert {"f1_per_type", "reports/plots/confusion.csv", "reports/plots/learning_curves.png"} <= set(shown)
    assert any(key.startswith("reports/train/bert/plots/metrics") for key in shown)
    html = dvc(tiny_repo, "plots", "show", "-o", str(tmp_path / "plots"))
    assert html.returncode == 0, html.stderr
    assert (tmp_path / "plots" / "index.html").stat().st_size > 0


def test_error_analysis_marks_gold_and_predicted_entities(tiny_repo):
    errors = (tiny_repo / "reports" / "errors.md").read_text(encoding="utf-8")
    assert errors.count("- gold: ") == errors.count("- pred: ") > 0
    assert "]" in errors and ".txt:" in errors


def test_second_repro_does_nothing(tiny_repo):
    result = dvc(tiny_repo, "repro")
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout
    status = dvc(tiny_repo, "status", "--json")
    assert json.loads(status.stdout or "{}") == {}


def test_changing_a_param_reruns_only_its_dependents(tiny_repo):
    params_path = tiny_repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["stack"]["n_estimators"] += 1
    params_path.write_text(yaml.safe_dump(params, allow_unicode=True))
    result = dvc(tiny_repo, "repro")
    assert result.returncode == 0, result.stderr
    ran = {s for s in STAGES if f"Running stage '{s}'" in result.stdout}
    assert ran == {"stack", "evaluate"}, result.stdout


def test_release_retrains_what_ships_on_every_labeled_sentence(tiny_repo):
    import pyarrow.parquet as pq

    from healthner.ensemble.kinds import KINDS

    assert "Running stage 'release'" in (tiny_repo / "repro.log").read_text()
    evaluated = json.loads((tiny_repo / "models" / "ensemble" / "ensemble.json").read_text())
    shipped = json.loads((tiny_repo / "models" / "release" / "ensemble.json").read_text())
    assert (shipped["kind"], shipped["members"]) == (evaluated["kind"], evaluated["members"])
    assert shipped["model_version"] != evaluated["model_version"]
    rows = {s: pq.read_metadata(tiny_repo / "data" / "prepared" / f"{s}.parquet").num_rows for s in ("train", "dev", "test")}
    held_out = rows["dev"] if KINDS[shipped["kind"]].fitted else 0
    record = shipped["selection"]["release"]
    assert record == {"trained_on": sum(rows.values()) - held_out, "held_out_dev": held_out,
                      "evaluated_model_version": evaluated["model_version"]}
