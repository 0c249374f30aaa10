"""The machine a run ran on, as recorded in a run's ``config.json`` (training times are only comparable on one)."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    """The CPU's model name as ``/proc/cpuinfo`` gives it (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
