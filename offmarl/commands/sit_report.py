"""``offmarl sit-report RUN [--out DIR]``: what SIT's first two stages found in a ``sit`` run (Tian et al.,
*Learning from Good Trajectories in Offline MARL*, "A Closer Look at SIT", Fig. 3 and App. E.4).

Reads the run directory only (``metrics.csv``, ``config.json`` and Stage II's ``dper/dper.pt``) and writes
to ``DIR`` (default ``RUN/sit_report``):

* ``weighted_reward.png`` (Fig. 3a/d): each agent's decomposed weighted reward r̂_i (Eq. 4, the ensemble
  mean of λ_i r_i, averaged over the batch) against the Stage I update, from ``metrics.csv``'s
  ``weighted_reward_<i>`` columns; beside it the unweighted r_i = f(o_i, a_i) (``individual_reward_<i>``)
  when the run logged it;
* ``priorities.png`` (Fig. 3b/c/e/f): per agent type (one replay each), the histogram of the rescaled
  priorities p̂ ∈ [0, 20] of every agent's individual trajectories (one per behaviour level for an agent
  whose level varies between episodes, when the dataset records it);
* ``sit_report.json`` and a printed table: per agent its type, mean r̂, mean û, mean p̂ and its share of
  its type's Eq. 7 sampling probability; when the dataset records each agent's behaviour level per episode,
  the same per (agent, level) -- the check that a random agent's trajectories score below a medium or expert
  one's. The levels are the dataset's ``behavior_levels`` (Stage II keeps them in ``dper.pt``) named by its
  card's ``behavior_level_names`` (in ``config.json``); for a run trained before datasets stored that field,
  its card's composition components (:func:`offmarl.collect.compositions.component_levels`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

#: Where the usual level names go in tables and plots (others follow, alphabetically), and their line styles.
LEVEL_ORDER = {"random": 0, "medium": 1, "expert": 2}
LEVEL_STYLES = {"random": ":", "medium": "--", "expert": "-"}


def levels_in_order(levels: np.ndarray) -> list[str]:
    """The distinct level names of ``levels``: random, medium, expert first, any others after them."""
    return sorted({str(x) for x in np.unique(levels)}, key=lambda name: (LEVEL_ORDER.get(name, len(LEVEL_ORDER)), name))


def load_sit_run(run: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """``(config.json, dper.pt tensors, dper.json)`` of a sit run; one-line errors when it is not one."""
    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run} is not a run directory (no config.json)")
    config = json.loads(config_path.read_text())
    if config.get("algo") != "sit":
        raise ValueError(f"{run} is a run of {config.get('algo')!r}; sit-report reads sit runs")
    dper_path = run / "dper" / "dper.pt"
    if not dper_path.is_file():
        raise FileNotFoundError(f"{run} has no dper/dper.pt: its Stage II (the decomposed replay) has not run yet")
    record = json.loads((run / "dper" / "dper.json").read_text())
    return config, torch.load(dper_path, weights_only=True), record


def weighted_reward_curves(metrics: Path, n_agents: int, column: str = "weighted_reward"
                           ) -> dict[int, tuple[list[float], list[float]]]:
    """``{agent: (steps, value)}`` of Stage I's ``<column>_<i>`` from ``metrics.csv`` (rows of stage
    ``ardnem``): ``weighted_reward`` (λ_i r_i) or ``individual_reward`` (r_i before weighting)."""
    curves: dict[int, tuple[list[float], list[float]]] = {i: ([], []) for i in range(n_agents)}
    if not metrics.is_file():
        return curves
    with open(metrics, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("stage") != "ardnem":
                continue
            for i in range(n_agents):
                text = (row.get(f"{column}_{i}") or "").strip()
                if text:
                    curves[i][0].append(float(row["step"]))
                    curves[i][1].append(float(text))
    return curves


def summarize(dper: dict[str, torch.Tensor], record: dict[str, Any], levels: np.ndarray | None) -> dict[str, Any]:
    """Per agent (and per agent and behaviour level, when ``levels [E, n]`` -- level names -- is known) the
    means of r̂, û, p̂ and the agent's share of its type's sampling probability."""
    weighted = dper["weighted_reward"].double().numpy()  # [T, n]
    uncertainty = dper["uncertainty"].double().numpy()  # [T, n]
    scores = dper["priority_score"].double().numpy()  # [E, n]
    probability = dper["sampling_probability"].double().numpy()  # [E, n]
    types = record["agent_types"]
    starts = dper["episode_starts"].numpy() if "episode_starts" in dper else None
    per_episode = (None if starts is None
                   else np.add.reduceat(weighted, starts, axis=0) / np.diff(np.append(starts, len(weighted)))[:, None])
    agents = []
    for i, agent_type in enumerate(types):
        row: dict[str, Any] = {"agent": i, "type": agent_type, "mean_weighted_reward": float(weighted[:, i].mean()),
                               "mean_uncertainty": float(uncertainty[:, i].mean()),
                               "mean_priority": float(scores[:, i].mean()),
                               "sampling_share": float(probability[:, i].sum())}
        if levels is not None:
            row["levels"] = {}
            for level in levels_in_order(levels[:, i]):
                rows = levels[:, i] == level
                if rows.any():
                    row["levels"][level] = {
                        "trajectories": int(rows.sum()), "mean_priority": float(scores[rows, i].mean()),
                        "sampling_share": float(probability[rows, i].sum()),
                        **({} if per_episode is None
                           else {"mean_weighted_reward": float(per_episode[rows, i].mean())})}
        agents.append(row)
    return {"types": record["types"], "alpha": record["alpha"], "prioritized": record["prioritized"],
            "effective_items": record["effective_items"], "agents": agents}


def dataset_levels(config: dict[str, Any], dper: dict[str, torch.Tensor], n_episodes: int) -> np.ndarray | None:
    """Each agent's behaviour level name in each episode ``[E, n]`` (module docstring), or None when the
    dataset records none."""
    from offmarl.collect.compositions import component_levels

    card = config.get("dataset") or {}
    if not isinstance(card, dict):  # per-agent data: SIT learns from a joint dataset
        return None
    names = card.get("behavior_level_names")
    if "behavior_levels" in dper and names:
        levels = np.asarray(names)[dper["behavior_levels"].numpy()]
    else:
        components = card.get("extra", {}).get("components")
        if not components:
            return None
        levels = component_levels(components)
    return levels if len(levels) == n_episodes else None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_weighted_rewards(curves: dict[int, tuple[list[float], list[float]]], types: list[str], title: str,
                          path: Path, individual: dict[int, tuple[list[float], list[float]]] | None = None) -> None:
    """λ_i r_i per agent over Stage I; beside it, when the run logged them, the unweighted r_i."""
    panels = [("decomposed weighted reward λ_i r_i (batch mean)", curves)]
    if individual and any(steps for steps, _ in individual.values()):
        panels.append(("individual reward r_i = f(o_i, a_i) (batch mean)", individual))
    fig = _figure(6.4 * len(panels), 4.2)
    for k, (ylabel, series) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for i, (steps, values) in series.items():
            ax.plot(steps, values, marker="o" if len(steps) < 12 else None, markersize=3,
                    label=f"agent {i} ({types[i]})")
        ax.set(xlabel="Stage I updates", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def plot_priorities(scores: np.ndarray, type_agents: dict[str, list[int]], high: float, title: str,
                    path: Path, levels: np.ndarray | None = None) -> None:
    """One panel per type; a histogram per agent, split by behaviour level where an agent has several
    (``levels [E, n]``; the level names the line, e.g. "agent 2 (medium)")."""
    fig = _figure(4.6 * len(type_agents), 3.8)
    bins = np.linspace(0.0, high, 41)
    for k, (name, agents) in enumerate(type_agents.items()):
        ax = fig.add_subplot(1, len(type_agents), k + 1)
        for i in agents:
            own = [] if levels is None else levels_in_order(levels[:, i])
            if len(own) < 2:
                suffix = f" ({own[0]})" if own else ""
                ax.hist(scores[:, i], bins=bins, histtype="step", linewidth=1.4, label=f"agent {i}{suffix}")
                continue
            colour = None
            for lv in own:
                _, _, patches = ax.hist(scores[levels[:, i] == lv, i], bins=bins, histtype="step", linewidth=1.4,
                                        linestyle=LEVEL_STYLES.get(lv, "-."), color=colour, label=f"agent {i} ({lv})")
                colour = patches[0].get_edgecolor()
        ax.set(xlabel="rescaled priority p̂", ylabel="individual trajectories", title=f"{title}: {name} replay")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def run_sit_report(*, run: Path, out: Path | None = None) -> dict[str, Any]:
    run = Path(run)
    config, dper, record = load_sit_run(run)
    out = run / "sit_report" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = dper["priority_score"].double().numpy()
    levels = dataset_levels(config, dper, scores.shape[0])
    report = summarize(dper, record, levels)
    title = f"{config.get('algo_label', 'sit')} on {config.get('source_label', '?')}"
    n, metrics = scores.shape[1], run / "metrics.csv"
    plot_weighted_rewards(weighted_reward_curves(metrics, n), record["agent_types"], title, out / "weighted_reward.png",
                          weighted_reward_curves(metrics, n, "individual_reward"))
    plot_priorities(scores, record["types"], float(record["priority_range"][1]), title, out / "priorities.png",
                    levels)
    (out / "sit_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    _print(report, title)
    print(f"wrote {out / 'weighted_reward.png'}, {out / 'priorities.png'}, {out / 'sit_report.json'}")
    return report


def _print(report: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("agent", "type", "level", "trajectories", "mean r̂", "mean û", "mean p̂", "sampling share"):
        table.add_column(column, justify="left" if column in ("type", "level") else "right")
    for a in report["agents"]:
        table.add_row(str(a["agent"]), a["type"], "all", "", f"{a['mean_weighted_reward']:.4g}",
                      f"{a['mean_uncertainty']:.3g}", f"{a['mean_priority']:.3g}", f"{a['sampling_share']:.3g}")
        for level, v in a.get("levels", {}).items():
            table.add_row("", "", level, str(v["trajectories"]),
                          f"{v['mean_weighted_reward']:.4g}" if "mean_weighted_reward" in v else "", "",
                          f"{v['mean_priority']:.3g}", f"{v['sampling_share']:.3g}")
    Console(width=160).print(table)
