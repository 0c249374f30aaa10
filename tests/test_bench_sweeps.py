"""offmarl bench: dataset-size sweeps (one recipe at several scales) -> return vs size (Tseng et al. Fig. 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_bench_metric_curves import PNG, write_run

from offmarl.bench import plots
from offmarl.bench.report import suite_report
from offmarl.bench.suite import check_algorithms, check_datasets, load_suite, parse_suite
from offmarl.bench.sweeps import size_sweeps

GRID = "tseng/grid_world/good"  # 4000 episodes at scale 1


def _entry(label: str, recipe: str | None, scale: float = 1.0, seed: int = 0) -> dict:
    return {"label": label, "recipe": recipe, "path": None if recipe else f"/data/{label}.h5", "scale": scale,
            "seed": seed}


def test_same_recipe_at_several_scales_parses_as_distinct_columns():
    suite = parse_suite({"name": "s", "description": "d", "steps": 10, "algorithms": ["bc"], "datasets": [
        {"recipe": GRID, "scale": 0.1, "label": "g10"}, {"recipe": GRID, "scale": 0.5, "label": "g50"}]}, "s.yaml")
    assert [(d.recipe, d.scale, d.label) for d in suite.datasets] == [(GRID, 0.1, "g10"), (GRID, 0.5, "g50")]
    with pytest.raises(ValueError, match="label 'grid_world_good' appears more than once"):
        parse_suite({"name": "s", "description": "d", "steps": 10, "algorithms": ["bc"], "datasets": [
            {"recipe": GRID, "scale": 0.1}, {"recipe": GRID, "scale": 0.5}]}, "s.yaml")


def test_sweeps_are_recognised_from_the_dataset_entries():
    entries = [_entry("g50", GRID, 0.5), _entry("other", "tseng/fill_in"), _entry("g10", GRID, 0.1),
               _entry("seed1", GRID, 0.25, seed=1), _entry("file", None), _entry("g100", GRID, 1.0),
               {"label": "env", "recipe": None, "env": "smac_2s3z"}]
    (sweep,) = size_sweeps(entries)  # fill_in: one scale; seed 1: another collection with one scale
    assert (sweep.recipe, sweep.seed, sweep.unit) == (GRID, 0, "trajectories")
    assert [(p.label, p.scale, p.episodes) for p in sweep.points] == [("g10", 0.1, 400), ("g50", 0.5, 2000),
                                                                      ("g100", 1.0, 4000)]
    (unknown,) = size_sweeps([_entry("a", "no/such/recipe", 0.2), _entry("b", "no/such/recipe", 0.4)])
    assert unknown.unit == "scale" and [p.episodes for p in unknown.points] == [0.2, 0.4]
    assert size_sweeps([_entry("a", GRID, 0.5), _entry("b", GRID, 0.5, seed=1)]) == []


def write_sweep_suite(root: Path) -> None:
    """A on g10 / g50 / g100 (2 seeds each), B on g10 and g100 (1 seed), C only on g50 (one size: no line),
    plus a column outside the sweep."""
    returns = {("A", "g10"): [1.0, 2.0], ("A", "g50"): [3.0, 5.0], ("A", "g100"): [6.0, 6.0],
               ("B", "g10"): [0.5], ("B", "g100"): [4.0], ("C", "g50"): [2.0], ("A", "fill"): [9.0]}
    for (algo, ds), values in returns.items():
        for seed, ret in enumerate(values):
            write_run(root, algo, ds, seed, ret, None)
    suite = {"name": "sweep", "description": "hand-made", "algorithms": [{"label": a} for a in "ABC"],
             "datasets": [_entry("g100", GRID, 1.0), _entry("g10", GRID, 0.1), _entry("g50", GRID, 0.5),
                          _entry("fill", "tseng/fill_in", 1.0)]}
    (root / "suite.json").write_text(json.dumps({"suite": suite, "commands": ["offmarl bench run hand.yaml"]}))


def test_the_plot_and_the_section_hold_the_records_numbers(tmp_path, monkeypatch):
    root = tmp_path / "sweep"
    write_sweep_suite(root)
    drawn = []
    real = plots._line_with_band

    def spy(ax, x, center, low, high, label):
        drawn.append((label, np.asarray(x).tolist(), np.asarray(center).tolist(), np.asarray(low).tolist(),
                      np.asarray(high).tolist()))
        real(ax, x, center, low, high, label)

    monkeypatch.setattr(plots, "_line_with_band", spy)
    report = suite_report(root)
    sweep_lines = [d for d in drawn if d[1] in ([400.0, 2000.0, 4000.0], [400.0, 4000.0])]
    # mean ± std (ddof = 0) over seeds of the records' return_mean, by size: A 1.5 ± 0.5, 4 ± 1, 6 ± 0
    assert sweep_lines == [("A", [400.0, 2000.0, 4000.0], [1.5, 4.0, 6.0], [1.0, 3.0, 6.0], [2.0, 5.0, 6.0]),
                           ("B", [400.0, 4000.0], [0.5, 4.0], [0.5, 4.0], [0.5, 4.0])]
    assert (root / plots.SIZE_SWEEP_PLOT).read_bytes()[:8] == PNG and root / plots.SIZE_SWEEP_PLOT in report.plots
    section = report.markdown[report.markdown.index("### Return vs dataset size"):].splitlines()
    assert section[2] == f"{GRID} (seed 0):"
    assert section[4] == ("| algorithm | 400 trajectories (g10, scale 0.1) | 2000 trajectories (g50, scale 0.5) | "
                          "4000 trajectories (g100, scale 1) |")
    assert section[6:9] == ["| A | **1.50 ± 0.50** | **4.00 ± 1.00** | **6.00 ± 0.00** |",
                            "| B | 0.50 ± 0.00 † | – | 4.00 ± 0.00 † |", "| C | – | 2.00 ± 0.00 † | – |"]
    assert "Plot: `data_efficiency.png`." in section[10]

    # a results folder re-aggregated from its records alone (no runs): the same section and the same lines
    results = tmp_path / "results" / "sweep"
    suite_report(root, out_dir=results)
    shutil.rmtree(root)
    drawn.clear()
    again = suite_report(results)
    assert again.markdown == report.markdown
    assert [d for d in drawn if d[1] in ([400.0, 2000.0, 4000.0], [400.0, 4000.0])] == sweep_lines


def test_no_sweep_no_plot(tmp_path):
    root = tmp_path / "flat"
    write_run(root, "A", "g10", 0, 1.0, None)
    (root / "suite.json").write_text(json.dumps({"suite": {"name": "flat", "description": "d", "algorithms": [],
                                                           "datasets": [_entry("g10", GRID, 0.1)]}}))
    report = suite_report(root)
    assert "### Return vs dataset size" not in report.markdown and not (root / plots.SIZE_SWEEP_PLOT).exists()


@pytest.mark.parametrize("name, recipe, sizes", [
    ("tseng-fig7-grid-world", GRID, [400, 1000, 2000, 4000]),
    ("tseng-fig7-highway", "tseng/highway/good/scripted", [100, 250, 500]),
])
def test_builtin_data_efficiency_suites(name, recipe, sizes):
    suite = load_suite(name)
    check_algorithms(suite)
    check_datasets(suite)
    (sweep,) = size_sweeps([d.to_dict() for d in suite.datasets])
    assert sweep.recipe == recipe and [p.episodes for p in sweep.points] == sizes
    labels = {a.label for a in suite.algorithms}
    assert {"distill", "distill[conventional]", "madt", "bc"} <= labels
    if "grid" in name:
        assert {"idt", "qmix", "ma_cql", "ma_icq", "ma_bcq"} <= labels
