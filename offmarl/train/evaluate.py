"""Evaluation of a joint policy in an environment, and the ``eval.json`` every table is built from.

Protocol (DESIGN.md; Tseng et al. §4): ``episodes`` sub-envs run in one batched env (the rollout engine's
loop, :func:`offmarl.collect.engine.play`); each sub-env
contributes its FIRST episode only (sub-envs that finish keep stepping, auto-reset, but are masked out
of the returns, so short episodes do not get counted twice while long ones run). The policy acts once
per step for all sub-envs; after a sub-env auto-resets the policy is told with ``reset(B, mask)`` so it
clears that sub-env's context. ``return_mean`` / ``return_std`` are over episodes of the per-agent
average return (the papers' metric).

Data imported from other libraries names no environment of offmarl (``env_name`` ``external:<task>``,
:func:`has_environment`): its runs train, and their eval.json records the skipped evaluation
(:func:`skipped_evaluation`: every score null, ``skipped`` saying why).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from offmarl.collect.engine import play
from offmarl.core.files import atomic_write_json
from offmarl.data.validate import EXTERNAL_ENV_PREFIX
from offmarl.policies.base import DecentralizedPolicy

EVAL_SCHEMA_VERSION = 1


def has_environment(env_name: str) -> bool:
    """Whether offmarl has the environment ``env_name`` to evaluate in: not for ``external:<task>`` data."""
    return not env_name.startswith(EXTERNAL_ENV_PREFIX)


def skipped_evaluation(env_name: str) -> dict[str, Any]:
    """The :func:`evaluate_policy` result of a run offmarl cannot evaluate (``not has_environment``)."""
    return {"return_mean": None, "return_std": None, "per_agent_return": None, "episodes": 0, "win_rate": None,
            "skipped": f"offmarl has no environment for {env_name} (data imported from another library)"}


def evaluate_policy(policy: Any, env_name: str, env_kwargs: dict[str, Any], episodes: int, seed: int,
                    render_path: str | Path | None = None, fps: int = 8) -> dict[str, Any]:
    """Run ``episodes`` episodes of ``policy`` in ``make_env(env_name, **env_kwargs)``.

    ``policy``: a JointPolicy, or a list of per-agent AgentPolicy objects (run as a DecentralizedPolicy).

    Returns ``{"return_mean", "return_std", "per_agent_return" [n], "episodes", "returns" [episodes][n],
    "lengths" [episodes], "win_rate"}`` (``win_rate`` None unless the env reports ``info["win"]``).
    ``render_path``: a GIF of sub-env 0's first episode (:func:`write_gif`): its first observation's frame,
    then one after every step; the state its last action reached is drawn from ``final_state`` when the
    env offers ``render_state`` (``render`` shows the auto-reset episode by then), otherwise the episode
    ends on the frame before its last action. The result then holds ``render_frames``.
    """
    from offmarl.envs import make_env

    if episodes < 1:
        raise ValueError(f"evaluation needs episodes >= 1, got {episodes}")
    if isinstance(policy, (list, tuple)):
        policy = DecentralizedPolicy(policy)
    env = make_env(env_name, num_envs=episodes, seed=seed, **env_kwargs)
    try:
        limit = env.spec.episode_limit
        ts = env.reset(seed=seed)
        policy.reset(episodes)
        returns = np.zeros((episodes, env.spec.n_agents), dtype=np.float64)
        lengths = np.zeros(episodes, dtype=np.int64)
        active = np.ones(episodes, dtype=bool)
        wins: np.ndarray | None = None
        frames: list[np.ndarray] = []
        if render_path is not None:
            frames.append(env.render(0))
        for _, _, ts, _ in play(env, policy.act, lambda done: policy.reset(episodes, done), ts):
            returns += np.where(active[:, None], ts.reward, 0.0)
            lengths += active
            done = ts.done
            if render_path is not None and active[0]:
                if not done[0]:
                    frames.append(env.render(0))
                elif hasattr(env, "render_state"):
                    frames.append(env.render_state(ts.final_state[0]))
            if "win" in ts.info:
                wins = np.zeros(episodes, dtype=bool) if wins is None else wins
                ended = active & done
                wins[ended] = np.asarray(ts.info["win"], dtype=bool)[ended]
            active &= ~done
            if not active.any():
                break
            if lengths.max() > limit:
                raise RuntimeError(f"env {env_name!r} ran past its episode_limit {limit} without ending an episode")
    finally:
        env.close()
    if render_path is not None:
        write_gif(render_path, frames, fps)
    avg = returns.mean(axis=1)  # [episodes] per-agent average return
    result = {
        "return_mean": float(avg.mean()),
        "return_std": float(avg.std()),
        "per_agent_return": returns.mean(axis=0).tolist(),
        "episodes": int(episodes),
        "returns": returns.tolist(),
        "lengths": lengths.tolist(),
        "win_rate": None if wins is None else float(wins.mean()),
    }
    if render_path is not None:
        result["render_frames"] = len(frames)
    return result


def write_gif(path: str | Path, frames: list[np.ndarray], fps: int = 8) -> None:
    """An endlessly looping GIF of RGB ``frames`` at ``fps`` frames per second (parent folders created)."""
    import imageio.v3 as iio

    if fps < 1:
        raise ValueError(f"--fps must be >= 1, got {fps}")
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames).astype(np.uint8), extension=".gif", duration=1000.0 / fps, loop=0)


def write_eval_json(run_dir: str | Path, result: dict[str, Any], *, algo: str, dataset: str, seed: int,
                    curve: list[list[float]], checkpoint: str = "last", target_return: float | None = None,
                    steps: int | None = None, eval_seed: int | None = None, env: str | None = None,
                    env_kwargs: dict[str, Any] | None = None, win_curve: list[list[float]] | None = None,
                    normalization: dict[str, float | None] | None = None, absolute: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """Write ``run_dir/eval.json`` (DESIGN.md schema) from an :func:`evaluate_policy` result; return it.

    ``algo`` is the registry label (``distill[no_kl]``), ``dataset`` the label of what the run learned from
    (a table's column), ``seed`` the training seed, ``curve`` the ``[[step, mean, std], ...]`` of the
    evaluations during training. ``target_return`` None means the policy's own default (e.g. the dataset's
    best return per agent). An online run (``env`` given: the env it learned in, ``env_kwargs``) records
    ``"dataset": null``, its column label as ``"source"``, steps counted in env frames
    (``protocol.steps_unit``) and the win rate of every evaluation during training (``win_curve``). A
    :func:`skipped_evaluation` is recorded with null scores and its ``skipped`` reason.
    ``normalization``: the task's ``random_return`` / ``reference_return`` (null when unknown), the inputs of
    the bench's normalized scores. ``absolute``: the :func:`evaluate_policy` result of the absolute metric
    (Gorsane et al. 2022: the best checkpoint on ten times the evaluation episodes), recorded as
    ``absolute_return_mean`` / ``absolute_return_std`` / ``absolute_episodes`` with
    ``protocol.absolute_metric: true``.
    """
    from offmarl import __version__

    record = {
        "schema_version": EVAL_SCHEMA_VERSION,
        "algo": algo,
        "dataset": None if env is not None else dataset,
        "source": dataset,
        "seed": int(seed),
        "return_mean": result["return_mean"],
        "return_std": result["return_std"],
        "per_agent_return": result["per_agent_return"],
        "episodes": result["episodes"],
        "win_rate": result.get("win_rate"),
        "random_return": (normalization or {}).get("random_return"),
        "reference_return": (normalization or {}).get("reference_return"),
        "curve": [[int(s), float(m), float(sd)] for s, m, sd in curve],
        "protocol": {"checkpoint": checkpoint, "target_return": target_return, "greedy": True, "steps": steps,
                     "eval_seed": eval_seed, "steps_unit": "updates" if env is None else "frames"},
        "returns": result.get("returns"),
        "lengths": result.get("lengths"),
        "offmarl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if result.get("skipped"):
        record["skipped"] = result["skipped"]
    if absolute is not None:
        record.update(absolute_return_mean=absolute["return_mean"], absolute_return_std=absolute["return_std"],
                      absolute_episodes=absolute["episodes"])
        record["protocol"]["absolute_metric"] = True
    if env is not None:
        record.update(env=env, env_kwargs=dict(env_kwargs or {}),
                      win_curve=[[int(s), float(w)] for s, w in win_curve or []])
    atomic_write_json(Path(run_dir) / "eval.json", record)
    return record
