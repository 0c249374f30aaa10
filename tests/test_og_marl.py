"""OG-MARL datasets in and out (offmarl.data.og_marl, ``offmarl import og-marl`` / ``offmarl export og-marl``).

No OG-MARL download is reachable from the tests, so they record a small vault the way OG-MARL does
(``og_marl/replay_buffers.py``: a flashbax trajectory buffer with ``add_batch_size=1``, written by a flashbax
``Vault``, every leaf ``[1, T, N, ...]`` as in its published datasets) and convert it both ways, field by field.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from _datasets import make_dataset
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.data.io import card_to_json, load_dataset, save_dataset
from offmarl.data.og_marl import (
    FINAL_OBS_NOTE,
    dataset_to_experience,
    experience_to_dataset,
    locate_vault,
    read_vault,
)
from offmarl.errors import DatasetError

N_AGENTS, OBS_DIM, N_ACTIONS, STATE_DIM = 3, 4, 5, 6
# Four episodes (terminated, terminated, truncated, terminated) and two steps of an unfinished fifth, as a
# vault written while recording is cut.
LENGTHS, TRUNCATED_EPISODE, UNFINISHED = (3, 5, 2, 4), 2, 2


def og_marl_experience(seed: int = 0) -> dict:
    """OG-MARL's experience tree (``[1, T, N, ...]``, float32 flags per agent) of the episodes above."""
    rng = np.random.default_rng(seed)
    steps = sum(LENGTHS) + UNFINISHED
    legals = (rng.random((1, steps, N_AGENTS, N_ACTIONS)) < 0.5).astype(np.float32)
    legals[..., 0] = 1.0
    actions = np.argmax(legals * rng.random(legals.shape), axis=-1).astype(np.int32)  # a legal action
    terminals = np.zeros((1, steps, N_AGENTS), np.float32)
    truncations = np.zeros((1, steps, N_AGENTS), np.float32)
    for episode, end in enumerate(np.cumsum(LENGTHS) - 1):
        (truncations if episode == TRUNCATED_EPISODE else terminals)[0, end] = 1.0
    team_reward = rng.integers(0, 4, size=(1, steps, 1)).astype(np.float32)
    return {"observations": rng.normal(size=(1, steps, N_AGENTS, OBS_DIM)).astype(np.float32),
            "actions": actions, "rewards": np.repeat(team_reward, N_AGENTS, axis=2),
            "terminals": terminals, "truncations": truncations,
            "infos": {"legals": legals, "state": rng.normal(size=(1, steps, STATE_DIM)).astype(np.float32)}}


def record_vault(root: Path, experience: dict, uid: str = "Good") -> Path:
    """Write ``experience`` as OG-MARL's recorder does: into a flashbax trajectory buffer, then its vault
    ``root/og_marl/smac_v1/3m.vlt/<uid>``; returns the ``.vlt`` folder."""
    import flashbax as fbx
    import jax
    from flashbax.vault import Vault

    steps = experience["observations"].shape[1]
    buffer = fbx.make_trajectory_buffer(add_batch_size=1, sample_batch_size=1, sample_sequence_length=1, period=1,
                                        min_length_time_axis=1, max_length_time_axis=steps + 1)
    state = buffer.init(jax.tree.map(lambda x: x[0, 0], experience))
    state = buffer.add(state, experience)
    Vault(vault_name="og_marl/smac_v1/3m.vlt", experience_structure=state.experience, rel_dir=str(root),
          vault_uid=uid).write(state)
    return root / "og_marl" / "smac_v1" / "3m.vlt"


