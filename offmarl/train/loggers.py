"""Metric loggers of the fit loop: ``metrics.csv`` (always) and TensorBoard (when installed).

``metrics.csv`` has one row per logging window: ``step`` (updates done so far; env frames online),
``stage``, ``steps_per_s`` (steps -- env frames online -- per second of sampling + update time in the
window), ``wall_time`` (seconds since the run began,
checkpoints and evaluations included, summed over resumes), then every loss the algorithm
returned, averaged over the window, in the order the keys first appeared. Columns can grow: when a row
brings a key the file has no column for (e.g. the second stage of a multi-stage algorithm logs other
losses), the file is rewritten under the wider header and earlier rows get empty cells, so the file is
always one valid CSV table. Each row is flushed as it is written; on resume the rows past the checkpoint
are cut off so that every step appears once.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from offmarl.core.files import atomic_write_text

BASE_COLUMNS = ("step", "stage", "steps_per_s", "wall_time")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


class CSVLogger:
    """Appends rows to ``path``; ``keep_rows`` (resume) first cuts the file to its first ``keep_rows`` rows."""

    def __init__(self, path: str | Path, keep_rows: int | None = None):
        self.path = Path(path)
        self.columns: list[str] = list(BASE_COLUMNS)
        self.rows = 0
        if keep_rows is not None and self.path.exists():
            with open(self.path, newline="") as f:
                table = list(csv.reader(f))
            if table:
                self.columns = table[0]
                kept = table[1:1 + keep_rows]
                self.rows = len(kept)
                self._rewrite([self.columns] + kept)
        else:
            self._rewrite([self.columns])
        self._file = open(self.path, "a", newline="")
        self._writer = csv.writer(self._file)

    def _rewrite(self, table: list[list[str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerows(table)
        atomic_write_text(self.path, buf.getvalue())

    def _widen(self, new_keys: list[str]) -> None:
        self._file.close()
        with open(self.path, newline="") as f:
            table = list(csv.reader(f))
        self.columns += new_keys
        body = [row + [""] * (len(self.columns) - len(row)) for row in table[1:]]
        self._rewrite([self.columns] + body)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.writer(self._file)

    def log(self, row: dict[str, Any]) -> None:
        new_keys = [k for k in row if k not in self.columns]
        if new_keys:
            self._widen(new_keys)
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._file.flush()
        self.rows += 1

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger:
    """Scalars under ``log_dir``; on resume ``purge_step`` drops the events logged after the checkpoint."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def log(self, row: dict[str, Any], prefix: str = "train") -> None:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{key}", value, global_step=row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class LossWindow:
    """Running sums of the losses (and seconds spent) since the last ``metrics.csv`` row; kept in checkpoints."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.steps = 0
        self.seconds = 0.0
        self.stage: str | None = None

    def add(self, losses: dict[str, float], stage: str, seconds: float, steps: int = 1) -> None:
        """One update's losses, which took ``seconds`` and advanced the budget by ``steps`` (online: frames)."""
        self.stage = stage
        self.count += 1
        self.steps += steps
        self.seconds += seconds
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def row(self, step: int, wall_time: float) -> dict[str, Any]:
        """The metrics.csv row of this window: step, stage, steps/s, wall time, then the mean losses."""
        return {"step": step, "stage": self.stage, "steps_per_s": self.steps / max(self.seconds, 1e-9),
                "wall_time": wall_time, **{k: v / self.count for k, v in self.sums.items()}}

    def clear(self) -> None:
        self.sums, self.count, self.steps, self.seconds = {}, 0, 0, 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "steps": self.steps, "seconds": self.seconds,
                "stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["sums"]), int(state["count"])
        self.steps = int(state.get("steps", self.count))  # a checkpoint from before online runs: one per update
        self.seconds, self.stage = float(state["seconds"]), state["stage"]
