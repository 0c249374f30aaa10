"""offmarl bench on Ray: the same runs as Ray tasks on a local Ray (skipped when ray is not installed)."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (optional extra: pip install 'offmarl[ray]'; "
                                        "`make test` installs it)")

from test_bench import tiny_suite  # noqa: E402

from offmarl.bench.report import suite_report  # noqa: E402
from offmarl.bench.runner import STATUS_DONE, run_suite  # noqa: E402
from offmarl.bench.suite import load_suite  # noqa: E402


@pytest.fixture
def local_ray():
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.timeout(180)
def test_ray_backend_runs_a_two_run_suite_on_a_local_ray(tmp_path, monkeypatch, local_ray):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    suite = load_suite(tiny_suite(tmp_path / "ray.yaml", seeds=2))
    result = run_suite(suite, backend="ray", workers=2, out=tmp_path / "runs", echo=lambda _: None, progress=False)
    assert [o.status for o in result.outcomes] == [STATUS_DONE, STATUS_DONE]
    assert ray.is_initialized() and ray.cluster_resources().get("CPU", 0) >= 1
    runs = [tmp_path / "runs" / "tiny" / "equal_space" / "bc" / f"seed{k}" for k in range(2)]
    for seed, run in enumerate(runs):
        record = json.loads((run / "eval.json").read_text())
        assert record["algo"] == "bc" and record["dataset"] == "equal_space" and record["seed"] == seed
        assert record["protocol"]["steps"] == 20 and record["episodes"] == 2
    threads = json.loads((runs[0] / "config.json").read_text())["torch_threads"]
    assert threads == max(1, int(ray.cluster_resources()["CPU"]) // 2)  # cores // workers per task
    report = suite_report(result.suite_dir, result.eval_files)
    assert "| bc |" in report.markdown and report.table_md.exists()

    # a second bench on the same directory skips both runs without starting anything
    again = run_suite(suite, backend="ray", workers=2, out=tmp_path / "runs", echo=lambda _: None, progress=False)
    assert again.outcomes == [] and len(again.skipped) == 2