@pytest.fixture
def vault(tmp_path):
    pytest.importorskip("flashbax", reason="OG-MARL vaults need flashbax (pip install 'offmarl[og-marl]')")
    return record_vault(tmp_path / "vaults", og_marl_experience())


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def leaves(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"infos/state": array, ...}`` of an experience tree."""
    out = {}
    for key, value in tree.items():
        out.update(leaves(value, f"{prefix}{key}/") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def tree_map(fn, tree: dict) -> dict:
    return {key: tree_map(fn, value) if isinstance(value, dict) else fn(value) for key, value in tree.items()}


def test_import_maps_every_field_of_the_vault(vault, tmp_path):
    output = invoke("import", "og-marl", vault, "--uid", "Good", "--task", "smac_v1/3m", "--out", tmp_path / "3m.h5")
    assert "4 episodes" not in output and "5 episodes" in output  # the unfinished fifth is kept, as offmarl's last
    ds = load_dataset(tmp_path / "3m.h5")
    exp = og_marl_experience()
    np.testing.assert_array_equal(ds.obs, exp["observations"][0])
    assert ds.actions.dtype == np.int64
    np.testing.assert_array_equal(ds.actions, exp["actions"][0])
    np.testing.assert_array_equal(ds.rewards, exp["rewards"][0])
    np.testing.assert_array_equal(ds.state, exp["infos"]["state"][0])
    np.testing.assert_array_equal(ds.avail_actions, exp["infos"]["legals"][0] > 0)
    ends = np.cumsum(LENGTHS) - 1
    np.testing.assert_array_equal(ds.episode_starts, np.concatenate([[0], ends + 1]))
    assert list(np.flatnonzero(ds.truncations)) == [ends[TRUNCATED_EPISODE]]
    assert list(np.flatnonzero(ds.terminals)) == [e for i, e in enumerate(ends) if i != TRUNCATED_EPISODE]
    last = np.append(ends, ds.n_steps - 1)
    np.testing.assert_array_equal(ds.final_obs, ds.obs[last])  # a vault has no observation after the last step
    np.testing.assert_array_equal(ds.final_state, ds.state[last])
    card = ds.card
    assert card.env_name == "external:smac_v1/3m" and card.quality_tier == "Good"
    assert card.spec.n_actions == N_ACTIONS and card.spec.state_dim == STATE_DIM and card.spec.has_avail_actions
    assert card.spec.episode_limit == max(LENGTHS) and card.obs_dims == [OBS_DIM] * N_AGENTS
    assert card.extra["og_marl"]["final_obs"] == FINAL_OBS_NOTE
    assert card.extra["og_marl"]["steps_dropped"] == card.extra["og_marl"]["steps_with_partial_agent_flags"] == 0


def test_import_then_export_gives_back_the_vault_leaf_by_leaf(vault, tmp_path):
    invoke("import", "og-marl", vault / "Good", "--out", tmp_path / "3m.h5")  # a uid folder names itself
    invoke("export", "og-marl", tmp_path / "3m.h5", "--out", tmp_path / "again.vlt", "--uid", "Good")
    original, _ = read_vault(vault, "Good")
    exported, metadata = read_vault(tmp_path / "again.vlt")
    assert sorted(leaves(exported)) == sorted(leaves(original))
    for name, value in leaves(original).items():
        assert leaves(exported)[name].dtype == value.dtype, name
        np.testing.assert_array_equal(leaves(exported)[name], value, err_msg=name)
    assert json.loads(metadata["offmarl_card"])["env_name"] == "external:3m"


@pytest.mark.parametrize("discrete, avail, levels", [(True, True, True), (True, False, False), (False, False, True)])
def test_export_then_import_restores_the_dataset(tmp_path, discrete, avail, levels):
    """Without masks, the export writes legals that allow everything, and the import drops them again; behaviour
    levels travel in the vault's metadata beside the card."""
    pytest.importorskip("flashbax", reason="OG-MARL vaults need flashbax (pip install 'offmarl[og-marl]')")
    original = make_dataset(episodes=5, discrete=discrete, avail=avail, seed=3, levels=levels)
    save_dataset(original, tmp_path / "d.h5")
    invoke("export", "og-marl", tmp_path / "d.h5", "--out", tmp_path / "d.vlt")
    invoke("import", "og-marl", tmp_path / "d.vlt", "--out", tmp_path / "back.h5")
    back = load_dataset(tmp_path / "back.h5")
    for name in ("obs", "actions", "rewards", "terminals", "truncations", "episode_starts", "state", "avail_actions",
                 "behavior_levels"):
        mine, theirs = getattr(original, name), getattr(back, name)
        assert (mine is None) == (theirs is None), name
        if mine is not None:
            assert theirs.dtype == mine.dtype, name
            np.testing.assert_array_equal(theirs, mine, err_msg=name)
    np.testing.assert_array_equal(back.final_obs, back.obs[back.episode_ends - 1])
    kept = {k: v for k, v in back.card.to_dict().items() if k not in ("extra", "created")}
    assert kept == {k: v for k, v in original.card.to_dict().items() if k not in ("extra", "created")}
    assert back.card.extra["og_marl"]["uid"] == "d" and back.card.extra["og_marl"]["metadata"] == {}


