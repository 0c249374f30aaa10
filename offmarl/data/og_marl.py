"""OG-MARL datasets in and out: flashbax Vaults in OG-MARL's layout <-> offmarl's HDF5 datasets.

OG-MARL (Formanek et al., docs/references.md) publishes its datasets as flashbax Vaults
(``flashbax/vault/vault.py``): a folder ``<scenario>.vlt/`` with one sub-folder per dataset, its *uid*
(``Good``, ``Medium``, ``Poor``, ``Replay``), each holding a ``metadata.json`` (the tree of shapes and dtypes)
and one tensorstore array per leaf. OG-MARL's recorder (``og_marl/replay_buffers.py``:
``FlashbaxReplayBuffer.add``, fed by the loop of ``og_marl/baselines/tf2_systems/online/base.py``) stores one
row per environment step ``t`` with the agents stacked on the third axis::

    observations        [B, T, N, obs_dim]  float32   o_t, the observation the action was chosen from
    actions             [B, T, N]           int32     a_t (discrete)  | [B, T, N, act_dim] float32 (continuous)
    rewards             [B, T, N]           float32   r_t, the reward of step t
    terminals           [B, T, N]           float32   1 on step t when it ended the episode, per agent
    truncations         [B, T, N]           float32   1 on step t when the time limit cut the episode, per agent
    infos/legals        [B, T, N, A]        float32   1 where an action is legal at o_t (discrete envs)
    infos/state         [B, T, state_dim]   float32   the global state at o_t

(the shapes and dtypes of ``examples/dataset_api_demo.ipynb`` and ``docs/dataset_cards/datacard_info.json``;
``B`` is flashbax's stored batch axis, 1 in OG-MARL's datasets). An episode ends on the step where every
agent is terminal, or every agent truncated -- the test of OG-MARL's own evaluation loop
(``og_marl/baselines/base.py``) and dataset statistics (``og_marl/vault_utils/analyse_vault.py``).

That is offmarl's flat time axis (:mod:`offmarl.data.dataset`) with the agents on the second axis, so the
conversion maps field to field: ``obs``, ``actions`` (int64 in offmarl), ``rewards``, ``terminals`` /
``truncations`` (one flag per step: all agents terminal, else all agents truncated), ``avail_actions``
(``legals > 0``) and ``state``. What does not map:

* ``final_obs`` / ``final_state``: a Vault stores no observation after an episode's last step, so an
  imported episode's final observation (and state) is its last one -- used only to bootstrap the value of
  a truncated episode's last step. The card's ``extra["og_marl"]["final_obs"]`` says so.
* flags of single agents: a step where some agents but not all are terminal (or truncated) is not an
  episode end in OG-MARL either; offmarl keeps no per-agent flags, and the card counts those steps
  (``extra["og_marl"]["steps_with_partial_agent_flags"]``).
* a step both terminal and truncated for every agent is imported as terminal (no bootstrap).
* legals that allow every action at every step carry no information: they are imported as no
  ``avail_actions``. Exporting a discrete dataset always writes ``infos/legals`` (all ones without
  ``avail_actions``): OG-MARL's discrete systems read the number of actions from them.
* with ``B`` > 1, the rows are independent recordings placed one after the other; the unfinished episode a
  row may end with is dropped unless the row is the last (whose unfinished episode offmarl keeps as the
  dataset's last, as it keeps a rollout cut by the collector).

The imported card: ``env_name`` ``external:<task>`` (offmarl has no environment for it: loading checks shapes
and dtypes, training runs, evaluation is skipped), an env spec derived from the arrays (every agent of
type ``agent`` observing ``obs_dim`` features; ``episode_limit`` the longest episode; discrete actions
counted by the legals, else the largest action + 1; continuous actions in the smallest box holding both
[-1, 1] -- OG-MARL's MaMuJoCo range -- and every recorded action), ``quality_tier`` the uid. A Vault
written by :func:`export_og_marl` carries the offmarl card it was made from in its metadata
(``offmarl_card``); importing it restores that card (its environment, spec, behaviour, ...), so an offmarl
dataset survives the trip but for its final observations. A vault has no per-episode leaf, so an exported
dataset's ``behavior_levels [E, n]`` travel in the metadata too (``offmarl_behavior_levels``, a list of
``E`` rows), and come back with the card that names them.

flashbax is an optional extra (``pip install 'offmarl[og-marl]'``), imported only when a Vault is read or
written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from offmarl.core.files import atomic_directory
from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.data.io import card_to_json, load_dataset, save_dataset
from offmarl.data.validate import EXTERNAL_ENV_PREFIX
from offmarl.envs.base import EnvSpec
from offmarl.errors import DatasetError

#: The optional extra that installs flashbax.
EXTRA = "og-marl"
#: The file flashbax keeps in every vault uid folder.
METADATA_FILE = "metadata.json"
#: The vault metadata key that holds the offmarl card of an exported dataset.
CARD_KEY = "offmarl_card"
#: The vault metadata key that holds an exported dataset's ``behavior_levels`` (``[E, n]`` as nested lists).
LEVELS_KEY = "offmarl_behavior_levels"
#: Suffix of OG-MARL's vault folders (``og_marl/smac_v1/3m.vlt/Good``).
VAULT_SUFFIX = ".vlt"
#: Actions of OG-MARL's continuous datasets (MaMuJoCo) lie in [-1, 1]; an imported Box holds at least that.
UNIT_BOX = (-1.0, 1.0)
FINAL_OBS_NOTE = ("each episode's last observation (and state): an OG-MARL vault stores none after an "
                  "episode's last step")


def _flashbax() -> tuple[Any, Any]:
    """flashbax's ``Vault`` and ``TrajectoryBufferState``; a one-line ImportError naming the extra without it."""
    try:
        from flashbax.buffers.trajectory_buffer import TrajectoryBufferState
        from flashbax.vault import Vault
    except ImportError as exc:
        raise ImportError(f"OG-MARL vaults need flashbax: pip install 'offmarl[{EXTRA}]' ({exc})") from None
    return Vault, TrajectoryBufferState


