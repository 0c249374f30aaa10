"""Driving an algorithm's updates by hand, as the fit loop does (``offmarl.train.loop.fit``)."""

from __future__ import annotations

from typing import Any


def drive(algo: Any, sampler: Any, updates: int) -> list[dict[str, float]]:
    """``updates`` calls of ``algo.update(sampler.sample())``, continuing from the steps driven so far
    (``algo.driven_steps``: updates, or env frames for an online sampler's ``last_sample_frames``), each in
    the stage the schedule gives it, the next stage entered where the schedule begins it. Returns the losses."""
    schedule, logs = algo.schedule, []
    for _ in range(updates):
        step = getattr(algo, "driven_steps", 0)
        if step == 0:
            algo.enter_stage(schedule.stage_at(0))
        logs.append(algo.update(sampler.sample()))
        step += int(getattr(sampler, "last_sample_frames", 1))
        algo.driven_steps = step
        if step < schedule.total and schedule.stage_at(step) != algo.stage:
            algo.enter_stage(schedule.stage_at(step))
    return logs
