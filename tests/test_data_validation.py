"""Every kind of bad dataset file is rejected with one line naming the file and the field.

Files are first written valid by ``save_dataset``, then broken with raw h5py edits (the writer itself
refuses invalid datasets), and read back with ``load_dataset``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from _datasets import N_ACTIONS, collected_dataset, make_dataset
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.data.dataset import FORMAT_VERSION
from offmarl.data.io import load_dataset, save_dataset, save_per_agent_datasets
from offmarl.data.validate import validate_dataset
from offmarl.envs.registry import _REGISTRY, register_env
from offmarl.errors import DatasetError

_DELETE = object()


def saved(tmp_path: Path, **kwargs: Any) -> Path:
    return save_dataset(make_dataset(**kwargs), tmp_path / "bad.h5")


def edit(path: Path, **fields: Any) -> None:
    """Replace (or, with ``_DELETE``, remove) fields of a saved file, bypassing validation."""
    with h5py.File(path, "r+") as f:
        for name, value in fields.items():
            if name in f:
                del f[name]
            if value is not _DELETE:
                f[name] = value


def read(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][...]


def edit_card(path: Path, **changes: Any) -> None:
    with h5py.File(path, "r+") as f:
        card = json.loads(f.attrs["card"])
        for key, value in changes.items():
            if value is _DELETE:
                del card[key]
            else:
                card[key] = value
        f.attrs["card"] = json.dumps(card)


def rejects(path: Path, message: str, **kwargs: Any) -> None:
    """load_dataset fails with a message that starts with the file name and contains ``message``."""
    with pytest.raises(DatasetError, match="^" + re.escape(f"{path}") + ".*" + re.escape(message)) as info:
        load_dataset(path, **kwargs)
    assert "\n" not in str(info.value)


# ---- missing fields, dtypes, shapes ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["obs", "rewards", "terminals", "truncations", "episode_starts", "final_obs",
                                  "actions", "final_state"])
def test_missing_required_field(tmp_path: Path, name: str) -> None:
    path = saved(tmp_path)
    edit(path, **{name: _DELETE})
    rejects(path, f": field '{name}': missing")


def test_state_missing_while_the_spec_has_one(tmp_path: Path) -> None:
    """A dataset without a global state must say so in its spec (state_dim 0): the mixers are sized from it."""
    path = saved(tmp_path)
    with h5py.File(path, "r") as f:
        spec = json.loads(f.attrs["card"])["env_spec"]
    assert spec["state_dim"] > 0
    edit(path, state=_DELETE, final_state=_DELETE)
    rejects(path, f": field 'state': missing, but the card's env_spec has state_dim {spec['state_dim']}")
    edit_card(path, env_spec={**spec, "state_dim": 0})
    assert load_dataset(path).state is None


@pytest.mark.parametrize("name,dtype,message", [
    ("obs", np.float64, "dtype float64 where float32 is required"),
    ("rewards", np.float16, "dtype float16 where float32 is required"),
    ("final_obs", np.float64, "dtype float64 where float32 is required"),
    ("state", np.float64, "dtype float64 where float32 is required"),
    ("actions", np.float32, "dtype float32 where int64 is required (discrete actions)"),
    ("terminals", np.int8, "dtype int8 where bool is required"),
    ("truncations", np.uint8, "dtype uint8 where bool is required"),
    ("episode_starts", np.int32, "dtype int32 where int64 is required"),
    ("avail_actions", np.uint8, "dtype uint8 where bool is required"),
])
def test_wrong_dtype(tmp_path: Path, name: str, dtype: type, message: str) -> None:
    path = saved(tmp_path)
    edit(path, **{name: read(path, name).astype(dtype)})
    rejects(path, f": field '{name}': {message}")


def test_wrong_dtype_of_continuous_actions(tmp_path: Path) -> None:
    path = saved(tmp_path, discrete=False)
    edit(path, actions=read(path, "actions").astype(np.float64))
    rejects(path, ": field 'actions': dtype float64 where float32 is required (continuous actions)")


@pytest.mark.parametrize("name,message", [
    ("rewards", "has 20 steps but obs has 21 (inconsistent leading dimension)"),
    ("terminals", "has 20 steps but obs has 21"),
    ("actions", "has 20 steps but obs has 21"),
    ("state", "has 20 steps but obs has 21"),
    ("avail_actions", "has 20 steps but obs has 21"),
    ("final_obs", "has 3 rows but episode_starts has 4 episodes"),
])
def test_inconsistent_leading_dimension(tmp_path: Path, name: str, message: str) -> None:
    path = saved(tmp_path)  # 21 steps, 4 episodes
    edit(path, **{name: read(path, name)[:-1]})
    rejects(path, f": field '{name}': {message}")


def test_wrong_agent_count_vs_card(tmp_path: Path) -> None:
    path = save_dataset(make_dataset(n_agents=2), tmp_path / "bad.h5")
    three = make_dataset(n_agents=3)
    with h5py.File(path, "r+") as f:
        f.attrs["card"] = three.card.to_json()  # a 3-agent card on 2-agent arrays
    rejects(path, ": field 'obs': has 2 agents but the card says n_agents=3")


def test_wrong_agent_count_of_one_field(tmp_path: Path) -> None:
    path = saved(tmp_path)
    edit(path, rewards=read(path, "rewards")[:, :2])
    rejects(path, ": field 'rewards': has 2 agents but the card says n_agents=3")


def test_final_obs_shape(tmp_path: Path) -> None:
    path = saved(tmp_path)
    edit(path, final_obs=read(path, "final_obs")[:, :, :5])
    rejects(path, ": field 'final_obs': shape [4, 3, 5] where [4, 3, 6] is required by the env spec")


def test_unknown_field(tmp_path: Path) -> None:
    path = saved(tmp_path)
    edit(path, avail_action=read(path, "avail_actions"))  # a typo would silently lose the masks
    rejects(path, ": field 'avail_action': unknown field")


def declare(path: Path, name: str, shape: tuple[int, ...]) -> None:
    """Replace field ``name`` with a chunked HDF5 dataset of ``shape`` holding no data: huge shapes cost nothing."""
    with h5py.File(path, "r+") as f:
        dtype = f[name].dtype
        del f[name]
        f.create_dataset(name, shape=shape, dtype=dtype, chunks=(1, *shape[1:]))


@pytest.mark.timeout(10)
def test_declared_shape_disagrees_with_the_step_count_before_anything_is_read(tmp_path: Path) -> None:
    path = saved(tmp_path)  # 21 steps, 3 agents, obs width 6
    declare(path, "obs", (10**12, 3, 6))
    rejects(path, ": field 'obs': has 1000000000000 steps but the card says steps=21")
    path = saved(tmp_path)
    declare(path, "rewards", (10**12, 3))
    rejects(path, ": field 'rewards': has 1000000000000 steps but obs has 21")


@pytest.mark.timeout(10)
def test_fields_that_would_not_fit_in_memory_are_refused_before_reading(tmp_path: Path) -> None:
    path = saved(tmp_path, state=False, avail=False)
    steps = 10**12  # every per-step field and the card agree: only the size is wrong
    for name, trailing in (("obs", (3, 6)), ("rewards", (3,)), ("terminals", ()), ("truncations", ()),
                           ("actions", (3,))):
        declare(path, name, (steps, *trailing))
    edit_card(path, steps=steps)
    obs_gib = steps * 3 * 6 * 4 / 2**30
    rejects(path, f": field 'obs': shape [1000000000000, 3, 6] float32 is {obs_gib:.3g} GiB; the fields need")
    rejects(path, "more than this machine's", validate=False)


@pytest.mark.parametrize("link,message", [
    (h5py.SoftLink("/nowhere"), "is a soft link (to '/nowhere')"),
    (h5py.SoftLink("/obs"), "is a soft link (to '/obs')"),
    (h5py.ExternalLink("missing.h5", "/rewards"), "is an external link (to '/rewards' in 'missing.h5')"),
])
def test_links_are_refused(tmp_path: Path, link: Any, message: str) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["rewards"]
        f["rewards"] = link
    rejects(path, f": field 'rewards': {message}")


def test_an_external_link_to_a_valid_field_is_refused(tmp_path: Path) -> None:
    other = save_dataset(make_dataset(), tmp_path / "other.h5")
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["rewards"]
        f["rewards"] = h5py.ExternalLink(str(other), "/rewards")
    rejects(path, ": field 'rewards': is an external link")


@pytest.mark.parametrize("what,message", [
    ("group", "is an HDF5 group, not an array"),
    ("null", "is an empty HDF5 dataset (no shape), not an array"),
    ("scalar", "must have shape [T, n, obs_dim], got []"),
    ("strings", "dtype |S1 where float32 is required"),
])
def test_an_array_that_is_not_one(tmp_path: Path, what: str, message: str) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["obs"]
        if what == "group":
            f.create_group("obs")
        elif what == "null":
            f.create_dataset("obs", data=h5py.Empty("f4"))
        elif what == "scalar":
            f["obs"] = np.float32(1.0)
        else:
            f["obs"] = np.array([[[b"a"]]])
    rejects(path, f": field 'obs': {message}")


# ---- values ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,index,value,message,kwargs", [
    ("rewards", (17, 0), np.nan, "contains NaN at step 17, agent 0", {}),
    ("obs", (3, 2, 1), np.inf, "contains +inf at step 3, agent 2", {}),
    ("state", (5, 0), -np.inf, "contains -inf at step 5", {}),
    ("final_obs", (2, 0, 0), np.nan, "contains NaN at episode 2, agent 0", {}),
    ("actions", (9, 1, 0), np.nan, "contains NaN at step 9, agent 1", {"discrete": False}),
])
def test_nan_or_inf(tmp_path: Path, name: str, index: tuple, value: float, message: str, kwargs: dict) -> None:
    path = saved(tmp_path, **kwargs)
    arr = read(path, name)
    arr[index] = value
    edit(path, **{name: arr})
    rejects(path, f": field '{name}': {message}")


def test_nonzero_observation_padding(tmp_path: Path) -> None:
    path = saved(tmp_path)  # agent 1 observes 4 of the 6 features
    obs = read(path, "obs")
    obs[7, 1, 5] = 0.25
    edit(path, obs=obs)
    rejects(path, ": field 'obs': agent 1 has non-zero value 0.25 at step 7, index 5, beyond its obs_dims 4")


# ---- episode boundaries ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["terminals", "truncations"])
def test_flag_not_on_last_step_of_episode(tmp_path: Path, name: str) -> None:
    path = saved(tmp_path)  # episode 1 covers steps 6..10
    flags = read(path, name)
    flags[8] = True
    edit(path, **{name: flags})
    rejects(path, f": field '{name}': set at step 8, inside episode 1 (steps 6..10)")


def test_empty_episode(tmp_path: Path) -> None:
    path = saved(tmp_path)  # starts [0, 6, 11, 15]
    final_obs = read(path, "final_obs")
    final_state = read(path, "final_state")
    edit(path, episode_starts=np.array([0, 6, 6, 11, 15], dtype=np.int64),
         final_obs=np.concatenate([final_obs[:1], final_obs]),
         final_state=np.concatenate([final_state[:1], final_state]))
    edit_card(path, episodes=5)
    rejects(path, ": field 'episode_starts': episode 2 is empty (start 6 repeats the previous start)")


def test_empty_last_episode(tmp_path: Path) -> None:
    ds = make_dataset()
    ds.episode_starts[-1] = ds.n_steps
    with pytest.raises(DatasetError, match=r"^<memory>: field 'episode_starts': last episode starts at 21"):
        validate_dataset(ds)


@pytest.mark.parametrize("starts,message", [
    ([1, 6, 11, 15], "must begin at 0, got 1"),
    ([0, 11, 6, 15], "must strictly increase; start 6 of episode 2 follows 11"),
])
def test_episode_starts_order(tmp_path: Path, starts: list[int], message: str) -> None:
    path = saved(tmp_path)
    edit(path, episode_starts=np.array(starts, dtype=np.int64))
    rejects(path, f": field 'episode_starts': {message}")


def test_flags_disagree_with_episode_starts(tmp_path: Path) -> None:
    path = saved(tmp_path)  # episodes end at steps 5, 10, 14, 20
    edit(path, terminals=np.zeros(21, dtype=bool), truncations=np.zeros(21, dtype=bool))
    rejects(path, ": field 'terminals': episode 0 (steps 0..5) ends with neither a terminal nor a truncation flag")


def test_a_step_is_not_both_terminal_and_truncated(tmp_path: Path) -> None:
    path = saved(tmp_path)  # episode 0 ends at step 5
    terminals, truncations = read(path, "terminals"), read(path, "truncations")
    terminals[5] = truncations[5] = True
    edit(path, terminals=terminals, truncations=truncations)
    rejects(path, ": field 'truncations': step 5 is both terminal and truncated")


def test_only_the_last_episode_may_be_unfinished(tmp_path: Path) -> None:
    ds = make_dataset()
    ds.truncations[-1] = False  # a rollout cut by the collector
    path = save_dataset(ds, tmp_path / "cut.h5")
    assert not load_dataset(path).truncations[-1]


# ---- actions ---------------------------------------------------------------------------------------------
def test_discrete_action_not_below_n_actions(tmp_path: Path) -> None:
    path = saved(tmp_path, avail=False)
    actions = read(path, "actions")
    actions[3, 1] = 7
    edit(path, actions=actions)
    rejects(path, f": field 'actions': discrete action 7 at step 3, agent 1 is >= n_actions {N_ACTIONS}")


def test_negative_discrete_action(tmp_path: Path) -> None:
    path = saved(tmp_path, avail=False)
    actions = read(path, "actions")
    actions[4, 0] = -1
    edit(path, actions=actions)
    rejects(path, ": field 'actions': discrete action -1 at step 4, agent 0 is < 0")


def test_unavailable_action(tmp_path: Path) -> None:
    path = saved(tmp_path)
    actions, avail = read(path, "actions"), read(path, "avail_actions")
    avail[12, 2, actions[12, 2]] = False
    if actions[12, 2] == 0:  # keep at least one action available
        avail[12, 2, 1] = True
    edit(path, avail_actions=avail)
    rejects(path, f": field 'actions': action {actions[12, 2]} at step 12, agent 2 is marked unavailable "
                  f"in avail_actions")


def test_continuous_action_outside_box(tmp_path: Path) -> None:
    path = saved(tmp_path, discrete=False)
    actions = read(path, "actions")
    actions[6, 2, 1] = 1.5
    edit(path, actions=actions)
    rejects(path, ": field 'actions': continuous action 1.5 at step 6, agent 2, dimension 1 is outside the Box "
                  "bounds [-1, 1]")


def test_continuous_action_within_tolerance_is_accepted(tmp_path: Path) -> None:
    ds = make_dataset(discrete=False)
    ds.actions[0, 0, 0] = np.float32(1.0 + 5e-6)  # float32 round-off of a clipped action
    ds.actions[1, 0, 0] = np.float32(-1.0 - 5e-6)
    assert load_dataset(save_dataset(ds, tmp_path / "ok.h5")).actions[0, 0, 0] > 1.0


def test_avail_actions_with_continuous_actions(tmp_path: Path) -> None:
    path = saved(tmp_path, discrete=False)
    edit(path, avail_actions=np.ones((21, 3, 2), dtype=bool))
    rejects(path, ": field 'avail_actions': present, but the action space is continuous")


@pytest.mark.parametrize("state_only,message", [
    (False, ": field 'actions': missing (required unless the card says state_only=true)"),
    (True, ": field 'actions': present, but the card says state_only=true"),
])
def test_state_only_card_vs_actions(tmp_path: Path, state_only: bool, message: str) -> None:
    path = saved(tmp_path, state_only=state_only)
    if state_only:
        edit(path, actions=np.zeros((21, 3), dtype=np.int64))
    else:
        edit(path, actions=_DELETE)
    rejects(path, message)


# ---- files, versions and cards ---------------------------------------------------------------------------
def test_truncated_file(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    rejects(path, ": not a readable HDF5 file (truncated, corrupted or another format)")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    path.write_text("obs,rewards\n1,2\n")
    rejects(path, ": not a readable HDF5 file (truncated, corrupted or another format)")


def test_hdf5_file_that_is_not_a_dataset(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    rejects(path, ": field 'format_version': missing (is this an offmarl dataset?)")


def test_newer_format_version(tmp_path: Path) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    rejects(path, f": field 'format_version': format version {FORMAT_VERSION + 1} is newer than this offmarl's "
                  f"{FORMAT_VERSION}; upgrade offmarl")


def test_newer_format_version_in_card(tmp_path: Path) -> None:
    path = saved(tmp_path)
    edit_card(path, format_version=FORMAT_VERSION + 1)
    rejects(path, f": card: format version {FORMAT_VERSION + 1} is newer")


@pytest.mark.parametrize("changes,message", [
    ({"env_name": _DELETE}, ": card: card is missing key 'env_name'"),
    ({"colour": "red"}, ": card: card has unknown key 'colour'"),
    ({"action_kind": "hybrid"}, ": card: card key 'action_kind' must be 'discrete' or 'continuous'"),
    ({"n_agents": 4}, ": card: card key 'n_agents' (4) disagrees with env_spec (3)"),
    ({"env_spec": {"name": "toy_grid"}}, ": card: card key 'env_spec' is not a valid env spec"),
    ({"action_kind": "continuous"}, ": card: action_kind 'continuous' disagrees with env_spec's discrete"),
    ({"obs_dims": [6, 6, 6]}, ": card: obs_dims [6, 6, 6] disagree with env_spec's [6, 4, 6]"),
])
def test_invalid_card(tmp_path: Path, changes: dict, message: str) -> None:
    path = saved(tmp_path)
    edit_card(path, **changes)
    rejects(path, message)


@pytest.mark.parametrize("changes,message", [
    ({"obs_dims": "64"}, "card key 'obs_dims' must be a list of int, got '64'"),
    ({"seed": 1.5}, "card key 'seed' must be int or null, got 1.5"),
    ({"state_only": "no"}, "card key 'state_only' must be bool, got 'no'"),
    ({"return_mean": [1]}, "card key 'return_mean' must be float, got [1]"),
    ({"env_kwargs": []}, "card key 'env_kwargs' must be an object with string keys, got []"),
    ({"env_spec": {"name": "x", "n_agents": 3, "obs_dim": 6, "obs_dims": [6, 4, 6], "state_dim": 4,
                   "action_space": {"kind": "discrete", "n": 0}, "episode_limit": 6, "agent_types": ["a"] * 3}},
     "card key 'env_spec' is not a valid env spec"),
])
def test_card_values_of_the_wrong_type(tmp_path: Path, changes: dict, message: str) -> None:
    path = saved(tmp_path)
    edit_card(path, **changes)
    rejects(path, f": card: {message}")


@pytest.mark.parametrize("card,message", [
    (np.array(b"\xff\xfe{}", dtype=h5py.string_dtype("utf-8")), "card: not UTF-8 text"),
    (b"\xff{}", "card: not UTF-8 text"),
    (np.int64(3), "card: must be a JSON text attribute, got int64"),
    ("[" * 100_000, "card: not valid JSON"),
    ("[1, 2]", "card: must be a JSON object, got list"),
])
def test_card_that_is_not_json_text(tmp_path: Path, card: Any, message: str) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["card"] = card
    rejects(path, f": {message}")


@pytest.mark.parametrize("attrs,message", [
    ({"format_version": 1.0}, "field 'format_version': must be an integer, got 1.0"),
    ({"format_version": "1"}, "field 'format_version': must be an integer, got '1'"),
    ({"per_agent": "yes"}, "field 'per_agent': must be true or false, got 'yes'"),
    ({"per_agent": True, "n_groups": "2"}, "field 'n_groups': per-agent file without a positive group count"),
    ({"per_agent": True, "n_groups": 1}, "field 'agent_0': missing or not a group (the file says n_groups=1)"),
])
def test_bad_root_attributes(tmp_path: Path, attrs: dict, message: str) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs.update(attrs)
    rejects(path, f": {message}", agent=0 if attrs.get("per_agent") is True else None)


def test_card_that_is_not_json(tmp_path: Path) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["card"] = "{not json"
    rejects(path, ": card: not valid JSON")


def test_stale_card(tmp_path: Path) -> None:
    path = saved(tmp_path)
    edit(path, rewards=read(path, "rewards") + 1.0)
    rejects(path, ": card: return_mean=")
    edit_card(path, episodes=9)
    rejects(path, ": field 'episode_starts': has 4 episodes but the card says episodes=9 (a stale card? call "
                  "ds.refresh_card())")


@pytest.mark.parametrize("key", ["return_std", "return_max", "team_return_mean", "per_agent_return_std"])
def test_every_return_statistic_agrees_with_the_rewards_to_1e_4(tmp_path: Path, key: str) -> None:
    path = saved(tmp_path)
    with h5py.File(path, "r") as f:
        true = json.loads(f.attrs["card"])[key]
    scale = (lambda x, factor: [v * factor for v in x]) if isinstance(true, list) else (lambda x, factor: x * factor)
    edit_card(path, **{key: scale(true, 1 + 1e-6)})  # float noise is accepted
    load_dataset(path)
    edit_card(path, **{key: scale(true, 1 + 1e-3)})
    rejects(path, f": card: {key}=")


def test_per_agent_error_names_the_group(tmp_path: Path) -> None:
    path = save_per_agent_datasets([make_dataset(seed=s) for s in range(2)], tmp_path / "pa.h5")
    with h5py.File(path, "r+") as f:
        f["agent_1/rewards"][17, 0] = np.nan
    rejects(path, " [agent_1]: field 'rewards': contains NaN at step 17, agent 0", agent=1)
    load_dataset(path, agent=0)  # the other group is untouched


# ---- the card's environment, from the registry -----------------------------------------------------------
@pytest.fixture(scope="module")
def mpe_file(tmp_path_factory) -> Path:
    """A dataset of mpe_cn_3ls3l (3 agents, obs width 10, state 18, 5 actions)."""
    return save_dataset(collected_dataset("mpe_cn_3ls3l"), tmp_path_factory.mktemp("mpe") / "cn.h5")


def mpe_copy(tmp_path: Path, mpe_file: Path) -> Path:
    path = tmp_path / "bad.h5"
    path.write_bytes(mpe_file.read_bytes())
    return path


def card_of(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["card"])


@pytest.mark.parametrize("changes,message", [
    ({"env_name": "nope"}, ": card: key 'env_name': unknown environment 'nope'; known: equal_space"),
    ({"env_kwargs": {"bogus": 1}}, ": card: key 'env_kwargs': environment 'mpe_cn_3ls3l' takes no argument 'bogus' "
                                   "(its arguments: episode_limit, local_ratio, visible_landmarks, visible_seekers)"),
    ({"env_kwargs": {"visible_seekers": 7}}, ": card: key 'env_kwargs': mpe_cn_3ls3l: visible_seekers must be in"),
    ({"env_kwargs": {"episode_limit": "long"}}, ": card: key 'env_kwargs': '<' not supported"),
    ({"env_kwargs": {"visible_landmarks": 1}}, ": card: key 'env_spec': obs_dims [10, 10, 10] disagrees with "
                                               "environment 'mpe_cn_3ls3l' with the card's env_kwargs, which has "
                                               "[8, 8, 8]"),
    ({"env_name": "mpe_cn_4ls4l"}, ": card: key 'env_spec': n_agents 3 disagrees with environment 'mpe_cn_4ls4l'"),
    ({"env_name": "mpe_pp_3p1p", "env_kwargs": {}},
     ": card: key 'env_spec': state_dim 18 disagrees with environment 'mpe_pp_3p1p' with the card's env_kwargs, "
     "which has 20"),
    ({"env_name": "matrix_game", "env_kwargs": {}}, ": card: key 'env_spec': n_agents 3 disagrees"),
    ({"env_name": "equal_space", "env_kwargs": {}}, ": card: key 'env_spec': obs_dims [10, 10, 10] disagrees"),
    ({"env_name": "smac_1c3s5z", "env_kwargs": {}}, ": card: key 'env_name': environment 'smac_1c3s5z' cannot be "
                                                    "built"),
])
def test_card_disagrees_with_its_environment(tmp_path: Path, mpe_file: Path, changes: dict, message: str) -> None:
    path = mpe_copy(tmp_path, mpe_file)
    edit_card(path, **changes)
    rejects(path, message)
    load_dataset(path, validate=False)  # the environment is part of validation, not of the structure


def test_a_card_of_four_agents_on_a_three_agent_env(tmp_path: Path) -> None:
    path = save_dataset(collected_dataset("mpe_cn_4ls4l", episodes=2), tmp_path / "four.h5")
    edit_card(path, env_name="mpe_cn_3ls3l")
    rejects(path, ": card: key 'env_spec': n_agents 4 disagrees with environment 'mpe_cn_3ls3l' with the card's "
                  "env_kwargs, which has 3")


def test_what_the_environment_check_accepts(tmp_path: Path, mpe_file: Path) -> None:
    assert load_dataset(mpe_file).card.env_name == "mpe_cn_3ls3l"
    path = mpe_copy(tmp_path, mpe_file)
    edit_card(path, env_kwargs={})  # the env's defaults: the same spec
    load_dataset(path)
    spec = card_of(path)["env_spec"]  # stored without the global state
    edit(path, state=_DELETE, final_state=_DELETE)
    edit_card(path, env_spec={**spec, "state_dim": 0})
    assert load_dataset(path).state is None
    edit_card(path, env_name="external:some/other_library")  # shapes and dtypes only
    load_dataset(path)


def test_an_env_whose_extra_is_missing_is_checked_for_what_can_be(tmp_path: Path, mpe_file: Path) -> None:
    register_env("_test_extra_missing", "offmarl.envs._no_such_module:make", "needs an extra", source="smax",
                 spec="offmarl.envs._no_such_module:spec")
    try:
        path = mpe_copy(tmp_path, mpe_file)
        edit_card(path, env_name="_test_extra_missing")
        with pytest.warns(UserWarning) as caught:
            load_dataset(path)
        (warning,) = caught
        assert str(warning.message) == (f"{path}: card: env_kwargs and env_spec not checked against environment "
                                        "'_test_extra_missing': environment '_test_extra_missing' needs the optional "
                                        "extra 'smax': pip install 'offmarl[smax]' (No module named "
                                        "'offmarl.envs._no_such_module')")
    finally:
        _REGISTRY.pop("_test_extra_missing")


def test_the_cli_prints_a_warning_as_one_line(capsys) -> None:
    from offmarl.cli import _show_warning

    _show_warning(UserWarning("first\nsecond"), UserWarning, "x.py", 1)
    assert capsys.readouterr().err == "warning: first second\n"


# ---- in memory and on the command line ------------------------------------------------------------------
def test_validate_in_memory_dataset() -> None:
    ds = make_dataset()
    validate_dataset(ds)
    ds.obs = ds.obs.astype(np.float64)
    with pytest.raises(DatasetError, match=r"^data/x\.h5: field 'obs': dtype float64"):
        validate_dataset(ds, source="data/x.h5")


@pytest.mark.parametrize("breakage", ["not_hdf5", "nan", "agent_of_plain_file", "unknown_env"])
def test_cli_info_on_bad_file_exits_2_with_one_line(tmp_path: Path, breakage: str) -> None:
    path = tmp_path / "bad.h5"
    args = ["info", str(path)]
    if breakage == "not_hdf5":
        path.write_text("hello")
    elif breakage == "nan":
        save_dataset(make_dataset(), path)
        with h5py.File(path, "r+") as f:
            f["rewards"][17, 0] = np.nan
    elif breakage == "unknown_env":
        save_dataset(make_dataset(), path)
        edit_card(path, env_name="nope")
    else:
        save_dataset(make_dataset(), path)
        args += ["--agent", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}")
    assert "Traceback" not in result.output


# ---- behaviour levels ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,names,message", [
    (np.zeros((4, 3), np.int64), _DELETE, "field 'behavior_levels': dtype int64 where uint8 is required"),
    (np.zeros((4, 2), np.uint8), _DELETE, "field 'behavior_levels': has 2 agents but the card says n_agents=3"),
    (np.zeros((3, 3), np.uint8), _DELETE, "field 'behavior_levels': has 3 rows but episode_starts has 4 episodes"),
    (np.zeros(4, np.uint8), _DELETE, "field 'behavior_levels': must have 2 dimensions [4, 3], got shape [4]"),
    (np.full((4, 3), 3, np.uint8), _DELETE,
     "field 'behavior_levels': level 3 at episode 0, agent 0 is >= the 3 behavior_level_names of the card"),
    (_DELETE, _DELETE, "field 'behavior_levels': missing, but the card names behaviour levels"),
    (_DELETE, None, None),  # neither: a dataset without levels
    (np.zeros((4, 3), np.uint8), None, "field 'behavior_levels': present, but the card's behavior_level_names is null"),
    (np.zeros((4, 3), np.uint8), ["random", "random"], "card: key 'behavior_level_names' names a level twice"),
    (np.zeros((4, 3), np.uint8), [], "card: key 'behavior_level_names' must list at least one non-empty name"),
    (np.zeros((4, 3), np.uint8), ["random", ""], "card: key 'behavior_level_names' must list at least one non-empty"),
    (np.zeros((4, 3), np.uint8), "random",
     "card: card key 'behavior_level_names' must be a list of str or null, got 'random'"),
], ids=["dtype", "agents", "episodes", "rank", "out_of_range", "names_without_array", "neither", "array_without_names",
        "repeated_name", "no_names", "empty_name", "names_not_a_list"])
def test_behavior_levels(tmp_path: Path, levels: Any, names: Any, message: str | None) -> None:
    """The file's field replaced by ``levels`` (``_DELETE``: removed); ``_DELETE`` for ``names`` keeps the card's
    ["random", "medium", "expert"]. Each bad pair is refused with one line naming the file and the field."""
    path = saved(tmp_path, episodes=4, levels=True)
    edit(path, behavior_levels=levels)
    if names is not _DELETE:
        edit_card(path, behavior_level_names=names)
    if message is None:
        assert load_dataset(path).behavior_levels is None
        return
    rejects(path, message)


def test_behavior_levels_out_of_range_later_in_the_array(tmp_path: Path) -> None:
    ds = make_dataset(episodes=5, levels=True, seed=4)
    ds.behavior_levels[3, 2] = 7
    with pytest.raises(DatasetError, match=r"^<memory>: field 'behavior_levels': level 7 at episode 3, agent 2 is >= "
                                           r"the 3 behavior_level_names of the card \['random', 'medium', 'expert'\]$"):
        validate_dataset(ds)
    with pytest.raises(DatasetError, match="field 'behavior_levels'"):
        save_dataset(ds, tmp_path / "never.h5")
    assert not (tmp_path / "never.h5").exists()


@pytest.mark.timeout(10)
def test_behavior_levels_declared_huge_are_refused_before_reading(tmp_path: Path) -> None:
    path = saved(tmp_path, episodes=4, levels=True)
    with h5py.File(path, "r+") as f:
        del f["behavior_levels"]
        f.create_dataset("behavior_levels", shape=(10**12, 3), dtype=np.uint8, chunks=(1, 3))
    rejects(path, "field 'behavior_levels': has 1000000000000 rows but episode_starts has 4 episodes")
