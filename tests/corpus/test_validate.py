"""The validate step on REAL corpus files: a slice copied into tmp_path, one defect injected, the
exact outcome asserted (a hard failure naming FILE:LINE, or a repair / rejection counted).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params
from healthner.corpus.expectations import run_suites
from healthner.corpus.readers import Sentence
from healthner.corpus.validate import ValidationFailed, ValidationReport, gx_defects, validate

REPO = Path(__file__).resolve().parents[2]
FT, SM, WA, JSONL = (
    "rocling2023_multiner_FT.txt",
    "rocling2023_multiner_SM.txt",
    "rocling2023_multiner_WA.txt",
    "healthner_test.jsonl",
)
CRLF = b"\r\n"
SLICE = 30  # sentences per sliced file: enough structure, fast


# --- helpers: real slices, line edits, params pointing at tmp_path --------------------------------


def conll_slice(params: Params, name: str = FT, sentences: int = SLICE) -> bytes:
    """The first sentences of a real CoNLL file, bytes unchanged (CRLF, an empty line after each)."""
    blocks = (params.data.corpus_dir / name).read_bytes().split(CRLF * 2)
    return (CRLF * 2).join(blocks[:sentences]) + CRLF * 2


def jsonl_slice(params: Params, sentences: int = SLICE) -> bytes:
    lines = (params.data.corpus_dir / JSONL).read_bytes().split(b"\n")
    return b"\n".join(lines[:sentences]) + b"\n"


def lines_of(data: bytes) -> list[bytes]:
    return data.split(CRLF)


def set_line(data: bytes, number: int, new: bytes) -> bytes:
    """Replace line `number` (1-based) of a CRLF file."""
    lines = lines_of(data)
    lines[number - 1] = new
    return CRLF.join(lines)


def tag_at(data: bytes, number: int) -> str:
    line = lines_of(data)[number - 1].decode()
    return line.rpartition(" ")[2] if line.strip() else ""


def find_line(data: bytes, prev_ok: Callable[[str], bool]) -> int:
    """The first CoNLL line tagged O whose previous tag passes `prev_ok` and whose next tag is O."""
    for number in range(2, len(lines_of(data)) - 1):
        if tag_at(data, number) == "O" and prev_ok(tag_at(data, number - 1)) and tag_at(data, number + 1) == "O":
            return number
    raise AssertionError("no suitable line in the slice")


def retag(data: bytes, number: int, tag: str) -> bytes:
    char = lines_of(data)[number - 1].decode().rpartition(" ")[0]
    return set_line(data, number, f"{char} {tag}".encode())


def edit_json(data: bytes, number: int, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    lines = lines_of(data)
    record = json.loads(lines[number - 1])
    edit(record)
    lines[number - 1] = json.dumps(record, ensure_ascii=False).encode()
    return CRLF.join(lines)


def entry(name: str) -> dict[str, Any]:
    if name.endswith(".jsonl"):
        return {"name": name, "format": "healthner_jsonl"}
    return {"name": name, "format": "conll", "genre": name.removesuffix(".txt").rsplit("_", 1)[-1]}


def setup(base: Params, tmp_path: Path, files: dict[str, bytes | None], **validate_fields: Any) -> Params:
    """Write `files` (None: listed in params but absent) and return params with every path in tmp_path."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, data in files.items():
        if data is not None:
            (corpus / name).write_bytes(data)
    outputs = {
        "report": tmp_path / "reports" / "validation.json",
        "data_docs_dir": tmp_path / "reports" / "data_docs",
        "output": tmp_path / "data" / "corpus.parquet",
    }
    return base.with_updates(
        data={"corpus_dir": corpus, "files": [entry(n) for n in files]}, validate={**outputs, **validate_fields}
    )


def fails(params: Params) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        validate(params)
    return info.value


def read_report(params: Params) -> dict[str, Any]:
    return json.loads(params.validation.report.read_text(encoding="utf-8"))


def assert_one_hard(params: Params, name: str, line: int, says: str) -> None:
    """Exactly one hard defect, naming FILE:LINE; the report is written with status failed, no output."""
    failure = fails(params)
    where = f"{params.data.corpus_dir / name}:{line}: "
    assert [str(d)[: len(where)] for d in failure.defects] == [where], failure
    assert says in str(failure.defects[0])
    assert failure.details[0].startswith(where) and str(failure) == "validation failed: 1 hard defect(s)"
    report = read_report(params)
    assert report["status"] == "failed"
    assert report["totals"]["sentences_failed"] + report["totals"]["sentences_out"] == report["totals"]["sentences_in"]
    assert not params.validation.output.exists()


