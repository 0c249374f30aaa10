"""``offmarl envs`` (list every environment) and ``offmarl envs render`` (GIF of one episode).

Listing builds one sub-env of each registered environment to read its spec; an environment whose
optional extra is missing, whose module is not built yet or that fails to build is still listed, with
the reason instead of its spec (listing never crashes).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from offmarl.envs import get_env_entry, list_envs, make_env


# ---- offmarl envs ----------------------------------------------------------------------------------
def describe_env(name: str) -> dict[str, Any]:
    """``{name, source, description, available, reason, spec}`` of registered env ``name``."""
    entry = get_env_entry(name)
    row: dict[str, Any] = {"name": entry.name, "source": entry.source, "description": entry.description,
                           "available": False, "reason": entry.unavailable_reason, "spec": None}
    if entry.unavailable_reason:
        return row
    module = entry.factory.partition(":")[0]
    if entry.source == "native" and not module_exists(module):
        row["reason"] = f"module {module} not built yet"
        return row
    try:
        env = make_env(name, num_envs=1, seed=0)
    except ImportError as exc:
        row["reason"] = f"needs the extra '{entry.source}' ({_first_line(exc)})"
        return row
    except Exception as exc:  # an env that cannot be built is reported, never fatal for the listing
        row["reason"] = f"cannot be built: {type(exc).__name__}: {_first_line(exc)}"
        return row
    try:
        row["spec"] = env.spec.to_dict()
    finally:
        env.close()
    row["available"] = True
    return row


def module_exists(module: str) -> bool:
    """Whether ``module`` can be found (without importing it); False also when a parent package is missing."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _space_text(spec: dict[str, Any]) -> str:
    action = spec["action_space"]
    if action["kind"] == "discrete":
        return f"Discrete({action['n']})"
    low, high = np.asarray(action["low"]), np.asarray(action["high"])
    bounds = f"[{low.min():g}, {high.max():g}]" if low.size else ""
    return f"Box({', '.join(map(str, action['shape']))}) {bounds}".strip()


def _obs_text(spec: dict[str, Any]) -> str:
    dims = spec["obs_dims"]
    return str(dims[0]) if len(set(dims)) == 1 else "/".join(map(str, dims))


def run_list(as_json: bool = False) -> None:
    """Print every registered environment (a rich table, or JSON only with ``as_json``)."""
    rows = [describe_env(entry.name) for entry in list_envs()]
    if as_json:
        print(json.dumps(rows, indent=2, default=str))  # default=str: an env's exotic kwargs never break the listing
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="offmarl environments")
    for column in ("name", "source", "agents", "obs dim", "action space", "limit"):
        table.add_column(column, no_wrap=True)
    table.add_column("description / status", overflow="fold", min_width=30)
    for row in rows:
        spec = row["spec"]
        if spec is None:
            table.add_row(row["name"], row["source"], "-", "-", "-", "-",
                          f"{escape(row['description'])}\n[red]unavailable: {escape(row['reason'])}[/red]")
        else:
            table.add_row(row["name"], row["source"], str(spec["n_agents"]), _obs_text(spec), _space_text(spec),
                          str(spec["episode_limit"]), escape(row["description"]))
    console = Console()
    if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)


# ---- offmarl envs render -----------------------------------------------------------------------------
def parse_env_set(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> kwargs, each value parsed with ``yaml.safe_load`` (``n_agents=4`` -> 4)."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env-set expects key=value, got {item!r}")
        try:
            kwargs[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--env-set {key.strip()}: cannot parse value {value!r} ({exc})") from exc
    return kwargs


def run_render(name: str, policy: str = "random", out: Path = Path("episode.gif"), seed: int = 0, fps: int = 8,
               env_set: Sequence[str] = ()) -> None:
    """Write a GIF of one episode of env ``name`` played by behaviour policy (or run directory) ``policy``
    (the one rollout-to-GIF of :func:`offmarl.train.evaluate.evaluate_policy`)."""
    from offmarl.policies.registry import make_behavior_policy
    from offmarl.train.evaluate import evaluate_policy

    if fps < 1:
        raise ValueError(f"--fps must be >= 1, got {fps}")
    kwargs = parse_env_set(env_set)
    run_dir = Path(policy)
    if run_dir.is_dir():
        from offmarl.train.experiment import load_run

        algo, _ = load_run(run_dir)
        if algo.spec.name != name:
            raise ValueError(f"run {run_dir} was trained on env {algo.spec.name!r}, not {name!r}")
        joint_policy, kwargs = algo.policies(), {**algo.spec.kwargs, **kwargs}
    else:
        spec = make_env(name, num_envs=1, **kwargs).spec
        joint_policy = make_behavior_policy(policy, spec, seed=seed)
    result = evaluate_policy(joint_policy, name, kwargs, episodes=1, seed=seed, render_path=out, fps=fps)
    print(f"wrote {out} ({result['render_frames']} frames, per-agent return "
          f"{np.round(result['per_agent_return'], 3).tolist()})")