def test_an_exported_card_naming_levels_needs_them_in_the_metadata():
    ds = make_dataset(episodes=5, seed=3, levels=True)
    experience = dataset_to_experience(ds)
    card = card_to_json(ds.card)
    levels = ds.behavior_levels.tolist()
    back = experience_to_dataset(experience, {"offmarl_card": card, "offmarl_behavior_levels": levels}, task="t",
                                 uid="u")
    np.testing.assert_array_equal(back.behavior_levels, ds.behavior_levels)
    for bad, got in ((None, "got nothing"), (levels[:-1], "got shape [4, 3], dtype int64"),
                     ([[0.5, 1, 1]] * 5, "got shape [5, 3], dtype float64"), ([[0, 1], [1]], "got list"),
                     ([[300, 0, 0]] * 5, "got shape [5, 3]")):
        metadata = {"offmarl_card": card, **({} if bad is None else {"offmarl_behavior_levels": bad})}
        with pytest.raises(DatasetError, match=r"^<vault>: metadata 'offmarl_behavior_levels': the card names "
                                               r"behaviour levels, so the metadata must hold 5 rows of 3 level "
                                               rf"indices in \[0, 255\]; {re.escape(got)}"):
            experience_to_dataset(experience, metadata, task="t", uid="u")


def test_a_converted_vault_trains_and_its_evaluation_is_skipped(vault, tmp_path):
    """Trained, not evaluated: eval.json has null scores, ``offmarl eval`` says why, a bench table lists it apart."""
    invoke("import", "og-marl", vault, "--out", tmp_path / "3m.h5")
    run = tmp_path / "runs" / "3m" / "bc" / "seed0"
    output = invoke("train", "bc", "--dataset", tmp_path / "3m.h5", "--steps", "20", "--out", run, "--quiet")
    skipped = [line for line in output.splitlines() if line.startswith("eval:")]
    assert skipped == ["eval: skipped: offmarl has no environment for external:3m (data imported from another "
                       "library)"]
    record = json.loads((run / "eval.json").read_text())
    assert record["return_mean"] is None and record["curve"] == [] and record["protocol"]["steps"] == 20
    result = CliRunner().invoke(app, ["eval", str(run)])
    assert result.exit_code == 2 and "no environment to evaluate it in" in result.output
    result = CliRunner().invoke(app, ["train", "bc", "--dataset", str(tmp_path / "3m.h5"), "--checkpoint", "best",
                                      "--eval-every", "10", "--out", str(tmp_path / "best")])
    assert result.exit_code == 2 and "--checkpoint best needs evaluations" in result.output
    invoke("bench", "table", tmp_path / "runs")
    assert ("Not evaluated (offmarl has no environment for data imported from another library): bc on 3m, seed 0."
            in (tmp_path / "runs" / "table.md").read_text())


def test_a_vault_of_several_datasets_needs_a_uid(vault):
    record_vault(vault.parent.parent.parent, og_marl_experience(seed=1), uid="Poor")
    assert locate_vault(vault, "Poor") == (vault.resolve(), "Poor")
    with pytest.raises(ValueError, match="holds the datasets Good, Poor; name one with --uid"):
        locate_vault(vault)


def test_batch_rows_and_flags_of_single_agents(tmp_path):
    """Two batch rows: the first ends in an unfinished episode, which is dropped; a step where one agent alone
    is terminal is no episode end, and the card counts it."""
    exp = og_marl_experience()
    rows = tree_map(lambda leaf: np.concatenate([leaf, leaf]), exp)
    rows["terminals"][0, 1, 0] = 1.0  # agent 0 alone, inside the first episode
    ds = experience_to_dataset(rows, {}, task="3m", uid="Good")
    steps = sum(LENGTHS)
    assert ds.n_steps == steps + steps + UNFINISHED and ds.n_episodes == 2 * len(LENGTHS) + 1
    assert ds.card.extra["og_marl"]["steps_dropped"] == UNFINISHED
    assert ds.card.extra["og_marl"]["steps_with_partial_agent_flags"] == 1
    np.testing.assert_array_equal(ds.obs[steps:], exp["observations"][0])


def test_a_vault_without_a_field_names_it():
    exp = og_marl_experience()
    del exp["rewards"]
    with pytest.raises(DatasetError, match="field 'rewards': missing"):
        experience_to_dataset(exp, {}, task="3m", uid="Good")
    exp = og_marl_experience()
    exp["actions"] = exp["actions"][:, :-1]
    with pytest.raises(DatasetError, match="field 'actions': shape .* disagrees with observations'"):
        experience_to_dataset(exp, {}, task="3m", uid="Good")


def test_without_flashbax_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "flashbax.vault", None)
    (tmp_path / "3m.vlt" / "Good").mkdir(parents=True)
    (tmp_path / "3m.vlt" / "Good" / "metadata.json").write_text("{}")
    result = CliRunner().invoke(app, ["import", "og-marl", str(tmp_path / "3m.vlt"), "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 2
    assert "pip install 'offmarl[og-marl]'" in result.output and len(result.output.strip().splitlines()) == 1