# --- CoNLL: hard defects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_line", "says"),
    [
        ("{char}", "missing tag"),
        ("{char} O O", "got 3"),
        ("{char} B-FOO", "unknown tag 'B-FOO'"),
        ("{char} i-CHEM", "unknown tag 'i-CHEM'"),
        ("{char} O-BODY", "unknown tag 'O-BODY'"),
    ],
    ids=["missing-tag", "three-fields", "unknown-tag", "lowercase-prefix", "O-X"],
)
def test_conll_bad_line_fails_at_its_line(base_params: Params, tmp_path: Path, new_line: str, says: str) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    char = lines_of(data)[number - 1].decode().rpartition(" ")[0]
    params = setup(base_params, tmp_path, {FT: set_line(data, number, new_line.format(char=char).encode())})
    assert_one_hard(params, FT, number, says)


def test_invalid_utf8_fails_at_its_line(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: set_line(data, number, b"\xff\xfe O")})
    assert_one_hard(params, FT, number, "invalid UTF-8 bytes at column 1")


def test_lone_cr_fails_at_its_line(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: set_line(data, number, lines_of(data)[number - 1].replace(b" ", b"\r"))})
    assert_one_hard(params, FT, number, "carriage return")


def test_empty_file_fails(base_params: Params, tmp_path: Path) -> None:
    assert_one_hard(setup(base_params, tmp_path, {FT: b""}), FT, 0, "file is empty")


def test_missing_file_fails(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {JSONL: jsonl_slice(base_params), FT: None})
    assert_one_hard(params, FT, 0, "file not found")


def test_missing_folder_fails(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {FT: conll_slice(base_params)})
    missing = tmp_path / "nowhere"
    with pytest.raises(ValidationFailed) as info:
        validate(params, corpus_dir=missing)
    assert [str(d) for d in info.value.defects] == [
        f"{missing}:0: corpus folder not found (data.corpus_dir or --corpus-dir)"
    ]


# --- BIO transitions under the three repair policies -----------------------------------------------


def test_i_after_o_repaired_under_conlleval(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: retag(data, number, "I-BODY")}, bio_repair="conlleval")
    report = validate(params)
    check = report.checks["bio_transition"]
    assert (check["count"], check["severity"]) == (1, "repaired")
    assert check["examples"] == [(f"{params.data.corpus_dir / FT}:{number}: I-BODY after O: read as the start of an "
                                  "entity (conlleval), rewritten to B-BODY")]
    stats = report.files[FT]
    assert (stats.sentences_in, stats.sentences_out, stats.sentences_rejected) == (SLICE, SLICE, 0)
    assert stats.entities == data.count(b" B-") + 1
    table = pq.read_table(params.validation.output).to_pylist()
    assert sum(row["tags"].count("B-BODY") for row in table) == data.count(b" B-BODY") + 1


def test_i_after_other_type_repaired(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev.startswith(("B-", "I-")) and not prev.endswith("-TIME"))
    prev = tag_at(data, number - 1)
    params = setup(base_params, tmp_path, {FT: retag(data, number, "I-TIME")})
    report = validate(params)
    assert report.checks["bio_transition"]["examples"] == [
        (f"{params.data.corpus_dir / FT}:{number}: I-TIME after {prev}: read as the start of an entity (conlleval), "
         "rewritten to B-TIME")
    ]
    assert report.files[FT].entities == data.count(b" B-") + 1


def test_i_after_o_rejected_under_reject(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: retag(data, number, "I-BODY")}, bio_repair="reject")
    report = validate(params)
    assert report.checks["bio_transition"]["severity"] == "rejected"
    assert report.checks["bio_transition"]["examples"][0].startswith(f"{params.data.corpus_dir / FT}:{number}: ")
    stats = report.files[FT]
    assert (stats.sentences_in, stats.sentences_out, stats.sentences_rejected) == (SLICE, SLICE - 1, 1)
    totals = read_report(params)["totals"]
    assert totals["sentences_in"] == totals["sentences_out"] + totals["sentences_rejected"] == SLICE
    assert pq.read_metadata(params.validation.output).num_rows == SLICE - 1