def _quietly(make: Any, **kwargs: Any) -> Any:
    """``make(**kwargs)`` without flashbax's prints to stdout (a library call prints nothing)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return make(**kwargs)


# ---- locating a vault ------------------------------------------------------------------------------------
def vault_uids(vault: str | os.PathLike) -> list[str]:
    """The datasets (uid folders) of a ``.vlt`` folder, sorted."""
    return sorted(p.name for p in Path(vault).iterdir() if (p / METADATA_FILE).is_file())


def locate_vault(path: str | os.PathLike, uid: str | None = None) -> tuple[Path, str]:
    """``(vault folder, uid)`` of ``path``: a uid folder (``3m.vlt/Good``), or a vault folder (``3m.vlt``) with
    ``uid`` naming one of its datasets (it may be omitted when there is only one)."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such vault folder")
    if (path / METADATA_FILE).is_file():
        if uid is not None and uid != path.name:
            raise ValueError(f"{path} is the vault dataset {path.name!r}; --uid {uid} names another")
        return path.parent, path.name
    uids = vault_uids(path)
    if not uids:
        raise FileNotFoundError(f"{path}: not a flashbax vault (no <uid>/{METADATA_FILE} in it)")
    if uid is None and len(uids) == 1:
        return path, uids[0]
    if uid not in uids:
        raise ValueError(f"{path} holds the datasets {', '.join(uids)}; name one with --uid"
                         + ("" if uid is None else f" (not {uid!r})"))
    return path, uid


