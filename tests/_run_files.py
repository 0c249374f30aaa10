"""Comparing run directories: what a resumed run must reproduce exactly."""

from __future__ import annotations

import csv
from pathlib import Path

TIMING_COLUMNS = ("steps_per_s", "wall_time")  # measured time: differs between any two runs


def metrics_without_timing(path: Path) -> list[list[str]]:
    """metrics.csv as rows of cells, the timing columns left out (every other cell must match to the byte)."""
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    keep = [k for k, column in enumerate(table[0]) if column not in TIMING_COLUMNS]
    return [[row[k] for k in keep] for row in table]


def assert_same_run_files(run: Path, reference: Path) -> None:
    """metrics.csv (but for timing), curve.json and the best checkpoint's record equal the reference's."""
    assert metrics_without_timing(run / "metrics.csv") == metrics_without_timing(reference / "metrics.csv")
    assert (run / "curve.json").read_bytes() == (reference / "curve.json").read_bytes()
    best = Path("best") / "best.json"
    assert (run / best).exists() == (reference / best).exists()
    if (reference / best).exists():
        assert (run / best).read_bytes() == (reference / best).read_bytes()
