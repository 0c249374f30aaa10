"""A registered test algorithm that fails mid-training (imported by a bench suite's ``imports``)."""

from __future__ import annotations

import os

from offmarl.algos.base import register_algo
from offmarl.algos.bc import BC

FAIL_AT_UPDATE = 3


@register_algo
class FailingBC(BC):
    """bc that raises in its third update (unless ``BENCH_FAIL_FIXED=1``: the "fixed" retry succeeds)."""

    name = "bench_fail"

    def update(self, batch):
        self._bench_updates = getattr(self, "_bench_updates", 0) + 1
        if self._bench_updates >= FAIL_AT_UPDATE and os.environ.get("BENCH_FAIL_FIXED") != "1":
            raise RuntimeError("bench_fail: deliberate failure in update")
        return super().update(batch)
