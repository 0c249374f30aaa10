"""What the analysis scripts share: printing a markdown table and, when asked, writing it to a file; reading a
sit run's Stage II record."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from offmarl.train.experiment import run_config


def emit(lines: list[str], out: Path | None) -> None:
    """Print ``lines`` as one text; with ``out``, also write it there."""
    text = "\n".join(lines)
    print(text)
    if out is not None:
        out.write_text(text + "\n")


def tabulate_runs(description: str, header: str, rows_of: Callable[[Path], list[str]], note: str) -> None:
    """The command line of a script that reads runs into one table: ``RUN [RUN ...] [--out FILE]``; ``header``
    is the table's header row (its separator row is added), ``note`` the line printed under it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for run in args.runs:
        lines += rows_of(run)
    emit(lines + ["", note], args.out)


def sit_run_config(run: Path) -> dict[str, Any]:
    """``run``'s config.json, after checking that it is a sit run."""
    config = run_config(run)
    if config.get("algo") != "sit":
        raise SystemExit(f"{run}: not a sit run (algo {config.get('algo')!r})")
    return config


def sit_stage_two(run: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A sit run's config and its Stage II record ``dper/dper.pt`` (r̂, û, p̂, the sampling priorities)."""
    config = sit_run_config(run)
    record = run / "dper" / "dper.pt"
    if not record.is_file():
        raise SystemExit(f"{run}: no {record.relative_to(run)} (the run has not finished its Stage II)")
    return config, torch.load(record, weights_only=True)
