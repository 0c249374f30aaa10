"""Validation of a :class:`MultiAgentDataset` against its card (DESIGN.md, "Dataset").

:func:`validate_dataset` is run by :func:`offmarl.data.load_dataset` on every file it reads and by
:func:`offmarl.data.save_dataset` before anything is written. It raises
:class:`offmarl.errors.DatasetError` with ONE line that names the source (file) and the field, e.g.::

    data/x.h5: field 'rewards': contains NaN at step 17, agent 0
    data/x.h5: field 'actions': discrete action 7 at step 3, agent 1 is >= n_actions 5
    data/x.h5: card: card is missing key 'env_name'

What is checked, in order (the first failure is reported):

1. the card is a valid :class:`DatasetCard` (rebuilt through ``DatasetCard.from_dict``: no unknown or
   missing key, every value of its field's type) and agrees with its own ``env_spec`` (action kind,
   obs_dims, agent types);
2. required fields are present (``actions`` iff not ``card.state_only``; ``final_state`` iff ``state``;
   ``state`` iff the spec's ``state_dim`` > 0;
   ``avail_actions`` only for discrete actions; ``behavior_levels`` iff the card's ``behavior_level_names``,
   a non-empty list of distinct non-empty names) and every field is a numpy array of the right dtype;
3. shapes: ``obs [T, n, obs_dim]`` with ``n`` = card ``n_agents``, ``obs_dim`` = spec ``obs_dim`` and
   ``T`` = card ``steps``; ``episode_starts [E]`` with ``E`` = card ``episodes``; every per-step field has
   ``T`` rows, every per-episode field ``E`` rows, trailing dims match the spec (``behavior_levels [E, n]``);
4. episode boundaries: ``episode_starts`` begins at 0, strictly increases (a repeated start is an empty
   episode) and stays below ``T``; no step is both terminal and truncated; terminal/truncation flags only
   on an episode's last step, and every episode but the last ends with one of them (the last may be a
   rollout cut by the collector);
5. no NaN/inf in obs, rewards, actions, state, final_obs, final_state;
6. actions inside the action space: discrete ids in ``[0, A)`` and marked available in
   ``avail_actions``; continuous actions inside the spec's Box bounds up to :data:`BOX_TOLERANCE`;
7. zero padding: ``obs[:, i, obs_dims[i]:] == 0`` (and the same for ``final_obs``);
8. behaviour levels: every value of ``behavior_levels`` is below ``len(card.behavior_level_names)``;
9. every return statistic of the card (``return_*``, ``team_return_*``, ``per_agent_return_*``) agrees
   with the one the rewards give, up to a relative :data:`STATS_RTOL` (a stale card is an error: call
   ``ds.refresh_card()``).

Checks 1-3 look at no value (:func:`check_layout`): the loader runs them on a file's HDF5 metadata before
it reads any array. :func:`validate_dataset` runs checks 1-9; the loader then runs check 10,
:func:`check_environment`, which needs the environment registry but builds no environment:

10. the environment: ``env_name`` is registered (``external:<task>``, data from other libraries, is checked
   for shapes and dtypes only); ``env_kwargs`` are arguments the env takes, with values it accepts; and the
   spec the registry derives from them (:func:`offmarl.envs.env_spec`) has the card's ``n_agents``,
   ``obs_dims``, action space kind and size and, unless the card's is 0 (a dataset stored without the
   global state), ``state_dim``. When the env's optional extra is not installed, ``env_kwargs`` and the spec
   are not checked and a one-line warning says so; an env registered without a spec function is checked
   for its name and argument names only.

Every check is vectorized over the whole time axis (no Python loop over steps or agents); a
1 M-step dataset validates in well under a second (see ``benchmarks/data_layer_io.py``).

This module imports nothing of offmarl beyond ``offmarl.envs.base``, ``offmarl.envs.registry`` (specs, not
environments), ``offmarl.errors`` and the dataset module.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from offmarl.data.dataset import FORMAT_VERSION, DatasetCard, MultiAgentDataset
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import env_spec
from offmarl.errors import DatasetError, one_line

#: Slack allowed on continuous actions outside the Box bounds (float32 round-off of clipped actions).
BOX_TOLERANCE = 1e-5
#: How closely the card's return statistics must agree with the ones the rewards give: relative, with an
#: absolute floor for statistics near 0 (a std of identical returns).
STATS_RTOL, STATS_ATOL = 1e-4, 1e-6

#: ``env_name`` prefix of data imported from other libraries: no environment to check the card against.
EXTERNAL_ENV_PREFIX = "external:"

#: Fields every dataset has.
REQUIRED_FIELDS: tuple[str, ...] = ("obs", "rewards", "terminals", "truncations", "episode_starts", "final_obs")
#: Fields that may be absent (``actions`` only in a state-only dataset).
OPTIONAL_FIELDS: tuple[str, ...] = ("actions", "state", "final_state", "avail_actions", "behavior_levels")
#: Fields with one row per episode (the rest but ``episode_starts`` have one row per step).
EPISODE_FIELDS: tuple[str, ...] = ("final_obs", "final_state", "behavior_levels")
ALL_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

# Name of each axis of each field, used to say *where* a bad value is.
_AXES: dict[str, tuple[str, ...]] = {
    "obs": ("step", "agent", "index"),
    "rewards": ("step", "agent"),
    "actions": ("step", "agent", "index"),
    "state": ("step", "index"),
    "avail_actions": ("step", "agent", "action"),
    "final_obs": ("episode", "agent", "index"),
    "final_state": ("episode", "index"),
    "behavior_levels": ("episode", "agent"),
}


def _fail(source: str, field: str, message: str) -> DatasetError:
    return DatasetError(f"{source}: field {field!r}: {message}")


def _where(field: str, index: tuple[int, ...]) -> str:
    """``"step 3, agent 1"`` for an index into ``field`` (the trailing feature index is left out)."""
    names = _AXES.get(field, ("step",))
    parts = [f"{name} {int(i)}" for name, i in zip(names, index) if name not in ("index", "action")]
    return ", ".join(parts)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True of a non-empty boolean array that has at least one True."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value (``1.0``, not ``np.float64(1.0)``, in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def as_integer(value: Any) -> int | None:
    """An HDF5 attribute's integer value; None for anything else (a float, a string, an array, a bool)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def check_format_version(version: Any, source: str) -> int:
    """The file's format version as an int; rejects a missing, non-integer or too-new version."""
    if version is None:
        raise _fail(source, "format_version", "missing (is this an offmarl dataset?)")
    as_int = as_integer(version)
    if as_int is None:
        raise _fail(source, "format_version", f"must be an integer, got {plain(version)!r}")
    if as_int < 1:
        raise _fail(source, "format_version", f"must be a positive integer, got {as_int}")
    if as_int > FORMAT_VERSION:
        raise _fail(source, "format_version",
                    f"format version {as_int} is newer than this offmarl's {FORMAT_VERSION}; upgrade offmarl")
    return as_int