def test_i_after_o_fails_under_fail(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: retag(data, number, "I-BODY")}, bio_repair="fail")
    assert_one_hard(params, FT, number, "I-BODY after O: invalid BIO transition")


# --- soft defects: repaired or rejected, counted, reconciled -----------------------------------------


def test_bom_is_repaired_and_counted(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {FT: b"\xef\xbb\xbf" + conll_slice(base_params)})
    report = validate(params)
    assert (report.checks["bom"]["count"], report.checks["bom"]["severity"]) == (1, "repaired")
    assert report.files[FT].sentences_out == SLICE
    assert pq.read_table(params.validation.output).column("chars")[0].as_py()[0] != "\ufeff"


def test_conll_double_separator_rejects_an_empty_sentence(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    blocks = data.split(CRLF * 2)
    doubled = (CRLF * 2).join(blocks[:3]) + CRLF * 3 + (CRLF * 2).join(blocks[3:])
    empty_line = (CRLF * 2).join(blocks[:3]).count(CRLF) + 3
    params = setup(base_params, tmp_path, {FT: doubled})
    report = validate(params)
    assert report.checks["empty_sentence"]["examples"] == [
        f"{params.data.corpus_dir / FT}:{empty_line}: empty sentence (two separators in a row)"
    ]
    stats = report.files[FT]
    assert (stats.sentences_in, stats.sentences_out, stats.sentences_rejected) == (SLICE + 1, SLICE, 1)
    assert report.totals["reconciled"] and report.status == "passed"


def test_jsonl_empty_character_list_is_rejected(base_params: Params, tmp_path: Path) -> None:
    data = edit_json(jsonl_slice(base_params), 5, lambda r: r.update(sentence="", character=[], character_label=[]))
    params = setup(base_params, tmp_path, {JSONL: data})
    report = validate(params)
    assert report.checks["empty_sentence"]["examples"] == [f"{params.data.corpus_dir / JSONL}:5: empty sentence"]
    stats = report.files[JSONL]
    assert (stats.sentences_in, stats.sentences_out, stats.sentences_rejected) == (SLICE, SLICE - 1, 1)


def test_control_character_is_a_warning_and_kept(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params, SM)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {SM: set_line(data, number, b"\x08 O")})
    report = validate(params)
    check = report.checks["control_char"]
    assert (check["count"], check["severity"]) == (1, "warning")
    assert check["examples"][0].startswith(f"{params.data.corpus_dir / SM}:{number}: U+0008 (Cc)")
    assert sum(row["text"].count("\b") for row in pq.read_table(params.validation.output).to_pylist()) == 1


def test_leakage_and_duplicates_are_warnings(base_params: Params, tmp_path: Path) -> None:
    """A WA (held-out test) sentence copied into FT leaks; one repeated inside WA is a duplicate."""
    ft, wa = conll_slice(base_params, FT), conll_slice(base_params, WA)
    wa_blocks = wa.split(CRLF * 2)
    leaked_line = ft.count(CRLF) + 1
    repeated_line = wa.count(CRLF) + 1
    params = setup(base_params, tmp_path, {FT: ft + wa_blocks[0] + CRLF * 2, WA: wa + wa_blocks[1] + CRLF * 2})
    report = validate(params)
    corpus = params.data.corpus_dir
    leak, copies = report.checks["split_leakage"], report.checks["duplicate_in_split"]
    assert leak["count"] == 1 and leak["examples"][0].startswith(f"{corpus / FT}:{leaked_line}: same text in splits ")
    assert f"{corpus / WA}:1 (test)" in leak["examples"][0]
    original = f"{corpus / WA}:{wa_blocks[0].count(CRLF) + 3}"  # block 1 starts after block 0 and its separator
    assert copies["examples"] == [
        f"{corpus / WA}:{repeated_line}: exact duplicate (text and tags) of {original} in split test"
    ]
    assert report.checks["conflicting_tags"]["count"] == 0
    assert report.status == "passed" and report.totals["sentences_out"] == 2 * SLICE + 2


# --- JSON lines: hard defects ------------------------------------------------------------------------


