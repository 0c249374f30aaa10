"""offmarl bench: the per-run records a report writes (``records/``) and tables re-aggregated from them alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_bench import TINY_BC, tiny_suite, write_eval
from test_bench_metric_curves import write_run, write_suite_record
from typer.testing import CliRunner

from offmarl.bench.records import REPORT_FILE
from offmarl.bench.report import report_dirs, suite_report
from offmarl.cli import app

REPORT_FILES = ("table.md", "table.csv", "bars.png", "curves_d1.png", "curves_d2.png", "metric_value_diff_d1.png")


def bench(*args: object):
    result = CliRunner().invoke(app, ["bench", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def suite_dir(tmp_path):
    """A suite directory as a bench stopped part-way leaves it: suite.json (algorithms A, B, C on d1, d2,
    seeds 0, 1, metric_curves) and 4 of its 12 run directories (A: 2 seeds logging value_diff, B: 1 seed on
    d1 and d2 that does not); its report not written yet."""
    root = tmp_path / "runs" / "hand"
    write_run(root, "A", "d1", 0, 1.0, [0.5, 0.4, 0.2])
    write_run(root, "A", "d1", 1, 2.0, [0.7, float("nan"), 0.4])
    write_run(root, "B", "d1", 0, 3.0, None)
    write_run(root, "B", "d2", 0, 3.0, None)
    write_suite_record(root, ["value_diff"])
    record = json.loads((root / "suite.json").read_text())
    (root / "suite.json").write_text(json.dumps({**record, "seeds": [0, 1]}))  # 12 runs planned, 4 done
    return root


def test_the_report_records_each_run_beside_the_table(suite_dir):
    report = suite_report(suite_dir)
    records = suite_dir / "records"
    assert report.records == records
    assert sorted(map(str, files_of(records))) == [
        "d1/A/seed0.json", "d1/A/seed0.metrics.csv", "d1/A/seed1.json", "d1/A/seed1.metrics.csv",
        "d1/B/seed0.json", "d1/B/seed0.metrics.csv", "d2/B/seed0.json", "d2/B/seed0.metrics.csv", REPORT_FILE]
    for run in suite_dir.glob("d*/*/seed*"):
        record = records / run.relative_to(suite_dir).parent / f"{run.name}.json"
        assert record.read_bytes() == (run / "eval.json").read_bytes()
        assert record.with_suffix(".metrics.csv").read_bytes() == (run / "metrics.csv").read_bytes()
    header = json.loads((records / REPORT_FILE).read_text())
    assert header["title"] == "hand" and header["suite"] == json.loads((suite_dir / "suite.json").read_text())


def test_a_results_folder_reaggregates_to_the_byte_without_the_runs(suite_dir, tmp_path):
    suite_report(suite_dir)
    written = {name: (suite_dir / name).read_bytes() for name in REPORT_FILES}
    results = tmp_path / "results"
    bench("table", suite_dir, "--out", results)  # the results folder results/hand, from the run directories
    assert {name: (results / "hand" / name).read_bytes() for name in REPORT_FILES} == written
    assert "Incomplete: 4 of 12 runs have an eval.json." in written["table.md"].decode()
    shutil.rmtree(tmp_path / "runs")

    for source in (results / "hand", results / "hand" / "records", results):  # the folder, its records, a root
        for name in REPORT_FILES:
            (results / "hand" / name).unlink()
        output = bench("table", source).output
        assert "records: " in output and "Incomplete: 4 of 12 runs have an eval.json." in output
        assert {name: (results / "hand" / name).read_bytes() for name in REPORT_FILES} == written, source

    again = tmp_path / "again"  # and from one results folder into another: the same table and records
    bench("table", results / "hand", "--out", again)
    assert (again / "hand" / "table.md").read_bytes() == written["table.md"]
    assert files_of(again / "hand" / "records") == files_of(results / "hand" / "records")


def test_several_suites_and_results_folders_under_one_root(tmp_path):
    """`offmarl bench table ROOT` reports every suite directory (from its runs) and every results folder
    (from its records) under ROOT, each on its own."""
    root = tmp_path / "root"
    for name, ret in (("one", 1.0), ("two", 2.0), ("three", 3.0)):
        write_eval(root / name, "A", "d1", 0, ret)
        write_suite_record(root / name, None)
    bench("table", root)
    for name in ("one", "two"):  # now results folders: their records only
        for run in (root / name / "d1").iterdir():
            shutil.rmtree(run)
    assert report_dirs(root) == [root / "one", root / "three", root / "two"]
    output = bench("table", root).output
    for name, ret in (("one", 1.0), ("two", 2.0), ("three", 3.0)):
        assert f"| A | **{ret:.2f} ± 0.00** |" in (root / name / "table.md").read_text()
        assert f"## {name}" in output


def test_out_refuses_two_folders_of_one_name(tmp_path):
    for parent in ("a", "b"):
        write_eval(tmp_path / "runs" / parent / "same", "A", "d1", 0, 1.0)
        write_suite_record(tmp_path / "runs" / parent / "same", None)
    result = CliRunner().invoke(app, ["bench", "table", str(tmp_path / "runs"), "--out", str(tmp_path / "results")])
    assert result.exit_code == 2 and "more than one folder under" in result.output
    assert f"is named 'same' and would write {tmp_path / 'results' / 'same'}" in result.output
    assert not (tmp_path / "results").exists()


def test_records_follow_the_table(suite_dir):
    """A run that left the table (here: its eval.json deleted) loses its record at the next report; files
    that are not records are left alone."""
    suite_report(suite_dir)
    (suite_dir / "records" / "notes.txt").write_text("mine")
    shutil.rmtree(suite_dir / "d2")
    suite_report(suite_dir)
    assert not (suite_dir / "records" / "d2").exists()
    assert (suite_dir / "records" / "notes.txt").read_text() == "mine"
    assert (suite_dir / "records" / "d1" / "B" / "seed0.json").exists()


@pytest.mark.parametrize("corrupt, text, message", [
    ("records/d1/A/seed1.json", "{not json", "cannot read eval.json: Expecting property name"),
    ("records/d1/A/seed1.json", '{"algo": "A"}', "not an offmarl eval.json (field 'dataset' missing"),
    (f"records/{REPORT_FILE}", "{not json", f"not the {REPORT_FILE} of a records folder (JSONDecodeError"),
    (f"records/{REPORT_FILE}", '{"title": "hand"}', f"not the {REPORT_FILE} of a records folder (KeyError: 'suite')"),
])
def test_a_corrupt_record_is_refused_naming_the_file(suite_dir, corrupt, text, message):
    suite_report(suite_dir)
    for run in suite_dir.glob("d*"):
        shutil.rmtree(run)
    (suite_dir / corrupt).write_text(text)
    result = CliRunner().invoke(app, ["bench", "table", str(suite_dir)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {suite_dir / corrupt}: {message}"), result.output


def test_nothing_to_aggregate_says_where_it_looked(tmp_path):
    result = CliRunner().invoke(app, ["bench", "table", str(tmp_path)])
    assert result.exit_code == 2
    assert f"no eval.json under {tmp_path} (and no records/ folder of an earlier report)" in result.output


@pytest.mark.timeout(240)
def test_a_bench_run_records_its_runs_and_its_table_comes_back_from_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    suite = tiny_suite(tmp_path / "recorded.yaml", seeds=2, algorithms=[TINY_BC])
    out = tmp_path / "runs"
    run = bench("run", suite, "--out", out, "--workers", "1")
    suite_dir = out / "tiny"
    assert f"records: {suite_dir / 'records'}" in run.output
    for seed in (0, 1):
        record = suite_dir / "records" / "equal_space" / "bc" / f"seed{seed}.json"
        assert record.read_bytes() == (suite_dir / "equal_space" / "bc" / f"seed{seed}" / "eval.json").read_bytes()
    assert not list((suite_dir / "records").rglob("*.metrics.csv"))  # the suite plots no metric_curves
    table = {name: (suite_dir / name).read_bytes() for name in ("table.md", "table.csv")}

    results = tmp_path / "results" / "tiny"
    results.mkdir(parents=True)
    shutil.copytree(suite_dir / "records", results / "records")
    shutil.rmtree(out)
    bench("table", results)
    assert {name: (results / name).read_bytes() for name in table} == table
