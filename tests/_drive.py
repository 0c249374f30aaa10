"""Driving an algorithm's updates by hand, as the fit loop does (``offmarl.train.loop.fit``)."""

from __future__ import annotations

from typing import Any


def drive(algo: Any, sampler: Any, updates: int) -> list[dict[str, float]]:
    """``updates`` calls of ``algo.update(sampler.sample())``, continuing from the steps driven so far
    (``algo.driven_steps``), each stage entered where the schedule begins it. Returns the losses."""
    schedule, logs = algo.schedule, []
    for _ in range(updates):
        step = getattr(algo, "driven_steps", 0)
        if step == 0:
            algo.enter_stage(schedule.stage_at(0))
        logs.append(algo.update(sampler.sample()))
        algo.driven_steps = step + 1
        if step + 1 < schedule.total and schedule.stage_at(step + 1) != algo.stage:
            algo.enter_stage(schedule.stage_at(step + 1))
    return logs
