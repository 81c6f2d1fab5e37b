"""The real pipeline under real DVC, on the tiny profile (see tests/conftest.py)."""

import json

import yaml

from tests.conftest import dvc

STAGES = ["validate", "prepare", "train@bert", "train@roberta", "train@electra", "train@albert", "crossfit", "stack",
          "evaluate", "unlabeled", "teacher", "teach", "student"]


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
    # the teacher is fit with the stack's settings and the student's rule reads the stack's scores: both follow it
    assert {"stack", "evaluate"} <= ran <= {"stack", "evaluate", "teacher", "teach", "student"}, result.stdout


def test_release_retrains_what_ships_on_every_labeled_sentence(tiny_repo):
    import pyarrow.parquet as pq

    from healthner.ensemble.kinds import KINDS

    assert "Running stage 'release'" in (tiny_repo / "repro.log").read_text()
    # release.source_dir: what the student stage's rule shipped (the stack's model or the student)
    evaluated = json.loads((tiny_repo / "models" / "shipped" / "ensemble.json").read_text())
    shipped = json.loads((tiny_repo / "models" / "release" / "ensemble.json").read_text())
    assert (shipped["kind"], shipped["members"]) == (evaluated["kind"], evaluated["members"])
    assert shipped["model_version"] != evaluated["model_version"]
    rows = {s: pq.read_metadata(tiny_repo / "data" / "prepared" / f"{s}.parquet").num_rows for s in ("train", "dev", "test")}
    held_out = rows["dev"] if KINDS[shipped["kind"]].fitted else 0
    record = shipped["selection"]["release"]
    assert record == {"trained_on": sum(rows.values()) - held_out, "held_out_dev": held_out,
                      "evaluated_model_version": evaluated["model_version"]}


def test_teacher_labels_the_unlabeled_sentences_and_the_rule_sees_the_student(tiny_repo):
    import hashlib

    import numpy as np
    import pyarrow.parquet as pq
    import pytest

    from healthner.corpus.labels import TAGS
    from healthner.ensemble.shipped import Ensemble, read_manifest
    from healthner.errors import ModelIntegrityError

    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    silver = pq.read_table(tiny_repo / "data" / "silver" / "silver.parquet").to_pylist()
    unlabeled = pq.read_table(tiny_repo / "data" / "unlabeled" / "sentences.parquet", columns=["text"]).column("text")
    assert [row["text"] for row in silver] == unlabeled.to_pylist()[: params["teach"]["max_sentences"]]
    for row in silver:
        probs = np.asarray(row["marginals"], dtype=np.float64)
        assert probs.shape == (len(row["text"]), len(TAGS)) and len(row["tags"]) == len(row["text"])
        assert np.allclose(probs.sum(1), 1.0, atol=1e-3)
        own = probs[np.arange(len(row["tags"])), [TAGS.index(t) for t in row["tags"]]].mean()
        assert row["confidence"] == pytest.approx(own, abs=1e-4)
    teach = json.loads((tiny_repo / "reports" / "teach.json").read_text())
    ensemble = read_manifest(tiny_repo / "models" / "ensemble")
    teacher = read_manifest(tiny_repo / "models" / "teacher")  # teach.kind: the vote of every member, forced
    assert (teacher["kind"], teacher["members"]) == ("vote", params["stack"]["members"])
    assert teacher["selection"]["chosen"]["reason"] == "stack.kind is vote"
    assert teach["teacher"]["model_version"] == teacher["model_version"] and teach["labelled"] == len(silver)
    shares = [row["share"] for row in teach["dev_thresholds"]]
    assert shares == sorted(shares, reverse=True) and shares[0] == 1.0  # threshold 0 keeps every dev sentence

    report = json.loads((tiny_repo / "reports" / "student.json").read_text())
    counts = report["silver"]
    assert counts["sentences"] + counts["below_confidence"] + counts["outside_fraction"] == len(silver)
    assert list(report["seeds"]) == [str(s) for s in params["student"]["seeds"]]
    shipped_dir = tiny_repo / "models" / "shipped"
    shipped = read_manifest(shipped_dir)
    assert shipped["selection"]["students_dev_f1"]["student"]["runs"] == [r["dev_f1"] for r in report["seeds"].values()]
    assert Ensemble.load(shipped_dir).predict([list("頭痛發燒三天")])[0].tags
    if shipped["members"] != ["student"]:  # the stack's model, unchanged
        assert shipped["model_version"] == ensemble["model_version"]
        return
    origin = shipped["provenance"]
    assert origin["teacher"]["model_version"] == teacher["model_version"]
    published = (tiny_repo / "data" / "silver" / "silver.parquet").read_bytes()
    assert origin["silver"]["sha256"] == hashlib.sha256(published).hexdigest()
    manifest_path = shipped_dir / "ensemble.json"
    saved = manifest_path.read_text()
    try:
        edited = json.loads(saved)
        edited["provenance"]["silver"]["sentences"] += 1
        manifest_path.write_text(json.dumps(edited))
        with pytest.raises(ModelIntegrityError):
            read_manifest(shipped_dir)
    finally:
        manifest_path.write_text(saved)