def card_from_dict(d: Any, source: str) -> DatasetCard:
    """``DatasetCard.from_dict`` with its ``ValueError`` turned into ``"SOURCE: card: ..."``."""
    if not isinstance(d, dict):
        raise DatasetError(f"{source}: card: must be a JSON object, got {type(d).__name__}")
    try:
        card = DatasetCard.from_dict(d)
    except (ValueError, TypeError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise DatasetError(f"{source}: card: {message}") from None
    _check_card_version(card, source)
    return card


def _check_card_version(card: DatasetCard, source: str) -> None:
    version = card.format_version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DatasetError(f"{source}: card: key 'format_version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise DatasetError(f"{source}: card: format version {version} is newer than this offmarl's "
                           f"{FORMAT_VERSION}; upgrade offmarl")


def _check_card(card: Any, source: str) -> tuple[DatasetCard, EnvSpec]:
    if not isinstance(card, DatasetCard):
        raise DatasetError(f"{source}: card: expected a DatasetCard, got {type(card).__name__}")
    checked = card_from_dict(card.to_dict(), source)
    spec = checked.spec
    kind = "discrete" if spec.discrete else "continuous"
    if checked.action_kind != kind:
        raise DatasetError(f"{source}: card: action_kind {checked.action_kind!r} disagrees with env_spec's {kind} "
                           f"action space")
    if [int(x) for x in checked.obs_dims] != list(spec.obs_dims):
        raise DatasetError(f"{source}: card: obs_dims {list(checked.obs_dims)} disagree with env_spec's "
                           f"{list(spec.obs_dims)}")
    if list(checked.agent_types) != list(spec.agent_types):
        raise DatasetError(f"{source}: card: agent_types {list(checked.agent_types)} disagree with env_spec's "
                           f"{list(spec.agent_types)}")
    names = checked.behavior_level_names
    if names is not None:
        if not names or not all(names):
            raise DatasetError(f"{source}: card: key 'behavior_level_names' must list at least one non-empty name, "
                               f"got {list(names)}")
        if len(set(names)) != len(names):
            raise DatasetError(f"{source}: card: key 'behavior_level_names' names a level twice: {list(names)}")
        if len(names) > 256:
            raise DatasetError(f"{source}: card: key 'behavior_level_names' lists {len(names)} levels; "
                               "behavior_levels (uint8) indexes at most 256")
    return checked, spec


def _check_presence_and_dtypes(fields: Mapping[str, Any], card: DatasetCard, spec: EnvSpec, source: str) -> None:
    for name in REQUIRED_FIELDS:
        if fields.get(name) is None:
            raise _fail(source, name, "missing (required)")
    actions, state = fields.get("actions"), fields.get("state")
    if card.state_only and actions is not None:
        raise _fail(source, "actions", "present, but the card says state_only=true")
    if not card.state_only and actions is None:
        raise _fail(source, "actions", "missing (required unless the card says state_only=true)")
    if state is not None and fields.get("final_state") is None:
        raise _fail(source, "final_state", "missing (required when 'state' is present)")
    if state is None and fields.get("final_state") is not None:
        raise _fail(source, "final_state", "present without 'state'")
    if state is None and spec.state_dim > 0:  # learners size their mixers from the spec
        raise _fail(source, "state", f"missing, but the card's env_spec has state_dim {spec.state_dim} "
                                     "(set it to 0 for a dataset without a global state)")
    if fields.get("avail_actions") is not None and not spec.discrete:
        raise _fail(source, "avail_actions", "present, but the action space is continuous")
    names = card.behavior_level_names
    if fields.get("behavior_levels") is None and names is not None:
        raise _fail(source, "behavior_levels", f"missing, but the card names behaviour levels {names} "
                                               "(behavior_level_names is null in a dataset without them)")
    if fields.get("behavior_levels") is not None and names is None:
        raise _fail(source, "behavior_levels", "present, but the card's behavior_level_names is null (the card "
                                               "names the levels the field indexes)")

    want = {
        "obs": np.float32, "rewards": np.float32, "final_obs": np.float32, "state": np.float32,
        "final_state": np.float32, "terminals": np.bool_, "truncations": np.bool_, "avail_actions": np.bool_,
        "episode_starts": np.int64, "actions": np.int64 if spec.discrete else np.float32,
        "behavior_levels": np.uint8,
    }
    for name in ALL_FIELDS:
        arr = fields.get(name)
        if arr is None:
            continue
        if arr.dtype != want[name]:
            extra = f" ({card.action_kind} actions)" if name == "actions" else ""
            raise _fail(source, name, f"dtype {arr.dtype} where {np.dtype(want[name])} is required{extra}")


def _check_shapes(fields: Mapping[str, Any], card: DatasetCard, spec: EnvSpec, source: str) -> tuple[int, int]:
    obs, starts = fields["obs"], fields["episode_starts"]
    if len(obs.shape) != 3:
        raise _fail(source, "obs", f"must have shape [T, n, obs_dim], got {list(obs.shape)}")
    T, n, obs_dim = obs.shape
    if n != card.n_agents:
        raise _fail(source, "obs", f"has {n} agents but the card says n_agents={card.n_agents}")
    if obs_dim != spec.obs_dim:
        raise _fail(source, "obs", f"has obs_dim {obs_dim} but the env spec says {spec.obs_dim}")
    if T != card.steps:
        raise _fail(source, "obs", f"has {T} steps but the card says steps={card.steps} (a stale card? call "
                                   "ds.refresh_card())")
    if len(starts.shape) != 1:
        raise _fail(source, "episode_starts", f"must have shape [E], got {list(starts.shape)}")
    E = starts.shape[0]
    if E != card.episodes:
        raise _fail(source, "episode_starts", f"has {E} episodes but the card says episodes={card.episodes} (a "
                                              "stale card? call ds.refresh_card())")

    expected: dict[str, tuple[int, ...]] = {
        "rewards": (T, n), "terminals": (T,), "truncations": (T,), "final_obs": (E, n, obs_dim),
        "actions": (T, n) if spec.discrete else (T, n, spec.act_dim),
        "state": (T, spec.state_dim), "final_state": (E, spec.state_dim), "behavior_levels": (E, n),
    }
    if spec.discrete:
        expected["avail_actions"] = (T, n, spec.n_actions)
    for name, shape in expected.items():
        arr = fields.get(name)
        if arr is None:
            continue
        if len(arr.shape) != len(shape):
            raise _fail(source, name, f"must have {len(shape)} dimensions {list(shape)}, got shape {list(arr.shape)}")
        per_episode = name in EPISODE_FIELDS
        if arr.shape[0] != shape[0]:
            if per_episode:
                raise _fail(source, name, f"has {arr.shape[0]} rows but episode_starts has {E} episodes")
            raise _fail(source, name, f"has {arr.shape[0]} steps but obs has {T} (inconsistent leading dimension)")
        agent_axis = ("rewards", "actions", "avail_actions", "final_obs", "behavior_levels")
        if len(shape) > 1 and arr.shape[1] != shape[1] and name in agent_axis:
            raise _fail(source, name, f"has {arr.shape[1]} agents but the card says n_agents={n}")
        if arr.shape != shape:
            raise _fail(source, name, f"shape {list(arr.shape)} where {list(shape)} is required by the env spec")
    return T, E


def _check_episodes(ds: MultiAgentDataset, T: int, E: int, source: str) -> None:
    starts = ds.episode_starts
    if E == 0:
        raise _fail(source, "episode_starts", "dataset has no episodes")
    if starts[0] != 0:
        raise _fail(source, "episode_starts", f"must begin at 0, got {int(starts[0])}")
    gaps = np.diff(starts)
    if gaps.size and gaps.min() <= 0:
        e = int(np.argmax(gaps <= 0)) + 1
        if gaps[e - 1] == 0:
            raise _fail(source, "episode_starts",
                        f"episode {e} is empty (start {int(starts[e])} repeats the previous start)")
        raise _fail(source, "episode_starts",
                    f"must strictly increase; start {int(starts[e])} of episode {e} follows {int(starts[e - 1])}")
    if starts[-1] >= T:
        raise _fail(source, "episode_starts", f"last episode starts at {int(starts[-1])}, at or past the {T} steps "
                                              f"(an empty episode)")

    both = ds.terminals & ds.truncations
    if both.any():
        raise _fail(source, "truncations", f"step {int(np.argmax(both))} is both terminal and truncated (an episode "
                                           "that terminated was not cut by the time limit)")
    ends = np.append(starts[1:], T)  # exclusive
    is_last = np.zeros(T, dtype=bool)
    is_last[ends - 1] = True
    for name in ("terminals", "truncations"):
        inside = getattr(ds, name) & ~is_last
        if inside.any():
            t = int(np.argmax(inside))
            e = int(np.searchsorted(starts, t, side="right")) - 1
            raise _fail(source, name, f"set at step {t}, inside episode {e} "
                                      f"(steps {int(starts[e])}..{int(ends[e]) - 1}); "
                                      f"flags belong on an episode's last step only")
    done = (ds.terminals | ds.truncations)[ends - 1]
    unfinished = ~done[:-1]  # the last episode may be a rollout cut by the collector
    if unfinished.any():
        e = int(np.argmax(unfinished))
        raise _fail(source, "terminals",
                    f"episode {e} (steps {int(starts[e])}..{int(ends[e]) - 1}) ends with neither a terminal nor a "
                    f"truncation flag; terminals/truncations disagree with episode_starts")


def _check_finite(ds: MultiAgentDataset, spec: EnvSpec, source: str) -> None:
    names = ["obs", "rewards", "state", "final_obs", "final_state"]
    if not spec.discrete:
        names.append("actions")
    for name in names:
        arr = getattr(ds, name)
        if arr is None or arr.size == 0:
            continue
        # One pass without a [T, ...] mask on the happy path: a sum propagates NaN and inf. A sum that
        # overflows on finite values only costs the exact check below, which then finds nothing.
        if np.isfinite(arr.sum()):
            continue
        bad = ~np.isfinite(arr)
        if not bad.any():
            continue
        index = _first(bad)
        value = arr[index]
        what = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
        raise _fail(source, name, f"contains {what} at {_where(name, index)}")


def _check_actions(ds: MultiAgentDataset, spec: EnvSpec, source: str) -> None:
    actions = ds.actions
    if actions is None or actions.size == 0:
        return
    if spec.discrete:
        A = spec.n_actions
        if actions.min() < 0:
            index = _first(actions < 0)
            raise _fail(source, "actions",
                        f"discrete action {int(actions[index])} at {_where('actions', index)} is < 0")
        if actions.max() >= A:
            index = _first(actions >= A)
            raise _fail(source, "actions",
                        f"discrete action {int(actions[index])} at {_where('actions', index)} is >= n_actions {A}")
        if ds.avail_actions is not None:
            flat = np.arange(actions.size, dtype=np.int64) * A + actions.reshape(-1)
            taken = ds.avail_actions.reshape(-1)[flat].reshape(actions.shape)  # [T, n]: avail of the taken action
            if not taken.all():
                index = _first(~taken)
                raise _fail(source, "actions", f"action {int(actions[index])} at {_where('actions', index)} is marked "
                                               f"unavailable in avail_actions")
        return
    low = np.asarray(spec.action_space.low, dtype=np.float64).reshape(-1)  # [act_dim]
    high = np.asarray(spec.action_space.high, dtype=np.float64).reshape(-1)
    outside = (actions < low - BOX_TOLERANCE) | (actions > high + BOX_TOLERANCE)  # [T, n, act_dim]
    if outside.any():
        t, i, k = _first(outside)
        raise _fail(source, "actions", f"continuous action {float(actions[t, i, k]):.6g} at step {t}, agent {i}, "
                                       f"dimension {k} is outside the Box bounds [{low[k]:.6g}, {high[k]:.6g}]")


def _check_padding(ds: MultiAgentDataset, spec: EnvSpec, source: str) -> None:
    padded = np.arange(spec.obs_dim)[None, :] >= np.asarray(spec.obs_dims)[:, None]  # [n, obs_dim]
    if not padded.any():
        return
    for name in ("obs", "final_obs"):
        arr = getattr(ds, name)
        values = arr[:, padded]  # [T, k]: every position beyond an agent's obs_dims
        if values.any():
            row, col = _first(values != 0)
            agent, index = (int(x) for x in np.argwhere(padded)[col])
            axis = "episode" if name == "final_obs" else "step"
            raise _fail(source, name, f"agent {agent} has non-zero value {float(arr[row, agent, index]):.6g} at "
                                      f"{axis} {row}, index {index}, beyond its obs_dims {spec.obs_dims[agent]} "
                                      f"(observations must be zero-padded)")


def _check_behavior_levels(ds: MultiAgentDataset, card: DatasetCard, source: str) -> None:
    """Check 8: every level is an index into the card's ``behavior_level_names``."""
    levels = ds.behavior_levels
    if levels is None or levels.size == 0:
        return
    k = len(card.behavior_level_names)
    if int(levels.max()) >= k:
        e, i = _first(levels >= k)
        names = list(card.behavior_level_names)
        raise _fail(source, "behavior_levels", f"level {int(levels[e, i])} at episode {e}, agent {i} is >= the "
                                               f"{k} behavior_level_names of the card {names}")


def _check_card_stats(ds: MultiAgentDataset, card: DatasetCard, source: str) -> None:
    """Every return statistic of the card agrees with the rewards up to :data:`STATS_RTOL` (relative)."""
    for key, actual in ds.compute_return_stats().items():
        claimed = getattr(card, key)
        if np.shape(claimed) != np.shape(actual) or not np.allclose(claimed, actual, rtol=STATS_RTOL, atol=STATS_ATOL):
            raise DatasetError(f"{source}: card: {key}={_rounded(claimed)} but the rewards give {_rounded(actual)} "
                               f"(stale card: call ds.refresh_card())")


def _rounded(value: Any) -> str:
    return f"{value:.6g}" if np.isscalar(value) else "[" + ", ".join(f"{v:.6g}" for v in value) + "]"


def _action_summary(spec: EnvSpec) -> str:
    return f"{spec.n_actions} discrete actions" if spec.discrete else f"continuous actions of shape {spec.act_dim}"


def check_environment(card: DatasetCard, source: str) -> None:
    """Check 10 of the module docstring: the card's environment, from the registry, without building it."""
    if card.env_name.startswith(EXTERNAL_ENV_PREFIX):
        return
    try:
        env = env_spec(card.env_name, card.env_kwargs)
    except KeyError as exc:
        raise DatasetError(f"{source}: card: key 'env_name': {exc.args[0]} (data of an environment offmarl does "
                           f"not have is named '{EXTERNAL_ENV_PREFIX}<task>')") from None
    except RuntimeError as exc:  # registered, but cannot be built here
        raise DatasetError(f"{source}: card: key 'env_name': {one_line(exc)}") from None
    except ImportError as exc:  # the env's extra is missing: what can be checked without it was
        warnings.warn(f"{source}: card: env_kwargs and env_spec not checked against environment "
                      f"{card.env_name!r}: {one_line(exc)}", stacklevel=3)
        return
    except Exception as exc:  # the env's own checks of the card's values, which may be of any type: all refuse them
        raise DatasetError(f"{source}: card: key 'env_kwargs': {one_line(exc)}") from None
    if env is None:
        return
    spec = card.spec
    claims = [("n_agents", spec.n_agents, env.n_agents), ("obs_dims", list(spec.obs_dims), list(env.obs_dims)),
              ("action space", _action_summary(spec), _action_summary(env))]
    if spec.state_dim > 0:  # 0: a dataset stored without the env's global state
        claims.append(("state_dim", spec.state_dim, env.state_dim))
    for what, claimed, actual in claims:
        if claimed != actual:
            raise DatasetError(f"{source}: card: key 'env_spec': {what} {claimed} disagrees with environment "
                               f"{card.env_name!r} with the card's env_kwargs, which has {actual}")


def check_layout(card: Any, fields: Mapping[str, Any], source: str) -> tuple[DatasetCard, EnvSpec, int, int]:
    """Checks 1-3 of the module docstring on the fields' layouts, without looking at their values.

    ``fields`` maps field names to anything with a ``shape`` and a ``dtype`` -- numpy arrays, or the
    datasets of an HDF5 file before any of them is read -- or to None for an absent field. Returns the
    checked card, its env spec, ``T`` and ``E``; raises :class:`DatasetError` otherwise.
    """
    card, spec = _check_card(card, source)
    _check_presence_and_dtypes(fields, card, spec, source)
    T, E = _check_shapes(fields, card, spec, source)
    return card, spec, T, E


def validate_structure(ds: MultiAgentDataset, source: str = "<memory>") -> tuple[DatasetCard, EnvSpec, int, int]:
    """The O(1) checks (1-3 of the module docstring: card, fields present, dtypes, shapes) of ``ds``.

    Returns the checked card, its env spec, ``T`` and ``E``; raises :class:`DatasetError` otherwise.
    """
    fields = {name: getattr(ds, name) for name in ALL_FIELDS}
    for name, arr in fields.items():
        if arr is not None and not isinstance(arr, np.ndarray):
            raise _fail(source, name, f"must be a numpy array, got {type(arr).__name__}")
    return check_layout(ds.card, fields, source)


def validate_dataset(ds: MultiAgentDataset, source: str = "<memory>") -> None:
    """Raise :class:`DatasetError` (one line naming ``source`` and the field) if ``ds`` is not valid.

    ``source`` is the file name (or any label) to put at the start of the message. See the module
    docstring for the list of checks; on success returns ``None``.
    """
    card, spec, T, E = validate_structure(ds, source)
    _check_episodes(ds, T, E, source)
    _check_finite(ds, spec, source)
    _check_actions(ds, spec, source)
    _check_padding(ds, spec, source)
    _check_behavior_levels(ds, card, source)
    _check_card_stats(ds, card, source)