def _break_json(data: bytes, number: int) -> bytes:
    return set_line(data, number, lines_of(data)[number - 1][:-5])


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_break_json, "invalid JSON"),
        (lambda d, n: edit_json(d, n, lambda r: r.pop("genre")), "missing field(s) ['genre']"),
        (lambda d, n: edit_json(d, n, lambda r: r["character_label"].pop()), "characters but"),
        (lambda d, n: edit_json(d, n, lambda r: r.update(genre="news")), "unknown genre 'NEWS'"),
        (lambda d, n: edit_json(d, n, lambda r: r.update(id="00000")), "sentence id 'healthner_test:00000' already"),
    ],
    ids=["invalid-json", "missing-key", "length-mismatch", "unknown-genre", "duplicate-id"],
)
def test_jsonl_bad_record_fails_at_its_line(
    base_params: Params, tmp_path: Path, damage: Callable[[bytes, int], bytes], says: str
) -> None:
    params = setup(base_params, tmp_path, {JSONL: damage(jsonl_slice(base_params), 7)})
    assert_one_hard(params, JSONL, 7, says)


# --- the CLI -------------------------------------------------------------------------------------------


def _params_file(params: Params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(by_alias=True, mode="json"), allow_unicode=True), encoding="utf-8")
    return path


def test_cli_exits_1_and_prints_file_line(base_params: Params, tmp_path: Path) -> None:
    data = conll_slice(base_params)
    number = find_line(data, lambda prev: prev == "O")
    params = setup(base_params, tmp_path, {FT: retag(data, number, "X-BODY"), JSONL: jsonl_slice(base_params)})
    broken = tmp_path / "broken"
    (tmp_path / "corpus").rename(broken)
    result = subprocess.run(
        [sys.executable, "-m", "healthner.cli", "validate", "--params", str(_params_file(params, tmp_path / "p.yaml")),
         "--corpus-dir", str(broken)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"{broken / FT}:{number}: unknown tag 'X-BODY'" in result.stderr.splitlines()
    assert "validation failed: 1 hard defect(s)" in result.stderr


def test_cli_passes_on_a_clean_folder(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {SM: conll_slice(base_params, SM)})
    result = CliRunner().invoke(app, ["validate", "--params", str(_params_file(params, tmp_path / "p.yaml"))])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"validation passed: 1 files, {SLICE} sentences in = {SLICE} out + 0 rejected")


# --- the GX suites on their own: each expectation catches what it is for --------------------------------


def test_gx_suites_catch_what_they_check(tmp_path: Path) -> None:
    good = Sentence("a:1", "a.txt", "FT", 1, ["頭", "痛"], ["B-SYMP", "I-SYMP"])
    broken = [
        good,
        replace(good, genre="NEWS"),  # unknown genre; also a repeated sent_id
        replace(good, sent_id="a:2", chars=[], tags=[]),  # empty sentence
        replace(good, sent_id="a:3", tags=["B-SYMP"]),  # fewer tags than characters
        replace(good, sent_id="a:4", chars=["頭痛", "痛"]),  # a token of two characters
        replace(good, sent_id="a:5", tags=["O", "I-DISE"]),  # I- after O
        replace(good, sent_id="a:6", tags=["B-FOO", "O"]),  # unknown tag
    ]
    outcome = run_suites(broken, ["FT", "SM", "WA"], tmp_path / "docs")
    failed = {(e["expectation"], tuple(e["columns"].values())): e["unexpected_count"] for e in outcome.failures()}
    assert failed == {
        ("expect_column_values_to_be_unique", ("sent_id",)): 2,
        ("expect_column_values_to_be_in_set", ("genre",)): 1,
        ("expect_column_values_to_be_between", ("n_chars",)): 1,
        ("expect_column_pair_values_to_be_equal", ("n_chars", "n_tags")): 1,
        ("expect_column_value_lengths_to_equal", ("char",)): 1,
        ("expect_column_values_to_be_in_set", ("tag",)): 1,
        ("expect_column_values_to_be_in_set", ("transition",)): 3,  # O>I-DISE, O>B-FOO, B-FOO>O
    }
    assert not outcome.success and (tmp_path / "docs" / "index.html").is_file()
    assert [d.check for d in gx_defects(outcome)] == ["gx_expectation"] * len(failed)


# --- the real corpus, all four files, GX included (once) ------------------------------------------------

REAL_COUNTS = {JSONL: (2531, 7305), FT: (2035, 10849), SM: (2208, 8292), WA: (2381, 9761)}
FT_BIO_LINES = [4477, 5170, 119918, 120000]


@pytest.fixture(scope="module")
def real_run(base_params: Params, tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, ValidationReport]:
    out = tmp_path_factory.mktemp("real")
    outputs = {"report": out / "validation.json", "data_docs_dir": out / "data_docs", "output": out / "corpus.parquet"}
    params = base_params.with_updates(validate=outputs)
    return params, validate(params)


def test_real_corpus_counts(real_run: tuple[Params, ValidationReport]) -> None:
    params, report = real_run
    assert report.status == "passed"
    assert {name: (s.sentences_in, s.entities) for name, s in report.files.items()} == REAL_COUNTS
    assert all(s.sentences_out == s.sentences_in and s.sentences_rejected == 0 for s in report.files.values())
    ft_raw = (params.data.corpus_dir / FT).read_bytes()
    assert ft_raw.count(b" B-") == 10845  # 4 entities more after conlleval repair
    bio = report.checks["bio_transition"]
    assert (bio["count"], bio["severity"]) == (4, "repaired")
    assert [e.split(": ")[0] for e in bio["examples"]] == [f"{params.data.corpus_dir / FT}:{n}" for n in FT_BIO_LINES]
    assert any(f"{SM}:" in e and "U+0008 (Cc)" in e for e in report.checks["control_char"]["examples"])


def test_real_corpus_report_and_outputs(real_run: tuple[Params, ValidationReport]) -> None:
    params, report = real_run
    saved = read_report(params)
    totals = saved["totals"]
    assert totals["sentences_in"] == totals["sentences_out"] + totals["sentences_rejected"] == sum(
        n for n, _ in REAL_COUNTS.values()
    )
    assert saved["gx"]["success"] is True
    assert all(s["unsuccessful_expectations"] == 0 for s in saved["gx"]["statistics"].values())
    assert {e["element_count"] for e in saved["gx"]["expectations"] if e["suite"] == "characters"} == {
        totals["characters"]
    }
    assert (params.validation.data_docs_dir / "index.html").is_file()
    assert pq.read_metadata(params.validation.output).num_rows == totals["sentences_out"]
    assert "validation passed" in report.summary()


def test_real_ft_under_fail_policy_names_the_four_lines(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {FT: (base_params.data.corpus_dir / FT).read_bytes()}, bio_repair="fail")
    failure = fails(params)
    where = [str(d).split(": ")[0] for d in failure.defects]
    assert where == [f"{params.data.corpus_dir / FT}:{n}" for n in FT_BIO_LINES]


# --- issue 18.6: a hostile JSON line is a defect at its line, never a crash -------------------------


def set_jsonl_line(data: bytes, number: int, new: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = new
    return b"\n".join(lines)


def surrogate_record(field: str) -> bytes:
    record = {
        "id": "s1", "genre": "FT", "sentence": "頭痛", "character": ["頭", "痛"], "character_label": ["B-SYMP", "I-SYMP"]
    }
    if field == "sentence":
        record.update(sentence="頭\ud800", character=["頭", "\ud800"])
    else:
        record[field] = "\udfff"
    return json.dumps(record, ensure_ascii=True).encode()  # the surrogate as the escape a JSON file holds


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: nested too deeply"),
        (b'{"id": ' + b"1" * 5_000 + b', "genre": "FT"}', "invalid JSON: Exceeds the limit (4300 digits)"),
        (surrogate_record("sentence"), "lone surrogate U+D800 in 'sentence'"),
        (surrogate_record("id"), "lone surrogate U+DFFF in 'id'"),
        (surrogate_record("genre"), "lone surrogate U+DFFF in 'genre'"),
        (json.dumps({"id": 1, "genre": "FT", "sentence": "x", "character": 5, "character_label": ["O"]}).encode(),
         "'character' must be a list of strings"),
        (json.dumps({"id": 1, "genre": "FT", "sentence": "x", "character": ["x"], "character_label": [{"a": 1}]}).encode(),
         "'character_label' must be a list of strings"),
    ],
    ids=["deep", "5000-digits", "surrogate-sentence", "surrogate-id", "surrogate-genre", "chars-not-list", "tag-not-str"],
)
def test_jsonl_hostile_line_fails_at_its_line(base_params: Params, tmp_path: Path, line: bytes, says: str) -> None:
    params = setup(base_params, tmp_path, {JSONL: set_jsonl_line(jsonl_slice(base_params), 7, line)})
    assert_one_hard(params, JSONL, 7, says)
    result = CliRunner().invoke(app, ["validate", "--params", str(_params_file(params, tmp_path / "p.yaml"))])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{params.data.corpus_dir / JSONL}:7: " in result.stderr


