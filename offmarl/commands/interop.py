"""``offmarl import og-marl`` and ``offmarl export og-marl``: datasets to and from other libraries.

``offmarl import og-marl VAULT [--uid UID] [--task TASK] --out D.h5``: converts an OG-MARL dataset (a flashbax
Vault: the ``<scenario>.vlt`` folder with ``--uid``, or one of its ``<uid>`` folders) into an offmarl dataset
file, validated on writing. ``offmarl export og-marl D.h5 --out VAULT [--uid UID] [--agent I]``: writes an
offmarl dataset as the vault dataset ``VAULT/<uid>``. What maps to what: :mod:`offmarl.data.og_marl`.
"""

from __future__ import annotations

from pathlib import Path

import typer


def run_import_og_marl(*, vault: Path, out: Path, uid: str | None = None, task: str | None = None,
                       compression: str | None = None) -> None:
    from offmarl.data.og_marl import import_og_marl

    ds = import_og_marl(vault, out, uid=uid, task=task, compression=compression)
    card = ds.card
    typer.echo(f"{out}: {card.episodes} episodes, {card.steps} steps of {card.env_name} ({card.n_agents} agents, "
               f"{card.action_kind} actions), return {card.return_mean:.4g} ± {card.return_std:.3g} per agent")
    dropped = card.extra["og_marl"]["steps_dropped"]
    if dropped:
        typer.echo(f"  {dropped} steps of unfinished episodes at the end of the vault's batch rows left out")
    partial = card.extra["og_marl"]["steps_with_partial_agent_flags"]
    if partial:
        typer.echo(f"  {partial} steps flag some agents but not all as terminal or truncated; offmarl keeps one "
                   "flag per step (every agent's)")


def run_export_og_marl(*, dataset: Path, out: Path, uid: str | None = None, agent: int | None = None) -> None:
    from offmarl.data.og_marl import export_og_marl

    folder = export_og_marl(dataset, out, uid=uid, agent=agent)
    typer.echo(f"{folder}: OG-MARL vault dataset {folder.name!r} of {dataset} "
               f"(read it with flashbax: Vault({folder.parent.name!r}, rel_dir={str(folder.parent.parent)!r}, "
               f"vault_uid={folder.name!r}))")
