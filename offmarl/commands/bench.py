"""``offmarl bench``: not built yet (issue "Benchmark runner"); the commands say so and exit non-zero."""

from __future__ import annotations

_NOT_YET = "offmarl bench is not implemented yet (see the open issue 'Benchmark runner'); use `offmarl train` per run"


def run_bench_list() -> None:
    raise RuntimeError(_NOT_YET)


def run_bench(**_: object) -> None:
    raise RuntimeError(_NOT_YET)


def run_bench_table(**_: object) -> None:
    raise RuntimeError(_NOT_YET)
