"""``offmarl info PATH [--json] [--agent I]``: validate a dataset file and print its card and statistics.

Without ``--json`` the card and statistics are printed as a table (one table per agent group for a
per-agent file read without ``--agent``), with the behaviour level names and, per agent, how many
episodes it played at each level when the dataset records them (``behavior_levels``). With ``--json``
stdout holds ONLY JSON: the card dict (which carries ``episodes``, ``return_mean`` and ``return_std`` at
top level -- ``return_*`` is the per-agent average episode return, the papers' metric -- and
``behavior_level_names``), or ``{"per_agent": true, "agents": [card, ...]}`` for a
per-agent file without ``--agent``. An invalid file raises :class:`offmarl.errors.DatasetError`, which
the CLI prints as one ``error: ...`` line with exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.io import dataset_info, load_dataset


def _num(x: float) -> str:
    return f"{x:.3f}"


def _stat(mean: float, std: float, low: float, high: float) -> str:
    return f"{_num(mean)} ± {_num(std)}  [{_num(low)}, {_num(high)}]"


def _compact(values: Sequence[float]) -> str:
    """One number when all entries are equal (a Box with uniform bounds), else the list."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    return f"{arr[0]:g}" if arr.size and np.all(arr == arr[0]) else "[" + ", ".join(f"{v:g}" for v in arr) + "]"


def _action_space(spec_dict: dict[str, Any], has_avail: bool) -> str:
    space = spec_dict["action_space"]
    if space["kind"] == "discrete":
        return f"discrete, {space['n']} actions" + (" (with avail_actions masks)" if has_avail else "")
    return (f"continuous Box, shape {list(space['shape'])}, low {_compact(space['low'])}, "
            f"high {_compact(space['high'])}")


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if value not in (None, {}, []) else "-"


def _table(ds: MultiAgentDataset, title: str) -> Table:
    card = ds.card
    spec = card.env_spec
    lengths = ds.episode_lengths
    table = Table(title=escape(title), show_header=True, header_style="bold")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("env", card.env_name + (f"  {_as_json(card.env_kwargs)}" if card.env_kwargs else "")),
        ("agents", str(card.n_agents)),
        ("agent types", ", ".join(card.agent_types)),
        ("obs dims", f"{list(card.obs_dims)} (stored width {ds.obs.shape[2]}, zero-padded)"),
        ("state dim", str(ds.state.shape[1]) if ds.state is not None else "- (no state)"),
        ("action kind", card.action_kind),
        ("action space", _action_space(spec, ds.avail_actions is not None)),
        ("behaviour", _as_json(card.behavior)),
        ("quality tier", card.quality_tier or "-"),
        ("recipe", card.recipe or "-"),
        ("state_only", str(card.state_only).lower()),
        ("seed", "-" if card.seed is None else str(card.seed)),
        ("episodes", str(card.episodes)),
        ("steps", str(card.steps)),
        ("episode length", f"mean {lengths.mean():.2f}, min {int(lengths.min())}, max {int(lengths.max())}"),
        ("terminated / truncated", f"{int(ds.terminals.sum())} / {int(ds.truncations.sum())} episodes"),
        ("return (per-agent avg)", _stat(card.return_mean, card.return_std, card.return_min, card.return_max)),
        ("team return", _stat(card.team_return_mean, card.team_return_std, card.team_return_min,
                              card.team_return_max)),
        ("normalization returns", "- (not measured)" if card.random_return is None else
         f"random {card.random_return:.4g}, reference {card.reference_return:.4g}"),
    ]
    for i in range(card.n_agents):
        rows.append((f"return agent {i} ({card.agent_types[i]})",
                     _stat(card.per_agent_return_mean[i], card.per_agent_return_std[i],
                           card.per_agent_return_min[i], card.per_agent_return_max[i])))
    rows += _level_rows(ds)
    if card.extra:
        rows.append(("extra", _as_json(card.extra)))
    rows += [
        ("format version", str(card.format_version)),
        ("created", card.created or "-"),
        ("offmarl version", card.offmarl_version or "-"),
    ]
    for name, value in rows:
        table.add_row(escape(name), escape(value))  # card text like "[a]" is data, not rich markup
    return table


def level_counts(ds: MultiAgentDataset) -> list[dict[str, int]] | None:
    """Per agent, how many episodes it played at each of the card's behaviour levels (None without levels)."""
    if ds.behavior_levels is None:
        return None
    names = ds.card.behavior_level_names
    counts = [np.bincount(ds.behavior_levels[:, i], minlength=len(names)) for i in range(ds.n_agents)]  # [n][K]
    return [{name: int(c[k]) for k, name in enumerate(names)} for c in counts]


def _level_rows(ds: MultiAgentDataset) -> list[tuple[str, str]]:
    counts = level_counts(ds)
    if counts is None:
        return [("behaviour levels", "- (not recorded)")]
    rows = [("behaviour levels", ", ".join(ds.card.behavior_level_names))]
    for i, per_level in enumerate(counts):
        rows.append((f"levels agent {i}", ", ".join(f"{name} {n}" for name, n in per_level.items() if n)
                     + " episodes"))
    return rows


def run_info(path: Path, as_json: bool, agent: int | None) -> None:
    """Validate the dataset at ``path`` (group ``agent`` of a per-agent file) and print it (module doc)."""
    header = dataset_info(path)  # cheap: tells a per-agent file apart before reading arrays
    if header["per_agent"] and agent is None:
        datasets = [load_dataset(path, agent=i) for i in range(header["n_groups"])]
        titles = [f"{path} [agent_{i}]" for i in range(len(datasets))]
    else:
        datasets = [load_dataset(path, agent=agent)]
        titles = [str(path) if agent is None else f"{path} [agent_{agent}]"]

    if as_json:
        if header["per_agent"] and agent is None:
            payload: Any = {"per_agent": True, "agents": [ds.card.to_dict() for ds in datasets]}
        else:
            payload = datasets[0].card.to_dict()
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    console = Console()
    for ds, title in zip(datasets, titles):
        console.print(_table(ds, title))