def read_vault(path: str | os.PathLike, uid: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(experience, metadata)`` of a vault dataset (:func:`locate_vault`): the tree of numpy arrays and the
    metadata it was written with (flashbax's ``structure_*`` and ``version`` left out)."""
    Vault, _ = _flashbax()
    folder, uid = locate_vault(path, uid)
    vault = _quietly(Vault, vault_name=folder.name, rel_dir=str(folder.parent), vault_uid=uid)
    experience = _as_numpy(vault.read().experience)
    metadata = json.loads((folder / uid / METADATA_FILE).read_text())
    return experience, {k: v for k, v in metadata.items() if k not in ("version", "structure_shape", "structure_dtype")}


def _as_numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _as_numpy(value) for key, value in tree.items()}
    return np.asarray(tree)


# ---- vault -> dataset -------------------------------------------------------------------------------------
def _field(experience: dict[str, Any], name: str, ndims: tuple[int, ...], source: str) -> np.ndarray | None:
    """A leaf of the experience (``infos/state`` is ``experience["infos"]["state"]``), checked to have one of
    ``ndims`` dimensions; None when an optional ``infos`` leaf is absent."""
    *parents, leaf = name.split("/")
    node = experience
    for key in parents:
        node = node.get(key) or {}
    value = node.get(leaf)
    if value is None:
        if parents:
            return None
        raise DatasetError(f"{source}: field {name!r}: missing (not an OG-MARL vault?)")
    if value.ndim not in ndims:
        raise DatasetError(f"{source}: field {name!r}: shape {list(value.shape)} where OG-MARL's layout has "
                           f"{' or '.join(str(n) for n in ndims)} dimensions [B, T, N, ...]")
    return value


def _kept_steps(done: np.ndarray, last_row: bool) -> int:
    """Steps of one batch row to keep: all of the last row's, else through its last episode end."""
    if last_row:
        return done.shape[0]
    ended = np.flatnonzero(done)
    return int(ended[-1]) + 1 if ended.size else 0


def _vault_arrays(experience: dict[str, Any], source: str) -> tuple[dict[str, np.ndarray | None], dict[str, int],
                                                                    int | None]:
    """offmarl's arrays of an OG-MARL experience tree (module docstring); the counts of what did not map
    (``steps_with_partial_agent_flags``, and ``steps_dropped``: unfinished episodes of rows but the last); the
    number of actions the legals allow for (None without legals)."""
    obs = _field(experience, "observations", (4,), source)
    batch, steps, n_agents = obs.shape[:3]
    per_agent = {name: _field(experience, name, ndims, source) for name, ndims in (
        ("actions", (3, 4)), ("rewards", (3,)), ("terminals", (3,)), ("truncations", (3,)), ("infos/legals", (4,)))}
    state = _field(experience, "infos/state", (3,), source)
    for name, value in [*per_agent.items(), ("infos/state", state)]:
        expected = (batch, steps) if name == "infos/state" else (batch, steps, n_agents)
        if value is not None and value.shape[:len(expected)] != expected:
            raise DatasetError(f"{source}: field {name!r}: shape {list(value.shape)} disagrees with observations' "
                               f"[B, T, N] = {[batch, steps, n_agents]}")
    agent_terminals, agent_truncations = per_agent["terminals"] > 0, per_agent["truncations"] > 0
    terminal, every_truncated = agent_terminals.all(axis=2), agent_truncations.all(axis=2)  # [B, T]
    truncated = every_truncated & ~terminal
    partial = (agent_terminals.any(axis=2) & ~terminal) | (agent_truncations.any(axis=2) & ~every_truncated)
    keep = [_kept_steps(terminal[b] | truncated[b], b == batch - 1) for b in range(batch)]
    if sum(keep) == 0:
        raise DatasetError(f"{source}: holds no steps")

    def flat(value: np.ndarray | None, dtype: Any) -> np.ndarray | None:
        """The batch rows' kept steps one after the other."""
        if value is None:
            return None
        return np.ascontiguousarray(np.concatenate([value[b, :keep[b]] for b in range(batch)]), dtype=dtype)

    discrete = per_agent["actions"].ndim == 3
    legals = flat(per_agent["infos/legals"], np.float32) if discrete else None
    arrays = {"obs": flat(obs, np.float32), "actions": flat(per_agent["actions"], np.int64 if discrete else np.float32),
              "rewards": flat(per_agent["rewards"], np.float32), "terminals": flat(terminal, np.bool_),
              "truncations": flat(truncated, np.bool_), "state": flat(state, np.float32),
              "avail_actions": None if legals is None or (legals > 0).all() else legals > 0}
    ends = np.flatnonzero(arrays["terminals"] | arrays["truncations"])
    starts = np.concatenate([[0], ends[ends < sum(keep) - 1] + 1]).astype(np.int64)
    last = np.append(starts[1:], sum(keep)) - 1
    arrays.update(episode_starts=starts, final_obs=arrays["obs"][last].copy(),
                  final_state=None if arrays["state"] is None else arrays["state"][last].copy())
    counts = {"steps_with_partial_agent_flags": int(partial.sum()), "steps_dropped": batch * steps - sum(keep)}
    return arrays, counts, None if per_agent["infos/legals"] is None else per_agent["infos/legals"].shape[-1]


def experience_to_dataset(experience: dict[str, Any], metadata: dict[str, Any], *, task: str, uid: str,
                          source: str = "<vault>") -> MultiAgentDataset:
    """The offmarl dataset of an OG-MARL experience tree (module docstring), card statistics refreshed.

    ``task`` names the environment in the card (``external:<task>``), ``uid`` is its quality tier; both are
    ignored when ``metadata`` holds the offmarl card of an exported dataset. ``source`` names the vault in
    errors."""
    arrays, counts, n_actions = _vault_arrays(experience, source)
    card = (_exported_card(metadata[CARD_KEY], source) if CARD_KEY in metadata
            else _imported_card(arrays, n_actions, task=task, uid=uid))
    card.extra = {**card.extra, "og_marl": {"uid": uid, "final_obs": FINAL_OBS_NOTE, **counts,
                                            "metadata": {k: v for k, v in metadata.items()
                                                         if k not in (CARD_KEY, LEVELS_KEY)}}}
    if card.behavior_level_names is not None:  # an exported dataset's levels, named by its restored card
        arrays["behavior_levels"] = _exported_levels(metadata.get(LEVELS_KEY), arrays, source)
    ds = MultiAgentDataset(card=card, **arrays)
    ds.refresh_card()
    return ds


def _exported_card(card_json: str, source: str) -> DatasetCard:
    try:
        return DatasetCard.from_dict(json.loads(card_json))
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: metadata {CARD_KEY!r}: not an offmarl card ({exc})") from None


def _exported_levels(levels: Any, arrays: dict[str, np.ndarray | None], source: str) -> np.ndarray:
    """``behavior_levels [E, n] uint8`` from the vault metadata of an exported dataset (whose card names them)."""
    shape = (arrays["episode_starts"].shape[0], arrays["obs"].shape[1])  # [E, n]
    value = None
    with contextlib.suppress(TypeError, ValueError):  # ragged lists, objects numpy cannot hold in one array
        value = np.asarray(levels)
    if (value is None or value.shape != shape or value.dtype.kind not in "iu"
            or value.min() < 0 or value.max() > np.iinfo(np.uint8).max):
        got = ("nothing" if levels is None else f"{type(levels).__name__}" if value is None
               else f"shape {list(value.shape)}, dtype {value.dtype}")
        raise DatasetError(f"{source}: metadata {LEVELS_KEY!r}: the card names behaviour levels, so the metadata "
                           f"must hold {shape[0]} rows of {shape[1]} level indices in [0, 255]; got {got}")
    return value.astype(np.uint8)


def _imported_card(arrays: dict[str, np.ndarray | None], n_actions: int | None, *, task: str,
                   uid: str) -> DatasetCard:
    """The card of a vault offmarl did not write: the spec as the module docstring derives it."""
    obs, actions, state = arrays["obs"], arrays["actions"], arrays["state"]
    n_agents, obs_dim = obs.shape[1:]
    discrete = actions.ndim == 2
    if discrete:
        action_space: spaces.Space = spaces.Discrete(n_actions or int(actions.max()) + 1)
    else:
        low = np.minimum(actions.min(axis=(0, 1)), UNIT_BOX[0]).astype(np.float32)
        high = np.maximum(actions.max(axis=(0, 1)), UNIT_BOX[1]).astype(np.float32)
        action_space = spaces.Box(low=low, high=high, dtype=np.float32)
    lengths = np.diff(np.append(arrays["episode_starts"], obs.shape[0]))
    env_name = f"{EXTERNAL_ENV_PREFIX}{task}"
    spec = EnvSpec(name=env_name, n_agents=n_agents, obs_dim=obs_dim, obs_dims=(obs_dim,) * n_agents,
                   state_dim=0 if state is None else state.shape[1], action_space=action_space,
                   episode_limit=int(lengths.max()), agent_types=("agent",) * n_agents,
                   has_avail_actions=arrays["avail_actions"] is not None)
    return DatasetCard(env_name=env_name, env_kwargs={}, env_spec=spec.to_dict(), n_agents=n_agents,
                       agent_types=list(spec.agent_types), obs_dims=list(spec.obs_dims),
                       action_kind="discrete" if discrete else "continuous",
                       behavior={"source": "OG-MARL vault", "dataset": uid}, quality_tier=uid)


def import_og_marl(vault: str | os.PathLike, out: str | os.PathLike, *, uid: str | None = None,
                   task: str | None = None, compression: str | None = None) -> MultiAgentDataset:
    """Convert a vault dataset (:func:`locate_vault`) into an offmarl dataset file ``out`` (validated on
    writing); returns the dataset. ``task`` defaults to the vault folder's name without ``.vlt``."""
    folder, uid = locate_vault(vault, uid)
    experience, metadata = read_vault(folder, uid)
    ds = experience_to_dataset(experience, metadata, task=task or folder.name.removesuffix(VAULT_SUFFIX), uid=uid,
                               source=str(folder / uid))
    save_dataset(ds, out, compression=compression)
    return ds


# ---- dataset -> vault -------------------------------------------------------------------------------------
def dataset_to_experience(ds: MultiAgentDataset) -> dict[str, Any]:
    """The OG-MARL experience tree (``B`` = 1) of an offmarl dataset with actions (module docstring)."""
    if ds.actions is None:
        raise ValueError("a state-only dataset has no actions, and an OG-MARL vault needs them")
    n_agents = ds.n_agents

    def per_agent_flag(flags: np.ndarray) -> np.ndarray:
        return np.repeat(flags[:, None], n_agents, axis=1).astype(np.float32)

    infos: dict[str, np.ndarray] = {}
    if ds.spec.discrete:
        legals = (ds.avail_actions if ds.avail_actions is not None
                  else np.ones((ds.n_steps, n_agents, ds.spec.n_actions), dtype=bool))
        infos["legals"] = legals.astype(np.float32)
    if ds.state is not None:
        infos["state"] = ds.state.astype(np.float32)
    experience = {
        "observations": ds.obs.astype(np.float32),
        "actions": ds.actions.astype(np.int32 if ds.spec.discrete else np.float32),
        "rewards": ds.rewards.astype(np.float32),
        "terminals": per_agent_flag(ds.terminals),
        "truncations": per_agent_flag(ds.truncations),
        **({"infos": infos} if infos else {}),
    }
    return _batched(experience)


def _batched(tree: dict[str, Any]) -> dict[str, Any]:
    """Every leaf with flashbax's batch axis in front."""
    return {key: _batched(value) if isinstance(value, dict) else value[None] for key, value in tree.items()}


def export_og_marl(dataset: str | os.PathLike, out: str | os.PathLike, *, uid: str | None = None,
                   agent: int | None = None) -> Path:
    """Write the dataset file ``dataset`` (group ``agent`` of a per-agent file) as the vault dataset
    ``out/<uid>`` (``uid`` defaults to the file's stem), replacing one of that name; returns its folder.

    The vault's metadata holds the dataset's card (``offmarl_card``) and its ``behavior_levels`` when it has
    them (``offmarl_behavior_levels``), which :func:`import_og_marl` restores."""
    Vault, TrajectoryBufferState = _flashbax()
    ds = load_dataset(dataset, agent=agent)
    experience = dataset_to_experience(ds)
    target = Path(out).resolve() / (uid or Path(dataset).stem)
    with atomic_directory(target) as staging:
        staging.rmdir()  # flashbax creates the uid folder itself, and writes into an existing one's vault
        vault = _quietly(Vault, vault_name=staging.parent.name, rel_dir=str(staging.parent.parent),
                         vault_uid=staging.name, experience_structure=experience,
                         metadata={CARD_KEY: card_to_json(ds.card),
                                   **({} if ds.behavior_levels is None else {LEVELS_KEY: ds.behavior_levels.tolist()})})
        state = TrajectoryBufferState(experience=experience, current_index=np.int32(0), is_full=np.bool_(True))
        vault.write(state, source_interval=(0, ds.n_steps))
    return target
