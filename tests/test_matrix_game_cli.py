"""``offmarl matrix-game``: MABCQ Tables 2–4 (tabular operator), the deep learners, the JSON schema, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from typer.testing import CliRunner

from offmarl.algos.matrix_game_tabular import modified_transition, tabular_mabcq
from offmarl.cli import app
from offmarl.commands.matrix_game import format_report, parse_matrix

PAYOFF, BEHAVIOR = [[1, 5], [6, 1]], [[0.8, 0.2], [0.4, 0.6]]


def table(variant: str, epsilon: float | None = None) -> dict:
    return tabular_mabcq(PAYOFF, BEHAVIOR, variant, epsilon)


def rounded(agent: dict, key: str) -> list:
    return np.round(np.asarray(agent[key], dtype=float), 2).tolist()


def test_table_2_the_dataset_transitions():
    r = table("bcq")
    a1, a2 = r["agents"]
    assert rounded(a1, "transition") == [[0.4, 0.6], [0.4, 0.6]] and rounded(a1, "expected_return") == [3.4, 3.0]
    assert rounded(a2, "transition") == [[0.8, 0.2], [0.8, 0.2]] and rounded(a2, "expected_return") == [2.0, 4.2]
    assert r["joint_action"] == [0, 1] and r["payoff"] == 5.0  # the suboptimal (a_1, a_2)


def test_table_3_value_deviation_only():
    r = table("vd")
    a1, a2 = r["agents"]
    assert rounded(a1, "transition") == [[0.12, 0.88], [0.8, 0.2]]
    # the paper prints 4.52 (= 0.12·1 + 0.88·5 with rounded probabilities); exactly 15.4 / 3.4
    assert a1["expected_return"][0] == pytest.approx(4.52, abs=0.01) and a1["expected_return"][1] == pytest.approx(5.0)
    assert a2["expected_return"][1] > a2["expected_return"][0]  # agent 2 still prefers a_2 (App. B)
    assert r["joint_action"] == [1, 1] and r["payoff"] == 1.0  # "worse than the initial one"


def test_table_4_value_deviation_and_transition_normalization():
    r = table("vd_tn")
    a1, a2 = r["agents"]
    assert rounded(a1, "transition") == [[0.17, 0.83], [0.86, 0.14]] and rounded(a1, "expected_return") == [4.33, 5.29]
    assert rounded(a2, "transition") == [[0.14, 0.86], [0.83, 0.17]] and rounded(a2, "expected_return") == [5.29, 4.33]
    assert r["joint_action"] == [1, 0] and r["payoff"] == 6.0  # the optimum (a_2, a_1)
    tn = table("tn")
    assert rounded(tn["agents"][0], "transition") == [[0.5, 0.5], [0.5, 0.5]] and tn["joint_action"] == [1, 0]


def test_epsilon_clips_value_deviation_at_its_fixed_point():
    """P = [½, ½], V = [1, 3], ε = ½: λ(1) clips at ½, λ(3) = 3/E, so E = (½ + 9/E)/(½ + 3/E), E² + 5E − 18 = 0."""
    p_hat = modified_transition(np.array([0.5, 0.5]), np.array([1.0, 3.0]), "vd", epsilon=0.5)
    assert float(p_hat @ [1.0, 3.0]) == pytest.approx((-5 + math.sqrt(97)) / 2, abs=1e-9)
    unclipped = modified_transition(np.array([0.5, 0.5]), np.array([1.0, 3.0]), "vd")
    np.testing.assert_allclose(unclipped, [0.25, 0.75])  # ∝ P·V


def test_other_payoffs_and_unplayed_actions():
    r = tabular_mabcq([[0, 2, 1], [3, 0, 0]], [[1.0, 0.0], [0.5, 0.0, 0.5]], "bcq")
    a1, a2 = r["agents"]
    # agent 1 only plays action 0 and meets agent 2's actions 0 and 2; agent 2 only ever meets agent 1's action 0
    assert a1["outcomes"] == [0, 2] and a1["transition"] == [[0.5, 0.5], []] and a1["expected_return"] == [0.5, None]
    assert a2["outcomes"] == [0] and a2["expected_return"] == [0.0, None, 1.0] and a2["transition"][1] == []
    assert r["joint_action"] == [0, 2] and r["payoff"] == 1.0


def test_parse_and_format():
    assert parse_matrix("1,5;6,1", "--payoff") == [[1.0, 5.0], [6.0, 1.0]]
    with pytest.raises(ValueError, match="--payoff '1,a': expected numbers"):
        parse_matrix("1,a", "--payoff")
    tabular = {v: table(v) for v in ("bcq", "vd", "tn", "vd_tn")}
    text = format_report(np.array(PAYOFF, float), [np.array(b) for b in BEHAVIOR], None, tabular, tabular)
    assert "[vd_tn]  tabular: joint action (1, 0), payoff 6   |   deep: joint action (1, 0), payoff 6" in text
    assert "0: 0.17, 1: 0.83" in text and "epsilon none (no clipping)" in text


def test_cli_json_defaults_reproduce_the_tables_and_the_deep_learners_agree():
    result = CliRunner().invoke(app, ["matrix-game", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # stdout holds only the JSON
    assert set(out) == {"tabular", "deep"}
    for variant in ("bcq", "vd", "tn", "vd_tn"):
        tab = out["tabular"][variant]
        assert set(tab) == {"joint_action", "payoff", "agents"}
        assert all(set(agent) == {"expected_return", "transition"} for agent in tab["agents"])
        assert out["deep"][variant]["joint_action"] == tab["joint_action"], variant
        assert out["deep"][variant]["payoff"] == tab["payoff"]
    assert [out["tabular"][v]["joint_action"] for v in ("bcq", "vd", "tn", "vd_tn")] == [[0, 1], [1, 1], [1, 0], [1, 0]]
    assert out["tabular"]["vd_tn"]["agents"][0]["transition"][1] == pytest.approx([6 / 7, 1 / 7])


@pytest.mark.parametrize("args,message", [
    (["--payoff", "1,5;6"], "payoff must be a matrix of numbers"),
    (["--behavior", "0.5,0.4;0.4,0.6"], "behavior[0] must sum to 1"),
    (["--payoff", "1,-5;6,1"], "payoff entries must be >= 0"),
    (["--epsilon", "0"], "--epsilon must be > 0"),
])
def test_cli_errors_are_one_line(args, message):
    result = CliRunner().invoke(app, ["matrix-game", *args])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
