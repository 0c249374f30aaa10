"""Comparing run directories: what a resumed run must reproduce exactly."""

from __future__ import annotations

from pathlib import Path

from offmarl.train.run_dir import metrics_without_timing, run_differences, same_state

__all__ = ["assert_same_run_files", "metrics_without_timing", "same_state"]


def assert_same_run_files(run: Path, reference: Path) -> None:
    """Everything :func:`offmarl.train.run_dir.run_differences` compares equals the reference's."""
    assert run_differences(run, reference) == []
