"""``offmarl envs`` and ``offmarl envs render`` through the typer app."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.commands.envs import describe_env, parse_env_set
from offmarl.envs import list_envs
from offmarl.envs.registry import _REGISTRY, register_env

runner = CliRunner()


@pytest.fixture
def broken_envs():
    """Two registered envs that cannot be built: a missing native module and a factory that raises."""
    register_env("_test_missing", "offmarl.envs._no_such_module:Env", "missing module")
    register_env("_test_broken", "offmarl.envs.matrix_game:MatrixGameEnv", "bad default", source="native")
    register_env("_test_unavailable", "x:y", "declared unavailable", source="smax", unavailable_reason="needs jax")
    yield
    for name in ("_test_missing", "_test_broken", "_test_unavailable"):
        _REGISTRY.pop(name)


def test_envs_json_lists_every_env():
    result = runner.invoke(app, ["envs", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}  # stdout is only JSON
    assert set(rows) == {entry.name for entry in list_envs()}
    es = rows["equal_space"]
    assert es["available"] and es["source"] == "native" and es["reason"] is None
    assert es["spec"]["n_agents"] == 3 and es["spec"]["obs_dims"] == [6, 6, 6] and es["spec"]["episode_limit"] == 25
    assert es["spec"]["action_space"]["kind"] == "continuous"
    mg = rows["matrix_game"]["spec"]
    assert mg["action_space"] == {"kind": "discrete", "n": 2} and mg["episode_limit"] == 2


def test_envs_listing_survives_unbuildable_envs(broken_envs, monkeypatch):
    import offmarl.envs.matrix_game as mg

    monkeypatch.setattr(mg, "DEFAULT_PAYOFF", [[-1.0]])
    rows = {name: describe_env(name) for name in ("_test_missing", "_test_broken", "_test_unavailable")}
    assert rows["_test_missing"]["reason"] == "module offmarl.envs._no_such_module not built yet"
    assert rows["_test_broken"]["reason"].startswith("cannot be built: ValueError: matrix_game: "
                                                     "payoff entries must be >= 0")
    assert rows["_test_unavailable"]["reason"] == "needs jax"
    assert not any(row["available"] for row in rows.values())
    result = runner.invoke(app, ["envs"])
    assert result.exit_code == 0, result.output
    for text in ("equal_space", "Box(2) [-1, 1]", "_test_missing", "not built yet", "needs jax",
                 "cannot be built: ValueError"):  # matrix_game too is unbuildable while patched
        assert text in result.stdout


def test_render_expert_gif(tmp_path):
    out = tmp_path / "nested" / "dir" / "es.gif"
    result = runner.invoke(app, ["envs", "render", "equal_space", "--policy", "expert", "--out", str(out),
                                 "--seed", "3", "--env-set", "n_agents=4"])
    assert result.exit_code == 0, result.output
    assert "26 frames" in result.stdout  # first frame + one per step (the last from final_state)
    frames = iio.imread(out, index=None)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.shape[0] >= 2
    assert not np.array_equal(frames[0], frames[-1])


def test_render_matrix_game_with_env_set(tmp_path):
    out = tmp_path / "mg.gif"
    result = runner.invoke(app, ["envs", "render", "matrix_game", "--policy", "expert", "--out", str(out),
                                 "--env-set", "payoff=[[1, 2], [3, 9]]"])
    assert result.exit_code == 0, result.output
    assert "3 frames" in result.stdout and "[9.0, 9.0]" in result.stdout
    assert iio.imread(out, index=None).shape[0] == 3


@pytest.mark.parametrize("args, message", [
    (["equal_space", "--env-set", "n_agents"], "--env-set expects key=value"),
    (["equal_space", "--policy", "nope"], "has no behaviour policy 'nope'"),
    (["matrix_game", "--env-set", "payoff=[[1, -2]]"], "payoff entries must be >= 0"),
    (["no_such_env"], "unknown environment 'no_such_env'"),
])
def test_render_errors_are_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["envs", "render", *args, "--out", str(tmp_path / "x.gif")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_render_run_directory_without_model(tmp_path):
    result = runner.invoke(app, ["envs", "render", "equal_space", "--policy", str(tmp_path),
                                 "--out", str(tmp_path / "x.gif")])
    assert result.exit_code == 2 and "is not a trained run directory" in result.output


def test_parse_env_set_uses_yaml():
    assert parse_env_set(["n_agents=4", "half_width=2.5", "payoff=[[1, 2]]", "name=abc"]) == {
        "n_agents": 4, "half_width": 2.5, "payoff": [[1, 2]], "name": "abc"}


def test_render_trained_run_directory(tmp_path):
    from offmarl.algos import list_algos, make_algo
    from offmarl.envs import make_env

    if "bc" not in list_algos():
        pytest.skip("algorithm bc not built yet")
    make_algo("bc", make_env("equal_space").spec).save(tmp_path / "run" / "model")  # an untrained run
    out = tmp_path / "bc.gif"
    result = runner.invoke(app, ["envs", "render", "equal_space", "--policy", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "26 frames" in result.stdout and out.exists()
    result = runner.invoke(app, ["envs", "render", "matrix_game", "--policy", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 2 and "was trained on env 'equal_space', not 'matrix_game'" in result.output