# --- issue 18.7: checking another folder leaves the pipeline's outputs alone -----------------------


def test_validating_another_folder_writes_none_of_the_pipelines_outputs(base_params: Params, tmp_path: Path) -> None:
    params = setup(base_params, tmp_path, {SM: conll_slice(base_params, SM)})
    cfg = params.validation
    for path in (cfg.report, cfg.output, cfg.data_docs_dir / "index.html"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"the pipeline's own")
    params_file = _params_file(params, tmp_path / "p.yaml")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    (good / SM).write_bytes(conll_slice(base_params, SM))
    (bad / SM).write_bytes(set_line(conll_slice(base_params, SM), 1, b"x"))
    runner = CliRunner()
    for other, code in ((bad, 1), (good, 0)):
        result = runner.invoke(app, ["validate", "--params", str(params_file), "--corpus-dir", str(other)])
        assert result.exit_code == code, result.output
        for path in (cfg.report, cfg.output, cfg.data_docs_dir / "index.html"):
            assert path.read_bytes() == b"the pipeline's own", (other, path)
    asked = tmp_path / "asked"
    result = runner.invoke(app, ["validate", "--params", str(params_file), "--corpus-dir", str(good),
                                 "--output", str(asked / "c.parquet"), "--report", str(asked / "r.json")])
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(asked / "c.parquet").num_rows == SLICE
    assert json.loads((asked / "r.json").read_text())["status"] == "passed"
    assert cfg.output.read_bytes() == b"the pipeline's own"


