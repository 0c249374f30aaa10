"""The built-in suites of Tseng et al.'s Highway and SMAC columns (Tables 1-3) beside the native-env ones."""

from __future__ import annotations

import re

import pytest

from offmarl.bench.suite import check_algorithms, check_datasets, load_suite

TIERS = ("good", "normal", "poor")
MAPS = ("smac_2s3z", "smac_3s5z", "smac_8m_vs_9m", "smac_3s5z_vs_3s6z")
TABLE1_ROWS = ["bc", "idt", "madt", "qmix", "ma_cql", "ma_icq", "ma_bcq", "teacher", "distill"]
TABLE3_ROWS = ["distill[conventional]", "distill[shared_mapping]", "distill[no_momentum]", "distill[no_mapping]",
               "distill[no_kl]", "distill[no_kl_no_mapping]", "distill", "distill[rel_mse]"]


@pytest.mark.parametrize("name, columns, rows", [
    ("tseng-table1-highway", [("tseng/highway/good/scripted", 0.25, "highway")], TABLE1_ROWS),
    ("tseng-table2-highway", [(f"tseng/highway/{t}/scripted", 0.25, f"highway_{t}") for t in TIERS], TABLE1_ROWS),
    ("tseng-table3-highway", [("tseng/highway/good/scripted", 0.25, "highway")], TABLE3_ROWS),
    ("tseng-table1-smax", [(f"tseng/{m}/good/trained", 1.0, m) for m in MAPS], TABLE1_ROWS),
    ("tseng-table3-smax", [(f"tseng/{m}/good/trained", 1.0, m) for m in MAPS], TABLE3_ROWS),
    ("tseng-table1-smax-scripted", [(f"tseng/{m}/good/scripted", 1.0, f"{m}_scripted") for m in MAPS], TABLE1_ROWS),
    ("tseng-table3-smax-scripted", [(f"tseng/{m}/good/scripted", 1.0, f"{m}_scripted") for m in MAPS], TABLE3_ROWS),
])
def test_column_suites(name, columns, rows):
    suite = load_suite(name)
    check_algorithms(suite)
    check_datasets(suite)
    assert [(d.recipe, d.scale, d.label) for d in suite.datasets] == columns
    assert [a.label for a in suite.algorithms] == rows
    assert len(suite.seeds) == 3
    # the settings of the native-env suite of the same table, so that `offmarl bench table` rows compare
    native = load_suite(re.match(r"tseng-table\d", name).group(0))
    assert suite.steps == native.steps and suite.eval_episodes == native.eval_episodes
    assert {a.label: (a.overrides, a.steps) for a in suite.algorithms} == \
        {a.label: (a.overrides, a.steps) for a in native.algorithms}
    assert "CPU-hours" in suite.cpu_scale and "ESTIMATE" not in suite.cpu_scale
