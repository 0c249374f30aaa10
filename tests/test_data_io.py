"""HDF5 round trips, per-agent files, atomic saving and ``offmarl info``."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from _datasets import make_dataset
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.data import io
from offmarl.data.dataset import FORMAT_VERSION, MultiAgentDataset
from offmarl.data.io import dataset_info, load_dataset, save_dataset, save_per_agent_datasets
from offmarl.data.validate import ALL_FIELDS
from offmarl.errors import DatasetError

runner = CliRunner()


def assert_same_dataset(a: MultiAgentDataset, b: MultiAgentDataset) -> None:
    for name in ALL_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None, name
            continue
        assert y.dtype == x.dtype and y.shape == x.shape, name
        assert np.array_equal(x, y), name
    assert a.card.to_dict() == b.card.to_dict()


CASES = [
    dict(discrete=d, state=s, avail=av, state_only=so, levels=d == s)  # behaviour levels with and without state
    for d, s, av, so in itertools.product([True, False], [True, False], [True, False], [False, True])
    if d or not av  # avail masks only exist for discrete actions
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(f"{key}={int(v)}" for key, v in k.items()))
def test_round_trip_every_field_and_card(tmp_path: Path, kwargs: dict) -> None:
    ds = make_dataset(**kwargs)
    path = save_dataset(ds, tmp_path / "d.h5")
    back = load_dataset(path)
    assert_same_dataset(ds, back)
    with h5py.File(path, "r") as f:
        stored = set(f.keys())
    expected = {name for name in ALL_FIELDS if getattr(ds, name) is not None}
    assert stored == expected  # optional fields that are None are absent from the file
    assert ("actions" in stored) is not kwargs["state_only"]


def test_a_version_1_file_loads_without_normalization_returns_or_levels(tmp_path: Path) -> None:
    ds = make_dataset(episodes=3, seed=2, levels=True)
    ds.card.random_return, ds.card.reference_return = -1.5, 2.5
    path = save_dataset(ds, tmp_path / "d.h5")
    back = load_dataset(path)
    card = back.card
    assert (card.format_version, card.random_return, card.reference_return) == (2, -1.5, 2.5)
    assert card.behavior_level_names == ["random", "medium", "expert"]
    np.testing.assert_array_equal(back.behavior_levels, ds.behavior_levels)
    with h5py.File(path, "r+") as f:  # the file as offmarl wrote it before format version 2
        stored = json.loads(f.attrs["card"])
        del stored["random_return"], stored["reference_return"], stored["behavior_level_names"]
        del f["behavior_levels"]
        f.attrs["card"] = json.dumps({**stored, "format_version": 1})
        f.attrs["format_version"] = 1
    back = load_dataset(path)
    card = back.card
    assert (card.format_version, card.random_return, card.reference_return) == (1, None, None)
    assert back.behavior_levels is None and card.behavior_level_names is None
    for name in ALL_FIELDS:  # the arrays are read as they were
        if name != "behavior_levels" and getattr(ds, name) is not None:
            np.testing.assert_array_equal(getattr(back, name), getattr(ds, name), err_msg=name)


def test_a_version_2_file_written_before_behaviour_levels_loads_without_them(tmp_path: Path) -> None:
    """Version 2 first held the normalization returns alone: such a card has no behavior_level_names key."""
    path = save_dataset(make_dataset(episodes=3, seed=2), tmp_path / "d.h5")
    with h5py.File(path, "r+") as f:
        stored = json.loads(f.attrs["card"])
        del stored["behavior_level_names"]
        f.attrs["card"] = json.dumps(stored)
    back = load_dataset(path)
    assert back.behavior_levels is None and back.card.behavior_level_names is None
    assert back.card.format_version == 2


def test_behaviour_levels_are_chunked_along_episodes_and_follow_episode_selection(tmp_path: Path) -> None:
    ds = make_dataset(episodes=7, seed=6, levels=True)
    path = save_dataset(ds, tmp_path / "d.h5", compression="gzip")
    with h5py.File(path, "r") as f:
        levels = f["behavior_levels"]
        assert (levels.dtype, levels.shape, levels.chunks) == (np.uint8, (7, 3), (7, 3))
    assert dataset_info(path)["fields"]["behavior_levels"] == {"shape": [7, 3], "dtype": "uint8"}
    back = load_dataset(path)
    picked = back.select_episodes(np.array([5, 0, 5]))
    np.testing.assert_array_equal(picked.behavior_levels, ds.behavior_levels[[5, 0, 5]])
    assert picked.card.behavior_level_names == ["random", "medium", "expert"]
    np.testing.assert_array_equal(back.episode(4)["behavior_levels"], ds.behavior_levels[4])
    assert_same_dataset(picked, load_dataset(save_dataset(picked, tmp_path / "picked.h5")))


@pytest.mark.parametrize("compression", [None, "lzf", "gzip"])
def test_layout_chunks_version_and_card_attribute(tmp_path: Path, compression: str | None) -> None:
    ds = make_dataset(episodes=6, seed=3)
    path = save_dataset(ds, tmp_path / "d.h5", compression=compression)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert not f.attrs["per_agent"]
        assert json.loads(f.attrs["card"]) == ds.card.to_dict()
        obs = f["obs"]
        assert obs.chunks is not None and obs.chunks[1:] == obs.shape[1:]  # chunked along time only
        assert obs.chunks[0] == ds.n_steps  # tiny dataset: one chunk holds every step
        assert obs.compression == compression
    assert_same_dataset(ds, load_dataset(path))


def test_chunk_shape_targets_about_one_megabyte() -> None:
    # 1M steps x 3 agents x 32 float32 = 384 bytes per step -> 2730 steps per 1 MiB chunk
    assert io._chunk_shape((1_000_000, 3, 32), 4) == (2730, 3, 32)
    assert io._chunk_shape((10, 3, 32), 4) == (10, 3, 32)
    assert io._chunk_shape((5_000_000,), 1) == (1 << 20,)


def test_bad_compression_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compression must be one of"):
        save_dataset(make_dataset(), tmp_path / "d.h5", compression="zstd")
    assert not (tmp_path / "d.h5").exists()


def test_large_card_numpy_values_and_parent_dirs(tmp_path: Path) -> None:
    ds = make_dataset()
    ds.card.extra = {"big": "x" * 100_000, "rate": np.float64(0.25), "counts": np.arange(3)}
    path = save_dataset(ds, tmp_path / "new" / "dir" / "d.h5")
    card = load_dataset(path).card
    assert card.extra == {"big": "x" * 100_000, "rate": 0.25, "counts": [0, 1, 2]}


def test_load_without_validation_still_checks_structure(tmp_path: Path) -> None:
    ds = make_dataset()
    path = save_dataset(ds, tmp_path / "d.h5")
    assert_same_dataset(ds, load_dataset(path, validate=False))
    with h5py.File(path, "r+") as f:
        del f["rewards"]
    with pytest.raises(DatasetError, match=f"{path}: field 'rewards': missing"):
        load_dataset(path, validate=False)


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        load_dataset(tmp_path / "missing.h5")


# ---- per-agent files ---------------------------------------------------------------------------------
def per_agent_datasets() -> list[MultiAgentDataset]:
    # each agent's group is a full dataset with its own card (different seeds, sizes and tiers; one with levels)
    out = [make_dataset(n_agents=2, episodes=3 + i, seed=10 + i, levels=i == 1) for i in range(3)]
    for i, ds in enumerate(out):
        ds.card.quality_tier = ["poor", "normal", "good"][i]
    return out


def test_per_agent_round_trip(tmp_path: Path) -> None:
    datasets = per_agent_datasets()
    path = save_per_agent_datasets(datasets, tmp_path / "pa.h5", compression="lzf")
    with h5py.File(path, "r") as f:
        assert f.attrs["per_agent"] and f.attrs["n_groups"] == 3
        assert sorted(f.keys()) == ["agent_0", "agent_1", "agent_2"]
    for i, ds in enumerate(datasets):
        back = load_dataset(path, agent=i)
        assert_same_dataset(ds, back)
        assert back.n_episodes == 3 + i and back.card.quality_tier == ds.card.quality_tier


def test_per_agent_file_needs_agent(tmp_path: Path) -> None:
    path = save_per_agent_datasets(per_agent_datasets(), tmp_path / "pa.h5")
    with pytest.raises(DatasetError, match=rf"{path}: is a per-agent dataset with 3 agent groups .*pass agent=i"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"agent 3 out of range; this per-agent dataset has 3 agent groups"):
        load_dataset(path, agent=3)
    plain = save_dataset(make_dataset(), tmp_path / "plain.h5")
    with pytest.raises(DatasetError, match=rf"{plain}: not a per-agent dataset; omit agent=0"):
        load_dataset(plain, agent=0)


def test_dataset_info_reads_headers(tmp_path: Path) -> None:
    ds = make_dataset(discrete=False, state=False)
    info = dataset_info(save_dataset(ds, tmp_path / "d.h5"))
    assert info["format_version"] == FORMAT_VERSION and info["per_agent"] is False
    assert info["card"] == ds.card.to_dict()
    assert info["fields"]["actions"] == {"shape": [ds.n_steps, 3, 2], "dtype": "float32"}
    assert "state" not in info["fields"]
    pa = dataset_info(save_per_agent_datasets(per_agent_datasets(), tmp_path / "pa.h5"))
    assert pa["per_agent"] is True and pa["n_groups"] == 3
    assert [a["card"]["episodes"] for a in pa["agents"]] == [3, 4, 5]


# ---- atomic saving -------------------------------------------------------------------------------------
def _fail_on_rewards(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    written: list[str] = []
    real = io._write_array

    def write_then_crash(group, name, arr, compression):
        if name == "rewards":
            raise RuntimeError("simulated crash mid-write")
        real(group, name, arr, compression)
        written.append(name)

    monkeypatch.setattr(io, "_write_array", write_then_crash)
    return written


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = make_dataset(seed=1)
    path = save_dataset(old, tmp_path / "d.h5")
    before = path.read_bytes()
    written = _fail_on_rewards(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_dataset(make_dataset(seed=2, episodes=7), path)
    assert written == ["obs"]  # the crash really happened mid-write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]
    monkeypatch.undo()
    assert_same_dataset(old, load_dataset(path))


def test_failed_save_to_new_path_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_rewards(monkeypatch)
    with pytest.raises(RuntimeError):
        save_per_agent_datasets(per_agent_datasets(), tmp_path / "pa.h5")
    assert list(tmp_path.iterdir()) == []


def test_invalid_dataset_is_not_saved(tmp_path: Path) -> None:
    ds = make_dataset()
    ds.rewards[2, 1] = np.nan
    with pytest.raises(DatasetError, match=rf"{tmp_path / 'd.h5'}: field 'rewards': contains NaN at step 2, agent 1"):
        save_dataset(ds, tmp_path / "d.h5")
    assert list(tmp_path.iterdir()) == []


# ---- offmarl info -------------------------------------------------------------------------------------
def hand_dataset() -> MultiAgentDataset:
    """2 agents, 3 episodes whose per-agent returns are [[1, 3], [2, 2], [0, -2]]."""
    ds = make_dataset(n_agents=2, episodes=3, seed=5)
    ds.rewards[:] = 0.0
    ds.rewards[ds.episode_starts] = np.array([[1, 3], [2, 2], [0, -2]], dtype=np.float32)
    ds.refresh_card()
    return ds


def test_info_json(tmp_path: Path) -> None:
    path = save_dataset(hand_dataset(), tmp_path / "d.h5")
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)  # stdout holds nothing but JSON
    # per-agent average returns per episode: 2, 2, -1; team returns 4, 4, -2
    assert card["episodes"] == 3
    assert card["return_mean"] == pytest.approx(1.0)
    assert card["return_std"] == pytest.approx(math.sqrt(2.0))
    assert (card["return_min"], card["return_max"]) == (-1.0, 2.0)
    assert card["team_return_mean"] == pytest.approx(2.0)
    assert card["per_agent_return_mean"] == pytest.approx([1.0, 1.0])
    assert card["per_agent_return_max"] == [2.0, 3.0]
    assert card["env_name"] == "external:toy_grid" and card["n_agents"] == 2
    assert card["format_version"] == FORMAT_VERSION and card["offmarl_version"]


def test_info_table(tmp_path: Path) -> None:
    ds = hand_dataset()
    path = save_dataset(ds, tmp_path / "d.h5")
    result = runner.invoke(app, ["info", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.stdout
    lengths = ds.episode_lengths
    for expected in ["external:toy_grid", "scout, worker", "[6, 4] (stored width 6, zero-padded)",
                     "discrete, 5 actions (with avail_actions masks)", '{"noise": 0.0, "policy": "random"}',
                     "poor", f"mean {lengths.mean():.2f}, min {lengths.min()}, max {lengths.max()}",
                     "1.000 ± 1.414  [-1.000, 2.000]",  # per-agent average return
                     "2.000 ± 2.828  [-2.000, 4.000]",  # team return
                     "return agent 1 (worker)", "1.000 ± 2.160  [-2.000, 3.000]"]:
        assert expected in out, expected


def test_info_shows_behaviour_level_names_and_episodes_per_level(tmp_path: Path) -> None:
    ds = make_dataset(n_agents=2, episodes=5, seed=7, levels=True)
    ds.behavior_levels[:] = np.array([[0, 2], [0, 2], [1, 2], [0, 2], [1, 2]], dtype=np.uint8)
    path = save_dataset(ds, tmp_path / "d.h5")
    result = runner.invoke(app, ["info", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "random, medium, expert" in result.stdout
    assert re.search(r"levels agent 0 +│ random 3, medium 2 episodes", result.stdout), result.stdout
    assert re.search(r"levels agent 1 +│ expert 5 episodes", result.stdout), result.stdout
    plain = runner.invoke(app, ["info", str(save_dataset(make_dataset(), tmp_path / "plain.h5"))],
                          terminal_width=200)
    assert re.search(r"behaviour levels +│ - \(not recorded\)", plain.stdout) and "levels agent" not in plain.stdout


def test_info_per_agent_file(tmp_path: Path) -> None:
    datasets = per_agent_datasets()
    path = save_per_agent_datasets(datasets, tmp_path / "pa.h5")
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["per_agent"] is True
    assert payload["agents"] == [ds.card.to_dict() for ds in datasets]
    one = runner.invoke(app, ["info", str(path), "--json", "--agent", "2"])
    assert json.loads(one.stdout) == datasets[2].card.to_dict()
    table = runner.invoke(app, ["info", str(path)], terminal_width=200)
    assert table.exit_code == 0 and all(f"[agent_{i}]" in table.stdout for i in range(3))
    bad = runner.invoke(app, ["info", str(path), "--agent", "7"])
    assert bad.exit_code == 2 and "agent 7 out of range" in bad.stderr