# --- issue 17.9: `healthner validate FILE... [--format]` -----------------------------------------------


def test_validate_given_files_with_the_same_rules(base_params: Params, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the pipeline's outputs are relative paths: none may appear here
    params_file = _params_file(base_params, tmp_path / "p.yaml")
    jsonl_file = tmp_path / "new.jsonl"
    jsonl_file.write_bytes(set_jsonl_line(jsonl_slice(base_params), 4, b"{oops"))
    conll_file = tmp_path / "ward7.data"
    conll_file.write_bytes(conll_slice(base_params, FT, 5))
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(jsonl_file), "--params", str(params_file)])
    assert result.exit_code == 1 and f"{jsonl_file}:4: invalid JSON" in result.stderr
    result = runner.invoke(
        app, ["validate", str(conll_file), "--format", "conll", "--genre", "FT", "--params", str(params_file)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("validation passed: 1 files, 5 sentences in") and "report not written" in result.stdout
    result = runner.invoke(app, ["validate", str(conll_file), "--params", str(params_file)])
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        f"error: {conll_file}: cannot tell the format from the extension (.jsonl, .txt, .conll, .json); pass --format"
    ]
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.txt"), "--genre", "FT", "--params", str(params_file)])
    assert result.exit_code == 1 and f"{tmp_path / 'absent.txt'}:0: file not found" in result.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "data").exists()


def test_a_given_conll_file_takes_its_genre_from_genre_never_its_name(
    base_params: Params, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    params_file = _params_file(base_params, tmp_path / "p.yaml")
    mine = tmp_path / "mydata.txt"
    mine.write_bytes(conll_slice(base_params, FT, 3))
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(mine), "--params", str(params_file)])
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        f"error: {mine}: a conll file carries no genre; pass --genre (one of validate.genres)"
    ]
    result = runner.invoke(
        app, ["validate", str(mine), "--genre", "SM", "--params", str(params_file), "--output", "c.parquet"]
    )
    assert result.exit_code == 0, result.output
    assert set(pq.read_table(tmp_path / "c.parquet").column("genre").to_pylist()) == {"SM"}
